"""Fixtures of the backend tests. Each backend's fixtures are in their own
section; add sections, keep the others as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

# Their asserts are the tests' own: rewritten so that a failure shows its values.
pytest.register_assert_rewrite("tests.backends.calculator_checks", "tests.backends.pipe_checks")

# ---------------------------------------------------------------- SchNetPack and sGDML
# Tiny models trained once per session on EMT data (tests/backends/emt_trained_models.py).


@pytest.fixture(scope="session")
def emt_training_samples() -> list:
    """200 EMT-labelled Cu4Ag2 clusters (eV, Angstrom) around the EMT minimum."""
    from tests.backends.emt_trained_models import emt_samples

    return emt_samples(200, seed=0)


@pytest.fixture(scope="session")
def sgdml_model_ev(tmp_path_factory: pytest.TempPathFactory, emt_training_samples: list) -> Path:
    """An sGDML model trained with GDMLTrain on the EMT data in eV (100 points)."""
    from tests.backends.emt_trained_models import train_sgdml

    path = tmp_path_factory.mktemp("sgdml") / "cu4ag2-emt-ev.npz"
    return train_sgdml(path, emt_training_samples).path


@pytest.fixture(scope="session")
def schnetpack_model_ev(tmp_path_factory: pytest.TempPathFactory, emt_training_samples: list) -> Path:
    """A SchNet model trained with SchNetPack on the EMT data in eV (its
    best_inference_model file; the Lightning checkpoints lie beside it)."""
    import torch

    from tests.backends.emt_trained_models import train_schnet

    torch.set_num_threads(1)
    return train_schnet(tmp_path_factory.mktemp("schnetpack"), emt_training_samples).path


# ---------------------------------------------------------------- PiNN
# The reference models and PiNN's own predictions (tests/backends/pinn_reference.py).


@pytest.fixture(scope="session")
def pinn_reference_root(shared_dir: Path) -> Path:
    """../shared/pinn-reference: per model, its model directory and PiNN's predictions."""
    return shared_dir / "pinn-reference"
