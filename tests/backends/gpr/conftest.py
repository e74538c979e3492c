"""Fixtures of the GPR tests: aenet-gpr's example data (extracted once per
session) and small fitted models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gpr_helpers import SmallModel, extract, fit_small_model

from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="session")
def examples(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with 1_H2/{train_set,test_set} and
    3_Li-EC/{train_set_tutorial,test_set_tutorial} extracted."""
    root = tmp_path_factory.mktemp("aenet-gpr-examples")
    source = shared_dir / "aenet-gpr-examples"
    for example, names in (
        ("1_H2", ("train_set", "test_set")),
        ("3_Li-EC", ("train_set_tutorial", "test_set_tutorial")),
    ):
        for name in names:
            extract(source / example / f"{name}.zip", root / example)
    return root


@pytest.fixture(scope="session")
def li_ec_model(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> SmallModel:
    """A Cartesian GPR on 8 Li-EC structures (46 atoms, periodic; its
    covariance is well conditioned: the closed-form predictor applies)."""
    files = sorted((examples / "3_Li-EC" / "train_set_tutorial").glob("*.xsf"))[:8]
    torch.set_num_threads(1)
    return fit_small_model(files, tmp_path_factory.mktemp("gpr-li-ec") / "li_ec.safetensors", scale=3.0)


@pytest.fixture(scope="session")
def h2_model(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> SmallModel:
    """aenet-gpr's H2 example model (7 structures, scale 0.4: an
    ill-conditioned covariance, evaluated by the direct formulas)."""
    files = sorted((examples / "1_H2" / "train_set").glob("*.xsf"))
    return fit_small_model(files, tmp_path_factory.mktemp("gpr-h2") / "h2.safetensors")
