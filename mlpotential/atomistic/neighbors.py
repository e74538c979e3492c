"""Neighbour lists, vectorised in torch (cell lists, no
Python loop over atoms or pairs), for periodic, partly periodic and finite
systems, on whatever device the positions live.

The list is built without gradients; pair vectors are then recomputed from the
positions (and cell) with :func:`pair_vectors`, so derivatives flow through
them to positions and, for stress, to a strain of the cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

_MAX_CANDIDATES_PER_CHUNK = 4_000_000
"""Candidate pairs examined at once: bounds memory for very large systems."""


@dataclass(frozen=True)
class NeighborList:
    """All ordered pairs (i, j, image) closer than the cutoff.

    ``center`` and ``neighbor`` are atom indices (int64, shape (P,)), sorted
    by ``center``; ``cell_shift`` (int64, (P, 3)) says which periodic image of
    ``neighbor`` is meant: the pair vector is
    ``positions[neighbor] - positions[center] + cell_shift @ cell`` (Angstrom).
    Both (i, j) and (j, i) are present; an atom is its own neighbour only
    through a non-zero image.
    """

    center: torch.Tensor
    neighbor: torch.Tensor
    cell_shift: torch.Tensor
    n_atoms: int

    @property
    def n_pairs(self) -> int:
        return int(self.center.shape[0])

    def to(self, device: torch.device | str) -> NeighborList:
        return NeighborList(self.center.to(device), self.neighbor.to(device), self.cell_shift.to(device), self.n_atoms)


def pair_vectors(positions: torch.Tensor, cell: torch.Tensor, neighbors: NeighborList) -> torch.Tensor:
    """Vectors from each centre to its neighbour (Angstrom, shape (P, 3)),
    differentiable with respect to ``positions`` and ``cell``."""
    shifts = neighbors.cell_shift.to(positions.dtype) @ cell
    return positions[neighbors.neighbor] - positions[neighbors.center] + shifts


def build_neighbor_list(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: Sequence[bool],
    cutoff: float,
) -> NeighborList:
    """Pairs of atoms closer than ``cutoff`` (Angstrom).

    ``positions`` (N, 3) and ``cell`` (3, 3, rows are lattice vectors) in
    Angstrom; ``pbc`` three booleans. Atoms need not be wrapped into the cell.
    Lattice vectors of non-periodic directions are ignored (they may be zero).
    """
    if cutoff <= 0:
        raise ValueError(f"the neighbour-list cutoff must be positive, got {cutoff}")
    with torch.no_grad():
        return _cell_list(positions.detach(), cell.detach().to(positions.dtype), tuple(bool(p) for p in pbc), cutoff)


def _search_basis(cell: torch.Tensor, pbc: tuple[bool, bool, bool]) -> torch.Tensor:
    """Rows: the periodic lattice vectors, and for non-periodic directions
    unit vectors orthogonal to them (any complete basis serves for binning)."""
    periodic = [k for k in range(3) if pbc[k]]
    basis = cell.clone()
    if len(periodic) == 3:
        return basis
    if periodic:
        # The orthogonal complement of the periodic span, from a full QR.
        spanning = cell[periodic].T
        q, _ = torch.linalg.qr(spanning, mode="complete")
        complement = q[:, len(periodic) :].T
    else:
        complement = torch.eye(3, dtype=cell.dtype, device=cell.device)
    for row, k in enumerate(k for k in range(3) if not pbc[k]):
        basis[k] = complement[row]
    return basis


def _cell_list(
    positions: torch.Tensor, cell: torch.Tensor, pbc: tuple[bool, bool, bool], cutoff: float
) -> NeighborList:
    device = positions.device
    n_atoms = positions.shape[0]
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if n_atoms == 0:
        return NeighborList(empty, empty, torch.zeros((0, 3), dtype=torch.long, device=device), 0)

    basis = _search_basis(cell, pbc)
    if abs(float(torch.linalg.det(basis))) < 1e-12:
        raise ValueError("the periodic lattice vectors are linearly dependent (zero cell volume)")
    inverse = torch.linalg.inv(basis)
    periodic = torch.tensor(pbc, device=device)
    fractional = positions @ inverse
    # Wrap periodic coordinates into [0, 1); remember the image each atom came from.
    image = torch.where(periodic, torch.floor(fractional), torch.zeros_like(fractional))
    fractional = fractional - image
    # Distance between lattice planes of each direction (Angstrom per unit fraction).
    plane_spacing = 1.0 / torch.linalg.norm(inverse, dim=0)

    low = torch.where(periodic, torch.zeros(3, dtype=positions.dtype, device=device), fractional.min(0).values)
    high = torch.where(periodic, torch.ones(3, dtype=positions.dtype, device=device), fractional.max(0).values)
    extent = (high - low) * plane_spacing
    n_bins = torch.clamp(torch.floor(extent / cutoff), min=1).long()
    # Sparse systems (a few atoms far apart) would need many empty bins:
    # coarser bins stay correct (wider than the cutoff) and bound memory.
    most_bins = max(64, 8 * n_atoms)
    if int(n_bins.prod()) > most_bins:
        shrink = (float(n_bins.prod()) / most_bins) ** (1.0 / 3.0)
        n_bins = torch.clamp(torch.floor(n_bins / shrink), min=1).long()
    bin_width = torch.where(extent > 0, extent / n_bins, torch.full_like(extent, cutoff))
    reach = torch.ceil(cutoff / bin_width - 1e-12).long().clamp(min=1)
    span = (high - low).clamp(min=1e-300)
    atom_bin = torch.floor((fractional - low) / span * n_bins).long()
    atom_bin = torch.minimum(atom_bin.clamp(min=0), n_bins - 1)

    strides = torch.stack([n_bins[1] * n_bins[2], n_bins[2], torch.ones_like(n_bins[2])])
    linear_bin = (atom_bin * strides).sum(1)
    total_bins = int(n_bins.prod())
    lattice = basis * periodic[:, None]
    wrapped = positions - image @ lattice
    bins = _PaddedBins.of(linear_bin, wrapped, total_bins)

    offsets = torch.cartesian_prod(*[torch.arange(-int(r), int(r) + 1, device=device) for r in reach])
    chunk = max(1, _MAX_CANDIDATES_PER_CHUNK // (offsets.shape[0] * bins.depth))
    pieces = [
        _pairs_of_chunk(
            torch.arange(start, min(start + chunk, n_atoms), device=device),
            atom_bin,
            offsets,
            n_bins,
            periodic,
            strides,
            bins,
            wrapped,
            lattice,
            cutoff,
        )
        for start in range(0, n_atoms, chunk)
    ]
    center = torch.cat([p[0] for p in pieces])
    neighbor = torch.cat([p[1] for p in pieces])
    shift = torch.cat([p[2] for p in pieces])
    # Back from wrapped to given positions: r_j - r_i + S L with S = s + n_i - n_j.
    image = image.long()
    shift = shift + image.index_select(0, center) - image.index_select(0, neighbor)
    return NeighborList(center, neighbor, shift, n_atoms)


@dataclass(frozen=True)
class _PaddedBins:
    """The atoms of each bin in a dense (bin, depth) table; empty slots hold
    atom -1 at a far-away position, so they never fall within a cutoff."""

    atom: torch.Tensor
    position: torch.Tensor
    depth: int

    @classmethod
    def of(cls, linear_bin: torch.Tensor, positions: torch.Tensor, total_bins: int) -> _PaddedBins:
        order = torch.argsort(linear_bin, stable=True)
        count = torch.bincount(linear_bin, minlength=total_bins)
        depth = int(count.max())
        start = torch.cumsum(count, 0) - count
        sorted_bin = linear_bin.index_select(0, order)
        slot = (
            sorted_bin * depth + torch.arange(order.shape[0], device=order.device) - start.index_select(0, sorted_bin)
        )
        atom = torch.full((total_bins * depth,), -1, dtype=torch.long, device=order.device)
        atom[slot] = order
        far = positions.abs().max() * 4.0 + 1e6
        position = torch.full((3, total_bins * depth), float(far), dtype=positions.dtype, device=positions.device)
        position[:, slot] = positions.index_select(0, order).T
        return cls(atom.view(total_bins, depth), position.view(3, total_bins, depth), depth)


def _pairs_of_chunk(
    centers: torch.Tensor,
    atom_bin: torch.Tensor,
    offsets: torch.Tensor,
    n_bins: torch.Tensor,
    periodic: torch.Tensor,
    strides: torch.Tensor,
    bins: _PaddedBins,
    wrapped: torch.Tensor,
    lattice: torch.Tensor,
    cutoff: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    target = atom_bin.index_select(0, centers)[:, None, :] + offsets[None, :, :]  # (C, O, 3)
    cell_shift = torch.where(periodic, torch.div(target, n_bins, rounding_mode="floor"), torch.zeros_like(target))
    target = target - cell_shift * n_bins
    valid = ((target >= 0) & (target < n_bins)).all(-1)
    # Bins outside a non-periodic range are replaced by bin 0 with an
    # impossible shift offset; their candidates are masked below.
    target_bin = torch.where(valid, (target * strides).sum(-1), torch.zeros_like(valid, dtype=torch.long))
    origin = (cell_shift.to(wrapped.dtype) @ lattice - wrapped.index_select(0, centers)[:, None, :]).permute(2, 0, 1)
    flat_bin = target_bin.view(-1)
    distance_sq = None
    for axis in range(3):
        component = bins.position[axis].index_select(0, flat_bin).view(*target_bin.shape, bins.depth)
        component = component + origin[axis][:, :, None]
        distance_sq = component * component if distance_sq is None else distance_sq + component * component
    neighbor = bins.atom.index_select(0, flat_bin).view(*target_bin.shape, bins.depth)
    center = centers[:, None, None]
    keep = (distance_sq < cutoff * cutoff) & valid[:, :, None] & (neighbor >= 0)
    keep &= (neighbor != center) | (cell_shift != 0).any(-1)[:, :, None]
    where_c, where_o, where_s = keep.nonzero(as_tuple=True)
    center = centers.index_select(0, where_c)
    neighbor = neighbor[where_c, where_o, where_s]
    shift = cell_shift[where_c, where_o]
    # Order each centre's neighbours by atom index, so the list does not
    # depend on the binning.
    permutation = torch.argsort(center * (wrapped.shape[0] + 1) + neighbor, stable=True)
    return center[permutation], neighbor[permutation], shift[permutation]
