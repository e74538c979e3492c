"""``mlpotential install``: the installation wizard.

    mlpotential install --list [BACKEND ...] [--json]
    mlpotential install BACKEND [--cpu | --cuda [TAG]] [--dry-run] [--yes]
    mlpotential install --uninstall BACKEND [--dry-run] [--yes]
    mlpotential install --ani-parameters PATH [--dry-run]

Exit status: 0 done (or nothing to do), 1 a check or pip failed or the user
declined, 2 bad usage or no terminal to ask on without ``--yes``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

from mlpotential.backends.registry import BACKENDS, install_hint
from mlpotential.installer import listing
from mlpotential.installer.ani_install import AniParameterError, install_ani_parameters
from mlpotential.installer.confirmation import NoTerminal, ask, must_ask
from mlpotential.installer.environment import installed_distributions, torch_build
from mlpotential.installer.pip_runner import PipRunner, apply_plan, preview_plan
from mlpotential.installer.plans import (
    DEFAULT_CUDA_TAG,
    BackendPackages,
    Plan,
    backend_packages,
    constraint_lines,
    find_backend,
    install_argument,
    install_plan,
    uninstall_plan,
)
from mlpotential.installer.project_requirements import project_requirements

EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(install_argument(spec) for spec in BACKENDS.values())
    parser = argparse.ArgumentParser(
        prog="mlpotential install",
        description=(
            "Install, check and remove what each backend needs, with pip run by this Python "
            f"({sys.executable}). Backends: {names}."
        ),
    )
    parser.add_argument("backends", nargs="*", metavar="BACKEND", help="the backend to install (with --list: to show)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="show every backend: installed, versions, works")
    action.add_argument("--uninstall", metavar="BACKEND", help="remove a backend's library")
    action.add_argument(
        "--ani-parameters", metavar="PATH", type=Path,
        help="folder or archive of NeuroChem files (ANI-1x, ANI-1ccx, ANI-2x) to copy into the data directory",
    )
    build = parser.add_mutually_exclusive_group()
    build.add_argument("--cpu", action="store_true", help="install (or switch to) the CPU build of torch")
    build.add_argument(
        "--cuda", nargs="?", const=DEFAULT_CUDA_TAG, metavar="TAG",
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
    try:
        if args.list:
            return _list(args.backends, args.json)
        if args.ani_parameters:
            return _ani_parameters(args.ani_parameters, args.dry_run)
        if args.uninstall:
            return _uninstall(_packages(args.uninstall), args.dry_run, args.yes)
        return _install(_packages(args.backends[0]), torch_variant, args.dry_run, args.yes)
    except AniParameterError as exc:
        print(f"mlpotential install: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (NoTerminal, ValueError) as exc:
        print(f"mlpotential install: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, OSError) as exc:  # PipError, a missing requirement list, a failed copy
        print(f"mlpotential install: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _packages(name: str) -> BackendPackages:
    return backend_packages(find_backend(name), project_requirements())


def _list(names: list[str], as_json: bool) -> int:
    project = project_requirements()
    specs = [find_backend(name) for name in names] if names else list(BACKENDS.values())
    packages = [backend_packages(spec, project) for spec in specs]
    result = listing.collect(packages)
    print(result.to_json() if as_json else listing.format_table(result, packages))
    return 0


def _show_plan(plan: Plan, runner: PipRunner, constraints: list[str] | None = None) -> None:
    for note in plan.notes:
        print(f"  {note}")
    if not plan.commands:
        return
    if constraints:
        print("Every pip command runs with these constraints:")
        print("".join(f"  {line}\n" for line in constraints), end="")
    print("Commands:")
    for command in plan.commands:
        print(f"  # {command.purpose}")
        runner.show(command)


def _install(packages: BackendPackages, torch_variant: str | None, dry_run: bool, yes: bool) -> int:
    runner = PipRunner()
    name = packages.spec.name
    print(f"Backend {name}: installing into the Python environment of {sys.executable} (Python {platform.python_version()})")
    torch = torch_build()
    lines = constraint_lines(torch, project_requirements())
    with tempfile.TemporaryDirectory(prefix="mlpotential-install-") as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text("".join(f"{line}\n" for line in lines))
        plan = install_plan(packages, torch, constraints, torch_variant)
        _show_plan(plan, runner, lines)
        if not plan.commands:
            print(f"Nothing to install for Backend {name}.")
            return 0
        if dry_run:
            print("Dry run: nothing was changed.")
            return 0
        asking = must_ask(yes)
        print("Checking with pip's own dry run that every command can be done...")
        previews = preview_plan(plan, runner)
        changes = sorted({f"{dist} {version}" for preview in previews for dist, version in preview.changes})
        if previews and not changes:
            print(f"Everything Backend {name} needs is installed already; nothing was changed.")
            return 0
        if changes:
            print(f"pip will install or replace: {', '.join(changes)}")
        if asking and not ask("Run these commands?"):
            print("Nothing was changed.")
            return EXIT_FAILED
        apply_plan(plan, runner, constraints)
    print(f"Backend {name} is installed. Check that it works with: mlpotential install --list {install_argument(packages.spec)}")
    return 0


def _uninstall(packages: BackendPackages, dry_run: bool, yes: bool) -> int:
    runner = PipRunner()
    name = packages.spec.name
    print(f"Backend {name}: uninstalling from the Python environment of {sys.executable}")
    plan = uninstall_plan(packages, installed_distributions())
    _show_plan(plan, runner)
    if not plan.commands:
        return 0
    if dry_run:
        print("Dry run: nothing was changed.")
        return 0
    if must_ask(yes) and not ask("Run this command?"):
        print("Nothing was changed.")
        return EXIT_FAILED
    apply_plan(plan, runner)
    print(f"Backend {name}'s library is uninstalled; `{install_hint(packages.spec)}` brings it back.")
    return 0


def _ani_parameters(path: Path, dry_run: bool) -> int:
    result = install_ani_parameters(path, dry_run=dry_run)
    size = f"{len(result.files)} files, {result.total_bytes / 1e6:.1f} MB"
    if dry_run:
        print(f"{result.source} holds every file ANI-2x, ANI-1ccx and ANI-1x need ({size}).")
        print(f"Dry run: nothing was copied; they would go to {result.destination}")
        return 0
    print(f"Checked and copied {size} from {result.source} to {result.destination}")
    print(f"Recorded in {result.config_file}: the TorchANI backend reads the built-in models from there")
    return 0
