"""The ``mlpotential`` command: one entry point, one module per subcommand.

Subcommand modules are imported only when chosen, so ``mlpotential worker``
with the ASE backend never imports torch. Each module has
``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "worker": ("mlpotential.engine.worker_cli", "serve an engine over call_pipe/reply_pipe in this directory"),
    "client": ("mlpotential.engine.harness", "drive any AMS-compatible worker; --check runs the conformance suite"),
    "run": ("mlpotential.engine.driver", "run an AMS-style job (SinglePoint, GeometryOptimization, MolecularDynamics)"),
    "train": ("mlpotential.backends.hdnnp.train_cli", "train a native HDNNP model from a config file"),
    "gpr": ("mlpotential.backends.gpr.cli", "GPR surrogate: train, test and augment from an aenet-gpr train.in"),
    "install": ("mlpotential.installer.wizard", "the installation wizard: list, install, uninstall backends"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items())
    return f"usage: mlpotential <command> [options]\n\ncommands:\n{rows}\n\n`mlpotential <command> --help` describes each."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from mlpotential import __version__

        print(f"mlpotential {__version__}")
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        print(f"mlpotential: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(argv[1:])
