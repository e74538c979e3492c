"""MACE's own ASE calculator with the checks every backend makes: elements
outside the model refused by name, stress only for 3D-periodic systems."""

from __future__ import annotations

import importlib
import os
import warnings

import torch
from ase import Atoms
from ase.calculators.calculator import all_changes

from mlpotential.backends.calculator_base import check_elements, check_stress_periodicity
from mlpotential.units import ModelUnits


def import_mace() -> None:
    """Import MACE and e3nn the way they need: MACE sets
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD for e3nn's constants file, which would
    make every later ``torch.load`` in this process unpickle by default, so
    the variable is restored once both are imported. MACE's notices about
    optional GPU accelerations it cannot find are silenced."""
    variable = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    before = os.environ.get(variable)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module("mace")  # sets the variable first
            importlib.import_module("e3nn.o3")  # loads its constants with it
            importlib.import_module("mace.calculators")
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


import_mace()
from mace.calculators import MACECalculator  # noqa: E402  (after import_mace)


def model_dtype(model: torch.nn.Module) -> str:
    """``"float64"`` or ``"float32"``: the dtype of the model's parameters."""
    return "float64" if next(model.parameters()).dtype == torch.float64 else "float32"


class MaceCalculator(MACECalculator):
    """One MACE model (eV, Angstrom, eV/Angstrom^3) in its own dtype."""

    def __init__(self, model: torch.nn.Module, path: str, device: torch.device, dtype: str, units: ModelUnits) -> None:
        super().__init__(
            models=[model.to(device)],
            device=str(device),
            default_dtype=dtype,
            energy_units_to_eV=units.energy_to_ev,
            length_units_to_A=units.distance_to_angstrom,
        )
        self.model_name = f"the MACE model {path}"
        self.elements = tuple(int(z) for z in model.atomic_numbers.tolist())

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        properties = properties or ["energy"]
        if atoms is not None:
            check_elements(self.model_name, atoms.numbers, self.elements)
            check_stress_periodicity(self.model_name, atoms, properties)
        super().calculate(atoms, properties, system_changes)
