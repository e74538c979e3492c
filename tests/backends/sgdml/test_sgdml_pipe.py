"""Backend sGDML through a real worker process (PipeEngine over named pipes):
values equal the same calculator in process (same NumThreads), a geometry
optimization converges, bad files and atom order come back as statuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.optimize import BFGS

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.host.pipe_engine import PipeEngine
from tests.backends.emt_trained_models import damaged_copy, displaced, emt_minimum, truncated_copy
from tests.backends.pipe_checks import assert_bad_parameter_file_reported, assert_pipe_equals_in_process, refused_energy

NUM_THREADS = "1"


def keywords(path: Path) -> dict[str, str]:
    return {"Backend": "sGDML", "ParameterFile": str(path), "MLEnergyUnit": "eV", "NumThreads": NUM_THREADS}


def emt_energy(atoms) -> float:
    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms.get_potential_energy()


def test_pipe_equals_in_process_and_optimizes_to_the_emt_minimum(sgdml_model_ev: Path) -> None:
    in_process = create_calculator(parse_settings(keywords(sgdml_model_ev)))
    rng = np.random.default_rng(21)
    minimum = emt_minimum()
    with PipeEngine(keywords(sgdml_model_ev)) as engine:
        for _ in range(3):
            assert_pipe_equals_in_process(engine, in_process, displaced(minimum, rng))

        start = displaced(minimum, rng, scale=0.15)
        atoms = start.copy()
        atoms.calc = engine
        optimizer = BFGS(atoms, logfile=None)
        assert optimizer.run(fmax=0.01, steps=200)
        assert np.abs(atoms.get_forces()).max() < 0.01
    # the model's minimum is EMT's: same energy to a few meV
    assert emt_energy(atoms) == pytest.approx(emt_energy(minimum), abs=5e-3)
    assert emt_energy(start) - emt_energy(minimum) > 0.05


BAD_INPUTS = {
    "SchNetPack model": "is a PyTorch file",
    "truncated": "truncated or corrupt zip archive",
    "corrupt": "is corrupt (the checksum of its member",
    "directory": "is a directory; a file is expected",
    "missing keyword": "Backend sGDML with Model Custom needs ParameterFile",
}


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_bad_input_is_reported_on_first_calculation(
    bad: str, sgdml_model_ev: Path, schnetpack_model_ev: Path, tmp_path: Path
) -> None:
    paths = {
        "SchNetPack model": lambda: schnetpack_model_ev,
        "truncated": lambda: truncated_copy(sgdml_model_ev, tmp_path / "truncated.npz"),
        "corrupt": lambda: damaged_copy(sgdml_model_ev, tmp_path / "corrupt.npz"),
        "directory": lambda: tmp_path,
        "missing keyword": lambda: None,
    }
    path = paths[bad]()
    engine_keywords = keywords(path) if path is not None else {"Backend": "sGDML", "NumThreads": "1"}
    assert_bad_parameter_file_reported(engine_keywords, path, BAD_INPUTS[bad])


def test_atom_order_mismatch_is_refused_and_the_worker_keeps_serving(sgdml_model_ev: Path) -> None:
    with PipeEngine(keywords(sgdml_model_ev)) as engine:
        error = refused_energy(engine, emt_minimum()[[4, 1, 2, 3, 0, 5]])
        assert error.status == 7
        assert error.argument == "atomSymbols"
        assert "in this order: Cu Cu Cu Cu Ag Ag" in error.message
        atoms = emt_minimum()
        atoms.calc = engine
        assert np.isfinite(atoms.get_potential_energy())
