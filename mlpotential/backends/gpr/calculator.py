"""The ASE calculator of Backend GPR: energies, forces and their predictive
uncertainties from GPR models saved by ``mlpotential gpr``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlpotential.backends.calculator_base import check_molecule_or_periodic
from mlpotential.backends.gpr.gp import GaussianProcess
from mlpotential.errors import UnsupportedSystemError
from mlpotential.units import ModelUnits


class GprCalculator(Calculator):
    """GPR surrogate(s), one per composition (ordered elements, periodicity).

    Results in eV and eV/Angstrom: ``energy``, ``forces``, ``energy_std``
    (predictive standard deviation of the energy, on every calculation) and
    ``forces_std`` (shape (N, 3), only when asked for: it costs more).
    ``units``: the units the models were trained in.
    """

    implemented_properties = ["energy", "forces", "energy_std", "forces_std"]

    def __init__(self, models: Sequence[GaussianProcess], units: ModelUnits = ModelUnits(), **kwargs) -> None:
        super().__init__(**kwargs)
        self.models = {(gp.symbols, gp.train_cells is not None): gp for gp in models}
        self.units = units

    def _model(self, atoms: Atoms) -> GaussianProcess:
        check_molecule_or_periodic("a GPR model", atoms)
        periodic = bool(np.all(atoms.pbc))
        key = (tuple(atoms.get_chemical_symbols()), periodic)
        model = self.models.get(key)
        if model is None:
            known = "; ".join(
                f"{Atoms(symbols).get_chemical_formula(mode='hill')} ({len(symbols)} atoms, "
                f"{'periodic' if model_periodic else 'molecule'})"
                for symbols, model_periodic in self.models
            )
            raise UnsupportedSystemError(
                f"no GPR model for this system ({atoms.get_chemical_formula(mode='hill')}, {len(atoms)} atoms, "
                f"{'periodic' if periodic else 'molecule'}); a GPR model needs the elements in its training order. "
                f"Models: {known}"
            )
        return model

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        model = self._model(self.atoms)
        to_model = 1.0 / self.units.distance_to_angstrom
        positions = self.atoms.positions[None] * to_model
        cells = self.atoms.cell.array[None] * to_model if model.train_cells is not None else None
        with_forces_std = "forces_std" in properties
        result = model.predict(positions, cells, variance=True, force_variance=with_forces_std)
        energy_unit = self.units.energy_to_ev
        force_unit = self.units.force_to_ev_per_angstrom
        self.results["energy"] = float(result.energies[0]) * energy_unit
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = result.forces[0] * force_unit
        self.results["energy_std"] = float(result.energy_std[0]) * energy_unit
        if with_forces_std:
            self.results["forces_std"] = result.forces_std[0] * force_unit
