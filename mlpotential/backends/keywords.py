"""The engine keywords and their validation: the one place where a keyword
value is checked.

Keyword names and enumerated values are case-insensitive, as in AMS input;
:class:`EngineSettings` holds their canonical spellings. A bad value raises
:class:`~mlpotential.errors.KeywordError` naming the keyword, the
value and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mlpotential.backends.registry import BACKENDS, CUSTOM, BackendSpec
from mlpotential.backends.runtime import THREAD_COUNTS
from mlpotential.errors import KeywordError
from mlpotential.inputs import BadValue, number
from mlpotential.names import canonical_name
from mlpotential.units import DISTANCE_UNIT_TO_ANGSTROM, ENERGY_UNIT_TO_EV, ModelUnits

AUTO = "Auto"
DEFAULT_BACKEND = "TorchANI"

KEYWORDS: dict[str, str] = {
    "Backend": "which library computes: " + ", ".join(BACKENDS),
    "Model": "a built-in model of the backend, or Custom (your own ParameterFile/ParameterDir)",
    "ParameterFile": "path of the trained model file (Custom models); several: a committee",
    "ParameterDir": "path of the trained model directory (Custom models, TorchANI parameters); several: a committee",
    "ASECalculatorFile": "a Python file defining get_calculator(...) (Backend ASE, Model Custom); runs its code",
    "MLEnergyUnit": "energy unit the model outputs: " + ", ".join((AUTO, *ENERGY_UNIT_TO_EV)),
    "MLDistanceUnit": "distance unit the model expects: " + ", ".join((AUTO, *DISTANCE_UNIT_TO_ANGSTROM)),
    "Device": "where the backend runs: empty (the framework decides), cpu, cuda, cuda:N",
    "NumThreads": f"number of threads for the worker (an integer {THREAD_COUNTS.describe()})",
}
"""Every engine keyword with a one-line description (canonical spelling)."""

PATH_KEYWORDS = ("ParameterFile", "ParameterDir", "ASECalculatorFile")
"""The keywords whose values are paths (relative paths resolve against the host's directory)."""
REPEATABLE_KEYWORDS = ("ParameterFile", "ParameterDir")
"""The keywords that may be given several times: several model files (or
directories) make a committee."""

KeywordValue = str | int | Sequence[str] | None
"""A keyword's value as a caller gives it: a string (or a number), a list
for a repeated keyword, None for not given."""


def option_name(keyword: str) -> str:
    """The ``mlpotential worker`` option of an engine keyword, derived from its
    spelling: ParameterFile -> ``--parameter-file``, MLEnergyUnit ->
    ``--ml-energy-unit``."""
    return "--" + re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", keyword).lower()


def keyword_options(keywords: Mapping[str, KeywordValue]) -> list[str]:
    """``mlpotential worker`` options for engine keywords (names in any case;
    a list repeats the option); :class:`KeywordError` for an unknown keyword."""
    options: list[str] = []
    for name, value in keywords.items():
        option = option_name(canonical_keyword(name))
        for item in _as_list(value):
            options += [option, item]
    return options


def _as_list(value: KeywordValue) -> list[str]:
    """A keyword's values as strings: none, one, or (a repeated keyword) several."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(item).strip() for item in value if item is not None]
    return [str(value).strip()]


_DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class EngineSettings:
    """Validated engine keywords, canonical spellings.

    Paths are kept as given (relative paths are relative to the worker's
    working directory); ``device`` is ``""`` when the framework decides;
    ``num_threads`` is ``None`` when not set.
    """

    backend: str = DEFAULT_BACKEND
    model: str = "ANI-2x"
    parameter_files: tuple[str, ...] = ()
    parameter_dirs: tuple[str, ...] = ()
    calculator_file: str | None = None
    ml_energy_unit: str = AUTO
    ml_distance_unit: str = AUTO
    device: str = ""
    num_threads: int | None = None

    @property
    def spec(self) -> BackendSpec:
        return BACKENDS[self.backend]

    @property
    def parameter_file(self) -> str | None:
        """The model file (the first of a committee's)."""
        return self.parameter_files[0] if self.parameter_files else None

    @property
    def parameter_dir(self) -> str | None:
        """The model directory (the first of a committee's)."""
        return self.parameter_dirs[0] if self.parameter_dirs else None

    def members(self) -> list[EngineSettings]:
        """The settings of each committee member (one model file or directory
        each); a list of one when the engine is a single model."""
        if len(self.parameter_files) > 1:
            return [replace(self, parameter_files=(path,)) for path in self.parameter_files]
        if len(self.parameter_dirs) > 1:
            return [replace(self, parameter_dirs=(path,)) for path in self.parameter_dirs]
        return [self]

    @property
    def member_names(self) -> list[str]:
        """What names each member in messages: its model file or directory."""
        return list(self.parameter_files if len(self.parameter_files) > 1 else self.parameter_dirs)

    def model_units(self, auto: ModelUnits | None = None) -> ModelUnits:
        """The units the model works in: the keywords, with ``Auto`` replaced
        by ``auto`` (a backend may read them from the model file) or else by
        the backend's convention."""
        auto = auto or self.spec.default_units
        energy = auto.energy if self.ml_energy_unit == AUTO else self.ml_energy_unit
        distance = auto.distance if self.ml_distance_unit == AUTO else self.ml_distance_unit
        return ModelUnits(energy, distance)

    def recorded_units(self, recorded: ModelUnits, model: str) -> ModelUnits:
        """The units of a model that records its own (a model file, a built-in
        model): MLEnergyUnit and MLDistanceUnit must be Auto or name exactly
        these, or :class:`KeywordError` says what ``model`` works in."""
        for keyword, value, fixed in (
            ("MLEnergyUnit", self.ml_energy_unit, recorded.energy),
            ("MLDistanceUnit", self.ml_distance_unit, recorded.distance),
        ):
            if value not in (AUTO, fixed):
                raise KeywordError(
                    keyword,
                    f"{model} works in {recorded.energy} and {recorded.distance}; leave {keyword} Auto "
                    f"(or set it to {fixed}), not {value}",
                )
        return recorded

    def as_keywords(self) -> dict[str, str | list[str]]:
        """The settings as engine keywords (only those that are set; a list
        for a committee's model files)."""
        pairs = {
            "Backend": self.backend,
            "Model": self.model,
            "ParameterFile": _single_or_list(self.parameter_files),
            "ParameterDir": _single_or_list(self.parameter_dirs),
            "ASECalculatorFile": self.calculator_file,
            "MLEnergyUnit": self.ml_energy_unit,
            "MLDistanceUnit": self.ml_distance_unit,
            "Device": self.device,
            "NumThreads": None if self.num_threads is None else str(self.num_threads),
        }
        return {key: value for key, value in pairs.items() if value}


def _single_or_list(values: tuple[str, ...]) -> str | list[str] | None:
    return values[0] if len(values) == 1 else (list(values) or None)


def _choose(keyword: str, value: str, allowed: tuple[str, ...] | list[str]) -> str:
    chosen = canonical_name(value, allowed)
    if chosen is not None:
        return chosen
    raise KeywordError(keyword, f"{keyword} {value!r} is not allowed; allowed values: {', '.join(allowed)}")


def canonical_keyword(name: str) -> str:
    """The canonical spelling of an engine keyword given in any case;
    :class:`KeywordError` for an unknown one, listing the known keywords."""
    keyword = canonical_name(name, KEYWORDS)
    if keyword is not None:
        return keyword
    raise KeywordError(name, f"unknown engine keyword {name!r}; known keywords: {', '.join(KEYWORDS)}")


def _backend_for_model(model: str) -> str:
    for spec in BACKENDS.values():
        if canonical_name(model, spec.built_in_models) is not None:
            return spec.name
    if canonical_name(model, (CUSTOM,)) is not None:
        raise KeywordError("Backend", f"Model {CUSTOM} needs a Backend; choose one of: {', '.join(BACKENDS)}")
    built_ins = [model for spec in BACKENDS.values() for model in spec.built_in_models]
    raise KeywordError(
        "Model",
        f"Model {model!r} is not a built-in model of any backend; built-in models: "
        f"{', '.join(built_ins)} (or Backend <name> with Model {CUSTOM})",
    )


def _check_path(keyword: str, path: str, want_dir: bool) -> None:
    target = Path(path)
    if not target.exists():
        raise KeywordError(keyword, f"{keyword} {path!r} does not exist")
    if want_dir and not target.is_dir():
        raise KeywordError(keyword, f"{keyword} {path!r} is a file; a directory is expected")
    if not want_dir and target.is_dir():
        raise KeywordError(keyword, f"{keyword} {path!r} is a directory; a file is expected")
    if not os.access(target, os.R_OK):
        raise KeywordError(keyword, f"{keyword} {path!r} is not readable")


def parse_device(value: str) -> str:
    """The ``Device`` keyword in canonical form (lower case; ``""``: the
    framework decides); :class:`KeywordError` unless empty, cpu, cuda or cuda:N."""
    device = value.strip().lower()
    if device and not _DEVICE_PATTERN.match(device):
        raise KeywordError("Device", f"Device {value!r} is not allowed; use empty, cpu, cuda or cuda:N")
    return device


def _parse_num_threads(value: str) -> int | None:
    if value.strip() == "":
        return None
    try:
        return int(number("NumThreads", value, int, THREAD_COUNTS))
    except BadValue as exc:
        raise KeywordError("NumThreads", str(exc)) from None


def parse_settings(keywords: Mapping[str, KeywordValue], check_files: bool = True) -> EngineSettings:
    """Validate engine keywords (names as in the Engine block, any case) and
    return canonical settings. Keywords that are ``None`` count as not given;
    ParameterFile and ParameterDir may be lists (a committee).
    ``check_files=False`` leaves the path keywords unchecked: a reader of an
    input file checks the rest before a worker starts, and the worker, whose
    directory relative paths are relative to, checks the files.
    """
    given: dict[str, str] = {}
    paths: dict[str, list[str]] = {}
    for name, value in keywords.items():
        keyword = canonical_keyword(name)
        values = [item for item in _as_list(value) if item]
        if keyword in REPEATABLE_KEYWORDS:
            paths.setdefault(keyword, []).extend(values)
        elif len(values) > 1:
            raise KeywordError(keyword, f"{keyword} is given {len(values)} times; it takes one value")
        elif value is not None:
            given[keyword] = values[0] if values else ""

    if "Backend" in given:
        backend = _choose("Backend", given["Backend"], list(BACKENDS))
    elif "Model" in given:
        backend = _backend_for_model(given["Model"])
    else:
        backend = DEFAULT_BACKEND
    spec = BACKENDS[backend]
    model = _choose("Model", given["Model"], spec.models) if "Model" in given else spec.default_model
    if given.get("ASECalculatorFile"):
        paths["ASECalculatorFile"] = [given["ASECalculatorFile"]]
    _check_model_keywords(spec, model, paths, check_files)

    energy_unit = _choose("MLEnergyUnit", given.get("MLEnergyUnit") or AUTO, (AUTO, *ENERGY_UNIT_TO_EV))
    distance_unit = _choose("MLDistanceUnit", given.get("MLDistanceUnit") or AUTO, (AUTO, *DISTANCE_UNIT_TO_ANGSTROM))

    if spec.fixed_units:
        fixed = f"{spec.default_units.energy}, {spec.default_units.distance}"
        for keyword, value in (("MLEnergyUnit", energy_unit), ("MLDistanceUnit", distance_unit)):
            if value != AUTO:
                raise KeywordError(keyword, f"{keyword} is fixed for Backend {backend} ({fixed}); leave it Auto")

    device = parse_device(given.get("Device", ""))
    if device and device.split(":")[0] not in spec.devices:
        runs_on = "the CPU" if spec.devices == ("cpu",) else " or ".join(spec.devices)
        raise KeywordError(
            "Device", f"Device {device} is not supported by Backend {backend}, which runs on {runs_on}; use Device cpu"
        )

    return EngineSettings(
        backend=backend,
        model=model,
        parameter_files=tuple(paths.get("ParameterFile", ())),
        parameter_dirs=tuple(paths.get("ParameterDir", ())),
        calculator_file=(paths.get("ASECalculatorFile") or [None])[0],
        ml_energy_unit=energy_unit,
        ml_distance_unit=distance_unit,
        device=device,
        num_threads=_parse_num_threads(given.get("NumThreads", "")),
    )


def _check_model_keywords(spec: BackendSpec, model: str, paths: dict[str, list[str]], check_files: bool) -> None:
    """Which of ParameterFile, ParameterDir and ASECalculatorFile the backend
    and model need or accept, how many of each, and that each names what it
    should (an existing readable file or directory)."""
    backend = spec.name
    accepted: set[str] = set()
    if model == CUSTOM and spec.parameter:
        accepted.update((spec.parameter, *spec.optional_parameters))
        if not paths.get(spec.parameter):
            other = {"ParameterFile": "ParameterDir", "ParameterDir": "ParameterFile"}.get(spec.parameter)
            if other and paths.get(other):
                what = "a model file" if spec.parameter == "ParameterFile" else "a model directory"
                raise KeywordError(
                    spec.parameter, f"Backend {backend} reads {what}: give {spec.parameter}, not {other}"
                )
            raise KeywordError(
                spec.parameter, f"Backend {backend} with Model {CUSTOM} needs {spec.parameter} (the trained model)"
            )
    elif spec.built_in_parameter_dir:
        accepted.add("ParameterDir")
    committee_keywords = {
        keyword for keyword in (spec.parameter, *spec.optional_parameters) if keyword in REPEATABLE_KEYWORDS
    }
    for keyword, values in paths.items():
        if not values:
            continue
        if keyword not in accepted:
            raise KeywordError(keyword, f"{keyword} is not used by Backend {backend} with Model {model}")
        if len(values) > 1 and (model != CUSTOM or keyword not in committee_keywords):
            raise KeywordError(
                keyword, f"{keyword} is given {len(values)} times; Backend {backend} with Model {model} takes one"
            )
        if check_files:
            for value in values:
                _check_path(keyword, value, want_dir=keyword == "ParameterDir")
