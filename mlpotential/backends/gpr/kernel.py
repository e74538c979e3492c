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


def cartesian_blocks(
    x1: torch.Tensor, x2: torch.Tensor, scale: float, weight: float, ff_out: torch.Tensor | None = None
) -> KernelBlocks:
    """Kernel blocks for flattened Cartesian coordinates ``x1`` (a, D) and
    ``x2`` (b, D) in Angstrom; ``ff_out`` (a, b, D, D), any strides: where
    to compute the force-force block (saves a copy of the largest block).

    The arithmetic follows aenet-gpr's operation by operation (norm, then
    square; scale powers as tensors): the training covariance is so
    ill-conditioned at its default noise (1e-6) that last-bit differences in
    it show in the predictions at the 1e-6 level. The blocks are exactly
    symmetric: swapping x1 and x2 only changes signs, exactly.
    """
    s = torch.tensor(scale, dtype=x1.dtype, device=x1.device)
    d = x1[:, None, :] - x2[None, :, :]
    k = weight**2 * torch.exp(-(torch.linalg.norm(d, dim=-1) ** 2) / (2 * s**2))
    k_l2 = k / s**2
    fe = k_l2[..., None] * d
    # aenet-gpr's (k / s^4) (d_i * -d_j) + (k / s^2) delta_ij, in place in one
    # (a, b, D, D) tensor: the products differ only in where the exact sign
    # change happens, and adding zero off the diagonal changes nothing
    ff = torch.mul(d[..., :, None], d[..., None, :], out=ff_out)
    ff *= -(k / s**4)[..., None, None]
    ff.diagonal(dim1=-2, dim2=-1).add_(k_l2[..., None])
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
    s = torch.tensor(scale, dtype=fp1.dtype, device=fp1.device)
    l2 = s**2
    # differences rather than |f1|^2 + |f2|^2 - 2 f1.f2, which loses the leading
    # digits of nearby features (and the noise term amplifies that); the
    # operations are aenet-gpr's (norm, then square)
    diff = fp1[:, None, :, None, :] - fp2[None, :, None, :, :]  # (a, b, C1, C2, F)
    k = weight**2 * torch.exp(-(torch.linalg.norm(diff, dim=-1) ** 2) / (2 * l2))  # (a, b, C1, C2)
    if center_mask is not None:
        k = k * center_mask

    # p1[x,y,c,n,i] = (f1_c - f2_n) . J1_c,i ;  p2[x,y,c,n,j] = (f1_c - f2_n) . J2_n,j
    p1 = torch.einsum("xycnf,xcif->xycni", diff, jac1)
    p2 = torch.einsum("xycnf,ynjf->xycnj", diff, jac2)
    del diff

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


def _force_indices(structures: slice, num_train: int, dim: int) -> slice:
    """Matrix indices of the forces of training structures ``structures``
    (after the ``num_train`` energies, D = ``dim`` per structure)."""
    return slice(num_train + structures.start * dim, num_train + structures.stop * dim)


def force_block_view(storage: torch.Tensor, rows: slice, cols: slice, num_train: int, dim: int) -> torch.Tensor:
    """The (a, b, D, D) view of row-major ``storage`` where :func:`store_upper`
    puts the force-force block of structures ``rows`` against ``cols``: a
    block computed there is not copied. For exactly symmetric kernels only
    (the Cartesian one): on the diagonal, store_upper stores a block's
    transpose."""
    block = storage[_force_indices(rows, num_train, dim), _force_indices(cols, num_train, dim)]
    return block.view(rows.stop - rows.start, dim, cols.stop - cols.start, dim).permute(0, 2, 1, 3)


def store_upper(storage: torch.Tensor, blocks: KernelBlocks, rows: slice, cols: slice, num_train: int) -> None:
    """Write the blocks of training structures ``rows`` against ``cols``
    (``rows.start <= cols.start``) into the upper triangle of the row-major
    (M, M) ``storage`` so that, read as a column-major matrix
    (``storage.mT``), its lower triangle is that of the matrix aenet-gpr
    builds: :func:`assemble`'s layout, blocks of the batch pairs rows <= cols,
    mirrored below the diagonal. That lower triangle is all a lower Cholesky
    factorisation reads, and LAPACK factorises a column-major matrix in place,
    so the (M, M) matrix is neither mirrored nor copied. Entries below the
    diagonal of ``storage`` are left as they are (some are written). A force
    block computed in place (:func:`force_block_view`) is not copied."""
    a, b, dim = blocks.fe.shape
    forces1, forces2 = _force_indices(rows, num_train, dim), _force_indices(cols, num_train, dim)
    # storage[i, j] = K[j, i]: the cov(F1, E2) entries sit below K's diagonal
    storage[cols, forces1].view(b, a, dim).copy_(blocks.fe.permute(1, 0, 2))
    in_place = blocks.ff.data_ptr() == storage[forces1, forces2].data_ptr()
    if rows == cols:
        # a diagonal block of K is computed, not mirrored: its transpose (equal
        # to it up to rounding) goes into the upper triangle
        storage[rows, rows] = blocks.ee.mT
        if not in_place:
            storage[forces1, forces1].view(a, dim, a, dim).copy_(blocks.ff.permute(1, 3, 0, 2))
    else:
        storage[rows, cols] = blocks.ee
        storage[rows, forces2].view(a, b, dim).copy_(blocks.ef)
        if not in_place:
            storage[forces1, forces2].view(a, dim, b, dim).copy_(blocks.ff.permute(0, 2, 1, 3))


def block_size(requested: int, bytes_per_pair: int) -> int:
    """Structures per batch: at most ``requested``, and few enough that a
    square block of pairs stays within :data:`BLOCK_MEMORY_BYTES`."""
    fitting = int((BLOCK_MEMORY_BYTES / max(bytes_per_pair, 1)) ** 0.5)
    return max(1, min(requested, fitting))
