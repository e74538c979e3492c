"""A reference for the tests: ASE's EMT, except that it fails on any
structure with an atom at x < -1 Angstrom (as a DFT code fails to converge
on one structure). Loaded by the ASE backend as an ASECalculatorFile."""

from __future__ import annotations

from ase.calculators.emt import EMT


class FailingEMT(EMT):
    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if atoms is not None and atoms.positions[:, 0].min() < -1.0:
            raise RuntimeError("the reference did not converge for this structure")
        super().calculate(atoms, properties, system_changes)


def get_calculator():
    return FailingEMT()
