"""Backend SchNetPack through a real worker process (PipeEngine over named
pipes): values equal the same calculator in process (same NumThreads), a
geometry optimization converges, bad files come back as status 7."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.optimize import BFGS

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.host.pipe_engine import PipeEngine
from tests.backends.emt_trained_models import damaged_copy, displaced, emt_minimum, truncated_copy
from tests.backends.pipe_checks import (
    FileToucher,
    assert_bad_parameter_file_reported,
    assert_pickle_warned_or_refused,
    assert_pipe_equals_in_process,
)

NUM_THREADS = 1


def keywords(path: Path, **extra: str) -> dict[str, str]:
    return {"Backend": "SchNetPack", "ParameterFile": str(path), "NumThreads": str(NUM_THREADS), **extra}


def test_pipe_equals_in_process_and_optimization_converges(schnetpack_model_ev: Path) -> None:
    torch.set_num_threads(NUM_THREADS)
    in_process = create_calculator(parse_settings(keywords(schnetpack_model_ev)))
    rng = np.random.default_rng(31)
    minimum = emt_minimum()
    with PipeEngine(keywords(schnetpack_model_ev)) as engine:
        for _ in range(3):
            assert_pipe_equals_in_process(engine, in_process, displaced(minimum, rng))

        atoms = displaced(minimum, rng, scale=0.15)
        atoms.calc = engine
        start_energy = atoms.get_potential_energy()
        optimizer = BFGS(atoms, logfile=None)
        assert optimizer.run(fmax=0.01, steps=300)
        final_energy = atoms.get_potential_energy()
        assert np.abs(atoms.get_forces()).max() < 0.01
    assert final_energy < start_energy
    local = atoms.copy()
    local.calc = in_process
    assert np.abs(local.get_forces()).max() < 0.01


BAD_INPUTS = {
    "sGDML model": "is a NumPy .npz archive (the format of sGDML models)",
    "truncated": "truncated or corrupt zip archive",
    "corrupt": "is corrupt (the checksum of its member",
    "directory": "is a directory; a file is expected",
    "missing keyword": "Backend SchNetPack with Model Custom needs ParameterFile",
}


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_bad_input_is_reported_on_first_calculation(
    bad: str, sgdml_model_ev: Path, schnetpack_model_ev: Path, tmp_path: Path
) -> None:
    paths = {
        "sGDML model": lambda: sgdml_model_ev,
        "truncated": lambda: truncated_copy(schnetpack_model_ev, tmp_path / "truncated_model"),
        "corrupt": lambda: damaged_copy(schnetpack_model_ev, tmp_path / "corrupt_model"),
        "directory": lambda: tmp_path,
        "missing keyword": lambda: None,
    }
    path = paths[bad]()
    engine_keywords = keywords(path) if path is not None else {"Backend": "SchNetPack", "NumThreads": "1"}
    assert_bad_parameter_file_reported(engine_keywords, path, BAD_INPUTS[bad])


def test_a_pickled_model_runs_with_a_warning_or_is_refused(schnetpack_model_ev: Path, tmp_path: Path) -> None:
    """A SchNetPack model file (its top-level class a SchNetPack model, as the
    backend checks) that also holds an object running code when unpickled."""
    from mlpotential.backends.schnetpack.compat import load_pickled_model

    model = load_pickled_model(str(schnetpack_model_ev))
    path, marker = tmp_path / "trapped_model", tmp_path / "code-ran"
    model.extra = FileToucher(marker)
    torch.save(model, path)
    assert_pickle_warned_or_refused(keywords(path), path, marker, emt_minimum())
