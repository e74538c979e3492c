"""GPR model files: safetensors arrays plus JSON settings in its header, so
loading runs no code from the file.

A file holds one GPR per composition: its training structures (Angstrom),
energies (eV) and forces (eV/Angstrom), descriptor settings,
hyperparameters and prior constant. Loading rebuilds the covariance and its
Cholesky factor from them (the same arithmetic as training, so the same
model), which takes about as long as training without hyperparameter
fitting, and keeps the file small (no n(1+3N)-squared matrices).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mlpotential.backends.gpr.descriptors import descriptor_from_settings
from mlpotential.backends.gpr.gp import GaussianProcess, Hyperparameters

FORMAT = "mlpotential-gpr"
VERSION = 1


class ModelFileError(ValueError):
    """A file that is not a usable GPR model; the message names it."""


def save_models(path: str | Path, models: Sequence[GaussianProcess]) -> None:
    """Write fitted ``models`` (one per composition) to ``path``;
    :class:`ModelFileError` when it cannot be written."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    entries = []
    for index, gp in enumerate(models):
        prefix = f"model{index}."
        tensors[prefix + "positions"] = torch.from_numpy(np.ascontiguousarray(gp.train_positions))
        tensors[prefix + "energies"] = torch.from_numpy(np.ascontiguousarray(gp.train_energies))
        tensors[prefix + "forces"] = torch.from_numpy(np.ascontiguousarray(gp.train_forces))
        if gp.train_cells is not None:
            tensors[prefix + "cells"] = torch.from_numpy(np.ascontiguousarray(gp.train_cells))
        entries.append(
            {
                "symbols": list(gp.symbols),
                "periodic": gp.train_cells is not None,
                "descriptor": gp.descriptor.settings(),
                "scale": gp.hyper.scale,
                "weight": gp.hyper.weight,
                "noise": gp.hyper.noise,
                "noise_factor": gp.hyper.noise_factor,
                "noise_placement": gp.hyper.noise_placement,
                "prior_constant": gp.prior_constant,
                "batch_size": gp.batch_size,
            }
        )
    metadata = {"format": FORMAT, "version": str(VERSION), "models": json.dumps(entries)}
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:  # what safetensors raises for a folder that is missing or not writable
        raise ModelFileError(f"cannot write GPR model file {path}: {exc}") from None


def load_models(path: str | Path, device: torch.device | str = "cpu", prepare: bool = True) -> list[GaussianProcess]:
    """Read a model file and refit its GPRs (same hyperparameters and prior
    constant); ``prepare``: also do the one-time work of predictions with
    uncertainties. Raises :class:`ModelFileError` naming the file when it is not
    a GPR model file of a version this code reads."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = str(path)
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ModelFileError(f"{path} is not a GPR model written by mlpotential gpr (no '{FORMAT}' header)")
            if metadata.get("version") != str(VERSION):
                raise ModelFileError(
                    f"{path} is a GPR model file of version {metadata.get('version')}; "
                    f"this code reads version {VERSION}"
                )
            entries = json.loads(metadata["models"])
            arrays = {name: handle.get_tensor(name).numpy() for name in handle.keys()}
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError) as exc:
        raise ModelFileError(f"cannot read GPR model file {path}: {exc}") from exc
    except Exception as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} is not a safetensors file ({exc})") from exc

    models = []
    for index, entry in enumerate(entries):
        prefix = f"model{index}."
        try:
            symbols = tuple(entry["symbols"])
            hyper = Hyperparameters(
                scale=float(entry["scale"]),
                weight=float(entry["weight"]),
                noise=float(entry["noise"]),
                noise_factor=float(entry["noise_factor"]),
                noise_placement=str(entry["noise_placement"]),
            )
            descriptor = descriptor_from_settings(entry["descriptor"])
            gp = GaussianProcess(
                descriptor,
                symbols,
                hyper,
                batch_size=int(entry["batch_size"]),
                device=device,
                prior_constant=float(entry["prior_constant"]),
            )
            gp.set_training_data(
                arrays[prefix + "positions"],
                arrays.get(prefix + "cells") if entry["periodic"] else None,
                arrays[prefix + "energies"],
                arrays[prefix + "forces"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: model {index} is incomplete or inconsistent ({exc})") from exc
        gp.fit()
        if prepare:
            gp.prepare()
        models.append(gp)
    return models
