"""Our host against a worker we did not write: SCM's reference worker library
(../shared/amspipe, MIT), its C++ demo built here with cmake. The demo
serves a Lennard-Jones potential (epsilon 0.02 Hartree, minimum at 5 Bohr)
and reads only the strongly typed UBJSON forms, as AMS's own workers do. The
``scm_worker`` fixture (tests/conftest.py) builds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write

from mlpotential import PipeEngine
from mlpotential.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

EPSILON = 0.02  # Hartree
RMIN = 5.0  # Bohr


def lennard_jones(positions_bohr: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy (Hartree) and gradients (Hartree/Bohr) of E = sum eps ((rmin/r)^12 - 2 (rmin/r)^6)."""
    energy, gradients = 0.0, np.zeros_like(positions_bohr)
    for i in range(len(positions_bohr)):
        for j in range(i + 1, len(positions_bohr)):
            vector = positions_bohr[j] - positions_bohr[i]
            r = np.linalg.norm(vector)
            energy += EPSILON * ((RMIN / r) ** 12 - 2 * (RMIN / r) ** 6)
            slope = EPSILON * (-12 * RMIN**12 / r**13 + 12 * RMIN**6 / r**7)  # dE/dr
            gradients[j] += slope * vector / r
            gradients[i] -= slope * vector / r
    return energy, gradients


def argon_cluster(periodic: bool = False) -> Atoms:
    rng = np.random.default_rng(11)
    positions = np.array([[0, 0, 0], [2.8, 0, 0], [0, 2.7, 0.2], [1.4, 1.3, 2.5]]) + rng.normal(0, 0.05, (4, 3))
    atoms = Atoms("Ar4", positions=positions)
    if periodic:
        atoms.cell = np.diag([12.0, 12.0, 12.0])
        atoms.pbc = True
    return atoms


def run_client(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlpotential", "client", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_mlpotential_client_gets_the_reference_worker_s_lennard_jones(scm_worker: str, tmp_path: Path) -> None:
    path = tmp_path / "ar4.xyz"
    write(path, argon_cluster())
    atoms = read(path)  # the geometry as the file holds it
    done = run_client("--worker", scm_worker, str(path), "--gradients", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    energy, gradients = lennard_jones(atoms.positions / BOHR_TO_ANGSTROM)
    assert report["energy"] == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(report["gradients"], gradients, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("periodic", [False, True], ids=["molecule", "with-lattice"])
def test_pipe_engine_drives_the_reference_worker(scm_worker: str, periodic: bool) -> None:
    atoms = argon_cluster(periodic)
    with PipeEngine(worker_command=[scm_worker]) as calc:
        atoms.calc = calc
        for step in range(3):  # SetSystem first, then SetCoords
            atoms.positions[0, 0] += 0.05 * step
            energy, gradients = lennard_jones(atoms.positions / BOHR_TO_ANGSTROM)
            assert atoms.get_potential_energy() == pytest.approx(energy * HARTREE_TO_EV, rel=1e-10)
            np.testing.assert_allclose(
                atoms.get_forces(), -gradients * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, rtol=1e-10, atol=1e-12
            )


def test_the_reference_worker_passes_every_protocol_case(scm_worker: str, tmp_path: Path) -> None:
    path = tmp_path / "ar4.xyz"
    write(path, argon_cluster())
    done = run_client("--worker", scm_worker, str(path), "--check", "--only", "protocol", "--timeout", "10")
    assert done.returncode == 0, done.stdout
    assert "protocol: 15 passed, 0 failed" in done.stdout


def test_robustness_cases_report_the_reference_worker_s_crashes_without_hanging(
    scm_worker: str, tmp_path: Path
) -> None:
    """SCM's demo crashes on several bad inputs (its library reads only what
    the protocol requires): the suite says so, case by case, and ends."""
    path = tmp_path / "ar4.xyz"
    write(path, argon_cluster())
    done = run_client("--worker", scm_worker, str(path), "--check", "--only", "robustness", "--timeout", "5")
    assert done.returncode == 1
    assert "FAIL  set-before-system" in done.stdout and "killed by signal SIGSEGV" in done.stdout
    assert "PASS  negative-length" in done.stdout
