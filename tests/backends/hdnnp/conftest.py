"""Fixtures of the HDNNP tests: random structures and a small model trained
once per session on EMT data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.backends.emt_trained_models import emt_structures
from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)


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
