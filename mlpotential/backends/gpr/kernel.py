"""The squared-exponential kernel with energy and force observations.

For two structures with descriptor centres ``f_c`` (first) and ``g_n``
(second) the energy-energy covariance is

    k = weight^2 * sum_{c,n} exp(-|f_c - g_n|^2 / (2 scale^2))

and the force covariances are its derivatives with respect to the atomic
coordinates (forces are minus energy gradients, so each derivative carries a
sign):

    cov(F1_i, E2)   = -dk/dr1_i
    cov(E1,  F2_j)  = -dk/dr2_j
    cov(F1_i, F2_j) =  d2k/(dr1_i dr2_j)

with the chain rule through the descriptor Jacobians ``J = df/dr``. Every
function returns the four blocks of one pair of structure batches
(:class:`KernelBlocks`); :func:`assemble` lays them out like aenet-gpr: all
energies first, then all forces structure by structure.

Cartesian coordinates are the descriptor whose Jacobian is the identity; they
get closed forms that cost O(D^2) per pair instead of O(D^3) (D = 3 * atoms).
Lengths in Angstrom (Cartesian) or descriptor units; energies in eV.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCK_MEMORY_BYTES = 256 * 1024**2
"""Upper bound for the largest temporary tensor of one kernel block."""


@dataclass
class KernelBlocks:
    """Covariances between a batch of ``a`` structures and one of ``b``:
    ``ee`` (a, b), ``fe`` (a, b, D) = cov(F1, E2), ``ef`` (a, b, D) =
    cov(E1, F2), ``ff`` (a, b, D, D) = cov(F1, F2)."""

    ee: torch.Tensor
    fe: torch.Tensor
    ef: torch.Tensor
    ff: torch.Tensor


def cartesian_blocks(x1: torch.Tensor, x2: torch.Tensor, scale: float, weight: float) -> KernelBlocks:
    """Kernel blocks for flattened Cartesian coordinates ``x1`` (a, D) and
    ``x2`` (b, D) in Angstrom.

    The arithmetic follows aenet-gpr's operation by operation (norm, then
    square; scale powers as tensors): the training covariance is so
    ill-conditioned at its default noise (1e-6) that last-bit differences in
    it show in the predictions at the 1e-6 level.
    """
    s = torch.tensor(scale, dtype=x1.dtype, device=x1.device)
    d = x1[:, None, :] - x2[None, :, :]
    k = weight**2 * torch.exp(-(torch.linalg.norm(d, dim=-1) ** 2) / (2 * s**2))
    k_l2 = k / s**2
    fe = k_l2[..., None] * d
    eye = torch.eye(x1.shape[1], dtype=x1.dtype, device=x1.device)
    ff = (k / s**4)[..., None, None] * (d[..., :, None] * -d[..., None, :]) + k_l2[..., None, None] * eye
    return KernelBlocks(ee=k, fe=fe, ef=-fe, ff=ff)


def descriptor_blocks(
    fp1: torch.Tensor,
    jac1: torch.Tensor,
    fp2: torch.Tensor,
    jac2: torch.Tensor,
    scale: float,
    weight: float,
    center_mask: torch.Tensor | None = None,
) -> KernelBlocks:
    """Kernel blocks for descriptors ``fp`` (n, C, F) with Jacobians ``jac``
    (n, C, D, F) (derivative of each feature of each centre with respect to
    each atomic coordinate, coordinate index = 3 * atom + axis).
    ``center_mask`` (C1, C2) of 0/1 keeps only some centre pairs in the sum
    (atoms of one element)."""
    l2 = scale**2
    sq = (
        (fp1 * fp1).sum(-1)[:, None, :, None]
        + (fp2 * fp2).sum(-1)[None, :, None, :]
        - 2 * torch.einsum("xcf,ynf->xycn", fp1, fp2)
    ).clamp_min(0.0)
    k = weight**2 * torch.exp(-sq / (2 * l2))  # (a, b, C1, C2)
    if center_mask is not None:
        k = k * center_mask

    # p1[x,y,c,n,i] = (f1_c - f2_n) . J1_c,i ;  p2[x,y,c,n,j] = (f1_c - f2_n) . J2_n,j
    p1 = torch.einsum("xcf,xcif->xci", fp1, jac1)[:, None, :, None, :] - torch.einsum("ynf,xcif->xycni", fp2, jac1)
    p2 = torch.einsum("xcf,ynjf->xycnj", fp1, jac2) - torch.einsum("ynf,ynjf->ynj", fp2, jac2)[None, :, None, :, :]

    ee = k.sum((2, 3))
    fe = torch.einsum("xycn,xycni->xyi", k, p1) / l2
    ef = -torch.einsum("xycn,xycnj->xyj", k, p2) / l2
    # sum_{c,n} k J1_c,i . J2_n,j: contract over c first, then over (n, f) as one matmul
    weighted = torch.einsum("xycn,xcif->xynif", k, jac1)
    a, b, c2, dim, nf = weighted.shape
    ff = (
        torch.matmul(
            weighted.permute(0, 1, 3, 2, 4).reshape(a, b, dim, c2 * nf),
            jac2.permute(0, 1, 3, 2).reshape(1, b, c2 * nf, dim),
        )
        / l2
    )
    ff -= torch.einsum("xycni,xycnj->xyij", k[..., None] * p1, p2) / l2**2
    return KernelBlocks(ee=ee, fe=fe, ef=ef, ff=ff)


def assemble(blocks: KernelBlocks) -> torch.Tensor:
    """The blocks as one matrix, rows ``[E_1..E_a, F_1..F_a]`` and columns
    ``[E_1..E_b, F_1..F_b]`` (each F block D long)."""
    a, b, dim = blocks.fe.shape
    top = torch.cat((blocks.ee, blocks.ef.reshape(a, b * dim)), dim=1)
    bottom = torch.cat(
        (
            blocks.fe.permute(0, 2, 1).reshape(a * dim, b),
            blocks.ff.permute(0, 2, 1, 3).reshape(a * dim, b * dim),
        ),
        dim=1,
    )
    return torch.cat((top, bottom), dim=0)


def block_size(requested: int, bytes_per_pair: int) -> int:
    """Structures per batch: at most ``requested``, and few enough that a
    square block of pairs stays within :data:`BLOCK_MEMORY_BYTES`."""
    fitting = int((BLOCK_MEMORY_BYTES / max(bytes_per_pair, 1)) ** 0.5)
    return max(1, min(requested, fitting))
