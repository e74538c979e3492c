"""aenet-gpr's ``train.in``: keywords, defaults (those of aenet-gpr 3.7.9)
and validation.

One keyword per line, ``keyword value``, keywords case-insensitive, lines
starting with ``#`` or ``!`` ignored; a keyword given twice keeps its last
value (``soap_centers``: its first). Paths are glob patterns relative to the
directory the command runs in, as in aenet-gpr. A keyword we do not know
gives a warning naming it; a value we cannot use gives a
:class:`TrainInputError` naming the keyword and line.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlpotential.atomistic.cutoffs import CUTOFF_FUNCTIONS, CUTOFF_RADII
from mlpotential.atomistic.symmetry_function_parameters import RADIAL_COUNTS
from mlpotential.backends.gpr.descriptors import SoapSettings, SymmetryFunctionSettings
from mlpotential.backends.keywords import parse_device
from mlpotential.errors import KeywordError
from mlpotential.inputs import COORDINATES, BadValue, Range, number, read_text


class TrainInputError(ValueError):
    """A train.in value that cannot be used; the message names keyword and line."""


class TrainInputWarning(UserWarning):
    """A train.in keyword that is not understood (and therefore ignored)."""


DESCRIPTORS = ("cartesian", "soap", "symmetry_functions")


@dataclass
class GprInput:
    """The settings of one ``mlpotential gpr`` run (aenet-gpr 3.7.9 defaults).

    Lengths in Angstrom, energies in eV. ``train_file``/``test_file`` are
    glob patterns (None: step skipped). ``batch_size``: at most this many
    structures per kernel block (memory). ``disp_length`` (Angstrom) and
    ``num_copy``: augmentation by random displacements. Keywords of ours, not
    aenet-gpr's: ``noise_placement``, ``random_seed``, ``device``,
    ``model_file``, the symmetry-function descriptor (``Descriptor sf``,
    ``sf_cutoff``, ``sf_n_radial``, ``sf_cutoff_function``).
    """

    train_file: str | None = None
    test_file: str | None = None
    file_format: str = "xsf"
    descriptor: str = "cartesian"
    scale: float = 0.4
    weight: float = 1.0
    noise: float = 1e-6
    noise_factor: float = 0.5
    fit_scale: bool = True
    fit_weight: bool = True
    prior_update: bool = True
    filter: bool = False
    filter_threshold: float = 0.1
    batch_size: int = 5
    get_variance: bool = True
    train_write: bool = False
    test_write: bool = False
    additional_write: bool = False
    train_model_save: bool = False
    disp_length: float = 0.055
    num_copy: int = 25
    soap: SoapSettings = field(default_factory=SoapSettings)
    symmetry_functions: SymmetryFunctionSettings = field(default_factory=SymmetryFunctionSettings)
    noise_placement: str = "aenet"
    random_seed: int | None = None
    device: str = "cpu"
    model_file: str = "gpr_model.safetensors"
    source: str = "train.in"


_BOOL_TRUE = {"true", "t", ".true.", "yes", "y", "1", "on"}
_BOOL_FALSE = {"false", "f", ".false.", "no", "n", "0", "off"}

# keyword (lower case) -> GprInput field and value type
_SIMPLE: dict[str, tuple[str, type]] = {
    "train_file": ("train_file", str),
    "test_file": ("test_file", str),
    "file_format": ("file_format", str),
    "scale": ("scale", float),
    "weight": ("weight", float),
    "noise": ("noise", float),
    "noisefactor": ("noise_factor", float),
    "fit_scale": ("fit_scale", bool),
    "fit_weight": ("fit_weight", bool),
    "prior_update": ("prior_update", bool),
    "filter": ("filter", bool),
    "filter_threshold": ("filter_threshold", float),
    "batch_size": ("batch_size", int),
    "get_variance": ("get_variance", bool),
    "train_write": ("train_write", bool),
    "test_write": ("test_write", bool),
    "additional_write": ("additional_write", bool),
    "train_model_save": ("train_model_save", bool),
    "disp_length": ("disp_length", float),
    "num_copy": ("num_copy", int),
    "noise_placement": ("noise_placement", str),
    "random_seed": ("random_seed", int),
    "model_file": ("model_file", str),
}
_SOAP: dict[str, tuple[str, type]] = {
    "soap_r_cut": ("r_cut", float),
    "soap_n_max": ("n_max", int),
    "soap_l_max": ("l_max", int),
    "soap_sigma": ("sigma", float),
    "soap_rbf": ("rbf", str),
    "soap_n_jobs": ("n_jobs", int),
    "soap_attach": ("attach", bool),
}
_SYMMETRY_FUNCTIONS: dict[str, tuple[str, type]] = {
    "sf_cutoff": ("cutoff", float),
    "sf_n_radial": ("n_radial", int),
    "sf_cutoff_function": ("cutoff_function", str),
}
RANGES: dict[str, Range] = {
    "scale": Range(0, 1000, positive=True),  # descriptor units (Angstrom for cart)
    "weight": Range(0, 10_000, "eV", positive=True),
    "noise": Range(0, 100, "eV/Angstrom", positive=True),
    "noisefactor": Range(0, 1000, positive=True),
    "filter_threshold": Range(0, 100, "Angstrom"),
    "batch_size": Range(1, 100_000),
    "disp_length": Range(0, 1, "Angstrom"),
    "num_copy": Range(0, 1_000_000),  # copies per training structure, all held in memory
    "random_seed": Range(0, 2**32 - 1),  # np.random.seed's range: a seed every generator takes
    "soap_r_cut": CUTOFF_RADII,
    "soap_n_max": Range(1, 20),
    "soap_l_max": Range(0, 20),  # DScribe refuses more
    "soap_sigma": Range(0, 10, "Angstrom", positive=True),
    "soap_n_jobs": Range(1, 1024),
    "sf_cutoff": CUTOFF_RADII,
    "sf_n_radial": RADIAL_COUNTS,
}
"""The values every numeric keyword allows (lower case; docs/gpr.md lists them)."""

# aenet-gpr keywords whose default is all we implement: other values change
# the results, so they are refused rather than ignored
_DEFAULT_ONLY: dict[str, tuple[str, bool]] = {
    "standardization": ("standardised energies", False),
    "descriptor_standardization": ("standardised descriptors", False),
    "force": ("training without forces", True),
    "constraints": ("constraint masks (XSF files carry none)", True),
    "autograd": ("autograd kernels", False),
}
# aenet-gpr keywords that have no effect on what aenet-gpr 3.7.9 computes
_NO_EFFECT = {"data_process"}
_UNSUPPORTED_PREFIXES = ("mace_", "cheb_")


def _parse_bool(keyword: str, value: str, where: str) -> bool:
    lowered = value.lower()
    if lowered in _BOOL_TRUE:
        return True
    if lowered in _BOOL_FALSE:
        return False
    raise TrainInputError(f"{where}: {keyword} {value!r} is not a truth value; use True or False")


def _convert(keyword: str, value: str, kind: type, where: str) -> str | bool | int | float:
    if kind is bool:
        return _parse_bool(keyword, value, where)
    if kind is str:
        return value
    try:
        return number(keyword, value, kind, RANGES[keyword.lower()])
    except BadValue as exc:
        raise TrainInputError(f"{where}: {exc}") from None


def _descriptor(value: str, where: str) -> str:
    lowered = value.lower()
    if lowered.startswith("cart"):
        return "cartesian"
    if "soap" in lowered:
        return "soap"
    if lowered in ("sf", "acsf", "g2g4", "symmetry", "symmetry_functions", "behler"):
        return "symmetry_functions"
    if any(name in lowered for name in ("mace", "cheb", "internal")):
        raise TrainInputError(
            f"{where}: Descriptor {value!r} is an aenet-gpr descriptor that mlpotential gpr does not provide; "
            f"use one of: {', '.join(DESCRIPTORS)}"
        )
    raise TrainInputError(f"{where}: Descriptor {value!r} is not known; use one of: {', '.join(DESCRIPTORS)}")


def _device(value: str, where: str) -> str:
    try:
        return parse_device(value)
    except KeywordError as exc:
        raise TrainInputError(f"{where}: {exc.message}") from None


def _soap_centers(line: str, where: str) -> tuple[tuple[float, float, float], ...]:
    """The points of a ``soap_centers [[x, y, z], ...]`` line (Angstrom)."""
    start = line.find("[")
    if start < 0:
        raise TrainInputError(f"{where}: soap_centers needs a list of [x, y, z] points")
    try:
        centers = tuple(tuple(float(v) for v in point) for point in ast.literal_eval(line[start:]))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):  # what literal_eval raises
        raise TrainInputError(f"{where}: soap_centers {line[start:]!r} is not a list of [x, y, z] points") from None
    if any(len(point) != 3 for point in centers):
        raise TrainInputError(f"{where}: every soap_centers point needs three coordinates")
    try:
        for point in centers:
            for axis, value in zip("xyz", point):
                number(axis, value, float, COORDINATES)
    except BadValue as exc:
        raise TrainInputError(f"{where}: soap_centers: {exc}") from None
    return centers


def parse_train_input(text: str, source: str = "train.in") -> GprInput:
    """Parse the text of a train.in; ``source`` names it in messages."""
    values: dict[str, object] = {}
    soap_values: dict[str, object] = {}
    sf_values: dict[str, object] = {}
    for line_number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        tokens = line.split()
        keyword = tokens[0].lower()
        where = f"{source}:{line_number}"
        if keyword == "soap_centers":
            soap_values.setdefault("centers", _soap_centers(line, where))
            continue
        if len(tokens) < 2:
            raise TrainInputError(f"{where}: {tokens[0]} has no value")
        value = tokens[1]
        if keyword == "descriptor":
            values["descriptor"] = _descriptor(value, where)
        elif keyword == "device":
            values["device"] = _device(value, where)
        elif keyword in _SIMPLE:
            name, kind = _SIMPLE[keyword]
            values[name] = _convert(tokens[0], value, kind, where)
        elif keyword in _SOAP:
            name, kind = _SOAP[keyword]
            soap_values[name] = _convert(tokens[0], value, kind, where)
            if name == "rbf":
                soap_values[name] = "polynomial" if "poly" in value.lower() else value.lower()
        elif keyword in _SYMMETRY_FUNCTIONS:
            name, kind = _SYMMETRY_FUNCTIONS[keyword]
            sf_values[name] = _convert(tokens[0], value, kind, where)
        elif keyword in _DEFAULT_ONLY:
            meaning, default = _DEFAULT_ONLY[keyword]
            if _parse_bool(tokens[0], value, where) != default:
                raise TrainInputError(
                    f"{where}: {tokens[0]} {value} ({meaning}) is not supported by mlpotential gpr; "
                    f"remove the line or set it to {default}"
                )
        elif keyword in _NO_EFFECT:
            continue
        elif keyword.startswith(_UNSUPPORTED_PREFIXES):
            warnings.warn(
                f"{where}: keyword {tokens[0]!r} belongs to a descriptor mlpotential gpr does not provide; ignored",
                TrainInputWarning,
                stacklevel=2,
            )
        else:
            warnings.warn(f"{where}: unknown keyword {tokens[0]!r} ignored", TrainInputWarning, stacklevel=2)

    settings = GprInput(source=source, **values)
    if soap_values:
        settings = replace(settings, soap=replace(settings.soap, **soap_values))
    if sf_values:
        settings = replace(settings, symmetry_functions=replace(settings.symmetry_functions, **sf_values))
    _validate(settings)
    return settings


def _validate(settings: GprInput) -> None:
    """What no single line shows: choices among words, and whether there is
    anything to do (numbers were checked on their lines, :data:`RANGES`)."""
    where = settings.source
    if settings.noise_placement not in ("aenet", "per_observation"):
        raise TrainInputError(f"{where}: noise_placement {settings.noise_placement!r}: use aenet or per_observation")
    if settings.soap.rbf not in ("gto", "polynomial"):
        raise TrainInputError(f"{where}: soap_rbf {settings.soap.rbf!r}: use gto or polynomial")
    functions = settings.symmetry_functions
    if functions.cutoff_function not in CUTOFF_FUNCTIONS:
        raise TrainInputError(
            f"{where}: sf_cutoff_function {functions.cutoff_function!r}: use one of {', '.join(CUTOFF_FUNCTIONS)}"
        )
    if settings.train_file is None and settings.test_file is None:
        raise TrainInputError(f"{where}: neither Train_file nor Test_file is given; nothing to do")
    if settings.train_file is None:
        raise TrainInputError(
            f"{where}: Test_file without Train_file: mlpotential gpr trains in the same run "
            "(a saved model is evaluated through Backend GPR)"
        )


def read_train_input(path: str | Path) -> GprInput:
    """Read and validate a train.in file."""
    path = Path(path)
    return parse_train_input(read_text(path, TrainInputError), source=str(path))
