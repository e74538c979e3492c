"""Backend ASE: ASE's own EMT and Lennard-Jones, in process and through a worker."""

from __future__ import annotations

import pytest
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.errors import KeywordError, UnsupportedSystemError
from mlpotential.host.pipe_engine import PipeEngine
from tests.backends.pipe_checks import refused_energy


def test_emt_equals_ase_s_own() -> None:
    cluster = Icosahedron("Cu", noshells=2)
    cluster.rattle(0.05, seed=3)
    ours = cluster.copy()
    ours.calc = create_calculator(parse_settings({"Backend": "ASE", "Model": "EMT"}))
    cluster.calc = EMT()
    assert ours.get_potential_energy() == cluster.get_potential_energy()


def test_an_element_emt_has_no_parameters_for_is_refused_by_name() -> None:
    atoms = molecule("CH3Cl")
    atoms.calc = create_calculator(parse_settings({"Model": "EMT"}))
    with pytest.raises(UnsupportedSystemError, match="EMT does not cover the element Cl of this system") as error:
        atoms.get_potential_energy()
    assert error.value.argument == "atomSymbols"
    with PipeEngine({"Model": "EMT"}) as engine:
        refused = refused_energy(engine, molecule("CH3Cl"))
        assert (refused.status, refused.argument) == (7, "atomSymbols")
        assert "Traceback" not in engine.worker_log()


def test_fixed_units_are_a_keyword_rule_of_the_record() -> None:
    with pytest.raises(KeywordError) as error:
        parse_settings({"Backend": "ASE", "MLEnergyUnit": "Hartree"})
    assert error.value.keyword == "MLEnergyUnit"


@pytest.mark.parametrize("model", ["EMT", "LennardJones"])
def test_the_built_in_models_run_on_the_cpu_only(model: str) -> None:
    with pytest.raises(KeywordError, match="runs on the CPU") as error:
        create_calculator(parse_settings({"Backend": "ASE", "Model": model, "Device": "cuda"}))
    assert error.value.keyword == "Device"
