"""Does a backend work here? A real import and a tiny evaluation per
backend (the probe its registry record names), run by ``mlpotential install --list`` in a fresh interpreter each
(``python -m mlpotential.installer.probes NAME``), so that one broken
library cannot take the listing down and no state leaks between backends.

Each check returns a one-line description of what it evaluated (energies in
eV) and raises when something does not work. The command prints one JSON
line: ``{"ok": bool, "detail": str}`` (the torch check adds its facts).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

from mlpotential.backends.probing import ProbeFailure
from mlpotential.backends.registry import BACKENDS, BackendSpec


def check_torch() -> dict[str, Any]:
    """The torch build: version, CUDA build or CPU, CUDA usable or not."""
    import torch

    cuda_available = torch.cuda.is_available()
    facts: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": cuda_available,
        "device_count": torch.cuda.device_count() if cuda_available else 0,
    }
    if cuda_available:
        facts["device_name"] = torch.cuda.get_device_name(0)
    value = torch.ones(4, dtype=torch.float64).sum().item()
    if value != 4.0:
        raise ProbeFailure(f"torch summed four ones to {value}")
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    facts["detail"] = f"torch {torch.__version__}, {build}, CUDA available: {'yes' if cuda_available else 'no'}"
    return facts


def _backend_probe(spec: BackendSpec) -> Callable[[], str]:
    """The probe named in the backend's record, imported when it runs."""

    def probe() -> str:
        module, function = spec.probe.split(":")
        return getattr(importlib.import_module(module), function)()

    return probe


CHECKS: dict[str, Callable[[], str]] = {spec.install_argument: _backend_probe(spec) for spec in BACKENDS.values()}
"""The check of each backend, by its ``mlpotential install`` argument."""


def run_check(name: str) -> dict[str, Any]:
    """Run one check (``"torch"`` or a backend's install argument) and
    return ``{"ok": ..., "detail": ...}``; nothing escapes."""
    try:
        if name == "torch":
            return {"ok": True, **check_torch()}
        # Libraries chatter on stdout (sgdml's progress lines); the JSON answer owns it.
        with contextlib.redirect_stdout(sys.stderr):
            detail = CHECKS[name]()
        return {"ok": True, "detail": detail}
    except Exception as exc:  # the answer reports any failure, whatever raised it
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"ok": False, "detail": message if isinstance(exc, ProbeFailure) else f"{type(exc).__name__}: {message}"}


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    if len(names) != 1 or names[0] not in ("torch", *CHECKS):
        print(f"usage: python -m mlpotential.installer.probes {{torch,{','.join(CHECKS)}}}", file=sys.stderr)
        return 2
    print(json.dumps(run_check(names[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
