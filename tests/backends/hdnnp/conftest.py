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
    from ase.io import write

    from mlpotential.atomistic.structures import DataSource
    from mlpotential.backends.hdnnp.config import DescriptorSettings, Stage, TrainingConfig
    from mlpotential.backends.hdnnp.training import train

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
