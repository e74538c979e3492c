"""Committees of any backend: several model files (here ASE calculators made
by a user's ASECalculatorFile, and HDNNP models), served by the worker as
their mean and ddof=1 standard deviation, equal to the members evaluated one
by one in process."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.errors import KeywordError
from mlpotential.host.pipe_engine import PipeEngine
from tests.backends.pipe_checks import assert_committee, one_by_one, refused_energy

LJ_FILE = textwrap.dedent(
    """
    import json
    from ase.calculators.lj import LennardJones

    def get_calculator(parameter_file=None, num_threads=None):
        parameters = json.load(open(parameter_file)) if parameter_file else {"sigma": 2.3, "epsilon": 0.4}
        return LennardJones(rc=6.0, smooth=True, **parameters)
    """
)

PARAMETERS = [{"sigma": 2.30, "epsilon": 0.40}, {"sigma": 2.33, "epsilon": 0.38}, {"sigma": 2.28, "epsilon": 0.43}]


@pytest.fixture
def lj_committee(tmp_path: Path) -> tuple[Path, list[Path]]:
    calculator_file = tmp_path / "my_lj.py"
    calculator_file.write_text(LJ_FILE)
    files = []
    for index, parameters in enumerate(PARAMETERS):
        files.append(tmp_path / f"lj{index}.json")
        files[-1].write_text(json.dumps(parameters))
    return calculator_file, files


def argon_cluster():
    atoms = Icosahedron("Ar", noshells=2, latticeconstant=5.3)
    atoms.rattle(0.1, seed=5)
    return atoms


def test_a_user_calculator_file_equals_that_calculator_in_process(lj_committee) -> None:
    calculator_file, files = lj_committee
    atoms = argon_cluster()
    reference = atoms.copy()
    reference.calc = LennardJones(rc=6.0, smooth=True, **PARAMETERS[1])
    keywords = {"Backend": "ASE", "Model": "Custom", "ASECalculatorFile": str(calculator_file)}
    with PipeEngine({**keywords, "ParameterFile": str(files[1])}) as engine:
        atoms.calc = engine
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), rtol=1e-10, atol=1e-12)
        assert "energy_std" not in engine.results


def test_a_committee_of_user_calculators_through_the_worker(lj_committee) -> None:
    calculator_file, files = lj_committee
    atoms = argon_cluster()
    energies, forces, _ = one_by_one(atoms, [LennardJones(rc=6.0, smooth=True, **p) for p in PARAMETERS])
    keywords = {"Backend": "ASE", "Model": "Custom", "ASECalculatorFile": str(calculator_file)}
    with PipeEngine({**keywords, "ParameterFile": [str(f) for f in files]}) as engine:
        atoms.calc = engine
        assert_committee(atoms, energies, forces)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (None, "does not exist"),
        ("x = 1\n", "defines no function get_calculator"),
        ("def get_calculator():\n    raise RuntimeError('no licence')\n", "raised RuntimeError: no licence"),
        ("def get_calculator():\n    return 42\n", "returned int, not an ASE calculator"),
        ("import not_a_module_anywhere\n", "failed when run: ModuleNotFoundError"),
    ],
    ids=["missing", "no-function", "raises", "not-a-calculator", "bad-import"],
)
def test_a_bad_calculator_file_is_status_7_with_the_reason(tmp_path: Path, source, reason) -> None:
    path = tmp_path / "calc.py"
    if source is not None:
        path.write_text(source)
    with PipeEngine({"Backend": "ASE", "Model": "Custom", "ASECalculatorFile": str(path)}) as engine:
        error = refused_energy(engine, argon_cluster())
    assert (error.status, error.argument) == (7, "ASECalculatorFile")
    assert reason in error.message


def hdnnp_files(tmp_path: Path, count: int, elements=("Cu",), cutoff: float = 4.5) -> list[Path]:
    from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
    from mlpotential.backends.hdnnp.model_file import save_model
    from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape

    files = []
    for seed in range(count):
        torch.manual_seed(seed)
        model = HDNNPModel(SymmetryFunctionParameters.default(list(elements), cutoff=cutoff), NetworkShape((8,)))
        files.append(save_model(model, tmp_path / f"member{seed}-{'-'.join(elements)}-{cutoff}.pt"))
    return files


@pytest.mark.parametrize("shared", [True, False], ids=["one-descriptor-set", "two-descriptor-sets"])
def test_an_hdnnp_committee_through_the_worker(tmp_path: Path, shared: bool) -> None:
    from mlpotential.backends.hdnnp.calculator import HDNNPCalculator

    files = hdnnp_files(tmp_path, 3) if shared else hdnnp_files(tmp_path, 2) + hdnnp_files(tmp_path, 1, cutoff=5.0)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=7)
    energies, forces, stresses = one_by_one(atoms, [HDNNPCalculator.from_file(f) for f in files], with_stress=True)
    with PipeEngine({"Backend": "HDNNP", "ParameterFile": [str(f) for f in files], "NumThreads": "1"}) as engine:
        atoms.calc = engine
        assert_committee(atoms, energies, forces, stresses)


def test_members_of_different_elements_are_refused_naming_the_files(tmp_path: Path) -> None:
    files = hdnnp_files(tmp_path, 1) + hdnnp_files(tmp_path, 1, elements=("Cu", "Ag"))
    with pytest.raises(KeywordError, match="disagree on their elements") as error:
        create_calculator(parse_settings({"Backend": "HDNNP", "ParameterFile": [str(f) for f in files]}))
    assert str(files[0]) in error.value.message and str(files[1]) in error.value.message


def test_only_custom_models_take_several_files(tmp_path: Path) -> None:
    with pytest.raises(KeywordError, match="given 2 times"):
        parse_settings({"Model": "ANI-2x", "ParameterDir": [str(tmp_path), str(tmp_path)]})
    with pytest.raises(KeywordError, match="given 2 times; it takes one value"):
        parse_settings({"Backend": ["ASE", "HDNNP"]})
