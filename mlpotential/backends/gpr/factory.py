"""The GPR backend's factory: engine settings -> GprCalculator."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlpotential.backends.gpr.calculator import GprCalculator
    from mlpotential.backends.keywords import EngineSettings


def create_calculator(settings: EngineSettings) -> GprCalculator:
    """The GPR calculator for a model file saved by ``mlpotential gpr``
    (``ParameterFile``), on ``Device``; energies eV, forces eV/Angstrom,
    ``energy_std`` eV on every calculation."""
    from mlpotential.backends.gpr.calculator import GprCalculator
    from mlpotential.backends.gpr.gp import IllConditionedError
    from mlpotential.backends.gpr.model_file import ModelFileError, load_models
    from mlpotential.backends.runtime import torch_device
    from mlpotential.errors import KeywordError

    device = torch_device(settings.device)
    try:
        models = load_models(settings.parameter_file, device=device)
    except (ModelFileError, IllConditionedError) as exc:
        raise KeywordError("ParameterFile", f"ParameterFile {settings.parameter_file!r}: {exc}") from exc
    return GprCalculator(models, units=settings.model_units())
