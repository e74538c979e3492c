"""Fixtures of the HDNNP tests: random structures and a small model trained
once per session on EMT data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111
from tests.backends.emt_trained_models import emt_labelled
from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)


def random_molecule(symbols: str, seed: int, box: float = 4.0, closest: float = 0.9) -> Atoms:
    """Atoms at random positions in a box, no two closer than ``closest`` Angstrom."""
    rng = np.random.default_rng(seed)
    count = len(Atoms(symbols))
    positions: list[np.ndarray] = []
    while len(positions) < count:
        candidate = rng.uniform(0.0, box, 3)
        if all(np.linalg.norm(candidate - p) >= closest for p in positions):
            positions.append(candidate)
    return Atoms(symbols, positions=positions)


def random_crystal(symbols: str, seed: int, closest: float = 1.2) -> Atoms:
    """A random triclinic cell (about 4-6 Angstrom edges) with randomly
    placed atoms, no two (or two images) closer than ``closest``."""
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(4.0, 6.0, 3)) + rng.uniform(-0.8, 0.8, (3, 3)) * (1 - np.eye(3))
    count = len(Atoms(symbols))
    while True:
        atoms = Atoms(symbols, cell=cell, pbc=True, scaled_positions=rng.uniform(0.0, 1.0, (count, 3)))
        distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * closest
        if distances.min() >= closest:
            return atoms


def emt_structures(count: int, seed: int) -> list[Atoms]:
    """Displaced Cu bulk cells and (111) slabs with EMT energies and forces."""
    rng = np.random.default_rng(seed)
    structures = []
    for k in range(count):
        if k % 2 == 0:
            atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.97, 1.03), cubic=True).repeat((2, 2, 2))
        else:
            atoms = fcc111("Cu", size=(2, 2, 3), a=3.61, vacuum=5.0)
        atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
        labelled = emt_labelled(atoms)
        labelled.info.clear()
        structures.append(labelled)
    return structures


@pytest.fixture(scope="session")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Cu model trained briefly (seconds) on 40 EMT structures, with a
    short cutoff; good enough to be a smooth, non-trivial potential."""
    from mlpotential.backends.hdnnp.config import DescriptorSettings, Stage, TrainingConfig
    from mlpotential.backends.hdnnp.data import DataSource
    from mlpotential.backends.hdnnp.training import train
    from ase.io import write

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("hdnnp-small")
    write(folder / "data.extxyz", emt_structures(40, seed=5))
    config = TrainingConfig(
        data=(DataSource("data.extxyz"),),
        descriptor=DescriptorSettings(cutoff=4.5, n_radial=5),
        stages=(Stage(epochs=40, learning_rate=0.01, batch_size=8),),
        progress=False,
        parity_plot=None,
        report=None,
        descriptor_store=None,
        base_dir=folder,
    )
    return train(config).model_path
