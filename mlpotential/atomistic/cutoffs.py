"""Cutoff functions f_c(r) of the symmetry functions: 1 at r = 0, 0 from the
cutoff radius on, smooth in between (distances in Angstrom), with their
derivatives d f_c / d r (1/Angstrom) for analytic Jacobians."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mlpotential.inputs import Range

CUTOFF_RADII = Range(0, 30, "Angstrom", positive=True)
"""The cutoff radii a descriptor allows: atoms interact over a few
Angstrom, and a huge radius makes every atom a neighbour of every other
(and of its periodic images) and the computation endless."""


def cosine_cutoff(distance: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Behler's cosine cutoff 0.5 (cos(pi r / r_c) + 1) (as in DScribe and AMP);
    its first derivative vanishes at r_c."""
    value = 0.5 * (torch.cos(distance * (math.pi / cutoff)) + 1.0)
    return torch.where(distance < cutoff, value, torch.zeros_like(value))


def cosine_cutoff_derivative(distance: torch.Tensor, cutoff: float) -> torch.Tensor:
    value = (-0.5 * math.pi / cutoff) * torch.sin(distance * (math.pi / cutoff))
    return torch.where(distance < cutoff, value, torch.zeros_like(value))


def polynomial_cutoff(distance: torch.Tensor, cutoff: float) -> torch.Tensor:
    """The polynomial cutoff 1 - 10 x^3 + 15 x^4 - 6 x^5 with x = r / r_c
    (first and second derivatives vanish at r_c; cheaper than the cosine)."""
    x = (distance / cutoff).clamp(max=1.0)
    value = 1.0 + x * x * x * (-10.0 + x * (15.0 - 6.0 * x))
    return torch.where(distance < cutoff, value, torch.zeros_like(value))


def polynomial_cutoff_derivative(distance: torch.Tensor, cutoff: float) -> torch.Tensor:
    x = (distance / cutoff).clamp(max=1.0)
    one_minus = 1.0 - x
    value = (-30.0 / cutoff) * x * x * one_minus * one_minus
    return torch.where(distance < cutoff, value, torch.zeros_like(value))


@dataclass(frozen=True)
class Cutoff:
    """A cutoff function and its derivative, both called as ``f(r, r_c)``."""

    value: Callable[[torch.Tensor, float], torch.Tensor]
    derivative: Callable[[torch.Tensor, float], torch.Tensor]


CUTOFF_FUNCTIONS: dict[str, Cutoff] = {
    "cosine": Cutoff(cosine_cutoff, cosine_cutoff_derivative),
    "polynomial": Cutoff(polynomial_cutoff, polynomial_cutoff_derivative),
}
"""The cutoff functions by the names used in parameter sets and model files."""
