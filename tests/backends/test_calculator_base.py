"""The shared system checks of the backends' calculators: what they refuse, and in which words."""

from __future__ import annotations

import pytest
from ase import Atoms

from mlpotential.backends.calculator_base import (
    check_elements,
    check_molecule_or_periodic,
    check_stress_periodicity,
    element_names,
    unsupported_elements,
)
from mlpotential.errors import UnsupportedSystemError


def test_element_names_keep_their_order_and_name_numbers_without_a_symbol() -> None:
    assert element_names([1, 6, 7, 8, 16, 9, 17]) == "H, C, N, O, S, F, Cl"
    assert element_names([0, 119]) == "Z=0, Z=119"


def test_unsupported_elements_are_sorted_and_listed_once() -> None:
    assert unsupported_elements([17, 1, 16, 17, 6], (1, 6, 7, 8)) == [16, 17]
    assert unsupported_elements([1, 6], (1, 6, 7, 8)) == []


def test_elements_outside_the_model_are_refused_naming_model_elements_and_coverage() -> None:
    check_elements("ANI-1x", [1, 6, 8], (1, 6, 7, 8))
    with pytest.raises(UnsupportedSystemError) as error:
        check_elements("ANI-1x", [17, 6, 16], (1, 6, 7, 8))
    assert error.value.message == "ANI-1x does not cover the elements S, Cl of this system; ANI-1x supports H, C, N, O"
    assert error.value.argument == "atomSymbols"


def test_stress_needs_three_periodic_directions() -> None:
    slab = Atoms("Cu", cell=[3.0, 3.0, 10.0], pbc=[True, True, False])
    check_stress_periodicity("the HDNNP model", slab, ["energy", "forces"])
    check_stress_periodicity("the HDNNP model", Atoms("Cu", cell=[3.0, 3.0, 3.0], pbc=True), ["stress"])
    with pytest.raises(UnsupportedSystemError) as error:
        check_stress_periodicity("the HDNNP model", slab, ["energy", "stress"])
    assert error.value.message == (
        "the HDNNP model computes the stress tensor only for a system periodic in all three directions; "
        "this system has pbc=[True, True, False]"
    )
    assert error.value.argument == "latticeVectors"


@pytest.mark.parametrize("pbc", [[False, False, False], [True, True, True]])
def test_molecules_and_fully_periodic_systems_pass(pbc: list[bool]) -> None:
    check_molecule_or_periodic("a GPR model", Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[5.0] * 3, pbc=pbc))


def test_partly_periodic_systems_are_refused() -> None:
    wire = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[5.0] * 3, pbc=[False, False, True])
    with pytest.raises(UnsupportedSystemError, match=r"pbc=\[False, False, True\]") as error:
        check_molecule_or_periodic("a GPR model", wire)
    assert error.value.argument == "latticeVectors"
