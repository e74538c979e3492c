"""HDNNP model files: tensors plus JSON metadata in torch's zip format,
written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
which accepts only tensors and plain containers: loading a model file never
runs code from it.

Contents: ``{"metadata": <JSON text>, "tensors": {name: tensor}}``. The
metadata holds the format name and version, the elements, the
symmetry-function parameters, the network shape, the units (eV, Angstrom) and
a training summary; the tensors are the networks' weights and the scaling
buffers (float64). See docs/hdnnp.md for the full description.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape

FORMAT_NAME = "mlpotential-hdnnp"
FORMAT_VERSION = 1
MODEL_UNITS = {"energy": "eV", "distance": "angstrom"}


class ModelFileError(ValueError):
    """A model file cannot be read or is not an HDNNP model; the message
    names the file."""


def save_model(model: HDNNPModel, path: str | Path, training: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` (conventionally ``*.pt``); ``training`` is
    a JSON-ready summary (data, settings, errors). Returns the path."""
    path = Path(path)
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "elements": list(model.elements),
        "descriptor": model.descriptor.to_dict(),
        "network": {"hidden": list(model.shape.hidden), "activation": model.shape.activation},
        "units": MODEL_UNITS,
        "training": training or {},
    }
    tensors = {name: value.detach().to("cpu", torch.float64).contiguous() for name, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"metadata": json.dumps(metadata, sort_keys=True), "tensors": tensors}, path)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a model file (see :func:`load_model` for errors)."""
    return _read(Path(path))[0]


def load_model(path: str | Path) -> HDNNPModel:
    """The model in ``path`` (float64, CPU). Raises :class:`ModelFileError`
    naming the file and what is wrong."""
    path = Path(path)
    metadata, tensors = _read(path)
    try:
        descriptor = SymmetryFunctionParameters.from_dict(metadata["descriptor"])
        network = metadata["network"]
        shape = NetworkShape(hidden=tuple(network["hidden"]), activation=network["activation"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid model description: {exc}") from exc
    if list(descriptor.elements) != list(metadata.get("elements", descriptor.elements)):
        raise ModelFileError(f"{path}: the element list does not match the descriptor's elements")
    model = HDNNPModel(descriptor, shape).to(torch.float64)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: the stored tensors do not fit the described networks: {exc}") from exc
    model.eval()
    return model


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except Exception as exc:  # torch raises many types for foreign or damaged files
        raise ModelFileError(
            f"{path}: not a readable HDNNP model file ({type(exc).__name__}: {exc}); "
            "expected a file written by `mlpotential train`"
        ) from exc
    if (
        not isinstance(content, dict)
        or not isinstance(content.get("metadata"), str)
        or not isinstance(content.get("tensors"), dict)
    ):
        raise ModelFileError(f"{path}: not an HDNNP model file (expected metadata and tensors)")
    try:
        metadata = json.loads(content["metadata"])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: the metadata is not valid JSON: {exc}") from exc
    if metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: format {metadata.get('format')!r} is not {FORMAT_NAME!r}")
    if metadata.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {metadata.get('version')!r} is not supported (this program reads {FORMAT_VERSION})"
        )
    if metadata.get("units") != MODEL_UNITS:
        raise ModelFileError(f"{path}: units {metadata.get('units')!r} are not {MODEL_UNITS}")
    return metadata, content["tensors"]
