"""Tiny MACE models trained on the fly with MACE's own training command
(seconds each on two cores), on EMT-labelled copper cells."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)


def copper_training_set(path: Path, count: int = 32, seed: int = 0) -> Path:
    """``count`` rattled and strained fcc Cu cells (8 atoms) with EMT labels
    as MACE reads them (REF_energy, REF_forces, REF_stress)."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        atoms = bulk("Cu", "fcc", a=3.6 * rng.uniform(0.97, 1.03), cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=seed * 1000 + index)
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.info["REF_stress"] = atoms.get_stress()
        atoms.calc = None
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def train_mace(folder: Path, seed: int, dtype: str = "float64") -> Path:
    """A MACE model trained with ``mace_run_train`` (3 epochs); its NAME.model file."""
    folder.mkdir(parents=True, exist_ok=True)
    data = copper_training_set(folder / "train.xyz", seed=seed)
    name = f"cu-{seed}"
    command = [
        sys.executable, "-m", "mace.cli.run_train", "--name", name, "--train_file", str(data),
        "--valid_fraction", "0.1", "--model", "MACE", "--hidden_irreps", "8x0e", "--num_channels", "8",
        "--max_L", "0", "--r_max", "4.0", "--max_num_epochs", "3", "--E0s", "average",
        "--energy_key", "REF_energy", "--forces_key", "REF_forces", "--default_dtype", dtype,
        "--device", "cpu", "--batch_size", "4", "--seed", str(seed),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"mace_run_train failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return folder / f"{name}.model"


@pytest.fixture(scope="session")
def mace_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_mace(tmp_path_factory.mktemp("mace"), seed=1)
