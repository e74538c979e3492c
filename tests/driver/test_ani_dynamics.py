"""NVE molecular dynamics of ethanol with ANI-2x through ``mlpotential run``
conserves energy (velocity Verlet, 0.5 fs, 1000 steps, 300 K, fixed seed)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_nve_ethanol_ani2x_conserves_energy(tmp_path, ani_data_dir):
    atoms_block = (EXAMPLES / "ethanol_md.in").read_text().split("System")[1].split("End\nEnd")[0]
    job = tmp_path / "nve.in"
    job.write_text(
        "Task MolecularDynamics\nSystem" + atoms_block + "End\nEnd\n"
        "Engine MLPotential\n  Model ANI-2x\n  NumThreads 1\nEndEngine\n"
        "MolecularDynamics\n  NSteps 1000\n  TimeStep 0.5\n"
        "  InitialVelocities\n    Type Random\n    Temperature 300\n    RandomSeed 11\n  End\n"
        "  Trajectory\n    SamplingFreq 100\n  End\nEnd\n"
    )
    env = dict(os.environ, TORCHANI_DATA_DIR=str(ani_data_dir))
    done = subprocess.run(
        [sys.executable, "-m", "mlpotential", "run", str(job), "--results", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(tmp_path / "out" / "energies.csv")))
    assert len(rows) == 1001
    time_fs = np.array([float(row["time_fs"]) for row in rows])
    total = np.array([float(row["total_ev"]) for row in rows])
    natoms = 9
    drift_per_atom = np.polyfit(time_fs, total, 1)[0] * time_fs[-1] / natoms
    deviation_per_atom = np.abs(total - total[0]).max() / natoms
    temperature = np.mean([float(row["temperature_k"]) for row in rows])
    print(
        f"drift {drift_per_atom * 1e3:.4f} meV/atom, max deviation {deviation_per_atom * 1e3:.4f} meV/atom, "
        f"mean T {temperature:.0f} K"
    )
    assert abs(drift_per_atom) < 0.2e-3
    assert deviation_per_atom < 1e-3
    assert 100 < temperature < 500  # the molecule really moved
    # The worker's summary file, in the results folder, is for the final geometry.
    final = json.loads((tmp_path / "out" / "summary.json").read_text())
    summary_energy = next(
        line
        for line in (tmp_path / "out" / "mlpotential.txt").read_text().splitlines()
        if line.startswith("Energy (Hartree)")
    )
    assert float(summary_energy.split()[-1]) == pytest.approx(final["energy_hartree"], abs=1e-11)
