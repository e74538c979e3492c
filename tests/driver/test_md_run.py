"""``mlpotential run`` molecular dynamics through a real worker: the
temperature it starts at and reports, what it prints while it runs (stdout
redirected), its summary and plot, and the uncertainty of a committee at
every step."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.io import read
from ase.units import Bohr, Hartree, kB

from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.uncertainty import describe_uncertainty, uncertainty_kind
from tests.driver.test_run import CLUSTER

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

COPPER = (
    "Task MolecularDynamics\n"
    + CLUSTER
    + """\
MolecularDynamics
  NSteps {steps}
  TimeStep {timestep}
  InitialVelocities
    Type Random
    Temperature 300
    RandomSeed 5
  End
{thermostat}End
"""
)


def command(job: Path, results: Path) -> list[str]:
    return [sys.executable, "-m", "mlpotential", "run", str(job), "--results", str(results)]


def run_job(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    job = tmp_path / "job.in"
    job.write_text(text)
    return subprocess.run(command(job, tmp_path / "out"), capture_output=True, text=True, timeout=600)


def rows(results: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(results / "energies.csv")))


def test_nve_starts_at_exactly_the_temperature_over_the_moving_degrees_of_freedom(tmp_path: Path) -> None:
    done = run_job(tmp_path, COPPER.format(steps=20, timestep=1.0, thermostat=""))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    table = rows(out)
    dof = 3 * 4 - 6  # a free Cu4 cluster: no drift, no rotation
    assert float(table[0]["temperature_k"]) == pytest.approx(300.0, rel=1e-9)
    for row in table:
        kinetic = 0.5 * dof * kB * float(row["temperature_k"])
        assert float(row["kinetic_ev"]) == pytest.approx(kinetic, rel=1e-9)
        assert float(row["conserved_ev"]) == pytest.approx(float(row["total_ev"]), rel=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["degrees_of_freedom"] == dof and summary["ensemble"].startswith("NVE")
    temperatures = [float(row["temperature_k"]) for row in table[1:]]
    assert summary["temperature_mean_k"] == pytest.approx(np.mean(temperatures), rel=1e-9)
    assert abs(summary["conserved_energy_drift_ev_per_atom_per_ps"]) < 1e-2
    assert (out / "md.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("mlpotential run: MolecularDynamics of Cu4 (4 atoms)")
    assert any(line.startswith("MolecularDynamics: step 20/20") for line in lines)
    assert any(line.startswith("Temperature: mean") and "(6 degrees of freedom)" in line for line in lines)


def test_the_header_and_progress_come_while_the_job_runs(tmp_path: Path) -> None:
    """stdout to a pipe (a batch job's log): the header and the first
    progress line arrive long before the job could end."""
    job = tmp_path / "long.in"
    job.write_text(COPPER.format(steps=100_000_000, timestep=1.0, thermostat=""))
    process = subprocess.Popen(
        command(job, tmp_path / "out"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        seen = [process.stdout.readline() for _ in range(5)]
        assert process.poll() is None  # still running
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert seen[0].startswith("mlpotential run: MolecularDynamics of Cu4")
    assert seen[2].startswith("Dynamics: 100000000 steps of 1 fs, NVE")
    assert seen[4].startswith("MolecularDynamics: step 0/100000000")


LJ_FILE = textwrap.dedent(
    """
    import json
    from ase.calculators.lj import LennardJones

    def get_calculator(parameter_file=None):
        return LennardJones(rc=6.0, smooth=True, **json.load(open(parameter_file)))
    """
)
MEMBERS = [{"sigma": 2.30, "epsilon": 0.40}, {"sigma": 2.33, "epsilon": 0.38}, {"sigma": 2.28, "epsilon": 0.43}]


def test_a_committee_gives_its_uncertainty_at_every_step(tmp_path: Path) -> None:
    (tmp_path / "lj.py").write_text(LJ_FILE)
    for index, member in enumerate(MEMBERS):
        (tmp_path / f"lj{index}.json").write_text(json.dumps(member))
    engine = (
        "Engine MLPotential\n  Backend ASE\n  Model Custom\n  ASECalculatorFile lj.py\n"
        + "".join(f"  ParameterFile lj{index}.json\n" for index in range(len(MEMBERS)))
        + "EndEngine\n"
    )
    text = COPPER.format(steps=10, timestep=1.0, thermostat="").replace("Cu", "Ar")
    text = text.replace("Engine MLPotential\n  Model EMT\nEndEngine\n", engine)
    done = run_job(tmp_path, text)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    last = rows(out)[-1]
    final = read(out / "final.xyz")
    energies, forces = [], []
    for member in MEMBERS:
        atoms = final.copy()
        atoms.calc = LennardJones(rc=6.0, smooth=True, **member)
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    largest = np.linalg.norm(np.std(forces, axis=0, ddof=1), axis=1).max()  # DP-GEN's max force deviation
    assert float(last["energy_std_ev"]) == pytest.approx(np.std(energies, ddof=1), rel=1e-8)
    assert float(last["max_force_std_ev_per_angstrom"]) == pytest.approx(largest, rel=1e-8)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["uncertainty"].startswith("committee standard deviation")
    every_step = [float(row["max_force_std_ev_per_angstrom"]) for row in rows(out)]
    assert summary["max_force_std_ev_per_angstrom_max"] == pytest.approx(max(every_step), rel=1e-9)
    worker_summary = (out / "mlpotential.txt").read_text()
    assert "Uncertainty                           committee standard deviation" in worker_summary
    line = next(line for line in worker_summary.splitlines() if line.startswith("Max force standard deviation"))
    assert float(line.split()[-3]) == pytest.approx(largest / (Hartree / Bohr), rel=1e-8)


@pytest.mark.parametrize(
    ("keywords", "kind"),
    [
        ({"Backend": "GPR", "ParameterFile": "gpr.safetensors"}, "predictive"),
        ({"Backend": "GPR", "ParameterFile": ["a.safetensors", "b.safetensors"]}, "committee"),
        ({"Model": "ANI-2x"}, "ensemble"),
        ({"Backend": "HDNNP", "Model": "Cu-EMT"}, ""),
    ],
)
def test_the_kind_of_uncertainty_is_named(keywords: dict, kind: str) -> None:
    settings = parse_settings(keywords, check_files=False)
    assert uncertainty_kind(settings) == kind
    if kind == "predictive":
        assert describe_uncertainty(settings).startswith("predictive standard deviation (Gaussian process")


@pytest.mark.slow
def test_langevin_through_the_driver_keeps_300_kelvin(tmp_path: Path) -> None:
    """ASE's Langevin with its default fixcm=True ran a small cluster hot
    (the driver's old default); 4000 steps of Cu4 average 300 K within 5 %."""
    thermostat = "  Thermostat\n    Type Langevin\n    Temperature 300\n    Tau 20\n    RandomSeed 8\n  End\n"
    done = run_job(tmp_path, COPPER.format(steps=4000, timestep=5.0, thermostat=thermostat))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["temperature_mean_k"] == pytest.approx(300.0, rel=0.05)


@pytest.mark.slow
def test_the_water_box_example_stays_near_300_kelvin(tmp_path: Path, ani_data_dir: Path) -> None:
    """It heated to 700-800 K in 200 steps (NVE from a geometry far from
    ANI-2x's minimum); it now starts relaxed, with a Bussi thermostat."""
    env = dict(os.environ, TORCHANI_DATA_DIR=str(ani_data_dir))
    started = time.monotonic()
    done = subprocess.run(
        command(EXAMPLES / "water_box.in", tmp_path / "out"), capture_output=True, text=True, env=env, timeout=3000
    )
    assert done.returncode == 0, done.stderr
    temperatures = [float(row["temperature_k"]) for row in rows(tmp_path / "out")]
    print(f"water box: {len(temperatures)} rows in {time.monotonic() - started:.0f} s, last {temperatures[-1]:.0f} K")
    assert 200 < np.mean(temperatures[-100:]) < 400
