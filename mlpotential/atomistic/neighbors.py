"""The neighbour search of every backend that does not bring its own,
vectorised in torch (no Python loop over atoms or pairs), for periodic,
partly periodic and finite systems, on whatever device the positions live.

Small systems compare every atom with every periodic image of every atom;
large ones bin atoms into a cell list. Both give the same pairs.

The list is built without gradients; pair vectors are then recomputed from the
positions (and cell) with :func:`pair_vectors`, so derivatives flow through
them to positions and, for stress, to a strain of the cell.

PiNN's pairs (:func:`pinn_pairs`, numpy in and out) are this search's, less
pairs of two atoms on one spot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

BRUTE_FORCE_LIMIT = 500_000
"""Candidate distances up to which the search compares all of them instead
of binning atoms (memory about 35 bytes each)."""
_IDENTITY = np.eye(3)
"""The search basis of a finite system (read, never written)."""
_NO_LATTICE = np.zeros((3, 3))
"""The lattice of a finite system, Angstrom (read, never written)."""
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
    brute_force_limit: int = BRUTE_FORCE_LIMIT,
    keep_coincident: bool = True,
) -> NeighborList:
    """Pairs of atoms closer than ``cutoff`` (Angstrom).

    ``positions`` (N, 3) and ``cell`` (3, 3, rows are lattice vectors) in
    Angstrom; ``pbc`` three booleans. Atoms need not be wrapped into the cell.
    Lattice vectors of non-periodic directions are ignored (they may be zero).
    Up to ``brute_force_limit`` candidate distances (atom pairs times periodic
    images) every candidate is compared, above it atoms are binned; both
    give the same pairs. ``keep_coincident=False`` leaves out pairs of two
    atoms on one spot (distance exactly 0).
    """
    if cutoff <= 0:
        raise ValueError(f"the neighbour-list cutoff must be positive, got {cutoff}")
    # Detached inputs (the frame takes the cell as numpy) keep autograd out
    # of the search.
    positions = positions.detach()
    if positions.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=positions.device)
        return NeighborList(empty, empty, torch.zeros((0, 3), dtype=torch.long, device=positions.device), 0)
    periodic = (bool(pbc[0]), bool(pbc[1]), bool(pbc[2]))
    frame = _Frame.of(positions, cell, periodic)
    repeats = _image_repeats(frame.inverse, periodic, cutoff)
    if positions.shape[0] ** 2 * math.prod(2 * r + 1 for r in repeats) <= brute_force_limit:
        center, neighbor, shift = _brute_force(frame, repeats, cutoff, keep_coincident)
    else:
        center, neighbor, shift = _cell_list(frame, cutoff, keep_coincident)
    return frame.unwrapped(center, neighbor, shift)


@dataclass(frozen=True)
class PairList:
    """PiNN's ordered neighbour pairs (numpy), sorted by centre atom.

    ``diff[p] = r_neighbour' - r_centre`` (the image position of the
    neighbour minus the centre position, Angstrom), shape (n_pairs, 3).
    """

    centre: np.ndarray
    neighbour: np.ndarray
    diff: np.ndarray

    def __len__(self) -> int:
        return len(self.centre)


def pinn_pairs(
    positions: np.ndarray,
    cutoff: float,
    cell: np.ndarray | None = None,
    brute_force_limit: int = BRUTE_FORCE_LIMIT,
) -> PairList:
    """PiNN's pairs (``CellListNL``): every ordered pair (i, j') with
    0 < |r_j' - r_i| < ``cutoff`` (Angstrom), each periodic image a pair of
    its own, self-images included.

    ``positions`` (n, 3) Angstrom; ``cell`` (3, 3, lattice vectors as rows)
    makes the structure periodic in all three directions (PiNN's rule for
    any periodic direction; the caller applies it), None leaves it isolated.
    Two atoms on one spot are not a pair. ``brute_force_limit`` chooses the
    search method only (tests use it to check that both agree).
    """
    positions = np.asarray(positions, dtype=np.float64)
    lattice = _NO_LATTICE if cell is None else np.asarray(cell, dtype=np.float64)
    pairs = build_neighbor_list(
        torch.from_numpy(positions),
        torch.from_numpy(lattice),
        (cell is not None,) * 3,
        cutoff,
        brute_force_limit,
        keep_coincident=False,
    )
    centre, neighbour = pairs.center.numpy(), pairs.neighbor.numpy()
    # pair_vectors in numpy: for a small molecule, tensor operations would
    # cost more than the whole search.
    diff = positions[neighbour] - positions[centre]
    if cell is not None:
        diff += pairs.cell_shift.numpy() @ lattice
    return PairList(centre=centre, neighbour=neighbour, diff=diff)


def image_repeats(cell: np.ndarray, cutoff: float) -> np.ndarray:
    """Periodic images searched per lattice direction of a 3D-periodic
    ``cell`` (rows are lattice vectors, Angstrom): ceil(rc / d_k), d_k the
    spacing of lattice planes k, ``cutoff`` rc in Angstrom (PiNN's image
    range). No image further away lies within rc of a wrapped atom."""
    return np.array(_image_repeats(np.linalg.inv(cell), (True, True, True), cutoff), dtype=np.int64)


def _image_repeats(inverse: np.ndarray, pbc: tuple[bool, bool, bool], cutoff: float) -> list[int]:
    """ceil(rc / d_k) for periodic directions k, 0 for the others; the norm of
    column k of the inverse basis is 1 / d_k (d_k in Angstrom)."""
    if not any(pbc):
        return [0, 0, 0]
    per_plane = np.linalg.norm(inverse, axis=0)
    return [math.ceil(cutoff * per_plane[k]) if pbc[k] else 0 for k in range(3)]


def _search_basis(cell: np.ndarray, pbc: tuple[bool, bool, bool]) -> np.ndarray:
    """Rows: the periodic lattice vectors, and for non-periodic directions
    unit vectors orthogonal to them (any complete basis serves for binning)."""
    periodic = [k for k in range(3) if pbc[k]]
    if len(periodic) == 3:
        return cell
    if periodic:
        # The orthogonal complement of the periodic span, from a full QR.
        q, _ = np.linalg.qr(cell[periodic].T, mode="complete")
        complement = q[:, len(periodic) :].T
    else:
        complement = np.eye(3)
    basis = cell.copy()
    basis[[k for k in range(3) if not pbc[k]]] = complement
    return basis


@dataclass(frozen=True)
class _Frame:
    """The atoms as both searches see them: periodic coordinates wrapped
    into the cell, so that images up to ceil(rc / d_k) suffice.

    ``pbc`` the periodic directions; ``inverse`` the inverse of the search
    basis (1/Angstrom) and ``lattice`` the periodic lattice vectors (zero
    rows elsewhere, Angstrom), both (3, 3) float64 numpy: the 3x3 geometry
    costs less in numpy than in tensor operations, which counts for small
    molecules. ``fractional`` (N, 3) fractional coordinates of the given
    positions; ``image`` (N, 3) the lattice image each atom was wrapped from
    (None when nothing is periodic); ``wrapped`` (N, 3) wrapped positions,
    Angstrom.
    """

    pbc: tuple[bool, bool, bool]
    inverse: np.ndarray
    lattice: np.ndarray
    fractional: torch.Tensor
    image: torch.Tensor | None
    wrapped: torch.Tensor

    @classmethod
    def of(cls, positions: torch.Tensor, cell: torch.Tensor, pbc: tuple[bool, bool, bool]) -> _Frame:
        if not any(pbc):
            # The Cartesian axes serve as basis; nothing is wrapped.
            return cls(pbc, _IDENTITY, _NO_LATTICE, positions, None, positions)
        basis = _search_basis(cell.detach().cpu().numpy().astype(np.float64), pbc)
        if abs(np.linalg.det(basis)) < 1e-12:
            raise ValueError("the periodic lattice vectors are linearly dependent (zero cell volume)")
        inverse = np.linalg.inv(basis)
        lattice = basis * np.array(pbc)[:, None]
        fractional = positions @ torch.as_tensor(inverse, dtype=positions.dtype, device=positions.device)
        # Wrap periodic coordinates into [0, 1); remember the image each atom came from.
        image = torch.floor(fractional)
        if not all(pbc):
            image = torch.where(torch.tensor(pbc, device=positions.device), image, torch.zeros_like(image))
        wrapped = positions - image @ torch.as_tensor(lattice, dtype=positions.dtype, device=positions.device)
        return cls(pbc, inverse, lattice, fractional, image, wrapped)

    def unwrapped(self, center: torch.Tensor, neighbor: torch.Tensor, shift: torch.Tensor) -> NeighborList:
        """The pairs of the wrapped atoms as pairs of the given positions:
        r_j - r_i + S L with S = s + n_i - n_j."""
        if self.image is not None:
            image = self.image.long()
            shift = shift + image.index_select(0, center) - image.index_select(0, neighbor)
        return NeighborList(center, neighbor, shift, self.wrapped.shape[0])


def _within(distance_sq: torch.Tensor, cutoff: float, keep_coincident: bool) -> torch.Tensor:
    """Which squared distances (Angstrom^2) lie strictly within the cutoff;
    without ``keep_coincident``, distance 0 does not."""
    inside = distance_sq < cutoff * cutoff
    if not keep_coincident:
        inside &= distance_sq > 0.0
    return inside


def _brute_force(
    frame: _Frame, repeats: list[int], cutoff: float, keep_coincident: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every atom against every image of every atom: for small systems,
    where binning costs more tensor operations than it saves distances.
    Pairs come sorted by centre, then image, then neighbour.

    An atom is its own neighbour only through a non-zero image. Its zero
    image lies at distance exactly 0 (r_i + (0 - r_i)), so only a search that
    keeps coincident atoms has to mask it.
    """
    device, dtype = frame.wrapped.device, frame.wrapped.dtype
    # Components first and neighbours last, (3, N, ..., N): torch reduces
    # over a leading axis, and broadcasts along a contiguous trailing one,
    # many times faster than with a trailing axis of length 3.
    wrapped = frame.wrapped.T.contiguous()
    if not any(repeats):
        # Nothing periodic, no image to search: for a small molecule the image
        # arithmetic would cost more than the distances themselves.
        distance_sq = (wrapped[:, None, :] - wrapped[:, :, None]).square_().sum(0)  # (N, N)
        keep = _within(distance_sq, cutoff, keep_coincident)
        if keep_coincident:
            keep.fill_diagonal_(False)
        center, neighbor = keep.nonzero(as_tuple=True)
        return center, neighbor, torch.zeros((center.shape[0], 3), dtype=torch.long, device=device)
    grid = np.indices([2 * r + 1 for r in repeats]).reshape(3, -1).T - np.array(repeats)  # (M, 3)
    image_vectors = torch.as_tensor(frame.lattice.T @ grid.T, dtype=dtype, device=device)
    origin = image_vectors[:, None, :] - wrapped[:, :, None]  # (3, N, M): S L - r_i
    distance_sq = (wrapped[:, None, None, :] + origin[:, :, :, None]).square_().sum(0)  # (N, M, N)
    keep = _within(distance_sq, cutoff, keep_coincident)
    if keep_coincident:
        # The zero image is the middle one of the symmetric ranges.
        keep.select(1, len(grid) // 2).fill_diagonal_(False)
    center, image, neighbor = keep.nonzero(as_tuple=True)
    return center, neighbor, torch.as_tensor(grid, device=device).index_select(0, image)


def _cell_list(frame: _Frame, cutoff: float, keep_coincident: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Candidates from the bins within the cutoff of each centre's bin; for
    large systems, where the candidates grow linearly with the atoms."""
    device, dtype = frame.wrapped.device, frame.wrapped.dtype
    periodic = torch.tensor(frame.pbc, device=device)
    fractional = frame.fractional if frame.image is None else frame.fractional - frame.image
    lattice = torch.as_tensor(frame.lattice, dtype=dtype, device=device)
    n_atoms = fractional.shape[0]
    # Distance between lattice planes of each direction (Angstrom per unit fraction).
    plane_spacing = torch.as_tensor(1.0 / np.linalg.norm(frame.inverse, axis=0), dtype=dtype, device=device)

    low = torch.where(periodic, torch.zeros(3, dtype=dtype, device=device), fractional.min(0).values)
    high = torch.where(periodic, torch.ones(3, dtype=dtype, device=device), fractional.max(0).values)
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
    bins = _PaddedBins.of(linear_bin, frame.wrapped, total_bins)

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
            frame.wrapped,
            lattice,
            cutoff,
            keep_coincident,
        )
        for start in range(0, n_atoms, chunk)
    ]
    center = torch.cat([p[0] for p in pieces])
    neighbor = torch.cat([p[1] for p in pieces])
    shift = torch.cat([p[2] for p in pieces])
    return center, neighbor, shift


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
    keep_coincident: bool,
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
    keep = _within(distance_sq, cutoff, keep_coincident) & valid[:, :, None] & (neighbor >= 0)
    keep &= (neighbor != center) | (cell_shift != 0).any(-1)[:, :, None]
    where_c, where_o, where_s = keep.nonzero(as_tuple=True)
    center = centers.index_select(0, where_c)
    neighbor = neighbor[where_c, where_o, where_s]
    shift = cell_shift[where_c, where_o]
    # Order each centre's neighbours by atom index, so the list does not
    # depend on the binning.
    permutation = torch.argsort(center * (wrapped.shape[0] + 1) + neighbor, stable=True)
    return center[permutation], neighbor[permutation], shift[permutation]
