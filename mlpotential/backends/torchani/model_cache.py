"""Build a built-in ANI ensemble from its NeuroChem files, through a cache of
converted models.

Parsing the NeuroChem files of ANI-2x takes seconds (millions of weights
unpacked one float at a time), so the converted model is saved once in the
user's data directory (``<data dir>/cache/torchani/``) and later worker
starts load that instead. A cache entry is named by a SHA-256 of the
parameter files (names and contents), the torchani version and this cache's
format, so changed parameter files never meet a stale entry.

An entry is one ``torch.save`` file of plain data: the architecture (element
symbols, AEV constants, layer sizes) and the state dict, read back with
``torch.load(weights_only=True)``, which runs no pickled code. An entry that
cannot be read or does not fit is rebuilt from the NeuroChem files with a
warning, never an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# torchani warns on import that its optional CUDA extensions are absent; the
# pure-PyTorch code paths used here do not need them.
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

import torchani  # noqa: E402
from torchani.aev import AEVComputer  # noqa: E402
from torchani.arch import ANI  # noqa: E402
from torchani.neurochem import load_aev_constants_and_symbols, load_member, load_sae  # noqa: E402
from torchani.nn import ANINetworks, AtomicNetwork, Ensemble, TightCELU  # noqa: E402
from torchani.sae import SelfEnergy  # noqa: E402

from mlpotential.backends.torchani.neighbors import SizeAdaptiveNeighbors  # noqa: E402
from mlpotential.backends.torchani.parameters import (  # noqa: E402
    NeurochemModel,
    ParameterFileError,
    model_files,
)
from mlpotential.backends.user_config import data_dir  # noqa: E402

CACHE_FORMAT = 1
"""Bumped whenever the layout of a cache entry changes."""

SOURCE_CACHE = "cache"
SOURCE_NEUROCHEM = "NeuroChem files"

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class LoadedModel:
    """A built-in ANI ensemble (float32, on the CPU, no parameter gradients),
    where it came from (:data:`SOURCE_CACHE` or :data:`SOURCE_NEUROCHEM`) and
    its cache entry (``None`` when the cache could not be written)."""

    model: ANI
    source: str
    cache_file: Path | None


def default_cache_dir() -> Path:
    """``<mlpotential data dir>/cache/torchani``."""
    return data_dir() / "cache" / "torchani"


def parameter_digest(files: NeurochemModel) -> str:
    """SHA-256 (hex) of every parameter file of the model (relative names and
    contents), the torchani version and the cache format."""
    present, missing = model_files(files.folder, files.model)
    if missing:
        raise ParameterFileError(f"{files.model} parameter files are missing in {files.folder}: {missing[0]}")
    digest = hashlib.sha256(f"mlpotential-ani-cache {CACHE_FORMAT} torchani {torchani.__version__}\n".encode())
    for path in sorted(present, key=lambda p: p.relative_to(files.folder).as_posix()):
        digest.update(f"{path.relative_to(files.folder).as_posix()}\n{path.stat().st_size}\n".encode())
        with path.open("rb") as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def cache_file_name(model: str, digest: str) -> str:
    return f"{model.lower()}-{digest[:24]}.pt"


def load_ani_model(files: NeurochemModel, cache_dir: Path | None = None) -> LoadedModel:
    """The ensemble described by ``files``: from the cache when a valid entry
    exists, else parsed from the NeuroChem files and then cached.

    ``cache_dir`` defaults to :func:`default_cache_dir`. Unreadable or
    malformed NeuroChem files raise :class:`ParameterFileError` naming them.
    """
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    digest = parameter_digest(files)
    entry = cache_dir / cache_file_name(files.model, digest)
    if entry.exists():
        try:
            return LoadedModel(_model_from_entry(entry, digest), SOURCE_CACHE, entry)
        except Exception as exc:  # any fault of a cache entry means: rebuild it
            warnings.warn(
                f"the cached {files.model} model {entry} is unusable ({type(exc).__name__}: {exc}); "
                "rebuilding it from the NeuroChem files",
                RuntimeWarning,
                stacklevel=2,
            )
    model, architecture = _model_from_neurochem(files)
    written = _write_entry(entry, digest, architecture, model)
    return LoadedModel(model, SOURCE_NEUROCHEM, entry if written else None)


def _model_from_neurochem(files: NeurochemModel) -> tuple[ANI, dict[str, Any]]:
    try:
        constants, symbols = load_aev_constants_and_symbols(files.constants)
        self_energies = load_sae(files.self_energies)
        members = [load_member(symbols, directory) for directory in files.member_dirs]
    except Exception as exc:  # torchani raises parse errors, assertions, struct errors...
        raise ParameterFileError(
            f"cannot read the {files.model} NeuroChem files in {files.folder}: {type(exc).__name__}: {exc}"
        ) from exc
    if tuple(self_energies.symbols) != tuple(symbols):
        raise ParameterFileError(
            f"{files.self_energies} lists elements {', '.join(self_energies.symbols)} but {files.constants} "
            f"lists {', '.join(symbols)}"
        )
    aev = {
        key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(constants).items()
    }
    architecture = {
        "model": files.model,
        "symbols": list(symbols),
        "aev": aev,
        "layer_dims": [[_layer_dims(member.atomics[symbol]) for symbol in symbols] for member in members],
    }
    model = _assemble(symbols, aev, Ensemble(members), self_energies)
    return model, architecture


def _layer_dims(network: AtomicNetwork) -> list[int]:
    linears = [*network.layers, network.final_layer]
    return [linears[0].in_features] + [layer.out_features for layer in linears]


def _assemble(
    symbols: list[str] | tuple[str, ...], aev: dict[str, Any], ensemble: Ensemble, self_energies: SelfEnergy
) -> ANI:
    # The modules torchani.neurochem builds (cosine cutoff, pure-PyTorch AEV), with a size-adaptive neighbour list.
    computer = AEVComputer.from_constants(**aev, num_species=len(symbols), neighborlist=SizeAdaptiveNeighbors())
    model = ANI(symbols, computer, ensemble, self_energies, periodic_table_index=True)
    model.requires_grad_(False)
    return model.eval()


def _model_from_entry(entry: Path, digest: str) -> ANI:
    payload = torch.load(entry, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT or payload.get("digest") != digest:
        raise ValueError("not a cache entry of this format for these parameter files")
    architecture = payload["architecture"]
    symbols = list(architecture["symbols"])
    members = [
        ANINetworks(
            OrderedDict((symbol, _empty_network(dims)) for symbol, dims in zip(symbols, member_dims, strict=True))
        )
        for member_dims in architecture["layer_dims"]
    ]
    # Placeholder self energies: the state dict below carries the real ones.
    model = _assemble(symbols, architecture["aev"], Ensemble(members), SelfEnergy(symbols, [0.0] * len(symbols)))
    # Copied out of the memory-mapped file, so the model never depends on the file staying intact.
    state = {key: value.clone() for key, value in payload["state_dict"].items()}
    model.load_state_dict(state, strict=True, assign=True)
    if any(tensor.is_meta for tensor in (*model.parameters(), *model.buffers())):
        raise ValueError("the entry leaves parts of the model without values")
    return model.requires_grad_(False)


def _empty_network(dims: list[int]) -> AtomicNetwork:
    """An atomic network without storage (meta device): the cached state dict
    is assigned to it, so no time goes into a random initialisation."""
    with torch.device("meta"):
        return AtomicNetwork(dims, activation=TightCELU(), bias=True)


def _write_entry(entry: Path, digest: str, architecture: dict[str, Any], model: ANI) -> bool:
    payload = {
        "format": CACHE_FORMAT,
        "digest": digest,
        "architecture": architecture,
        "state_dict": {key: value.contiguous() for key, value in model.state_dict().items()},
    }
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the entry and renamed: a concurrent worker never reads half a file.
        handle, temporary = tempfile.mkstemp(prefix=entry.name, suffix=".tmp", dir=entry.parent)
        os.close(handle)
        try:
            torch.save(payload, temporary)
            os.replace(temporary, entry)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as exc:
        warnings.warn(
            f"cannot write the model cache {entry} ({exc}); the next start parses the NeuroChem files again",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True
