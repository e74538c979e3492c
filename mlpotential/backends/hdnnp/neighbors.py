"""Neighbour lists and neighbour triples, vectorised in torch (cell lists, no
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
        return NeighborList(
            self.center.to(device), self.neighbor.to(device), self.cell_shift.to(device), self.n_atoms
        )


@dataclass(frozen=True)
class Triples:
    """Unordered pairs of neighbours of one centre: for triple t, the pairs
    ``first[t] < second[t]`` (indices into the neighbour list) share a centre.
    Each neighbour pair j, k of a centre is counted once."""

    first: torch.Tensor
    second: torch.Tensor

    @property
    def n_triples(self) -> int:
        return int(self.first.shape[0])


def pair_vectors(
    positions: torch.Tensor, cell: torch.Tensor, neighbors: NeighborList
) -> torch.Tensor:
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
        complement = q[:, len(periodic):].T
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
    bin_width = torch.where(extent > 0, extent / n_bins, torch.full_like(extent, cutoff))
    reach = torch.ceil(cutoff / bin_width - 1e-12).long().clamp(min=1)
    span = (high - low).clamp(min=1e-300)
    atom_bin = torch.floor((fractional - low) / span * n_bins).long()
    atom_bin = torch.minimum(atom_bin.clamp(min=0), n_bins - 1)

    strides = torch.stack([n_bins[1] * n_bins[2], n_bins[2], torch.ones_like(n_bins[2])])
    linear_bin = (atom_bin * strides).sum(1)
    order = torch.argsort(linear_bin, stable=True)
    total_bins = int(n_bins.prod())
    bin_count = torch.bincount(linear_bin, minlength=total_bins)
    bin_start = torch.cumsum(bin_count, 0) - bin_count

    offsets = torch.cartesian_prod(*[torch.arange(-int(r), int(r) + 1, device=device) for r in reach])
    n_offsets = offsets.shape[0]

    # Chunk the centres so that candidate arrays stay bounded.
    typical = max(1, int(bin_count.float().mean().ceil()) * n_offsets)
    chunk = max(1, _MAX_CANDIDATES_PER_CHUNK // typical)
    lattice = basis * periodic[:, None]
    wrapped = positions - image @ lattice
    pieces = []
    for start in range(0, n_atoms, chunk):
        centers = torch.arange(start, min(start + chunk, n_atoms), device=device)
        pieces.append(
            _pairs_of_chunk(
                centers, atom_bin, offsets, n_bins, periodic, strides, order,
                bin_count, bin_start, wrapped, lattice, cutoff,
            )
        )
    center = torch.cat([p[0] for p in pieces])
    neighbor = torch.cat([p[1] for p in pieces])
    shift = torch.cat([p[2] for p in pieces])
    # Back from wrapped to given positions: r_j - r_i + S L with S = s + n_i - n_j.
    image = image.long()
    shift = shift + image[center] - image[neighbor]
    return NeighborList(center, neighbor, shift, n_atoms)


def _pairs_of_chunk(
    centers: torch.Tensor,
    atom_bin: torch.Tensor,
    offsets: torch.Tensor,
    n_bins: torch.Tensor,
    periodic: torch.Tensor,
    strides: torch.Tensor,
    order: torch.Tensor,
    bin_count: torch.Tensor,
    bin_start: torch.Tensor,
    wrapped: torch.Tensor,
    lattice: torch.Tensor,
    cutoff: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    device = centers.device
    n_offsets = offsets.shape[0]
    target = atom_bin[centers][:, None, :] + offsets[None, :, :]  # (C, O, 3)
    cell_shift = torch.where(periodic, torch.div(target, n_bins, rounding_mode="floor"), torch.zeros_like(target))
    target = target - cell_shift * n_bins
    valid = ((target >= 0) & (target < n_bins)).all(-1)
    target_bin = (target * strides).sum(-1)
    center_of = centers[:, None].expand(-1, n_offsets)

    center_of = center_of[valid]
    target_bin = target_bin[valid]
    cell_shift = cell_shift[valid]
    count = bin_count[target_bin]
    which = torch.repeat_interleave(torch.arange(count.shape[0], device=device), count)
    first_of_group = torch.cumsum(count, 0) - count
    local = torch.arange(which.shape[0], device=device) - first_of_group[which]
    neighbor = order[bin_start[target_bin][which] + local]
    center = center_of[which]
    shift = cell_shift[which]

    vector = wrapped[neighbor] - wrapped[center] + shift.to(wrapped.dtype) @ lattice
    distance_sq = (vector * vector).sum(1)
    keep = (distance_sq < cutoff * cutoff) & ((neighbor != center) | (shift != 0).any(1))
    center, neighbor, shift = center[keep], neighbor[keep], shift[keep]
    # Candidates come grouped by centre; within a centre, order by neighbour
    # index so the list does not depend on the binning.
    key = center * (wrapped.shape[0] + 1) + neighbor
    permutation = torch.argsort(key, stable=True)
    return center[permutation], neighbor[permutation], shift[permutation]


def build_triples(neighbors: NeighborList) -> Triples:
    """Every unordered pair of neighbours of each centre (pairs sorted by
    centre, as :func:`build_neighbor_list` gives them)."""
    center = neighbors.center
    device = center.device
    n_pairs = center.shape[0]
    if n_pairs == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return Triples(empty, empty)
    per_center = torch.bincount(center, minlength=neighbors.n_atoms)
    first_pair = torch.cumsum(per_center, 0) - per_center
    rank = torch.arange(n_pairs, device=device) - first_pair[center]
    partners = per_center[center] - 1 - rank
    first = torch.repeat_interleave(torch.arange(n_pairs, device=device), partners)
    start_of_run = torch.cumsum(partners, 0) - partners
    step = torch.arange(first.shape[0], device=device) - torch.repeat_interleave(start_of_run, partners)
    return Triples(first, first + 1 + step)

