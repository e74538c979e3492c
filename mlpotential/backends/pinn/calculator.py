"""The ASE calculator of the PiNN backend (eV, Angstrom, eV/Angstrom,
eV/Angstrom^3), with PiNN's periodicity rules: any periodic direction makes
the structure periodic in all three, and stress exists only when all three
directions are periodic."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlpotential.backends.calculator_base import check_elements
from mlpotential.backends.pinn.potential import PinnPotential
from mlpotential.errors import UnsupportedSystemError

_MODEL = "the PiNN model"
"""How refusals name the model."""

# A cell thinner than this (Angstrom^3) cannot hold a periodic structure.
_MIN_VOLUME = 1e-6


class PinnCalculator(Calculator):
    """Energy, forces and (fully periodic cells) stress from a loaded PiNN
    model. ``results["n_pairs"]`` is the size of PiNN's neighbour list."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, potential: PinnPotential, label: str = "PiNN", **kwargs) -> None:
        super().__init__(label=label, **kwargs)
        self.potential = potential

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        atoms = self.atoms
        check_elements(_MODEL, atoms.numbers, sorted(self.potential.network.elements))
        cell = self._periodic_cell(atoms)
        prediction = self.potential.predict(atoms.numbers, atoms.positions, cell, stress=bool(atoms.pbc.all()))
        self.results = {
            "energy": prediction.energy,
            "free_energy": prediction.energy,
            "forces": prediction.forces,
            "n_pairs": prediction.n_pairs,
        }
        if prediction.stress is not None:
            self.results["stress"] = prediction.stress

    @staticmethod
    def _periodic_cell(atoms: Atoms) -> np.ndarray | None:
        if not atoms.pbc.any():
            return None
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        if abs(np.linalg.det(cell)) < _MIN_VOLUME:
            raise UnsupportedSystemError(
                f"PiNN treats a structure with any periodic direction (pbc={atoms.pbc.tolist()}) as periodic in "
                "all three, so it needs three independent lattice vectors; this cell has (nearly) zero volume",
                "latticeVectors",
            )
        return cell
