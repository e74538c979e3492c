"""PiNN's neighbour list: every ordered pair (i, j') with 0 < |r_j' - r_i| < rc.

Rules reproduced from PiNN (``CellListNL``):

* both (i, j) and (j, i) are listed; the comparison with rc is strict, and a
  pair at distance 0 (two atoms on one spot) is dropped;
* periodic (PiNN treats a structure as periodic in all three directions as
  soon as any direction is): atoms are first wrapped into the cell, then
  every image j' = r_j + m.C with |m_k| <= ceil(rc / d_k) (d_k: spacing of
  lattice planes k) is a candidate, self-images of i included, each image a
  pair of its own.

The search itself is an implementation detail (PiNN bins too): small
systems compare all candidates, large ones bin them into cubes of edge rc.
Both give the same pairs. Distances are in the caller's unit (Angstrom).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

# Above this many candidate distances the search bins atoms instead of
# comparing every centre with every candidate (memory stays ~ this * 24 bytes).
BRUTE_FORCE_LIMIT = 1_000_000
_BIN_OFFSETS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int64)


@dataclass(frozen=True)
class PairList:
    """Ordered neighbour pairs, sorted by centre atom.

    ``diff[p] = r_neighbour' - r_centre`` (the image position of the
    neighbour minus the centre position), shape (n_pairs, 3).
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
    """PiNN's pairs for ``positions`` (n, 3); ``cell`` (3, 3, lattice
    vectors as rows) makes the structure periodic in all three directions,
    None leaves it isolated. ``brute_force_limit`` chooses the search
    method only (tests use it to check that both agree)."""
    positions = np.asarray(positions, dtype=np.float64)
    if cell is None:
        centres = positions
        sources, source_atom = positions, np.arange(len(positions))
    else:
        centres, sources, source_atom = _periodic_candidates(positions, np.asarray(cell, np.float64), cutoff)
    if len(centres) * len(sources) <= brute_force_limit:
        centre, candidate = _all_candidates(len(centres), len(sources))
    else:
        centre, candidate = _binned_candidates(centres, sources, cutoff)
    diff = sources[candidate] - centres[centre]
    distance = np.sqrt(np.einsum("pk,pk->p", diff, diff))
    keep = (distance > 0.0) & (distance < cutoff)
    order = np.argsort(centre[keep], kind="stable")
    return PairList(
        centre=centre[keep][order],
        neighbour=source_atom[candidate[keep][order]],
        diff=diff[keep][order],
    )


def image_repeats(cell: np.ndarray, cutoff: float) -> np.ndarray:
    """PiNN's image range per lattice direction: ceil(rc * |k-th column of
    C^-1|) = ceil(rc / d_k)."""
    return np.ceil(cutoff * np.linalg.norm(np.linalg.inv(cell), axis=0)).astype(np.int64)


def _periodic_candidates(
    positions: np.ndarray, cell: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wrapped centres, and every atom image that can lie within rc of one
    (with the atom it is an image of)."""
    inverse = np.linalg.inv(cell)
    fractional = positions @ inverse
    fractional -= np.floor(fractional)
    centres = fractional @ cell
    repeats = image_repeats(cell, cutoff)
    grids = [np.arange(-r, r + 1) for r in repeats]
    shifts = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 3)
    image_fractional = fractional[None, :, :] + shifts[:, None, :]
    # An image further than rc from every wrapped centre, measured across
    # lattice planes, cannot be a neighbour: drop it before any distance.
    reach = cutoff * np.linalg.norm(inverse, axis=0)
    near = np.all((image_fractional > -reach) & (image_fractional < 1.0 + reach), axis=-1)
    image_index, atom = np.nonzero(near)
    sources = image_fractional[image_index, atom] @ cell
    return centres, sources, atom


def _all_candidates(n_centres: int, n_sources: int) -> tuple[np.ndarray, np.ndarray]:
    centre = np.repeat(np.arange(n_centres), n_sources)
    candidate = np.tile(np.arange(n_sources), n_centres)
    return centre, candidate


def _binned_candidates(centres: np.ndarray, sources: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidates from the 27 bins (edge rc) around each centre's bin."""
    origin = np.minimum(centres.min(axis=0), sources.min(axis=0))
    source_bins = np.floor((sources - origin) / cutoff).astype(np.int64)
    centre_bins = np.floor((centres - origin) / cutoff).astype(np.int64)
    shape = np.maximum(source_bins.max(axis=0), centre_bins.max(axis=0)) + 1
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    source_keys = source_bins @ strides
    order = np.argsort(source_keys, kind="stable")
    sorted_keys = source_keys[order]
    centre_parts, candidate_parts = [], []
    for offset in _BIN_OFFSETS:
        bins = centre_bins + offset
        valid = np.all((bins >= 0) & (bins < shape), axis=1)
        keys = bins[valid] @ strides
        first = np.searchsorted(sorted_keys, keys, side="left")
        counts = np.searchsorted(sorted_keys, keys, side="right") - first
        total = int(counts.sum())
        if total == 0:
            continue
        # Expand each [first, first + count) range into its positions.
        starts = np.repeat(first - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        centre_parts.append(np.repeat(np.nonzero(valid)[0], counts))
        candidate_parts.append(order[starts + np.arange(total)])
    if not centre_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(centre_parts), np.concatenate(candidate_parts)
