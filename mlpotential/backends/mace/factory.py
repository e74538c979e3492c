"""The MACE backend's factory: engine settings -> MACE's calculator (see the package docstring)."""

from __future__ import annotations

import logging

from mlpotential.backends.keywords import EngineSettings
from mlpotential.backends.model_files import before_unpickling
from mlpotential.backends.runtime import torch_device
from mlpotential.errors import KeywordError

log = logging.getLogger(__name__)


def load_model(path: str):
    """A MACE model from a file MACE's training wrote, on the CPU. Unpickles
    the file (after the pickle gate); refuses files that hold no MACE model."""
    import torch

    from mlpotential.backends.mace.calculator import import_mace

    import_mace()
    before_unpickling(path, "ParameterFile")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling can fail in any way the file's code or format allows
        raise KeywordError(
            "ParameterFile", f"ParameterFile {path!r} is not a MACE model file ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "atomic_numbers") or not hasattr(model, "r_max"):
        raise KeywordError(
            "ParameterFile",
            f"ParameterFile {path!r} holds a {type(model).__name__}, not a MACE model "
            "(the NAME.model file that mace_run_train writes)",
        )
    return model


def create_calculator(settings: EngineSettings):
    """MACE's ``MACECalculator`` around the model in ``ParameterFile``, on
    ``Device``, in the model's own dtype; eV and Angstrom."""
    from mlpotential.backends.mace.calculator import MaceCalculator, model_dtype

    path = str(settings.parameter_file)
    model = load_model(path)
    device = torch_device(settings.device)
    dtype = model_dtype(model)
    log.info("MACE model %s evaluates in %s (its own dtype) on %s", path, dtype, device)
    units = settings.model_units()
    return MaceCalculator(model, path, device, dtype, units)
