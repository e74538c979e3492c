"""ASE's EMT with the element check every backend makes: an element EMT has
no parameters for is refused by name (status 7), not a NotImplementedError
from inside ASE."""

from __future__ import annotations

from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT, parameters
from ase.data import atomic_numbers

from mlpotential.backends.calculator_base import check_elements

EMT_ELEMENTS = tuple(atomic_numbers[symbol] for symbol in parameters)
"""The atomic numbers ASE's EMT has parameters for, in ASE's order."""


class CheckedEMT(EMT):
    """ASE's EMT (eV, Angstrom), refusing elements it has no parameters for."""

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        if atoms is not None:
            check_elements("EMT", atoms.numbers, EMT_ELEMENTS)
        super().calculate(atoms, properties or ["energy"], system_changes)
