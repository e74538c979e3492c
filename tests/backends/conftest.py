"""Fixtures of the backend tests. Each backend's fixtures are in their own
section; add sections, keep the others as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

# ---------------------------------------------------------------- SchNetPack and sGDML
# Tiny models trained once per session on EMT data (tests/backends/emt_trained_models.py).


@pytest.fixture(scope="session")
def emt_training_samples() -> list:
    """200 EMT-labelled Cu4Ag2 clusters (eV, Angstrom) around the EMT minimum."""
    from emt_trained_models import emt_samples

    return emt_samples(200, seed=0)


@pytest.fixture(scope="session")
def sgdml_model_ev(tmp_path_factory: pytest.TempPathFactory, emt_training_samples: list) -> Path:
    """An sGDML model trained with GDMLTrain on the EMT data in eV (100 points)."""
    from emt_trained_models import train_sgdml

    path = tmp_path_factory.mktemp("sgdml") / "cu4ag2-emt-ev.npz"
    return train_sgdml(path, emt_training_samples).path


@pytest.fixture(scope="session")
def schnetpack_model_ev(tmp_path_factory: pytest.TempPathFactory, emt_training_samples: list) -> Path:
    """A SchNet model trained with SchNetPack on the EMT data in eV (its
    best_inference_model file; the Lightning checkpoints lie beside it)."""
    import torch

    from emt_trained_models import train_schnet

    torch.set_num_threads(1)
    return train_schnet(tmp_path_factory.mktemp("schnetpack"), emt_training_samples).path
