"""PiNN's cutoff functions and radial bases (``pinn/layers/basis.py``), in
torch. Distances in the model's length unit; each function is zero at rc.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def cutoff_function(kind: str, rc: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """fc(r) for PiNN's ``cutoff_type``: ``f1`` = (cos(pi r/rc) + 1)/2,
    ``f2`` = (tanh(1 - r/rc)/tanh(1))^3, ``hip`` = cos^2(pi r/(2 rc))."""
    if kind == "f1":
        return lambda r: 0.5 * (torch.cos(math.pi * r / rc) + 1.0)
    if kind == "f2":
        return lambda r: (torch.tanh(1.0 - r / rc) / math.tanh(1.0)) ** 3
    if kind == "hip":
        return lambda r: torch.cos(math.pi * r / (2.0 * rc)) ** 2
    raise ValueError(f"unknown cutoff type {kind!r}")


def polynomial_basis(fc: torch.Tensor, exponents: tuple[int, ...]) -> torch.Tensor:
    """e_pb = fc_p^k for each exponent k; shape (n_pairs, n_basis)."""
    return torch.stack([fc**k for k in exponents], dim=1)


def gaussian_basis(r: torch.Tensor, fc: torch.Tensor, centres: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """e_pb = exp(-gamma_b (r_p - c_b)^2) fc_p; shape (n_pairs, n_basis)."""
    return torch.exp(-gammas * (r[:, None] - centres) ** 2) * fc[:, None]
