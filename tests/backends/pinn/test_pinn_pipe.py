"""Backend PiNN through a real worker process (PipeEngine over named
pipes): one worker per reference model serves every test structure; values
equal PiNN's stored predictions and the same calculator in process (same
NumThreads). Start-up errors and unsupported systems come back as statuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.pinn.factory import create_calculator
from mlpotential.host.pipe_engine import PipeEngine
from tests.backends.pinn_reference import (
    ENERGY_TOLERANCE,
    FORCE_TOLERANCE,
    MODELS,
    STRESS_TOLERANCE,
    read_reference,
    writable_copy,
)
from tests.backends.pipe_checks import refused_energy

NUM_THREADS = 1


def keywords(model_dir: Path) -> dict[str, str]:
    return {"Backend": "PiNN", "ParameterDir": str(model_dir), "NumThreads": str(NUM_THREADS)}


@pytest.mark.parametrize("model", MODELS)
def test_every_structure_through_one_worker(pinn_reference_root: Path, model: str) -> None:
    torch.set_num_threads(NUM_THREADS)
    folder = pinn_reference_root / model
    in_process = create_calculator(parse_settings(keywords(folder / "model")))
    checked_stress = 0
    with PipeEngine(keywords(folder / "model")) as engine:
        for reference in read_reference(folder):
            name, atoms = reference.name, reference.atoms
            through_pipe = atoms.copy()
            through_pipe.calc = engine
            local = atoms.copy()
            local.calc = in_process
            pipe_energy, pipe_forces = through_pipe.get_potential_energy(), through_pipe.get_forces()
            assert abs(pipe_energy - reference.energy) < ENERGY_TOLERANCE, name
            np.testing.assert_allclose(pipe_forces, reference.forces, atol=FORCE_TOLERANCE, err_msg=name)
            assert pipe_energy == pytest.approx(local.get_potential_energy(), abs=1e-9), name
            np.testing.assert_allclose(pipe_forces, local.get_forces(), atol=1e-9, err_msg=name)
            if atoms.pbc.all():
                pipe_stress = through_pipe.get_stress()
                np.testing.assert_allclose(pipe_stress, reference.stress, atol=STRESS_TOLERANCE, err_msg=name)
                np.testing.assert_allclose(pipe_stress, local.get_stress(), atol=1e-12, err_msg=name)
                checked_stress += 1
    assert checked_stress == 8


def test_broken_model_directory_is_reported_on_first_calculation(pinn_reference_root: Path, tmp_path: Path) -> None:
    model_dir = writable_copy(pinn_reference_root / "pinet" / "model", tmp_path / "model")
    (model_dir / "params.yml").unlink()
    with PipeEngine(keywords(model_dir)) as engine:
        error = refused_energy(engine, Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
    assert error.status == 7
    assert error.argument == "ParameterDir"
    assert "params.yml is missing" in error.message


def test_unsupported_element_is_refused_and_the_worker_keeps_serving(pinn_reference_root: Path) -> None:
    with PipeEngine(keywords(pinn_reference_root / "pinet_gaussian" / "model")) as engine:
        error = refused_energy(engine, Atoms("FeH", positions=[[0, 0, 0], [0, 0, 1.6]]))
        assert error.status == 7 and "Fe" in error.message
        water = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        water.calc = engine
        assert np.isfinite(water.get_potential_energy())
