"""The sGDML backend's factory: engine settings -> ASE calculator (see the package docstring)."""

from __future__ import annotations

import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from mlpotential.backends.keywords import AUTO, EngineSettings
from mlpotential.backends.model_files import corrupt_member, not_a_zip_archive, pytorch_pickles
from mlpotential.errors import KeywordError
from mlpotential.units import ModelUnits

KEYWORD = "ParameterFile"
EXPECTED = "a trained sGDML model (.npz written by `sgdml all` or np.savez_compressed of GDMLTrain.train's result)"
REQUIRED_ENTRIES = ("type", "z", "R_desc", "R_d_desc_alpha", "sig", "c", "perms", "tril_perms_lin")
"""What GDMLPredict reads from every model."""
OPTIONAL_ENTRIES = ("std", "alphas_E", "lattice", "e_unit", "r_unit")
_FILE_TYPES = {"d": "an sGDML dataset", "t": "an sGDML training task"}
_NOT_ZIP_SIGNATURES = {b"\x93NUMPY": "is a single NumPy array (.npy), not an .npz archive"}
_SGDML_ENERGY_UNITS = {"kcal/mol": "kcal/mol", "kj/mol": "kJ/mol", "ev": "eV", "hartree": "Hartree", "ha": "Hartree"}
_SGDML_DISTANCE_UNITS = {"ang": "angstrom", "angstrom": "angstrom", "a": "angstrom", "bohr": "bohr"}


def _bad_file(path: str, problem: str) -> KeywordError:
    return KeywordError(KEYWORD, f"ParameterFile {path!r} {problem}; Backend sGDML expects {EXPECTED}")


def _check_archive(path: str) -> None:
    not_zip = not_a_zip_archive(path, _NOT_ZIP_SIGNATURES, "is not a NumPy .npz archive")
    if not_zip is not None:
        raise _bad_file(path, not_zip)
    with zipfile.ZipFile(path) as archive:
        if pytorch_pickles(archive.namelist()):
            raise _bad_file(
                path, "is a PyTorch file (the format of SchNetPack, TorchANI and HDNNP models), not an .npz archive"
            )
        damaged = corrupt_member(archive)
    if damaged is not None:
        raise _bad_file(path, damaged)


def _text(value: np.ndarray) -> str:
    return str(np.asarray(value).astype(str))


def read_model_file(path: str) -> dict[str, np.ndarray]:
    """The arrays of an sGDML model file that a prediction needs, checked for
    type and consistency. Raises :class:`KeywordError` (``ParameterFile``)
    naming what the file is instead (a dataset, a task, a PyTorch file, a
    truncated or corrupt archive...)."""
    try:
        _check_archive(path)
        with np.load(path, allow_pickle=False) as archive:
            entries = set(archive.files)
            if "type" not in entries:
                raise _bad_file(path, "is an .npz archive without sGDML's 'type' entry")
            file_type = _text(archive["type"])
            if file_type != "m":
                raise _bad_file(
                    path,
                    f"is {_FILE_TYPES.get(file_type, f'an sGDML file of type {file_type!r}')}, not a trained model",
                )
            missing = [name for name in REQUIRED_ENTRIES if name not in entries]
            if missing:
                raise _bad_file(path, f"lacks the model entries {', '.join(missing)}")
            model = {name: archive[name] for name in (*REQUIRED_ENTRIES, *OPTIONAL_ENTRIES) if name in entries}
    except KeywordError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise _bad_file(path, f"cannot be read (truncated or corrupt?): {exc}") from exc
    _check_consistency(path, model)
    return model


def _check_consistency(path: str, model: dict[str, np.ndarray]) -> None:
    z = model["z"]
    if z.ndim != 1 or z.size < 2 or not np.issubdtype(z.dtype, np.integer):
        raise _bad_file(path, f"has an invalid 'z' (atomic numbers) entry of shape {z.shape}")
    n_atoms = z.size
    n_pairs = n_atoms * (n_atoms - 1) // 2
    r_desc, r_d_desc_alpha, perms = model["R_desc"], model["R_d_desc_alpha"], model["perms"]
    if (
        r_desc.ndim != 2
        or r_desc.shape[0] != n_pairs
        or r_d_desc_alpha.shape != (r_desc.shape[1], n_pairs)
        or perms.ndim != 2
        or perms.shape[1] != n_atoms
    ):
        raise _bad_file(
            path,
            f"is inconsistent: {n_atoms} atoms but R_desc {r_desc.shape}, R_d_desc_alpha {r_d_desc_alpha.shape}, "
            f"perms {perms.shape}",
        )
    lattice = model.get("lattice")
    if lattice is not None and (lattice.shape != (3, 3) or abs(np.linalg.det(lattice)) < 1e-12):
        raise _bad_file(path, "has a 'lattice' entry that is not three independent lattice vectors")


def recorded_units(model: dict[str, np.ndarray]) -> ModelUnits | None:
    """The training-data units the model file records (``e_unit``,
    ``r_unit``), as engine unit names; ``None`` when absent or unknown."""
    if "e_unit" not in model or "r_unit" not in model:
        return None
    energy = _SGDML_ENERGY_UNITS.get(_text(model["e_unit"]).strip().lower())
    distance = _SGDML_DISTANCE_UNITS.get(_text(model["r_unit"]).strip().lower())
    if energy is None or distance is None:
        return None
    return ModelUnits(energy, distance)


def _warn_about_units(path: str, settings: EngineSettings, used: ModelUnits, recorded: ModelUnits | None) -> None:
    if recorded is None or recorded == used:
        return
    keywords = [
        f"{keyword} {value!r}{' (Auto)' if given == AUTO else ''}"
        for keyword, value, given in (
            ("MLEnergyUnit", used.energy, settings.ml_energy_unit),
            ("MLDistanceUnit", used.distance, settings.ml_distance_unit),
        )
    ]
    warnings.warn(
        f"the sGDML model {path} records training units {recorded.energy} and {recorded.distance}, "
        f"but it is evaluated with {' and '.join(keywords)}; set MLEnergyUnit/MLDistanceUnit to the "
        "units of the training data",
        stacklevel=2,
    )


def create_calculator(settings: EngineSettings) -> Calculator:
    """An sGDML calculator for ``settings.parameter_file``; results in eV and
    eV/Angstrom. It predicts in this process alone (see
    :class:`~mlpotential.backends.sgdml.calculator.SGDMLModelCalculator`)."""
    path = str(settings.parameter_file)
    if not Path(path).is_file():
        raise KeywordError(KEYWORD, f"ParameterFile {path!r} is not a file; Backend sGDML expects {EXPECTED}")
    model = read_model_file(path)
    units = settings.model_units()
    _warn_about_units(path, settings, units, recorded_units(model))
    from mlpotential.backends.sgdml.calculator import SGDMLModelCalculator

    return SGDMLModelCalculator(model, path, units)
