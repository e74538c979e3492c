"""The TorchANI backend's factory: engine settings -> ASE calculator (see the package docstring)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers

from mlpotential.backends.keywords import EngineSettings
from mlpotential.backends.model_files import before_unpickling, is_torchscript_archive
from mlpotential.backends.registry import CUSTOM
from mlpotential.backends.runtime import torch_device
from mlpotential.backends.torchani.calculator import SpeciesEncoding, TorchANICalculator
from mlpotential.backends.torchani.parameters import (
    ANI_INFO_FILES,
    SOURCE_PARAMETER_DIR,
    SOURCE_TORCHANI_DOWNLOAD,
    NeurochemModel,
    ParameterFileError,
    describe_locations,
    missing_model_files,
    parameter_locations,
    read_info,
    torchani_neurochem_folder,
)
from mlpotential.errors import BackendUnavailableError, KeywordError
from mlpotential.units import ModelUnits

# torchani (imported here or by unpickling a Custom model) warns that its optional
# CUDA extensions are absent; the pure-PyTorch code paths used here do not need them.
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

ANI_UNITS = ModelUnits("Hartree", "angstrom")
"""The units of the built-in ANI models: Hartree out, Angstrom in."""


def create_calculator(settings: EngineSettings) -> Calculator:
    """The calculator for a built-in ANI ensemble or a Custom model file."""
    device = torch_device(settings.device)
    if settings.model == CUSTOM:
        return _custom_calculator(settings, device)
    settings.recorded_units(ANI_UNITS, settings.model)
    from mlpotential.backends.torchani.model_cache import load_ani_model

    files = locate_model_files(settings.model, settings.parameter_dir)
    try:
        loaded = load_ani_model(files)
    except ParameterFileError as exc:
        raise KeywordError("ParameterDir", str(exc)) from None
    model = loaded.model.to(device)
    encoding = SpeciesEncoding(supported=tuple(int(z) for z in model.atomic_numbers.tolist()))
    calculator = TorchANICalculator(model, model_name=settings.model, encoding=encoding, units=ANI_UNITS, device=device)
    # Where the parameters came from, for the worker's provenance record.
    calculator.provenance = {
        "ani_parameters": str(files.folder.resolve()),
        "ani_parameters_source": parameter_source(settings.model, settings.parameter_dir, files.folder),
        "model_paths": [str(files.info.resolve()), str(files.constants.resolve()), str(files.self_energies.resolve())]
        + [str(member.resolve()) for member in files.member_dirs],
    }
    return calculator


def parameter_source(model: str, parameter_dir: str | None, folder: Path) -> str:
    """Which place of the search order ``folder`` is (ParameterDir,
    $TORCHANI_DATA_DIR, the installer's record, torchani's download)."""
    for location in parameter_locations(model, parameter_dir):
        if location.folder.resolve() == folder.resolve():
            return location.source
    return SOURCE_TORCHANI_DOWNLOAD


def locate_model_files(model: str, parameter_dir: str | None = None) -> NeurochemModel:
    """The NeuroChem files of a built-in ``model``, from the first complete
    folder in the search order, downloading them with torchani when no folder
    holds them.

    A ``parameter_dir`` that lacks files raises :class:`KeywordError`
    (``ParameterDir``) listing them; nothing found and no download raises
    :class:`BackendUnavailableError` describing every place searched.
    """
    locations = parameter_locations(model, parameter_dir)
    if parameter_dir:
        given = locations[0]
        if not given.complete:
            more = len(given.missing) - 5
            shown = ", ".join(given.missing[:5]) + (f" and {more} more" if more > 0 else "")
            raise KeywordError(
                SOURCE_PARAMETER_DIR,
                f"ParameterDir {parameter_dir!r} does not hold the {model} NeuroChem files: {shown} missing in "
                f"{given.folder} (expected a folder like ani-model-zoo, holding {ANI_INFO_FILES[model]} and the "
                "folder it names)",
            )
        return _read(given.folder, model)
    for location in locations:
        if location.complete:
            return _read(location.folder, model)
    target = torchani_neurochem_folder()
    problem = _download(target)
    if problem is None:
        missing = missing_model_files(target, model)
        if not missing:
            return _read(target, model)
        problem = f"it ran but the files lack {', '.join(missing[:3])}"
    raise BackendUnavailableError(
        SOURCE_PARAMETER_DIR,
        f"the {model} parameters were not found. Searched, in order:\n{describe_locations(locations)}\n"
        f"torchani's own download into {target}: {problem}\n"
        "Give ParameterDir (a folder holding ani-*_8x.info and the ani-*_8x/ folders), or record such a "
        "folder with: mlpotential install --ani-parameters FOLDER",
    )


def _read(folder: Path, model: str) -> NeurochemModel:
    try:
        return read_info(folder, model)
    except ParameterFileError as exc:
        raise KeywordError(SOURCE_PARAMETER_DIR, str(exc)) from None


def _download(folder: Path) -> str | None:
    """torchani's own download of the NeuroChem files into ``folder`` (only
    when it is empty or absent); the reason it failed, or ``None``."""
    if folder.is_dir() and any(folder.iterdir()):
        return "not tried, the folder already holds other files"
    from torchani.neurochem import download_model_parameters

    try:
        folder.mkdir(parents=True, exist_ok=True)
        download_model_parameters(root=folder, verbose=False)
    except Exception as exc:  # network errors come in many types
        return f"failed ({type(exc).__name__}: {exc})"
    return None


def _custom_calculator(settings: EngineSettings, device: torch.device) -> Calculator:
    path = settings.parameter_file
    assert path is not None  # keywords.py requires ParameterFile for Custom
    model = load_custom_model(path)
    model = model.to(device).eval()
    return TorchANICalculator(
        model,
        model_name=f"the custom model {os.path.basename(path)}",
        encoding=custom_species_encoding(model),
        units=settings.model_units(),
        device=device,
    )


def load_custom_model(path: str | os.PathLike[str]) -> torch.nn.Module:
    """The model of a Custom file: a TorchScript archive (``torch.jit.save``,
    pickle-free) is the model itself; any other file is ``torch.load(path)["model"]``
    (the AMS convention), which unpickles, that is runs code from, the file."""
    if is_torchscript_archive(str(path)):
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # a damaged archive can fail in many ways inside torch
            raise KeywordError(
                "ParameterFile",
                f"ParameterFile {str(path)!r} is a TorchScript archive that torch.jit.load refuses "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})",
            ) from None
    before_unpickling(
        str(path),
        "ParameterFile",
        "save the model with torch.jit.save(torch.jit.script(model), file) to load it without pickle",
    )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling can fail in any way the file's code or format allows
        raise KeywordError(
            "ParameterFile",
            f"ParameterFile {str(path)!r} is not a file written by torch.save ({type(exc).__name__}: {exc})",
        ) from None
    model = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(model, torch.nn.Module):
        found = f"a dict with keys {sorted(map(str, payload))}" if isinstance(payload, dict) else type(payload).__name__
        raise KeywordError(
            "ParameterFile",
            f"ParameterFile {str(path)!r} should hold a dict whose 'model' is a torch module (the AMS convention "
            f"torch.save({{'model': model}}, file)); it holds {found}",
        )
    return model


def custom_species_encoding(model: torch.nn.Module) -> SpeciesEncoding:
    """How a Custom model takes its species, from what the model declares:

    1. ``periodic_table_index`` (torchani 2 models): atomic numbers when true,
       else the index in its ``atomic_numbers`` (or ``symbols``) order;
    2. ``species`` (a sequence of element symbols): the index in that list;
    3. nothing declared: atomic numbers (periodic-table indices), every
       element allowed.
    """
    declared = _declared_elements(model)
    if getattr(model, "periodic_table_index", None) is True or declared is None:
        return SpeciesEncoding(supported=declared)
    return SpeciesEncoding(supported=declared, codes={z: index for index, z in enumerate(declared)})


def _declared_elements(model: torch.nn.Module) -> tuple[int, ...] | None:
    numbers = getattr(model, "atomic_numbers", None)
    if isinstance(numbers, torch.Tensor) and numbers.dim() == 1:
        return tuple(int(z) for z in numbers.tolist())
    for attribute in ("symbols", "species"):
        symbols = getattr(model, attribute, None)
        if isinstance(symbols, (list, tuple)) and symbols and all(s in atomic_numbers for s in symbols):
            return tuple(atomic_numbers[s] for s in symbols)
    return None
