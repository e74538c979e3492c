"""The AMS input users already write: GeometryOptimization with Method,
Convergence (Quality presets) and OptimizeLattice; Properties (gradients,
stress tensor, Hessian and normal modes by finite differences); Engine Pipe
driving a worker we did not write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.optimize import BFGS
from ase.vibrations import Vibrations

from mlpotential.driver.input_reader import InputError
from mlpotential.driver.job import QUALITY_PRESETS, Convergence, read_job
from mlpotential.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV
from tests.driver.test_run import CLUSTER
from tests.host.test_scm_reference_worker import argon_cluster, lennard_jones

COPPER = """\
System
  Atoms
    Cu 0.0 0.0 0.0
  End
  Lattice
    0.0 1.9 1.9
    1.9 0.0 1.9
    1.9 1.9 0.0
  End
End
Engine MLPotential
  Model EMT
EndEngine
"""
HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3 = HARTREE_TO_EV / BOHR_TO_ANGSTROM**3


def run(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    job = tmp_path / "job.in"
    job.write_text(text)
    results = tmp_path / "job.results"
    command = [sys.executable, "-m", "mlpotential", "run", str(job), "--results", str(results), "--overwrite"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600), results


def summary_of(results: Path) -> dict:
    return json.loads((results / "summary.json").read_text())


def vibrational_frequencies(atoms: Atoms, directory: Path, rigid: int) -> np.ndarray:
    """ase.vibrations' frequencies (cm^-1) on ``atoms``'s calculator, the
    ``rigid`` smallest in magnitude left out, ascending."""
    vibrations = Vibrations(atoms, name=str(directory / "vib"))
    vibrations.run()
    energies = vibrations.get_energies()
    vibrations.clean()
    largest = np.sort(np.abs(energies))[rigid:]
    return largest.real / units.invcm


# ------------------------------------------------------------------ reading
def job_text(block: str, task: str = "GeometryOptimization", system: str = CLUSTER) -> str:
    return f"Task {task}\n{system}{block}"


def test_quality_presets_are_ams_s_and_explicit_thresholds_override_them(tmp_path: Path) -> None:
    path = tmp_path / "job.in"
    path.write_text(
        job_text(
            "GeometryOptimization\n  Method quasi-newton\n  MaxIterations 50\n  Convergence\n    Quality Good\n"
            "    Step 0.5\n  End\nEnd\n"
        )
    )
    settings = read_job(path).optimization
    assert (settings.method, settings.max_iterations) == ("Quasi-Newton", 50)
    assert settings.convergence == Convergence(energy=1e-6, gradients=1e-4, step=0.5, stress_energy_per_atom=5e-5)
    assert QUALITY_PRESETS["Normal"] == Convergence()  # AMS's defaults: 1e-5, 1e-3, 0.01, 5e-4
    assert QUALITY_PRESETS["VeryBasic"].gradients == pytest.approx(0.1)
    assert QUALITY_PRESETS["VeryGood"].step == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (job_text("GeometryOptimization\n  OptimizeLattice Yes\nEnd\n"), "line 14: OptimizeLattice needs a system"),
        (job_text("GeometryOptimization\n  Method Newton\nEnd\n"), "allowed: Auto, Quasi-Newton, FIRE, L-BFGS"),
        (job_text("Properties\n  NormalModes Yes\nEnd\n", "MolecularDynamics"), "Properties are computed for"),
        (job_text("Properties\n  StressTensor Yes\nEnd\n", "SinglePoint"), "StressTensor needs a system with 3"),
        (job_text("Properties\n  Hessian Maybe\nEnd\n", "SinglePoint"), "allowed: Yes, No"),
        (
            job_text("GeometryOptimization\n  Convergence\n    Energy -1\n  End\nEnd\n"),
            "Energy must be positive and at most 1 Hartree",
        ),
        ("Task SinglePoint\n" + CLUSTER.replace("MLPotential", "Pipe"), "Engine Pipe takes only WorkerCommand"),
        (
            "Task SinglePoint\n" + CLUSTER.replace("MLPotential\n  Model EMT", "Pipe"),
            "Engine Pipe needs WorkerCommand",
        ),
        (
            "Task SinglePoint\n" + CLUSTER.replace("Model EMT", "WorkerCommand x"),
            "WorkerCommand belongs to Engine Pipe",
        ),
        (
            "Task SinglePoint\n" + CLUSTER.replace("MLPotential\n  Model EMT", "Pipe\n  WorkerCommand 'unclosed"),
            "No closing quotation",
        ),
    ],
)
def test_ams_input_mistakes_name_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "job.in"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment):
        read_job(path)


# --------------------------------------------------------------- optimising
@pytest.mark.parametrize("method", ["Quasi-Newton", "FIRE"])
def test_optimisation_stops_on_ams_criteria(tmp_path: Path, method: str) -> None:
    done, results = run(
        tmp_path, job_text(f"GeometryOptimization\n  Method {method}\n  Convergence\n    Quality Good\n  End\nEnd\n")
    )
    assert done.returncode == 0, done.stderr
    summary = summary_of(results)
    assert (summary["status"], summary["method"]) == ("converged", method)
    assert summary["convergence_thresholds"]["gradients"] == pytest.approx(1e-4)
    last = summary["last_step_criteria"]
    assert last["max_gradient"] < 1e-4 and last["rms_gradient"] < 2 / 3 * 1e-4
    assert np.abs(read(results / "final.xyz").get_forces()).max() / HARTREE_TO_EV < 1e-4


def test_an_optimisation_out_of_iterations_is_not_converged_and_skips_properties(tmp_path: Path) -> None:
    done, results = run(
        tmp_path, job_text("GeometryOptimization\n  MaxIterations 2\nEnd\nProperties\n  NormalModes Yes\nEnd\n")
    )
    assert done.returncode == 3, done.stderr
    summary = summary_of(results)
    assert summary["status"] == "not converged" and summary["steps"] == 2
    assert summary["properties"].startswith("not computed")


def test_optimize_lattice_finds_emt_copper_s_lattice_constant(tmp_path: Path) -> None:
    done, results = run(
        tmp_path,
        job_text(
            "GeometryOptimization\n  OptimizeLattice Yes\n  Convergence\n    Quality Good\n  End\nEnd\n", system=COPPER
        ),
    )
    assert done.returncode == 0, done.stderr
    final = read(results / "final.xyz")
    reference = bulk("Cu", "fcc", a=3.8)
    reference.calc = EMT()
    BFGS(FrechetCellFilter(reference), logfile=None).run(fmax=1e-6)
    lattice_constant = (4 * final.get_volume()) ** (1 / 3)
    assert lattice_constant == pytest.approx((4 * reference.get_volume()) ** (1 / 3), rel=1e-3)
    assert summary_of(results)["last_step_criteria"]["stress_energy_per_atom"] < 5e-5


# --------------------------------------------------------------- properties
def test_gradients_and_stress_tensor_are_the_engine_s(tmp_path: Path) -> None:
    done, results = run(
        tmp_path, job_text("Properties\n  Gradients Yes\n  StressTensor Yes\nEnd\n", "SinglePoint", COPPER)
    )
    assert done.returncode == 0, done.stderr
    properties = summary_of(results)["properties"]
    copper = read(results / "final.xyz")
    copper.calc = EMT()
    gradients = -copper.get_forces() / HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    assert np.array(properties["gradients_hartree_per_bohr"]) == pytest.approx(gradients, abs=1e-12)
    stress = copper.get_stress(voigt=False) / HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3
    assert np.array(properties["stress_tensor_hartree_per_bohr3"]) == pytest.approx(stress, rel=1e-9)


def test_normal_modes_of_a_copper_cluster_match_ase_vibrations(tmp_path: Path) -> None:
    done, results = run(
        tmp_path,
        job_text(
            "GeometryOptimization\n  Convergence\n    Quality VeryGood\n  End\nEnd\n"
            "Properties\n  NormalModes Yes\n  Hessian Yes\nEnd\n"
        ),
    )
    assert done.returncode == 0, done.stderr
    properties = summary_of(results)["properties"]
    frequencies = np.array(properties["frequencies_cm-1"])
    assert len(frequencies) == 3 * 4 - 6  # translations and rotations projected out
    cluster = read(results / "final.xyz")
    cluster.calc = EMT()
    assert frequencies == pytest.approx(vibrational_frequencies(cluster, tmp_path, rigid=6), abs=0.5)
    hessian = np.loadtxt(results / properties["hessian_file"])
    assert hessian.shape == (12, 12) and np.allclose(hessian, hessian.T)
    assert (results / properties["normal_modes_file"]).read_text().count("mode ") == 6


@pytest.mark.slow
def test_normal_modes_of_water_with_ani_2x_match_ase_vibrations(
    tmp_path: Path, ani_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpotential import PipeEngine

    monkeypatch.setenv("TORCHANI_DATA_DIR", str(ani_data_dir))
    water = (
        "System\n  Atoms\n    O 0.000 0.000 0.119\n    H 0.000 0.763 -0.477\n    H 0.000 -0.763 -0.477\n  End\nEnd\n"
        "Engine MLPotential\n  Model ANI-2x\n  Device cpu\nEndEngine\n"
    )
    done, results = run(
        tmp_path,
        job_text(
            "GeometryOptimization\n  Convergence\n    Quality VeryGood\n  End\nEnd\n"
            "Properties\n  NormalModes Yes\nEnd\n",
            system=water,
        ),
    )
    assert done.returncode == 0, done.stderr
    frequencies = np.array(summary_of(results)["properties"]["frequencies_cm-1"])
    molecule = read(results / "final.xyz")
    with PipeEngine(Model="ANI-2x", Device="cpu") as engine:
        molecule.calc = engine
        expected = vibrational_frequencies(molecule, tmp_path, rigid=6)
    assert len(frequencies) == 3
    assert frequencies == pytest.approx(expected, abs=1.0)


# -------------------------------------------------------------- Engine Pipe
def test_engine_pipe_drives_scm_s_reference_worker(tmp_path: Path, scm_worker: str) -> None:
    (tmp_path / "lj-worker").symlink_to(scm_worker)  # a relative program: the job file's folder
    atoms = argon_cluster()
    rows = "\n".join(f"    Ar {x:.10f} {y:.10f} {z:.10f}" for x, y, z in atoms.positions)
    system = f"System\n  Atoms\n{rows}\n  End\nEnd\nEngine Pipe\n  WorkerCommand ./lj-worker\nEndEngine\n"
    done, results = run(tmp_path, f"Task SinglePoint\n{system}Properties\n  Gradients Yes\nEnd\n")
    assert done.returncode == 0, done.stderr
    summary = summary_of(results)
    written = np.array([[float(f"{value:.10f}") for value in row] for row in atoms.positions])  # as in the job
    energy, gradients = lennard_jones(written / BOHR_TO_ANGSTROM)
    assert summary["energy_hartree"] == pytest.approx(energy, rel=1e-10)
    assert np.array(summary["properties"]["gradients_hartree_per_bohr"]) == pytest.approx(gradients, rel=1e-8)
    assert summary["provenance"]["worker"] is None
    assert summary["provenance"]["host"]["worker_command"] == [str(tmp_path / "lj-worker")]

    done, results = run(tmp_path, f"Task GeometryOptimization\n{system}")
    assert done.returncode == 0, done.stderr
    assert summary_of(results)["status"] == "converged"
    final = read(results / "final.xyz").positions / BOHR_TO_ANGSTROM
    assert np.abs(lennard_jones(final)[1]).max() < 1e-3 * BOHR_TO_ANGSTROM  # Hartree/Bohr from Hartree/Angstrom
