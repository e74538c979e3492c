"""The HDNNP backend's factory: engine settings -> HDNNPCalculator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from mlpotential.errors import KeywordError

if TYPE_CHECKING:
    from ase.calculators.calculator import Calculator

    from mlpotential.backends.keywords import EngineSettings

BUILT_IN_MODELS: dict[str, str] = {"Cu-EMT": "cu_emt.pt"}
"""Model name -> file in this package's models/ folder."""


def built_in_model_path(name: str) -> Path:
    """The file of a model shipped with the package."""
    return Path(str(resources.files("mlpotential.backends.hdnnp").joinpath("models", BUILT_IN_MODELS[name])))


def create_calculator(settings: EngineSettings) -> Calculator:
    """The calculator for ``Backend HDNNP``: ``Model Custom`` reads
    ``ParameterFile``; ``Model Cu-EMT`` is the shipped demonstration model
    (copper fitted to ASE's EMT)."""
    from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
    from mlpotential.backends.hdnnp.model_file import MODEL_UNITS
    from mlpotential.backends.runtime import torch_device
    from mlpotential.units import ModelUnits

    if settings.model in BUILT_IN_MODELS:
        keyword, path = "Model", built_in_model_path(settings.model)
    else:
        keyword, path = "ParameterFile", Path(str(settings.parameter_file))
    model = _load(keyword, path, settings.model if keyword == "Model" else str(path))
    device = torch_device(settings.device)
    units = settings.recorded_units(ModelUnits(**MODEL_UNITS), f"the HDNNP model {path}")
    return HDNNPCalculator(model, device=device, units=units)


def create_committee(settings: EngineSettings) -> Calculator:
    """Several ParameterFiles: members of one descriptor set share the
    symmetry functions (:class:`HDNNPCommitteeCalculator`); members of
    different descriptor sets are a generic committee."""
    from mlpotential.backends.committee import CommitteeCalculator
    from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
    from mlpotential.backends.hdnnp.committee import HDNNPCommitteeCalculator, share_descriptors
    from mlpotential.backends.hdnnp.model_file import MODEL_UNITS
    from mlpotential.backends.runtime import torch_device
    from mlpotential.units import ModelUnits

    paths = settings.parameter_files
    models = [_load("ParameterFile", Path(path), path) for path in paths]
    device = torch_device(settings.device)
    units = settings.recorded_units(ModelUnits(**MODEL_UNITS), "the HDNNP models")
    if share_descriptors(models):
        return HDNNPCommitteeCalculator(models, device=device, units=units)
    members = [HDNNPCalculator(model, device=device, units=units) for model in models]
    return CommitteeCalculator(members, list(paths))


def _load(keyword: str, path: Path, name: str):
    """An HDNNP model file; its faults are the keyword's."""
    from mlpotential.backends.hdnnp.model_file import ModelFileError, load_model

    try:
        return load_model(path)
    except ModelFileError as exc:
        raise KeywordError(keyword, f"{keyword} {name}: {exc}") from exc
