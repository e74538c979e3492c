"""From checkpoint variable names to Keras Dense layers.

Keras names layers with per-class counters in construction order
(``dense``, ``dense_1``, ... ``dense_10``), so within one stack the layer
order is the numeric order of that suffix, never the lexicographic one.
Variables outside the network's root scope (``global_step``, the Adam state
under ``TRAIN_OP/``) are never read.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from mlpotential.backends.pinn.dense import DenseWeights

_DENSE_VARIABLE = re.compile(r"^(?P<parent>.+)/(?P<layer>dense(?:_(?P<number>\d+))?)/(?P<kind>kernel|bias)$")


class WeightsError(ValueError):
    """The checkpoint's variables do not fit the network that params.yml
    describes. The message names the variable and the setting."""


class VariableSource(Protocol):
    """Where the network loaders read variables from: a
    :class:`~mlpotential.backends.pinn.checkpoint.Checkpoint`, or an
    in-memory stand-in (:mod:`mlpotential.backends.pinn.random_model`).
    ``prefix`` names it in messages; only the keys of ``entries`` are used."""

    @property
    def prefix(self) -> Path: ...

    @property
    def entries(self) -> Mapping[str, object]: ...

    def read_many(self, names: Iterable[str]) -> dict[str, np.ndarray]: ...


def read_network_variables(checkpoint: VariableSource, root: str) -> dict[str, np.ndarray]:
    """Values of every variable under ``root/`` (the network's scope)."""
    names = [name for name in checkpoint.entries if name.startswith(root + "/")]
    if not names:
        scopes = sorted({name.split("/")[0] for name in checkpoint.entries})
        raise WeightsError(
            f"checkpoint {checkpoint.prefix} has no variables under '{root}/' (the network named in params.yml); "
            f"its top-level scopes are: {', '.join(scopes)}"
        )
    return checkpoint.read_many(names)


def dense_layers_by_scope(variables: dict[str, np.ndarray], checkpoint: Path) -> dict[str, list[DenseWeights]]:
    """Dense layers grouped by the scope that holds them (the path above
    ``dense_N``), each group in Keras construction (numeric) order.

    Raises :class:`WeightsError` for a variable that is not a Dense kernel
    or bias, or a Dense layer without a kernel.
    """
    layers: dict[str, dict[int, dict[str, np.ndarray | str]]] = defaultdict(dict)
    for name, value in variables.items():
        match = _DENSE_VARIABLE.match(name)
        if match is None:
            raise WeightsError(f"checkpoint {checkpoint}: variable {name} is not a Dense kernel or bias")
        number = int(match["number"] or 0)
        entry = layers[match["parent"]].setdefault(number, {"name": f"{match['parent']}/{match['layer']}"})
        entry[match["kind"]] = value
    grouped = {}
    for parent, numbered in layers.items():
        stack = []
        for number in sorted(numbered):
            entry = numbered[number]
            if "kernel" not in entry:
                raise WeightsError(f"checkpoint {checkpoint}: Dense layer {entry['name']} has a bias but no kernel")
            stack.append(DenseWeights(str(entry["name"]), np.asarray(entry["kernel"]), entry.get("bias")))
        grouped[parent] = stack
    return grouped


def check_stack(
    layers: list[DenseWeights],
    in_width: int,
    widths: list[int],
    with_bias: bool,
    role: str,
    setting: str,
    checkpoint: Path,
) -> list[DenseWeights]:
    """Check that ``layers`` are Dense layers of the given widths fed with
    ``in_width`` features, with or without biases; return them.

    ``role`` says what the stack is (for messages), ``setting`` which
    params.yml setting decides its widths.
    """
    if len(layers) != len(widths):
        names = ", ".join(layer.name for layer in layers) or "none"
        raise WeightsError(
            f"checkpoint {checkpoint}: {role} has {len(layers)} Dense layer(s) ({names}); "
            f"params.yml {setting} implies {len(widths)}"
        )
    width = in_width
    for layer, out_width in zip(layers, widths):
        if layer.kernel.ndim != 2 or layer.kernel.shape != (width, out_width):
            raise WeightsError(
                f"checkpoint {checkpoint}: {layer.name}/kernel ({role}) has shape {list(layer.kernel.shape)}; "
                f"params.yml ({setting}) implies {[width, out_width]}"
            )
        if with_bias != (layer.bias is not None):
            has = "has a bias" if layer.bias is not None else "has no bias"
            raise WeightsError(
                f"checkpoint {checkpoint}: {layer.name} ({role}) {has}; "
                f"PiNN builds it {'with' if with_bias else 'without'} one"
            )
        if layer.bias is not None and layer.bias.shape != (out_width,):
            raise WeightsError(
                f"checkpoint {checkpoint}: {layer.name}/bias ({role}) has shape {list(layer.bias.shape)}; "
                f"expected {[out_width]}"
            )
        width = out_width
    return layers
