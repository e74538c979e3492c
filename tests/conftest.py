"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLPOTENTIAL_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (override with $MLPOTENTIAL_SHARED)."""
    if not SHARED.is_dir():
        pytest.fail(f"the shared data folder {SHARED} is missing (set MLPOTENTIAL_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def ani_data_dir(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """A TORCHANI_DATA_DIR whose Neurochem/ links to ../shared/ani-model-zoo."""
    root = tmp_path_factory.mktemp("torchani-data")
    (root / "Neurochem").symlink_to(shared_dir / "ani-model-zoo", target_is_directory=True)
    return root
