"""Keras ``Dense`` layers in torch: y = act(x . W + b), with the kernel W
stored [in, out] exactly as in the checkpoint, and Keras's definitions of the
activations PiNN models may name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as functional

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "softplus": functional.softplus,
    "swish": functional.silu,
    "silu": functional.silu,
    "elu": functional.elu,
    "linear": lambda x: x,
}
"""Keras activation name -> the same function in torch (Keras's ``elu`` has
alpha 1, its ``swish``/``silu`` is x * sigmoid(x), like torch's)."""


@dataclass(frozen=True)
class DenseWeights:
    """One Dense layer as read from a checkpoint: ``kernel`` [in, out],
    ``bias`` [out] or None; ``name`` is its variable scope (for messages)."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray | None


class DenseStack:
    """Dense layers applied in order. ``activation`` is applied after every
    layer, or after none when it is None (Keras's default, linear)."""

    def __init__(
        self,
        layers: list[DenseWeights],
        activation: str | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        def tensor(array: np.ndarray | None) -> torch.Tensor | None:
            return None if array is None else torch.as_tensor(array, dtype=dtype, device=device)

        self.layers = [(tensor(layer.kernel), tensor(layer.bias)) for layer in layers]
        self.activation = ACTIVATIONS[activation] if activation is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for kernel, bias in self.layers:
            x = x @ kernel
            if bias is not None:
                x = x + bias
            if self.activation is not None:
                x = self.activation(x)
        return x
