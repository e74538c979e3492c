"""Backend MACE: a model trained with MACE's own command, served through our
worker, equals MACE's own calculator in process (float64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.cluster import Icosahedron

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.errors import UnsupportedSystemError
from mlpotential.host.pipe_engine import PipeEngine
from tests.backends.mace.conftest import train_mace
from tests.backends.pipe_checks import assert_committee, one_by_one, refused_energy

NUM_THREADS = "1"


def mace_reference(path: Path):
    """MACE's own calculator reading the file itself, as MACE does it: with
    the variable MACE sets at import (our backend unsets it once MACE is in)."""
    from mlpotential.backends.mace.calculator import import_mace

    import_mace()
    from mace.calculators import MACECalculator

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
        return MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")


def structures():
    cell = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 2, 1))
    cell.rattle(0.04, seed=2)
    cluster = Icosahedron("Cu", noshells=2)
    cluster.rattle(0.05, seed=3)
    return [("periodic", cell), ("cluster", cluster)]


@pytest.mark.parametrize("name", ["periodic", "cluster"])
def test_worker_equals_mace_s_own_calculator(mace_model: Path, name: str) -> None:
    atoms = dict(structures())[name]
    reference = atoms.copy()
    reference.calc = mace_reference(mace_model)
    with PipeEngine({"Backend": "MACE", "ParameterFile": str(mace_model), "NumThreads": NUM_THREADS}) as engine:
        atoms.calc = engine
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), rtol=1e-10, atol=1e-12)
        if atoms.pbc.all():
            np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), rtol=1e-9, atol=1e-12)
        log = engine.worker_log()
    assert "evaluates in float64" in log and str(mace_model) in log


def test_elements_outside_the_model_are_refused_by_name(mace_model: Path) -> None:
    calculator = create_calculator(parse_settings({"Backend": "MACE", "ParameterFile": str(mace_model)}))
    atoms = molecule("H2O")
    atoms.calc = calculator
    with pytest.raises(UnsupportedSystemError, match="does not cover the elements H, O of this system") as error:
        atoms.get_potential_energy()
    assert error.value.argument == "atomSymbols"
    with PipeEngine({"Backend": "MACE", "ParameterFile": str(mace_model)}) as engine:
        refused = refused_energy(engine, molecule("H2O"))
    assert (refused.status, refused.argument) == (7, "atomSymbols") and "supports Cu" in refused.message


def test_a_float32_model_runs_in_float32(mace_model: Path, tmp_path: Path) -> None:
    from mlpotential.backends.mace.factory import load_model

    path = tmp_path / "cu-float32.model"
    torch.save(load_model(str(mace_model)).float(), path)
    atoms = dict(structures())["cluster"]
    with PipeEngine({"Backend": "MACE", "ParameterFile": str(path), "NumThreads": NUM_THREADS}) as engine:
        atoms.calc = engine
        energy = atoms.get_potential_energy()
        assert "evaluates in float32" in engine.worker_log()
    reference = atoms.copy()
    reference.calc = mace_reference(mace_model)
    assert energy == pytest.approx(reference.get_potential_energy(), rel=1e-5)


def test_a_file_that_is_no_mace_model_is_status_7(tmp_path: Path) -> None:
    path = tmp_path / "not-a-model.model"
    torch.save({"weights": torch.zeros(3)}, path)
    with PipeEngine({"Backend": "MACE", "ParameterFile": str(path)}) as engine:
        refused = refused_energy(engine, dict(structures())["cluster"])
    assert (refused.status, refused.argument) == (7, "ParameterFile") and "not a MACE model" in refused.message


@pytest.fixture(scope="module")
def mace_committee(mace_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("mace-committee")
    return [mace_model] + [train_mace(folder / f"member{seed}", seed=seed) for seed in (2, 3)]


def test_a_committee_of_three_mace_models_equals_the_members_by_hand(mace_committee: list[Path]) -> None:
    atoms = dict(structures())["periodic"]
    energies, forces, stresses = one_by_one(atoms, [mace_reference(path) for path in mace_committee], True)
    assert energies.std(ddof=1) > 1e-6, "the members should differ (different seeds)"
    keywords = {"Backend": "MACE", "ParameterFile": [str(path) for path in mace_committee], "NumThreads": NUM_THREADS}
    with PipeEngine(keywords) as engine:
        atoms.calc = engine
        assert_committee(atoms, energies, forces, stresses)


# As a user writes it: MACE's own import sets what its calculator needs to load the file.
MACE_CALCULATOR_FILE = """
def get_calculator(parameter_file, device=None):
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=parameter_file, device=device or "cpu", default_dtype="float64")
"""


def test_a_calculator_file_returning_mace_s_calculator(mace_model: Path, tmp_path: Path) -> None:
    calculator_file = tmp_path / "my_mace.py"
    calculator_file.write_text(MACE_CALCULATOR_FILE)
    atoms = dict(structures())["cluster"]
    reference = atoms.copy()
    reference.calc = mace_reference(mace_model)
    keywords = {"Backend": "ASE", "Model": "Custom", "ASECalculatorFile": str(calculator_file)}
    with PipeEngine({**keywords, "ParameterFile": str(mace_model), "NumThreads": NUM_THREADS}) as engine:
        atoms.calc = engine
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), rtol=1e-10, atol=1e-12)
