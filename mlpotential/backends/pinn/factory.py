"""The PiNN backend's factory: engine settings -> PinnCalculator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mlpotential.backends.keywords import AUTO, EngineSettings
from mlpotential.backends.pinn.calculator import PinnCalculator
from mlpotential.backends.pinn.checkpoint import CheckpointError
from mlpotential.backends.pinn.loader import load_potential, named_energy_unit
from mlpotential.backends.pinn.params import ParamsError, read_params
from mlpotential.backends.pinn.variables import WeightsError
from mlpotential.backends.runtime import torch_device
from mlpotential.errors import KeywordError
from mlpotential.units import ModelUnits

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator


def create_calculator(settings: EngineSettings) -> Calculator:
    """The PiNN model in ``settings.parameter_dir`` as an ASE calculator
    (eV, Angstrom). Any fault in the directory raises
    :class:`~mlpotential.errors.KeywordError` for ``ParameterDir``
    naming the file; an absent CUDA device raises BackendUnavailableError."""
    model_dir = Path(settings.parameter_dir or "")
    device = torch_device(settings.device)
    try:
        params = read_params(model_dir)
        energy_to_ev, distance_to_angstrom = _unit_factors(settings, params.energy.e_unit)
        potential = load_potential(
            model_dir,
            params,
            energy_to_ev=energy_to_ev,
            distance_to_angstrom=distance_to_angstrom,
            dtype=torch.float64,
            device=device,
        )
    except (ParamsError, CheckpointError, WeightsError) as exc:
        raise KeywordError("ParameterDir", f"ParameterDir {str(model_dir)!r}: {exc}") from exc
    return PinnCalculator(potential)


def _unit_factors(settings: EngineSettings, e_unit: float) -> tuple[float, float]:
    """(eV per model energy unit, Angstrom per model length unit).

    PiNN's e_unit converts the training labels' unit to its output unit,
    which PiNN's ASE calculator takes as eV; so e_unit is the Auto energy
    unit. An e_unit that is no named unit is applied as it is, exactly as
    PiNN does. MLEnergyUnit names the labels' unit and replaces e_unit.
    """
    named = named_energy_unit(e_unit)
    units = settings.model_units(ModelUnits(named or "eV", "angstrom"))
    if settings.ml_energy_unit == AUTO and named is None:
        return e_unit, units.distance_to_angstrom
    return units.energy_to_ev, units.distance_to_angstrom
