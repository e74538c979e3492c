"""Backend PiNN through a real worker process (PipeEngine over named
pipes): one worker per reference model serves every test structure; values
equal PiNN's stored predictions and the same calculator in process (same
NumThreads). Start-up errors and unsupported systems come back as statuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.pinn import create_calculator
from mlpotential.engine.pipe_engine import EngineError, PipeEngine

MODELS = ("pinet", "bpnn", "pinet_gaussian")
ENERGY_TOLERANCE = 1e-4  # eV, against PiNN (float32)
FORCE_TOLERANCE = 2e-4  # eV/Angstrom
STRESS_TOLERANCE = 1e-5  # eV/Angstrom^3
NUM_THREADS = 1


def read_structures(folder: Path) -> list[tuple[str, Atoms, float, np.ndarray, np.ndarray]]:
    data = np.load(folder / "test_predictions.npz")
    result = []
    for k, name in enumerate(data["names"]):
        rows = slice(data["offsets"][k], data["offsets"][k + 1])
        atoms = Atoms(
            numbers=data["numbers"][rows], positions=data["positions"][rows], cell=data["cell"][k], pbc=data["pbc"][k]
        )
        result.append((str(name), atoms, float(data["energy"][k]), data["forces"][rows], data["stress"][k]))
    return result


def keywords(model_dir: Path) -> dict[str, str]:
    return {"Backend": "PiNN", "ParameterDir": str(model_dir), "NumThreads": str(NUM_THREADS)}


@pytest.mark.parametrize("model", MODELS)
def test_every_structure_through_one_worker(shared_dir: Path, model: str) -> None:
    torch.set_num_threads(NUM_THREADS)
    folder = shared_dir / "pinn-reference" / model
    in_process = create_calculator(parse_settings(keywords(folder / "model")))
    checked_stress = 0
    with PipeEngine(keywords(folder / "model")) as engine:
        for name, atoms, energy, forces, stress in read_structures(folder):
            through_pipe = atoms.copy()
            through_pipe.calc = engine
            local = atoms.copy()
            local.calc = in_process
            pipe_energy, pipe_forces = through_pipe.get_potential_energy(), through_pipe.get_forces()
            assert abs(pipe_energy - energy) < ENERGY_TOLERANCE, name
            np.testing.assert_allclose(pipe_forces, forces, atol=FORCE_TOLERANCE, err_msg=name)
            assert pipe_energy == pytest.approx(local.get_potential_energy(), abs=1e-9), name
            np.testing.assert_allclose(pipe_forces, local.get_forces(), atol=1e-9, err_msg=name)
            if atoms.pbc.all():
                pipe_stress = through_pipe.get_stress()
                np.testing.assert_allclose(pipe_stress, stress, atol=STRESS_TOLERANCE, err_msg=name)
                np.testing.assert_allclose(pipe_stress, local.get_stress(), atol=1e-12, err_msg=name)
                checked_stress += 1
    assert checked_stress == 8


def test_broken_model_directory_is_reported_on_first_calculation(shared_dir: Path, tmp_path: Path) -> None:
    model_dir = Path(
        shutil.copytree(
            shared_dir / "pinn-reference" / "pinet" / "model", tmp_path / "model", copy_function=shutil.copyfile
        )
    )
    (model_dir / "params.yml").unlink()
    with PipeEngine(keywords(model_dir)) as engine:
        atoms = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        atoms.calc = engine
        with pytest.raises(EngineError) as error:
            atoms.get_potential_energy()
    assert error.value.status == 7
    assert error.value.argument == "ParameterDir"
    assert "params.yml is missing" in error.value.message


def test_unsupported_element_is_refused_and_the_worker_keeps_serving(shared_dir: Path) -> None:
    with PipeEngine(keywords(shared_dir / "pinn-reference" / "pinet_gaussian" / "model")) as engine:
        iron = Atoms("FeH", positions=[[0, 0, 0], [0, 0, 1.6]])
        iron.calc = engine
        with pytest.raises(EngineError) as error:
            iron.get_potential_energy()
        assert error.value.status == 7 and "Fe" in error.value.message
        water = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
        water.calc = engine
        assert np.isfinite(water.get_potential_energy())
