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
split: {test_fraction: 0.1, validation_fraction: 0.1}
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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlpotential.atomistic.structures import DataSource
from mlpotential.atomistic.symmetry_function_parameters import DEFAULT_CUTOFF, SymmetryFunctionParameters
from mlpotential.backends.hdnnp.network import NetworkShape


class ConfigError(ValueError):
    """A training config is malformed; the message names the file and key."""


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


@dataclass(frozen=True)
class LossSettings:
    """loss = energy_weight * mean((dE / atoms)^2) + force_weight * mean(dF^2),
    eV^2/atom^2 and eV^2/Angstrom^2 (AMP's default weights)."""

    energy_weight: float = 1.0
    force_weight: float = 0.04


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
            raise ValueError(f"optimizer must be adam or lbfgs, got {self.optimizer!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be positive (or null for all), got {self.batch_size}")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run needs (see the module docstring for YAML)."""

    data: tuple[DataSource, ...]
    test_data: tuple[DataSource, ...] = ()
    seed: int = 0
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
    descriptor_store: Path | None = Path("descriptors.sqlite")
    base_dir: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        for name in ("test_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        if self.early_stopping_patience < 0:
            raise ValueError("early_stopping_patience must not be negative (0 turns it off)")

    def resolve(self, path: Path | None) -> Path | None:
        """``path`` against the config's folder."""
        if path is None:
            return None
        return path if path.is_absolute() else self.base_dir / path


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
    file and the key at fault."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the config must be a mapping of sections ({', '.join(sorted(_SECTIONS))})")
    return config_from_dict(raw, base_dir=path.resolve().parent, name=str(path))


def config_from_dict(raw: Mapping[str, Any], base_dir: Path, name: str = "config") -> TrainingConfig:
    """The same as :func:`load_config` for an already parsed mapping."""
    _no_unknown(raw, _SECTIONS, name, "")
    try:
        split = _section(raw, "split", {"test_fraction", "validation_fraction"}, name)
        descriptor = _section(
            raw, "descriptor", {"elements", "cutoff", "cutoff_function", "n_radial", "g2", "g4", "g5"}, name
        )
        network = _section(raw, "network", {"hidden", "activation"}, name)
        loss = _section(raw, "loss", {"energy_weight", "force_weight"}, name)
        training = _section(
            raw,
            "training",
            {"stages", "early_stopping_patience", "device", "dtype", "threads", "progress"},
            name,
        )
        output = _section(raw, "output", {"model", "parity_plot", "report", "descriptor_store"}, name)
        stages = training.get("stages", [{}])
        if not isinstance(stages, list) or not stages:
            raise ConfigError(f"{name}: training.stages must be a non-empty list")
        stage_keys = {f for f in Stage.__dataclass_fields__}
        for k, stage in enumerate(stages):
            if not isinstance(stage, Mapping):
                raise ConfigError(f"{name}: training.stages[{k}] must be a mapping")
            _no_unknown(stage, stage_keys, name, f"training.stages[{k}].")
        return TrainingConfig(
            data=_sources(raw.get("data"), name, "data"),
            test_data=_sources(raw.get("test_data", []), name, "test_data", allow_empty=True),
            seed=int(raw.get("seed", 0)),
            test_fraction=float(split.get("test_fraction", 0.1)),
            validation_fraction=float(split.get("validation_fraction", 0.1)),
            descriptor=DescriptorSettings(
                elements=tuple(descriptor["elements"]) if descriptor.get("elements") else None,
                cutoff=float(descriptor.get("cutoff", DEFAULT_CUTOFF)),
                cutoff_function=str(descriptor.get("cutoff_function", "cosine")),
                n_radial=int(descriptor.get("n_radial", 8)),
                g2=_rows(descriptor.get("g2")),
                g4=_rows(descriptor.get("g4")),
                g5=_rows(descriptor.get("g5")),
            ),
            network=NetworkShape(
                hidden=tuple(network.get("hidden", (10, 10))), activation=str(network.get("activation", "tanh"))
            ),
            loss=LossSettings(
                energy_weight=float(loss.get("energy_weight", 1.0)),
                force_weight=float(loss.get("force_weight", 0.04)),
            ),
            stages=tuple(Stage(**stage) for stage in stages),
            early_stopping_patience=int(training.get("early_stopping_patience", 200)),
            device=str(training.get("device", "cpu") or "cpu"),
            dtype=str(training.get("dtype", "float32")),
            threads=None if training.get("threads") is None else int(training["threads"]),
            progress=bool(training.get("progress", True)),
            model_path=Path(output.get("model", "model.pt")),
            parity_plot=_optional_path(output, "parity_plot", "parity.png"),
            report=_optional_path(output, "report", "report.json"),
            descriptor_store=_optional_path(output, "descriptor_store", "descriptors.sqlite"),
            base_dir=base_dir,
        )
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def _no_unknown(mapping: Mapping[str, Any], known: set[str], name: str, prefix: str) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(
            f"{name}: unknown key(s) {', '.join(prefix + str(u) for u in unknown)}; "
            f"allowed: {', '.join(sorted(prefix + k for k in known))}"
        )


def _section(raw: Mapping[str, Any], key: str, known: set[str], name: str) -> Mapping[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: section {key!r} must be a mapping")
    _no_unknown(value, known, name, f"{key}.")
    return value


def _sources(value: Any, name: str, key: str, allow_empty: bool = False) -> tuple[DataSource, ...]:
    if value is None or value == []:
        if allow_empty:
            return ()
        raise ConfigError(f"{name}: {key!r} is required: a list of data files (or sources with a path)")
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{name}: {key!r} must be a list of paths or sources")
    sources = []
    for k, item in enumerate(value):
        if isinstance(item, str):
            sources.append(DataSource(path=item))
            continue
        if not isinstance(item, Mapping) or "path" not in item:
            raise ConfigError(f"{name}: {key}[{k}] must be a path or a mapping with 'path'")
        _no_unknown(item, {"path", "format", "index", "energy_only"}, name, f"{key}[{k}].")
        sources.append(
            DataSource(
                path=str(item["path"]),
                format=item.get("format"),
                index=str(item.get("index", ":")),
                energy_only=bool(item.get("energy_only", False)),
            )
        )
    return tuple(sources)


def _rows(value: Any) -> tuple[tuple[float, ...], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError(f"symmetry-function lists must be lists of number lists, got {value!r}")
    return tuple(tuple(float(x) for x in row) for row in value)


def _optional_path(section: Mapping[str, Any], key: str, default: str) -> Path | None:
    if key in section and section[key] in (None, False, ""):
        return None
    return Path(section.get(key, default))
