"""The ``mlpotential`` command: the subcommand table and the dispatch.

Each subcommand lives in one module of :mod:`mlpotential.commands` with
``main(argv: list[str]) -> int``. Modules are imported only when chosen, so
``mlpotential worker`` with the ASE backend never imports torch.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, str] = {
    "worker": "serve an engine over call_pipe/reply_pipe in this directory",
    "client": "drive any AMS-compatible worker; --check runs the conformance suite",
    "run": "run an AMS-style job (SinglePoint, GeometryOptimization, MolecularDynamics)",
    "train": "train a native HDNNP model from a config file",
    "learn": "active learning: explore with a committee, label where it is unsure, retrain",
    "gpr": "GPR surrogate: train, test and augment from an aenet-gpr train.in",
    "install": "the installation wizard: list, install, uninstall backends",
}
"""Subcommand -> one-line description; the module is ``mlpotential.commands.<subcommand>``."""


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items())
    return (
        f"usage: mlpotential <command> [options]\n\ncommands:\n{rows}\n\n`mlpotential <command> --help` describes each."
    )


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
    module = importlib.import_module(f"mlpotential.commands.{name}")
    return module.main(argv[1:])
