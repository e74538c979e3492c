"""The ``mlpotential learn`` config (YAML) as dataclasses, every key checked.

Unknown keys are errors (a misspelt key must not fall back to a default);
each error is one line naming the file and the key. Relative paths are
relative to the config file's folder. Every key and its default is listed in
docs/active-learning.md:

```yaml
reference: {engine: {Backend: ASE, Model: EMT}, processes: 0}
initial: {structures: [initial.xyz], labels: auto}
test: {structures: []}
model:
  committee: 4
  seed: 0
  training: {network: {hidden: [10, 10]}, training: {stages: [{epochs: 200}]}}
explore: {temperatures: [300], replicas: 1, steps: 1000, timestep: 2.0, thermostat: langevin}
criteria: {force_std_lower: 0.05, force_std_upper: 0.5, min_distance: 0.5, candidates: 10}
iterations: 5
stop_when_converged: true
results: results
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlpotential.atomistic.structures import DataSource
from mlpotential.backends.runtime import THREAD_COUNTS
from mlpotential.inputs import BadValue, Range, number, read_text
from mlpotential.learning.labelling import Reference
from mlpotential.learning.selection import Criteria

if TYPE_CHECKING:
    from mlpotential.backends.hdnnp.config import TrainingConfig


class LearnConfigError(ValueError):
    """A learn config is malformed; the message is one line naming the file
    and the key."""


@dataclass(frozen=True)
class ReferenceSettings:
    """``reference``: the engine that labels (``engine`` keywords or
    ``worker_command``), on ``processes`` local processes (0: one per core,
    at most 4) or on the Dask cluster at ``scheduler``."""

    reference: Reference
    processes: int = 0
    scheduler: str | None = None


@dataclass(frozen=True)
class InitialSettings:
    """``initial``: the starting structures. ``labels: auto`` keeps the
    energies and forces a file holds and labels the rest; ``reference``
    labels every structure."""

    sources: tuple[DataSource, ...]
    relabel: bool = False


@dataclass(frozen=True)
class ModelSettings:
    """``model``: a committee of ``committee`` native HDNNP models; member k
    trains with seed ``seed + k`` (its own weights and its own
    train/validation split). ``training`` holds the HDNNP training sections
    (docs/hdnnp.md) other than data and output."""

    training: TrainingConfig
    committee: int = 4
    seed: int = 0
    warm_start: bool = True


THERMOSTATS = ("langevin", "bussi")


@dataclass(frozen=True)
class ExploreSettings:
    """``explore``: MD with the current committee. ``replicas`` runs at each
    of ``temperatures`` (K) of at most ``steps`` steps of ``timestep`` (fs),
    thermostat ``langevin`` (``friction``, 1/fs) or ``bussi`` (``taut``, fs),
    each from a structure drawn from ``start`` (the initial structures, or
    files), random numbers from ``seed``; the committee's worker uses
    ``threads`` threads (one suits the small cells of active learning, and
    leaves the other cores to labelling)."""

    temperatures: tuple[float, ...] = (300.0,)
    replicas: int = 1
    steps: int = 1000
    timestep: float = 2.0
    thermostat: str = "langevin"
    friction: float = 0.01
    taut: float = 100.0
    start: tuple[DataSource, ...] = ()
    seed: int = 0
    threads: int = 1


@dataclass(frozen=True)
class LearnConfig:
    """Everything ``mlpotential learn`` needs."""

    reference: ReferenceSettings
    initial: InitialSettings
    model: ModelSettings
    explore: ExploreSettings = ExploreSettings()
    criteria: Criteria = Criteria()
    test: tuple[DataSource, ...] = ()
    iterations: int = 5
    stop_when_converged: bool = True
    results: Path = Path("results")
    base_dir: Path = field(default_factory=Path.cwd)


_SECTIONS = (
    "reference",
    "initial",
    "test",
    "model",
    "explore",
    "criteria",
    "iterations",
    "stop_when_converged",
    "results",
)
_TRAINING_SECTIONS = ("split", "descriptor", "network", "loss", "training")
"""The HDNNP training config's sections that ``model.training`` may hold
(data and output belong to the loop)."""

_COUNTS = Range(1, 1_000_000)
_CRITERIA = Criteria()
"""The selection defaults (one place: :class:`Criteria`)."""
_SEEDS = Range(0, 2**32 - 1)


def load_config(path: str | Path) -> LearnConfig:
    """Read a learn config; :class:`LearnConfigError` names the file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(read_text(path, LearnConfigError))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise LearnConfigError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    return config_from_mapping(raw, path.resolve().parent, str(path))


def config_from_mapping(raw: Any, base_dir: Path, name: str = "config") -> LearnConfig:
    """The same as :func:`load_config` for an already parsed document."""
    try:
        return _Reader(base_dir, name).config(raw)
    except BadValue as exc:
        raise LearnConfigError(f"{name}: {exc.key} {exc.problem}") from None


@dataclass(frozen=True)
class _Reader:
    base_dir: Path
    name: str

    def config(self, raw: Any) -> LearnConfig:
        if not isinstance(raw, Mapping):
            raise BadValue("config", f"must be a mapping of sections ({', '.join(_SECTIONS)})")
        _no_unknown(raw, _SECTIONS, "")
        for required in ("reference", "initial"):
            if required not in raw:
                raise BadValue(required, "is required")
        return LearnConfig(
            reference=self.reference(_mapping(raw, "reference")),
            initial=self.initial(_mapping(raw, "initial")),
            test=_sources(_mapping(raw, "test").get("structures", []), "test.structures", allow_empty=True),
            model=self.model(_mapping(raw, "model")),
            explore=self.explore(_mapping(raw, "explore")),
            criteria=self.criteria(_mapping(raw, "criteria")),
            iterations=number("iterations", raw.get("iterations", 5), int, Range(0, 10_000)),
            stop_when_converged=_flag(raw, "stop_when_converged", True, ""),
            results=Path(_text(raw.get("results", "results"), "results")),
            base_dir=self.base_dir,
        )

    def reference(self, section: Mapping[str, Any]) -> ReferenceSettings:
        _no_unknown(section, ("engine", "worker_command", "processes", "scheduler"), "reference.")
        engine, command = section.get("engine"), section.get("worker_command")
        if (engine is None) == (command is None):
            raise BadValue("reference", "needs exactly one of engine (engine keywords) and worker_command")
        if engine is not None:
            if not isinstance(engine, Mapping) or not engine:
                raise BadValue("reference.engine", f"must be a mapping of engine keywords, not {engine!r}")
            reference = Reference(keywords=_keywords(engine), directory=str(self.base_dir))
        else:
            if isinstance(command, str):
                command = command.split()
            if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
                raise BadValue("reference.worker_command", f"must be a command (a list of words), not {command!r}")
            reference = Reference(worker_command=tuple(command), directory=str(self.base_dir))
        scheduler = section.get("scheduler")
        return ReferenceSettings(
            reference=reference,
            processes=number("reference.processes", section.get("processes", 0), int, Range(0, 4096)),
            scheduler=None if scheduler is None else _text(scheduler, "reference.scheduler"),
        )

    def initial(self, section: Mapping[str, Any]) -> InitialSettings:
        _no_unknown(section, ("structures", "labels"), "initial.")
        labels = section.get("labels", "auto")
        if labels not in ("auto", "reference"):
            raise BadValue("initial.labels", f"must be auto or reference, not {labels!r}")
        return InitialSettings(
            sources=_sources(section.get("structures"), "initial.structures"), relabel=labels == "reference"
        )

    def model(self, section: Mapping[str, Any]) -> ModelSettings:
        _no_unknown(section, ("backend", "committee", "seed", "warm_start", "training"), "model.")
        backend = section.get("backend", "hdnnp")
        if backend != "hdnnp":
            raise BadValue("model.backend", f"must be hdnnp (the only trainable committee so far), not {backend!r}")
        # here, not at the top: it imports torch, which a config error need not wait for
        from mlpotential.backends.hdnnp.config import ConfigError, config_from_dict

        training = section.get("training") or {}
        if not isinstance(training, Mapping):
            raise BadValue("model.training", f"must be a mapping of HDNNP training sections, not {training!r}")
        _no_unknown(training, _TRAINING_SECTIONS, "model.training.")
        try:
            # the data come from the loop; "dataset" only satisfies the reader
            hdnnp = config_from_dict({**training, "data": ["dataset"]}, self.base_dir, f"{self.name}: model.training")
        except ConfigError as exc:
            raise LearnConfigError(str(exc)) from None
        return ModelSettings(
            training=hdnnp,
            committee=number("model.committee", section.get("committee", 4), int, Range(2, 64)),
            seed=number("model.seed", section.get("seed", 0), int, _SEEDS),
            warm_start=_flag(section, "warm_start", True, "model."),
        )

    def explore(self, section: Mapping[str, Any]) -> ExploreSettings:
        keys = (
            "temperatures",
            "replicas",
            "steps",
            "timestep",
            "thermostat",
            "friction",
            "taut",
            "start",
            "seed",
            "threads",
        )
        _no_unknown(section, keys, "explore.")
        temperatures = section.get("temperatures", [300.0])
        if not isinstance(temperatures, list):
            temperatures = [temperatures]
        if not temperatures:
            raise BadValue("explore.temperatures", "must list at least one temperature (K)")
        thermostat = section.get("thermostat", "langevin")
        if thermostat not in THERMOSTATS:
            raise BadValue("explore.thermostat", f"must be one of {', '.join(THERMOSTATS)}, not {thermostat!r}")
        return ExploreSettings(
            temperatures=tuple(
                number("explore.temperatures", t, float, Range(0, 100_000, "K", positive=True)) for t in temperatures
            ),
            replicas=number("explore.replicas", section.get("replicas", 1), int, Range(1, 10_000)),
            steps=number("explore.steps", section.get("steps", 1000), int, Range(1, 100_000_000)),
            timestep=number("explore.timestep", section.get("timestep", 2.0), float, Range(0, 100, "fs", True)),
            thermostat=thermostat,
            friction=number("explore.friction", section.get("friction", 0.01), float, Range(0, 10, "1/fs", True)),
            taut=number("explore.taut", section.get("taut", 100.0), float, Range(0, 1e9, "fs", True)),
            start=_sources(section.get("start", []), "explore.start", allow_empty=True),
            seed=number("explore.seed", section.get("seed", 0), int, _SEEDS),
            threads=number("explore.threads", section.get("threads", 1), int, THREAD_COUNTS),
        )

    def criteria(self, section: Mapping[str, Any]) -> Criteria:
        keys = ("force_std_lower", "force_std_upper", "energy_std_per_atom", "min_distance", "candidates")
        _no_unknown(section, keys, "criteria.")
        uncertainty = Range(0, 1e6, "eV/Angstrom", positive=True)
        energy = section.get("energy_std_per_atom")
        lower = number(
            "criteria.force_std_lower", section.get("force_std_lower", _CRITERIA.force_std_lower), float, uncertainty
        )
        upper = number(
            "criteria.force_std_upper", section.get("force_std_upper", _CRITERIA.force_std_upper), float, uncertainty
        )
        if lower >= upper:
            raise BadValue("criteria.force_std_lower", f"({lower}) must be below criteria.force_std_upper ({upper})")
        return Criteria(
            force_std_lower=lower,
            force_std_upper=upper,
            energy_std_per_atom=None
            if energy is None
            else number("criteria.energy_std_per_atom", energy, float, Range(0, 1e6, "eV/atom", positive=True)),
            min_distance=number(
                "criteria.min_distance",
                section.get("min_distance", _CRITERIA.min_distance),
                float,
                Range(0, 100, "Angstrom"),
            ),
            candidates=number("criteria.candidates", section.get("candidates", _CRITERIA.candidates), int, _COUNTS),
        )


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadValue(key, f"must be a mapping, not {value!r}")
    return value


def _no_unknown(mapping: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(str(key) for key in mapping if key not in known)
    if unknown:
        raise BadValue(prefix + unknown[0], f"is not a key here; allowed: {', '.join(prefix + k for k in known)}")


def _flag(section: Mapping[str, Any], key: str, default: bool, prefix: str) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise BadValue(prefix + key, f"must be true or false, not {value!r}")
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadValue(key, f"must be a non-empty text, not {value!r}")
    return value


def _keywords(engine: Mapping[str, Any]) -> dict[str, Any]:
    """Engine keywords as text (a list stays a list: a committee)."""
    keywords: dict[str, Any] = {}
    for key, value in engine.items():
        if isinstance(value, list):
            keywords[str(key)] = [str(item) for item in value]
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            keywords[str(key)] = str(value)
        else:
            raise BadValue(f"reference.engine.{key}", f"must be a value or a list of values, not {value!r}")
    return keywords


def _sources(value: Any, key: str, allow_empty: bool = False) -> tuple[DataSource, ...]:
    """Structure files: a path, or a list of paths or {path, format, index}."""
    if value is None or value == []:
        if allow_empty:
            return ()
        raise BadValue(key, "is required: a structure file or a list of them")
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list):
        raise BadValue(key, f"must be a list of structure files, not {value!r}")
    sources = []
    for k, item in enumerate(value):
        where = f"{key}[{k}]"
        if isinstance(item, str) and item:
            sources.append(DataSource(path=item))
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("path"), str):
            raise BadValue(where, f"must be a path or a mapping with path, not {item!r}")
        _no_unknown(item, ("path", "format", "index"), f"{where}.")
        file_format = item.get("format")
        if file_format is not None:
            _text(file_format, f"{where}.format")
        sources.append(DataSource(path=item["path"], format=file_format, index=str(item.get("index", ":"))))
    return tuple(sources)
