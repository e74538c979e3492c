"""``mlpotential install --list``: one row per backend of the registry:
installed or not, versions, whether it works (a real import and a tiny
evaluation, each in its own interpreter), the torch build, and where the ANI
parameters are found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from mlpotential.backends.registry import install_hint
from mlpotential.backends.torchani import parameters as ani_parameters
from mlpotential.installer.environment import installed_distributions
from mlpotential.installer.plans import BackendPackages, install_argument
from mlpotential.installer.probes import CHECKS

PROBE_TIMEOUT_S = 600
_TORCH = "torch"


@dataclass(frozen=True)
class BackendStatus:
    """One row of the listing. ``versions`` holds every distribution the
    backend needs (None: absent); ``works`` is None when nothing was checked
    (not installed)."""

    backend: str
    install: str
    installed: bool
    versions: dict[str, str | None]
    works: bool | None
    detail: str


@dataclass(frozen=True)
class Listing:
    backends: list[BackendStatus]
    torch: dict[str, Any]
    ani_parameters: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(
            {
                "backends": [asdict(row) for row in self.backends],
                "torch": self.torch,
                "ani_parameters": self.ani_parameters,
            },
            indent=2,
        )


def run_probe(name: str, timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Run one check of :mod:`mlpotential.installer.probes` in a fresh
    interpreter (this one's executable) and return its answer."""
    environment = {**os.environ, "TORCHANI_NO_WARN_EXTENSIONS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mlpotential.installer.probes", name]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, env=environment, check=False
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "detail": f"the check did not finish in {timeout_s:.0f} s"}
    lines = result.stdout.strip().splitlines()
    if result.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    errors = [line for line in result.stderr.strip().splitlines() if line.strip()]
    reason = errors[-1] if errors else "no output"
    return {"ok": False, "detail": f"the check crashed (exit status {result.returncode}): {reason}"}


def collect(packages: list[BackendPackages]) -> Listing:
    """Check every backend of ``packages`` (installed ones for real) and torch."""
    installed = installed_distributions()
    rows: list[tuple[BackendPackages, dict[str, str | None]]] = [
        (package, {name: installed.get(name) for name in package.distributions}) for package in packages
    ]
    wanted = [install_argument(package.spec) for package, versions in rows if None not in versions.values()]
    names = ([_TORCH] if _TORCH in installed else []) + [name for name in wanted if name in CHECKS]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        answers = dict(zip(names, pool.map(run_probe, names)))
    statuses = [_status(package, versions, answers) for package, versions in rows]
    torch = answers.get(_TORCH, {"ok": False, "detail": "torch is not installed"})
    return Listing(statuses, torch, _ani_parameters())


def _status(package: BackendPackages, versions: dict[str, str | None], answers: dict[str, Any]) -> BackendStatus:
    argument = install_argument(package.spec)
    missing = [name for name, version in versions.items() if version is None]
    if missing:
        works, detail = None, f"missing {', '.join(missing)}: {install_hint(package.spec)}"
    elif argument not in answers:
        works, detail = False, "no check is known for this backend"
    else:
        works, detail = bool(answers[argument]["ok"]), str(answers[argument]["detail"])
    return BackendStatus(package.spec.name, argument, not missing, versions, works, detail)


def _ani_parameters() -> dict[str, Any]:
    locations = ani_parameters.parameter_locations()
    found = next((location for location in locations if location.complete), None)
    return {
        "found": found is not None,
        "folder": str(found.folder) if found else None,
        "source": found.source if found else None,
        "searched": ani_parameters.describe_locations(locations).splitlines(),
    }


def _shown_versions(row: BackendStatus, package: BackendPackages) -> str:
    """The backend's own libraries (torch is shown once, above the table)."""
    if not package.libraries:
        return "mlpotential's own code"
    return ", ".join(f"{name} {row.versions.get(name) or '-'}" for name in package.libraries)


def format_table(listing: Listing, packages: list[BackendPackages]) -> str:
    """The listing as text: torch first, one row per backend, then the ANI parameters."""
    torch = listing.torch.get("detail", "")
    lines = [f"torch: {torch}" if listing.torch.get("ok") else f"torch: not usable ({torch})", ""]
    header = ("Backend", "install", "installed", "works", "versions", "check")
    table = [header]
    for row, package in zip(listing.backends, packages):
        works = "-" if row.works is None else ("yes" if row.works else "no")
        table.append(
            (
                row.backend,
                row.install,
                "yes" if row.installed else "no",
                works,
                _shown_versions(row, package),
                row.detail,
            )
        )
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header) - 1)]
    for cells in table:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + "  " + cells[-1])
    ani = listing.ani_parameters
    lines.append("")
    if ani["found"]:
        lines.append(f"ANI parameters (TorchANI built-in models): {ani['folder']} (from {ani['source']})")
    else:
        lines.append("ANI parameters (TorchANI built-in models): not found; searched, in order:")
        lines.extend(f"  {entry}" for entry in ani["searched"])
        lines.append("  install them with: mlpotential install --ani-parameters PATH")
    return "\n".join(lines)
