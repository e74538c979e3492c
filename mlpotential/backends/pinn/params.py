"""``params.yml`` of a PiNN model directory: which network, its settings and
the energy model's scaling, checked against what this backend evaluates.

PiNN (1.x/2.x) writes ``{model: {name, params}, network: {name, params},
model_dir, optimizer}``. Settings absent from the file take PiNN's own
defaults (the keyword defaults of ``PiNet``/``BPNN``), because PiNN writes
only what the user set. Every setting that would change a prediction and is
not implemented here is refused by name; settings that only matter for
training (loss weights, optimizer) are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yml"
SUPPORTED_NETWORKS = ("PiNet", "BPNN")
SUPPORTED_MODELS = ("potential_model",)
CUTOFF_TYPES = ("f1", "f2", "hip")
BASIS_TYPES = ("polynomial", "gaussian")
ACTIVATIONS = ("tanh", "sigmoid", "relu", "softplus", "swish", "silu", "elu", "linear")
ALL_SPECIES = "ALL"
# libyaml's loader when PyYAML has it: parsing BPNN's long lists in pure
# Python is most of the load time.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ParamsError(ValueError):
    """``params.yml`` is missing, unreadable, or asks for something this
    backend does not evaluate. The message names the file and the setting."""


@dataclass(frozen=True)
class EnergyModelParams:
    """PiNN's ``potential_model``: E = e_unit * (sum(eps_i) / e_scale + sum(e_dress[Z_i])).

    ``e_dress`` maps atomic numbers to per-atom energies in training-label
    units; ``e_unit`` converts label units to PiNN's output units (eV in
    PiNN's ASE calculator).
    """

    e_dress: dict[int, float]
    e_scale: float = 1.0
    e_unit: float = 1.0


@dataclass(frozen=True)
class PiNetParams:
    """PiNet settings (PiNN's defaults where the file is silent). Lengths in
    the model's distance unit (Angstrom for models trained on ASE data)."""

    atom_types: tuple[int, ...] = (1, 6, 7, 8)
    rc: float = 4.0
    cutoff_type: str = "f1"
    basis_type: str = "polynomial"
    n_basis: int | tuple[int, ...] = 4
    gamma: float | tuple[float, ...] = 3.0
    center: tuple[float, ...] | None = None
    pp_nodes: tuple[int, ...] = (16, 16)
    pi_nodes: tuple[int, ...] = (16, 16)
    ii_nodes: tuple[int, ...] = (16, 16)
    out_nodes: tuple[int, ...] = (16, 16)
    act: str = "tanh"
    depth: int = 4

    @property
    def basis_size(self) -> int:
        """Number of radial basis functions per pair."""
        if self.basis_type == "polynomial":
            return len(self.n_basis) if isinstance(self.n_basis, tuple) else self.n_basis
        return len(self.center) if self.center is not None else int(self.n_basis)


@dataclass(frozen=True)
class SymmetryFunctionSpec:
    """One ``sf_spec`` entry: a block of G2, G3 or G4 features.

    ``i``, ``j``, ``k`` are atomic numbers, or None for 'ALL'. Parameter
    tuples are zipped (one feature per position), not combined.
    """

    kind: str
    i: int | None
    j: int | None
    k: int | None
    eta: tuple[float, ...]
    rs: tuple[float, ...] = ()
    lambd: tuple[float, ...] = ()
    zeta: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        """Number of features in this block."""
        return len(self.eta)


@dataclass(frozen=True)
class BPNNParams:
    """BPNN settings. ``nn_spec`` keeps the order of ``params.yml``, which
    decides how the element subnets map to checkpoint variables.
    ``fp_range[k]`` is the (mins, maxs) pair of ``sf_spec[k]``."""

    sf_spec: tuple[SymmetryFunctionSpec, ...]
    nn_spec: tuple[tuple[int, tuple[int, ...]], ...]
    rc: float = 5.0
    cutoff_type: str = "f1"
    act: str = "tanh"
    fp_scale: bool = False
    fp_range: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()

    def feature_blocks(self, element: int) -> list[int]:
        """Indices into ``sf_spec`` of the blocks that make up an atom of
        ``element``'s feature vector: its own blocks first, then the 'ALL'
        blocks, each group in ``sf_spec`` order (PiNN's layout)."""
        own = [k for k, spec in enumerate(self.sf_spec) if spec.i == element]
        shared = [k for k, spec in enumerate(self.sf_spec) if spec.i is None]
        return own + shared


@dataclass(frozen=True)
class PinnParams:
    """Everything ``params.yml`` says that prediction needs."""

    network_name: str
    network: PiNetParams | BPNNParams
    energy: EnergyModelParams
    path: Path


def read_params(model_dir: Path) -> PinnParams:
    """Read and check ``model_dir/params.yml``; raise :class:`ParamsError`
    naming the file and the offending setting."""
    path = model_dir / PARAMS_FILE
    if not path.is_file():
        raise ParamsError(f"{path} is missing: a PiNN model directory holds params.yml next to its checkpoint")
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not plain YAML that can be read safely ({exc})") from exc
    reader = _Reader(path)
    if not isinstance(document, dict):
        raise ParamsError(f"{path}: expected a mapping with 'model' and 'network' sections")
    if isinstance(document.get("network"), str) or "network_params" in document:
        raise ParamsError(
            f"{path} uses the layout of PiNN before 1.0 ('network: <name>' with 'network_params'); "
            "only models written by PiNN 1.x/2.x ('network: {name, params}') are supported"
        )
    network = reader.section(document, "network")
    model = reader.section(document, "model")
    model_name = model.get("name")
    if model_name not in SUPPORTED_MODELS:
        raise ParamsError(
            f"{path}: model.name {model_name!r} is not supported; supported: {', '.join(SUPPORTED_MODELS)} "
            "(energies and forces)"
        )
    network_name = network.get("name")
    settings = reader.mapping(network.get("params") or {}, "network.params")
    if network_name == "PiNet":
        network_params: PiNetParams | BPNNParams = _pinet(settings, reader)
    elif network_name == "BPNN":
        network_params = _bpnn(settings, reader)
    else:
        raise ParamsError(
            f"{path}: network.name {network_name!r} is not supported; supported: {', '.join(SUPPORTED_NETWORKS)}"
        )
    energy = _energy_model(reader.mapping(model.get("params") or {}, "model.params"), reader)
    return PinnParams(network_name, network_params, energy, path)


class _Reader:
    """Typed access to YAML values with errors that name the file and setting."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, setting: str, message: str) -> ParamsError:
        return ParamsError(f"{self.path}: {setting} {message}")

    def section(self, document: dict, name: str) -> dict:
        value = document.get(name)
        if not isinstance(value, dict):
            raise self.fail(name, "is missing or not a mapping with 'name' and 'params'")
        return value

    def mapping(self, value: Any, setting: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(setting, f"must be a mapping, got {value!r}")
        return value

    def number(self, value: Any, setting: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(setting, f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(setting, f"must be positive, got {value!r}")
        return float(value)

    def integer(self, value: Any, setting: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(setting, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def integers(self, value: Any, setting: str, minimum: int = 1, allow_empty: bool = True) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
            raise self.fail(setting, f"must be a {'' if allow_empty else 'non-empty '}list of integers, got {value!r}")
        return tuple(self.integer(item, f"{setting}[{n}]", minimum) for n, item in enumerate(value))

    def numbers(self, value: Any, setting: str) -> tuple[float, ...]:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.fail(setting, f"must be a non-empty list of numbers, got {value!r}")
        return tuple(self.number(item, f"{setting}[{n}]") for n, item in enumerate(value))

    def choice(self, value: Any, setting: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(setting, f"{value!r} is not supported; supported: {', '.join(allowed)}")
        return value

    def unknown(self, settings: dict, known: set[str], where: str, network: str) -> None:
        extra = sorted(str(key) for key in settings if key not in known)
        if extra:
            raise self.fail(
                where,
                f"has setting(s) {', '.join(extra)} that {network} does not take here; "
                f"known: {', '.join(sorted(known))}",
            )

    def output_settings(self, settings: dict) -> None:
        """A potential predicts one number per atom, summed by the model."""
        if settings.get("out_units", 1) != 1:
            raise self.fail(
                "network.params.out_units", f"{settings['out_units']!r} is not supported; a potential needs 1"
            )
        if settings.get("out_pool", False) not in (False, None):
            raise self.fail(
                "network.params.out_pool",
                f"{settings['out_pool']!r} is not supported; a potential needs False (per-atom output)",
            )


_PINET_KEYS = {
    "atom_types",
    "rc",
    "cutoff_type",
    "basis_type",
    "n_basis",
    "gamma",
    "center",
    "pp_nodes",
    "pi_nodes",
    "ii_nodes",
    "out_nodes",
    "out_units",
    "out_pool",
    "act",
    "depth",
}


def _pinet(settings: dict, reader: _Reader) -> PiNetParams:
    reader.unknown(settings, _PINET_KEYS, "network.params", "PiNet")
    reader.output_settings(settings)
    defaults = PiNetParams()
    where = "network.params."
    basis_type = reader.choice(settings.get("basis_type", defaults.basis_type), where + "basis_type", BASIS_TYPES)
    raw_n_basis = settings.get("n_basis", defaults.n_basis)
    if basis_type == "polynomial" and isinstance(raw_n_basis, list):
        n_basis: int | tuple[int, ...] = reader.integers(raw_n_basis, where + "n_basis", allow_empty=False)
    else:
        n_basis = reader.integer(raw_n_basis, where + "n_basis", 1)
    center = settings.get("center")
    center = None if center is None else reader.numbers(center, where + "center")
    raw_gamma = settings.get("gamma", defaults.gamma)
    gamma = (
        reader.numbers(raw_gamma, where + "gamma")
        if isinstance(raw_gamma, list)
        else reader.number(raw_gamma, where + "gamma")
    )
    params = PiNetParams(
        atom_types=reader.integers(
            settings.get("atom_types", list(defaults.atom_types)), where + "atom_types", allow_empty=False
        ),
        rc=reader.number(settings.get("rc", defaults.rc), where + "rc", positive=True),
        cutoff_type=reader.choice(
            settings.get("cutoff_type", defaults.cutoff_type), where + "cutoff_type", CUTOFF_TYPES
        ),
        basis_type=basis_type,
        n_basis=n_basis,
        gamma=gamma,
        center=center,
        pp_nodes=reader.integers(settings.get("pp_nodes", list(defaults.pp_nodes)), where + "pp_nodes"),
        pi_nodes=reader.integers(
            settings.get("pi_nodes", list(defaults.pi_nodes)), where + "pi_nodes", allow_empty=False
        ),
        ii_nodes=reader.integers(
            settings.get("ii_nodes", list(defaults.ii_nodes)), where + "ii_nodes", allow_empty=False
        ),
        out_nodes=reader.integers(settings.get("out_nodes", list(defaults.out_nodes)), where + "out_nodes"),
        act=reader.choice(settings.get("act", defaults.act), where + "act", ACTIVATIONS),
        depth=reader.integer(settings.get("depth", defaults.depth), where + "depth", 1),
    )
    if basis_type == "gaussian" and isinstance(gamma, tuple) and len(gamma) not in (1, params.basis_size):
        raise reader.fail(where + "gamma", f"has {len(gamma)} values for {params.basis_size} Gaussian centres")
    return params


_BPNN_KEYS = {
    "sf_spec",
    "nn_spec",
    "rc",
    "act",
    "cutoff_type",
    "fp_range",
    "fp_scale",
    "preprocess",
    "use_jacobian",
    "out_units",
    "out_pool",
}
_SF_KEYS = {"G2": {"type", "i", "j", "Rs", "eta"}, "G3": {"type", "i", "j", "k", "lambd", "zeta", "eta"}}
_SF_KEYS["G4"] = _SF_KEYS["G3"]


def _bpnn(settings: dict, reader: _Reader) -> BPNNParams:
    reader.unknown(settings, _BPNN_KEYS, "network.params", "BPNN")
    reader.output_settings(settings)
    where = "network.params."
    raw_nn_spec = reader.mapping(settings.get("nn_spec"), where + "nn_spec")
    if not raw_nn_spec:
        raise reader.fail(where + "nn_spec", "is empty; it maps each element to its subnet's layer widths")
    nn_spec = tuple(
        (reader.integer(element, where + "nn_spec key", 1), reader.integers(widths, f"{where}nn_spec[{element}]"))
        for element, widths in raw_nn_spec.items()
    )
    raw_sf_spec = settings.get("sf_spec")
    if not isinstance(raw_sf_spec, list) or not raw_sf_spec:
        raise reader.fail(where + "sf_spec", "must be a non-empty list of symmetry-function entries")
    elements = {element for element, _ in nn_spec}
    sf_spec = tuple(
        _symmetry_function(entry, f"{where}sf_spec[{n}]", elements, reader) for n, entry in enumerate(raw_sf_spec)
    )
    fp_scale = settings.get("fp_scale", False)
    if not isinstance(fp_scale, bool):
        raise reader.fail(where + "fp_scale", f"must be true or false, got {fp_scale!r}")
    fp_range = _fp_range(settings.get("fp_range", []), sf_spec, reader) if fp_scale else ()
    params = BPNNParams(
        sf_spec=sf_spec,
        nn_spec=nn_spec,
        rc=reader.number(settings.get("rc", 5.0), where + "rc", positive=True),
        cutoff_type=reader.choice(settings.get("cutoff_type", "f1"), where + "cutoff_type", CUTOFF_TYPES),
        act=reader.choice(settings.get("act", "tanh"), where + "act", ACTIVATIONS),
        fp_scale=fp_scale,
        fp_range=fp_range,
    )
    for element, _ in nn_spec:
        if not params.feature_blocks(element):
            raise reader.fail(
                where + "nn_spec",
                f"element {element} has no symmetry functions (no sf_spec entry with i: {element} or ALL)",
            )
    return params


def _species(value: Any, setting: str, reader: _Reader) -> int | None:
    if value == ALL_SPECIES:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise reader.fail(setting, f"must be an atomic number or {ALL_SPECIES!r}, got {value!r}")
    return value


def _symmetry_function(entry: Any, where: str, elements: set[int], reader: _Reader) -> SymmetryFunctionSpec:
    entry = reader.mapping(entry, where)
    kind = reader.choice(entry.get("type"), where + ".type", tuple(_SF_KEYS))
    extra = sorted(str(key) for key in entry if key not in _SF_KEYS[kind])
    if extra:
        raise reader.fail(where, f"has setting(s) {', '.join(extra)} that a {kind} entry does not take")
    # PiNN's own defaults for i, j (and k) are 'ALL'.
    i = _species(entry.get("i", ALL_SPECIES), where + ".i", reader)
    if i is not None and i not in elements:
        raise reader.fail(where + ".i", f"{i} has no subnet in nn_spec (elements: {sorted(elements)})")
    j = _species(entry.get("j", ALL_SPECIES), where + ".j", reader)
    eta = reader.numbers(entry.get("eta"), where + ".eta")
    if kind == "G2":
        rs = reader.numbers(entry.get("Rs"), where + ".Rs")
        if len(rs) != len(eta):
            raise reader.fail(where, f"has {len(rs)} Rs values but {len(eta)} eta values; they are zipped")
        return SymmetryFunctionSpec(kind, i, j, None, eta, rs=rs)
    k = _species(entry.get("k", ALL_SPECIES), where + ".k", reader)
    lambd = reader.numbers(entry.get("lambd"), where + ".lambd")
    zeta = reader.numbers(entry.get("zeta"), where + ".zeta")
    if not len(lambd) == len(zeta) == len(eta):
        raise reader.fail(where, f"has {len(lambd)} lambd, {len(zeta)} zeta, {len(eta)} eta values; they are zipped")
    return SymmetryFunctionSpec(kind, i, j, k, eta, lambd=lambd, zeta=zeta)


def _fp_range(
    raw: Any, sf_spec: tuple[SymmetryFunctionSpec, ...], reader: _Reader
) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]:
    where = "network.params.fp_range"
    if not isinstance(raw, list) or len(raw) != len(sf_spec):
        count = len(raw) if isinstance(raw, list) else raw
        raise reader.fail(
            where,
            f"must hold one [mins, maxs] pair per sf_spec entry ({len(sf_spec)}), got {count!r} (fp_scale is true)",
        )
    ranges = []
    for n, (pair, spec) in enumerate(zip(raw, sf_spec)):
        if not isinstance(pair, list) or len(pair) != 2:
            raise reader.fail(f"{where}[{n}]", "must be a [mins, maxs] pair")
        mins = reader.numbers(pair[0], f"{where}[{n}][0]")
        maxs = reader.numbers(pair[1], f"{where}[{n}][1]")
        if len(mins) != spec.size or len(maxs) != spec.size:
            raise reader.fail(f"{where}[{n}]", f"has {len(mins)}/{len(maxs)} values for {spec.size} features")
        ranges.append((mins, maxs))
    return tuple(ranges)


def _energy_model(settings: dict, reader: _Reader) -> EnergyModelParams:
    where = "model.params."
    raw_dress = reader.mapping(settings.get("e_dress") or {}, where + "e_dress")
    e_dress = {
        reader.integer(element, where + "e_dress key", 1): reader.number(value, f"{where}e_dress[{element}]")
        for element, value in raw_dress.items()
    }
    e_scale = reader.number(settings.get("e_scale", 1.0), where + "e_scale")
    if e_scale == 0.0:
        raise reader.fail(where + "e_scale", "must not be 0 (PiNN divides the network output by it)")
    return EnergyModelParams(
        e_dress=e_dress,
        e_scale=e_scale,
        e_unit=reader.number(settings.get("e_unit", 1.0), where + "e_unit", positive=True),
    )
