"""``mlpotential run``: jobs, results folder, errors naming lines."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from ase.io import read

from mlpotential.driver.job import read_job

CLUSTER = """\
System
  Atoms
    Cu 0.0 0.0 0.0
    Cu 2.5 0.1 0.0
    Cu 1.2 2.2 0.1
    Cu 1.3 0.8 2.1
  End
End
Engine MLPotential
  Model EMT
EndEngine
"""


def run(tmp_path, text: str, name: str = "job.in", *options: str) -> subprocess.CompletedProcess[str]:
    job = tmp_path / name
    job.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "mlpotential", "run", str(job), "--results", str(tmp_path / "out"), *options],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_geometry_optimisation_job(tmp_path):
    done = run(
        tmp_path,
        "Task GeometryOptimization\n" + CLUSTER + "GeometryOptimization\n  Convergence\n"
        "    Gradients 1e-4\n  End\nEnd\n",
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["converged"] and summary["task"] == "GeometryOptimization"
    assert summary["energy_ev"] == pytest.approx(summary["energy_hartree"] * 27.211386024367243)
    final = read(out / "final.xyz")
    assert np.abs(final.get_forces()).max() < 1e-4 * 27.2114
    rows = list(csv.DictReader(open(out / "energies.csv")))
    energies = [float(row["energy_ev"]) for row in rows]
    assert energies[-1] < energies[0] and len(read(out / "trajectory.xyz", ":")) == len(rows)


def test_md_job_with_seed_is_reproducible(tmp_path):
    text = (
        "Task MolecularDynamics\n" + CLUSTER + "MolecularDynamics\n  NSteps 20\n  TimeStep 1.0\n"
        "  InitialVelocities\n    Temperature 300\n    RandomSeed 3\n  End\nEnd\n"
    )
    totals = []
    for _ in range(2):
        done = run(tmp_path, text, "job.in", "--overwrite")
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(open(tmp_path / "out" / "energies.csv")))
        assert len(rows) == 21
        totals.append([float(row["total_ev"]) for row in rows])
    assert totals[0] == totals[1]
    assert max(totals[0]) - min(totals[0]) < 0.01  # velocity Verlet conserves energy


def test_lattice_block_makes_a_periodic_system(tmp_path):
    job = tmp_path / "bulk.in"
    job.write_text(
        "Task SinglePoint\nSystem\n  Atoms\n    Cu 0 0 0\n  End\n  Lattice\n    0 1.8 1.8\n    1.8 0 1.8\n"
        "    1.8 1.8 0\n  End\nEnd\nEngine MLPotential\n  Model EMT\nEndEngine\n"
    )
    atoms = read_job(job).atoms
    assert atoms.pbc.all() and atoms.get_volume() == pytest.approx(2 * 1.8**3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Task Relax\n" + CLUSTER, "line 1: Task 'Relax' is not allowed"),
        (
            "Task SinglePoint\n" + CLUSTER.replace("Cu 2.5 0.1 0.0", "Qq 2.5 0.1 0.0"),
            "line 5: unknown element symbol 'Qq'",
        ),
        ("Task SinglePoint\n" + CLUSTER.replace("Cu 2.5 0.1 0.0", "Cu 2.5 0.1"), "line 5: an atom line is"),
        (
            "Task MolecularDynamics\n" + CLUSTER + "MolecularDynamics\n  NStep 5\nEnd\n",
            "line 14: unknown key or block 'NStep'",
        ),
        (
            "Task MolecularDynamics\n" + CLUSTER + "MolecularDynamics\n  TimeStep -1\nEnd\n",
            "line 14: TimeStep must be positive",
        ),
    ],
)
def test_input_errors_name_the_line(tmp_path, text, fragment):
    done = run(tmp_path, text)
    assert done.returncode == 2
    assert fragment in done.stderr


def test_engine_error_is_reported(tmp_path):
    done = run(tmp_path, "Task SinglePoint\n" + CLUSTER.replace("Model EMT", "Backend sGDML\n  ParameterFile nope.npz"))
    assert done.returncode == 1
    assert "ParameterFile" in done.stderr and "nope.npz" in done.stderr
