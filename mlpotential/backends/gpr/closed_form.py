"""Fast predictions of a Cartesian-coordinate GPR.

With Cartesian coordinates the kernel rows of a structure x against
training structure y depend only on d = x - X_y (kernel.py):

    cov(E_x, E_y) = k_y,   cov(E_x, F_y) = -k_y d / l2,   cov(F_x, E_y) = k_y d / l2,
    cov(F_x, F_y) = k_y / l2 (I - d d' / l2),   k_y = weight^2 exp(-|d|^2 / (2 l2))

so the mean costs O(n D) per structure instead of O(n D^2). For the
variance, v = L^-1 c for each kernel column c of a predicted quantity is a
combination of the rows of W = L^-T (energy rows W_E (n, M), force rows W_F
(n, D, M)) with h_y = W_E[y] - W_F[y]' d_y / l2:

    v_E   = sum_y k_y h_y
    v_F,i = sum_y k_y / l2 (d_yi h_y + W_F[y, i])

which costs O(M n D) per structure instead of the O(M^2 D) of triangular
solves (M = n (1 + D)).

Both shortcuts trade some rounding: an explicit inverse is less accurate
than triangular solves when L is ill-conditioned, and a posterior variance
far below the prior one is a difference of nearly equal numbers. The
predictor measures the inverse's accuracy once (on kernel columns of
training structures) and flags, per structure, energies whose rounding error
may exceed :data:`ENERGY_TOLERANCE` and variances whose error may exceed
:data:`VARIANCE_TOLERANCE` (relative); the GPR recomputes those with the
direct formulas. Units: Angstrom, eV, eV/Angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg.lapack import dtrtri

ENERGY_TOLERANCE = 1e-9
"""Relative rounding error of a closed-form energy above which the structure
is recomputed with the direct formulas (the weights are huge when the
covariance is ill-conditioned, and the energy a difference of large terms)."""

VARIANCE_TOLERANCE = 1e-6
"""The same for a variance (prior variance minus a nearly equal number)."""

INVERSE_ERROR_LIMIT = 1e-8
"""Relative error of W-products beyond which the closed forms are not used."""

PREDICTION_MEMORY_BYTES = 256 * 1024**2
"""Bound for the (batch, n + D, M) temporaries of the variance."""

_EPS = torch.finfo(torch.float64).eps


@dataclass
class CartesianPredictor:
    """Mean and variance of a fitted Cartesian GPR from its weights
    ``alpha`` (M,), the training coordinates (n, D) and, once
    :meth:`prepare_variance` ran, W = L^-T (M, M) with ``inverse_error``, the
    measured relative error of products with W."""

    alpha: torch.Tensor
    train_x: torch.Tensor
    scale: float
    weight: float
    prior_constant: float
    inverse_factor: torch.Tensor | None = None
    inverse_error: float = float("nan")

    def prepare_variance(self, factor: torch.Tensor, probes: torch.Tensor) -> bool:
        """Compute W = L^-T in the storage of the lower Cholesky factor
        ``factor`` (column-major, zero above the diagonal), which it
        overwrites. Its accuracy is measured on the kernel columns ``probes``
        (M, p) against triangular solves done before. Returns whether W is
        accurate enough to use (else it is dropped)."""
        exact = torch.linalg.solve_triangular(factor, probes, upper=False)
        inverse = inverse_transposed_factor(factor)
        # W' probes as (probes' W)': W is row-major, W' is not (a product with it would copy it)
        self.inverse_error = float((((probes.T @ inverse).T - exact).norm(dim=0) / exact.norm(dim=0)).max())
        self.inverse_factor = inverse if self.inverse_error <= INVERSE_ERROR_LIMIT else None
        return self.inverse_factor is not None

    def batch_size(self, variance: bool, force_variance: bool, requested: int) -> int:
        """Structures per group: the variance temporaries are (B, n + D, M)."""
        n, dim = self.train_x.shape
        if not variance:
            return max(requested, 256)
        per_structure = 8 * (n + (dim if force_variance else 1)) * self.inverse_factor.shape[0]
        return max(1, min(max(requested, 64), PREDICTION_MEMORY_BYTES // per_structure))

    def predict(self, x: torch.Tensor, variance: bool, force_variance: bool = True):
        """Energies (B,), forces (B, D), with ``variance`` their standard
        deviations (forces' only with ``force_variance``, else None), and a
        (B,) flag for structures whose results rounding may spoil, for
        flattened coordinates ``x`` (B, D)."""
        n, dim = self.train_x.shape
        l2 = self.scale**2
        d = x[:, None, :] - self.train_x[None, :, :]  # (B, n, D)
        k = self.weight**2 * torch.exp(-(d * d).sum(-1) / (2 * l2))  # (B, n)
        k_l2 = k / l2
        alpha_e = self.alpha[:n]
        alpha_f = self.alpha[n:].reshape(n, dim)
        d_dot_af = torch.einsum("bnd,nd->bn", d, alpha_f)
        energy = self.prior_constant + k @ alpha_e - (k_l2 * d_dot_af).sum(1)
        force = torch.einsum("bn,bnd->bd", k_l2 * (alpha_e[None, :] - d_dot_af / l2), d) + k_l2 @ alpha_f
        # the sum of the magnitudes of the terms bounds the energy's rounding error
        magnitude = k @ alpha_e.abs() + (k_l2 * torch.einsum("bnd,nd->bn", d.abs(), alpha_f.abs())).sum(1)
        sensitive = _EPS * magnitude > ENERGY_TOLERANCE * energy.abs()
        if not variance:
            return energy, force, None, None, sensitive
        w_e = self.inverse_factor[:n]
        w_f = self.inverse_factor[n:].view(n, dim, -1)
        # h_y = W_E[y] - g_y / l2 with g_y = W_F[y]' d_y, from d itself (x W_F - X_y W_F
        # would cancel badly where W is large); then v_E = sum_y k_y h_y and
        # v_F,i = sum_y k_y / l2 (d_yi h_y + W_F[y, i])
        h = torch.baddbmm(w_e[:, None, :], d.transpose(0, 1), w_f, alpha=-1.0 / l2)  # (n, B, M)
        # one product for v_E and the first term of v_F (rows 0 and 1.. of the
        # weights), reading h once, in place (B, n, M)
        weights = k[:, None, :] if not force_variance else torch.cat((k[:, None, :], (k_l2[..., None] * d).mT), 1)
        v = torch.bmm(weights, h.transpose(0, 1))  # (B, 1 or 1 + D, M)
        v_e = v[:, 0]
        prior_e = self.weight**2
        var_e = prior_e - torch.linalg.vector_norm(v_e, dim=-1) ** 2
        # var = prior - |v|^2 carries an error of about 2 |v|^2 inverse_error
        floor = 2 * self.inverse_error / VARIANCE_TOLERANCE
        sensitive |= var_e < floor * prior_e
        std_e = var_e.clamp_min(0).sqrt()
        if not force_variance:
            return energy, force, std_e, None, sensitive
        v_f = v[:, 1:]
        v_f += (k_l2 @ w_f.reshape(n, -1)).view(v_f.shape)
        prior_f = prior_e / l2
        var_f = prior_f - torch.linalg.vector_norm(v_f, dim=-1) ** 2
        sensitive |= (var_f < floor * prior_f).any(1)
        return energy, force, std_e, var_f.clamp_min(0).sqrt(), sensitive


def inverse_transposed_factor(factor: torch.Tensor) -> torch.Tensor:
    """W = L^-T as a row-major tensor, computed in the storage of the lower
    triangular ``factor`` L (column-major, zero above the diagonal), which it
    overwrites with L^-1 (W is its transposed view). On the CPU by LAPACK's
    triangular inverse (dtrtri, M^3 / 3 operations) in place; on other
    devices block column by block column with triangular solves."""
    if factor.device.type == "cpu":
        _invert_with_lapack(factor)
    else:
        invert_by_blocks(factor)
    return factor.mT


def _invert_with_lapack(factor: torch.Tensor) -> None:
    """L^-1 in the storage of the lower triangular CPU ``factor`` L
    (column-major), by LAPACK's dtrtri in place."""
    fortran = factor.numpy()  # column-major: a Fortran-ordered view, inverted in place
    inverse, info = dtrtri(fortran, lower=1, overwrite_c=1)
    if info != 0 or not np.shares_memory(inverse, fortran):
        raise RuntimeError(f"LAPACK dtrtri did not invert the Cholesky factor in place (info {info})")


def invert_by_blocks(factor: torch.Tensor) -> None:
    """L^-1 in the storage of the lower triangular ``factor`` L (zero above
    the diagonal): columns s:e of L^-1 solve L[s:, s:] X = I[s:, s:e] (their
    rows above s are zero), and only need the columns of L from s on, so each
    block replaces columns of L no longer needed."""
    size = factor.shape[0]
    step = max(64, min(size, 512))
    for start in range(0, size, step):
        stop = min(start + step, size)
        identity = torch.zeros((size - start, stop - start), dtype=factor.dtype, device=factor.device)
        identity[: stop - start].fill_diagonal_(1.0)
        factor[start:, start:stop] = torch.linalg.solve_triangular(factor[start:, start:], identity, upper=False)
