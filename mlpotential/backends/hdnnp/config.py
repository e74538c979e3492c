"""Training settings and their YAML form (``mlpotential train CONFIG``).

Every section and key is optional except ``data``; unknown keys are errors
(a misspelt key must not silently fall back to a default). Relative paths are
relative to the config file's folder. The full format is in docs/hdnnp.md:

```yaml
data:                          # training data (list; a plain string is a path)
  - path: train.extxyz         # anything ase.io reads, *.xsf, a folder or zip of *.xsf, a glob
    format: extxyz             # optional ase.io format (or xsf)
    index: ":"                 # optional frames of a multi-frame file
    energy_only: false         # optional: ignore forces of this source
test_data: []                  # optional separate test set (then test_fraction is unused)
seed: 0
split: {test_fraction: 0.1, validation_fraction: 0.1, seed: null}   # seed null: the seed above
descriptor: {cutoff: 6.5, cutoff_function: cosine, n_radial: 8}   # or explicit g2/g4/g5 lists
network: {hidden: [10, 10], activation: tanh}
loss: {energy_weight: 1.0, force_weight: 0.04}
training:
  stages: [{optimizer: adam, epochs: 1000, learning_rate: 0.005, batch_size: 16}]
  early_stopping_patience: 200
  device: cpu
  dtype: float32               # training precision; the saved model is float64
  threads: null
  progress: true
output: {model: model.pt, parity_plot: parity.png, report: report.json, descriptor_store: descriptors.sqlite}
```

``output.descriptor_store`` left out puts the store beside the model file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mlpotential.atomistic.structures import DataSource
from mlpotential.atomistic.symmetry_function_parameters import DEFAULT_CUTOFF, SymmetryFunctionParameters
from mlpotential.backends.hdnnp.network import NetworkShape
from mlpotential.backends.keywords import parse_device
from mlpotential.backends.runtime import THREAD_COUNTS
from mlpotential.errors import KeywordError
from mlpotential.inputs import BadValue, Range, number, read_text

_Built = TypeVar("_Built")


class ConfigError(ValueError):
    """A training config is malformed; the message names the file, the line
    and the key."""


_SEEDS = Range(0, 2**32 - 1)
"""What numpy's and torch's seeding accept everywhere."""

_Numbers = Mapping[str, tuple[type[int] | type[float], Range]]


def _check_numbers(settings: object, numbers: _Numbers, optional: tuple[str, ...] = ()) -> None:
    """Convert and check the numeric fields of a frozen dataclass (a YAML
    file may hand over text, a bool or a list); ``optional`` fields may be None."""
    for name, (kind, allowed) in numbers.items():
        value = getattr(settings, name)
        if not (value is None and name in optional):
            object.__setattr__(settings, name, number(name, value, kind, allowed))


@dataclass(frozen=True)
class DescriptorSettings:
    """The symmetry functions: the default set for the elements and cutoff
    (``n_radial`` G2 functions plus AMP's G4 set), or, when any of
    ``g2``/``g4``/``g5`` is given, exactly the listed functions.
    ``elements`` default to those found in the training data."""

    elements: tuple[str, ...] | None = None
    cutoff: float = DEFAULT_CUTOFF
    cutoff_function: str = "cosine"
    n_radial: int = 8
    g2: tuple[tuple[float, float], ...] | None = None
    g4: tuple[tuple[float, float, float], ...] | None = None
    g5: tuple[tuple[float, float, float], ...] | None = None

    def __post_init__(self) -> None:
        # SymmetryFunctionParameters' rules, applied now rather than after the
        # data are read (minutes, for a cutoff that makes everything a neighbour);
        # hydrogen stands in for the elements the data will bring.
        parameters = self.build(set(self.elements or ("H",)))
        object.__setattr__(self, "cutoff", parameters.cutoff)

    def build(self, data_elements: set[str]) -> SymmetryFunctionParameters:
        elements = tuple(self.elements) if self.elements else tuple(data_elements)
        if self.g2 is None and self.g4 is None and self.g5 is None:
            return SymmetryFunctionParameters.default(elements, self.cutoff, self.n_radial, self.cutoff_function)
        return SymmetryFunctionParameters(
            elements=elements,
            cutoff=self.cutoff,
            cutoff_function=self.cutoff_function,
            g2=self.g2 or (),
            g4=self.g4 or (),
            g5=self.g5 or (),
        )


_WEIGHTS = Range(0, 1e6)


@dataclass(frozen=True)
class LossSettings:
    """loss = energy_weight * mean((dE / atoms)^2) + force_weight * mean(dF^2),
    eV^2/atom^2 and eV^2/Angstrom^2 (AMP's default weights)."""

    energy_weight: float = 1.0
    force_weight: float = 0.04

    def __post_init__(self) -> None:
        _check_numbers(self, {"energy_weight": (float, _WEIGHTS), "force_weight": (float, _WEIGHTS)})


_LEARNING_RATES = Range(0, 100, positive=True)
_STAGE_NUMBERS: _Numbers = {
    "epochs": (int, Range(1, 1_000_000)),
    "learning_rate": (float, _LEARNING_RATES),
    "batch_size": (int, Range(1, 1_000_000)),  # or None: all structures
    "plateau_patience": (int, Range(0, 1_000_000)),
    "min_learning_rate": (float, Range(0, _LEARNING_RATES.maximum)),
}


@dataclass(frozen=True)
class Stage:
    """One optimisation stage. ``adam``: mini-batches of ``batch_size``
    structures (None = all), the learning rate halves after
    ``plateau_patience`` epochs without validation improvement, down to
    ``min_learning_rate``. ``lbfgs``: full batch, strong-Wolfe line search,
    one L-BFGS iteration per epoch."""

    optimizer: str = "adam"
    epochs: int = 1000
    learning_rate: float = 0.005
    batch_size: int | None = 16
    plateau_patience: int = 50
    min_learning_rate: float = 1e-5

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "lbfgs"):
            raise BadValue("optimizer", f"must be adam or lbfgs, not {self.optimizer!r}")
        _check_numbers(self, _STAGE_NUMBERS, optional=("batch_size",))


_CONFIG_NUMBERS: _Numbers = {
    "seed": (int, _SEEDS),
    "split_seed": (int, _SEEDS),  # or None: the seed
    "test_fraction": (float, Range(0, 0.9)),
    "validation_fraction": (float, Range(0, 0.9)),
    "early_stopping_patience": (int, Range(0, 1_000_000)),  # 0 turns it off
    "threads": (int, THREAD_COUNTS),  # or None: torch's default
}

_CONFIG_KEYS = {
    "test_fraction": "split.test_fraction",
    "validation_fraction": "split.validation_fraction",
    "split_seed": "split.seed",
    **{key: f"training.{key}" for key in ("early_stopping_patience", "device", "dtype", "threads", "progress")},
}
"""Where a :class:`TrainingConfig` field stands in the YAML file, when not at the top."""


def _device(value: object) -> str:
    """The training device in canonical form (the Device keyword's rule)."""
    try:
        if isinstance(value, str):
            return parse_device(value)
    except KeywordError:
        pass
    raise BadValue("device", f"must be cpu, cuda or cuda:N, not {value!r}")


class _BesideModel:
    """The default place of the descriptor store: ``descriptors.sqlite`` in
    the model file's folder."""

    def __repr__(self) -> str:
        return "BESIDE_MODEL"

    def __reduce__(self) -> str:
        return "BESIDE_MODEL"  # unpickled (in a child process) as the one instance


BESIDE_MODEL = _BesideModel()
STORE_NAME = "descriptors.sqlite"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run needs (see the module docstring for YAML).

    ``seed`` seeds the initial weights and the batch order, and the split
    unless ``split_seed`` is given (committee members: one split, several
    seeds). ``bootstrap`` trains on a resample of the training set drawn
    with replacement (with ``seed``). ``descriptor_store``: a path, None
    (memory only) or :data:`BESIDE_MODEL`.
    """

    data: tuple[DataSource, ...]
    test_data: tuple[DataSource, ...] = ()
    seed: int = 0
    split_seed: int | None = None
    bootstrap: bool = False
    test_fraction: float = 0.1
    validation_fraction: float = 0.1
    descriptor: DescriptorSettings = DescriptorSettings()
    network: NetworkShape = NetworkShape()
    loss: LossSettings = LossSettings()
    stages: tuple[Stage, ...] = (Stage(),)
    early_stopping_patience: int = 200
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = None
    progress: bool = True
    model_path: Path = Path("model.pt")
    parity_plot: Path | None = Path("parity.png")
    report: Path | None = Path("report.json")
    descriptor_store: Path | None | _BesideModel = BESIDE_MODEL
    base_dir: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        _check_numbers(self, _CONFIG_NUMBERS, optional=("threads", "split_seed"))
        if self.dtype not in ("float64", "float32"):
            raise BadValue("dtype", f"must be float64 or float32, not {self.dtype!r}")
        for flag in ("progress", "bootstrap"):
            if not isinstance(getattr(self, flag), bool):
                raise BadValue(flag, f"must be true or false, not {getattr(self, flag)!r}")
        object.__setattr__(self, "device", _device(self.device))

    def resolve(self, path: Path | None) -> Path | None:
        """``path`` against the config's folder."""
        if path is None:
            return None
        return path if path.is_absolute() else self.base_dir / path

    def store_path(self) -> Path | None:
        """Where the descriptor store is (None: in memory)."""
        if isinstance(self.descriptor_store, _BesideModel):
            return self.resolve(self.model_path).parent / STORE_NAME
        return self.resolve(self.descriptor_store)


_SECTIONS = {
    "data",
    "test_data",
    "seed",
    "split",
    "descriptor",
    "network",
    "loss",
    "training",
    "output",
}


def load_config(path: str | Path) -> TrainingConfig:
    """Read a YAML training config; raises :class:`ConfigError` naming the
    file, the line and the key at fault."""
    path = Path(path)
    raw, lines = _parse_yaml(read_text(path, ConfigError), str(path))
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the config must be a mapping of sections ({', '.join(sorted(_SECTIONS))})")
    return config_from_dict(raw, base_dir=path.resolve().parent, name=str(path), lines=lines)


def _parse_yaml(text: str, name: str) -> tuple[Any, dict[str, int]]:
    """The document and the line of each of its keys (see :func:`_key_lines`)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node), _key_lines(node)) if node is not None else (None, {})
    except yaml.MarkedYAMLError as exc:
        # PyYAML's own text spans several lines; the line number and the problem suffice
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{name}{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{name}: not valid YAML: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits (Python's limit)
        raise ConfigError(f"{name}: not valid YAML: {str(exc).split(':')[0]}") from None
    finally:
        loader.dispose()


def _key_lines(node: yaml.Node, path: str = "", seen: set[int] | None = None) -> dict[str, int]:
    """The line (from 1) of every key and list item under ``node``, by its
    path: ``descriptor.cutoff``, ``training.stages[0].epochs``."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already walked (it may contain itself)
        return {}
    seen.add(id(node))
    children: list[tuple[str, yaml.Node, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = [(f"{path}.{key.value}" if path else str(key.value), key, value) for key, value in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = [(f"{path}[{index}]", item, item) for index, item in enumerate(node.value)]
    lines: dict[str, int] = {}
    for child, marked, value in children:
        lines[child] = marked.start_mark.line + 1
        lines.update(_key_lines(value, child, seen))
    return lines


@dataclass(frozen=True)
class _Source:
    """A config's name and the lines of its keys: errors that name both."""

    name: str
    lines: Mapping[str, int]

    def error(self, path: str, message: str) -> ConfigError:
        """A :class:`ConfigError` at the line of ``path``, or of the nearest
        key that holds it (a key the file lacks has no line of its own)."""
        key = path
        while key and key not in self.lines:
            key = re.sub(r"(\.|^)[^.\[]*$|\[\d+\]$", "", key, count=1)
        where = f", line {self.lines[key]}" if key else ""
        return ConfigError(f"{self.name}{where}: {message}")


def config_from_dict(
    raw: Mapping[str, Any], base_dir: Path, name: str = "config", lines: Mapping[str, int] | None = None
) -> TrainingConfig:
    """The same as :func:`load_config` for an already parsed mapping;
    ``lines`` (key path -> line) lets errors name the line."""
    source = _Source(name, lines or {})
    _no_unknown(raw, _SECTIONS, source, "")
    split = _section(raw, "split", {"test_fraction", "validation_fraction", "seed"}, source)
    descriptor = _section(
        raw, "descriptor", {"elements", "cutoff", "cutoff_function", "n_radial", "g2", "g4", "g5"}, source
    )
    network = _section(raw, "network", {"hidden", "activation"}, source)
    loss = _section(raw, "loss", {"energy_weight", "force_weight"}, source)
    training = _section(
        raw, "training", {"stages", "early_stopping_patience", "device", "dtype", "threads", "progress"}, source
    )
    output = _section(raw, "output", {"model", "parity_plot", "report", "descriptor_store"}, source)
    values = {
        "data": _sources(raw.get("data"), source, "data"),
        "test_data": _sources(raw.get("test_data", []), source, "test_data", allow_empty=True),
        "seed": raw.get("seed", 0),
        "split_seed": split.get("seed"),
        "test_fraction": split.get("test_fraction", 0.1),
        "validation_fraction": split.get("validation_fraction", 0.1),
        "descriptor": _build(
            source,
            "descriptor",
            DescriptorSettings,
            {
                "elements": _names(descriptor.get("elements"), source),
                "cutoff": descriptor.get("cutoff", DEFAULT_CUTOFF),
                "cutoff_function": descriptor.get("cutoff_function", "cosine"),
                "n_radial": descriptor.get("n_radial", 8),
                **{key: _rows(descriptor.get(key), source, f"descriptor.{key}") for key in ("g2", "g4", "g5")},
            },
        ),
        "network": _build(source, "network", NetworkShape, network),
        "loss": _build(source, "loss", LossSettings, loss),
        "stages": _stages(training.get("stages", [{}]), source),
        "early_stopping_patience": training.get("early_stopping_patience", 200),
        "device": training.get("device") or "cpu",
        "dtype": training.get("dtype", "float32"),
        "threads": training.get("threads"),
        "progress": training.get("progress", True),
        "model_path": _output_path(output, "model", "model.pt", source),
        "parity_plot": _output_path(output, "parity_plot", "parity.png", source),
        "report": _output_path(output, "report", "report.json", source),
        "descriptor_store": (
            _output_path(output, "descriptor_store", STORE_NAME, source)
            if "descriptor_store" in output
            else BESIDE_MODEL
        ),
        "base_dir": base_dir,
    }
    return _build(source, "", TrainingConfig, values, _CONFIG_KEYS)


def _build(
    source: _Source,
    section: str,
    factory: Callable[..., _Built],
    values: Mapping[str, Any],
    keys: Mapping[str, str] | None = None,
) -> _Built:
    """``factory(**values)``, its errors naming the key at fault: the
    field under ``section``, or where ``keys`` says the field stands."""
    try:
        return factory(**values)
    except BadValue as exc:
        path = keys.get(exc.key, exc.key) if keys is not None else f"{section}.{exc.key}"
        raise source.error(path, f"{path} {exc.problem}") from None
    except (TypeError, ValueError) as exc:
        raise source.error(section, f"{section}: {exc}" if section else str(exc)) from None


def _stages(stages: Any, source: _Source) -> tuple[Stage, ...]:
    if not isinstance(stages, list) or not stages:
        raise source.error("training.stages", "training.stages must be a non-empty list")
    built = []
    for k, stage in enumerate(stages):
        path = f"training.stages[{k}]"
        if not isinstance(stage, Mapping):
            raise source.error(path, f"{path} must be a mapping")
        _no_unknown(stage, set(Stage.__dataclass_fields__), source, f"{path}.")
        built.append(_build(source, path, Stage, stage))
    return tuple(built)


def _no_unknown(mapping: Mapping[str, Any], known: set[str], source: _Source, prefix: str) -> None:
    unknown = sorted(map(str, set(mapping) - known))
    if unknown:
        raise source.error(
            prefix + unknown[0],
            f"unknown key(s) {', '.join(prefix + u for u in unknown)}; "
            f"allowed: {', '.join(sorted(prefix + k for k in known))}",
        )


def _section(raw: Mapping[str, Any], key: str, known: set[str], source: _Source) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise source.error(key, f"section {key!r} must be a mapping")
    _no_unknown(value, known, source, f"{key}.")
    return value


def _sources(value: Any, source: _Source, key: str, allow_empty: bool = False) -> tuple[DataSource, ...]:
    if value is None or value == []:
        if allow_empty:
            return ()
        raise source.error(key, f"{key!r} is required: a list of data files (or sources with a path)")
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list):
        raise source.error(key, f"{key!r} must be a list of paths or sources")
    sources = []
    for k, item in enumerate(value):
        path = f"{key}[{k}]"
        if isinstance(item, str):
            sources.append(DataSource(path=item))
            continue
        if not isinstance(item, Mapping) or "path" not in item:
            raise source.error(path, f"{path} must be a path or a mapping with 'path'")
        _no_unknown(item, {"path", "format", "index", "energy_only"}, source, f"{path}.")
        energy_only = item.get("energy_only", False)
        if not isinstance(energy_only, bool):
            raise source.error(f"{path}.energy_only", f"{path}.energy_only must be true or false, not {energy_only!r}")
        file_format = item.get("format")
        if not isinstance(file_format, (str, type(None))):
            raise source.error(f"{path}.format", f"{path}.format must be a format name, not {file_format!r}")
        sources.append(
            DataSource(
                path=str(item["path"]),
                format=file_format,
                index=str(item.get("index", ":")),
                energy_only=energy_only,
            )
        )
    return tuple(sources)


def _names(value: Any, source: _Source) -> tuple[str, ...] | None:
    """``descriptor.elements``: a list of symbols (one symbol alone is a list of one)."""
    if value is None or value == []:
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        message = f"descriptor.elements must be a list of element symbols, not {value!r}"
        raise source.error("descriptor.elements", message)
    return tuple(value)


def _rows(value: Any, source: _Source, path: str) -> tuple[tuple[float, ...], ...] | None:
    """A list of number lists (the G2/G4/G5 parameters); their values are
    checked by :class:`SymmetryFunctionParameters`."""
    if value is None:
        return None
    try:
        if not isinstance(value, list):
            raise TypeError
        return tuple(tuple(number(path, x, float, _FINITE) for x in row) for row in value)
    except (TypeError, BadValue):
        raise source.error(path, f"{path} must be a list of lists of finite numbers, not {value!r}") from None


_FINITE = Range(-1e300, 1e300)
"""Any finite number: the G2/G4/G5 columns have their own ranges."""


def _output_path(section: Mapping[str, Any], key: str, default: str, source: _Source) -> Path | None:
    """An output file: a path, or null/false/"" for none (the model is always written)."""
    value = section.get(key, default)
    if key != "model" and value in (None, False, ""):
        return None
    if not isinstance(value, str) or not value:
        raise source.error(f"output.{key}", f"output.{key} must be a file name, not {value!r}")
    return Path(value)
