"""Atom-centred symmetry functions (G2, G4, G5) in torch: the descriptor of
the HDNNP backend, reusable as a descriptor elsewhere (GPR).

Everything is vectorised over pairs and triples of a neighbour list. The work
is split into chunks of centre atoms so that temporary arrays stay small
(cache-sized), and each chunk is checkpointed: its intermediates are not kept
for the backward pass but recomputed there, so forces cost memory in
proportion to the pairs, not the triples. Derivatives come from torch autograd
(first and higher order); for training, :meth:`SymmetryFunctionSet.with_pair_jacobian`
gives the full Jacobian in closed form. ``float64`` and ``float32`` work, on
CPU or GPU.

Units: positions and cells in Angstrom, eta in 1/Angstrom^2.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mlpotential.atomistic.cutoffs import CUTOFF_FUNCTIONS, Cutoff
from mlpotential.atomistic.neighbors import NeighborList, build_neighbor_list, pair_vectors
from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.errors import UnsupportedSystemError

DEFAULT_TRIPLES_PER_CHUNK = 131_072
"""Neighbour triples handled at once; bounds temporary memory."""


@dataclass(frozen=True)
class _AngularTerms:
    """G4 or G5 functions as a grid: each function is one of the distinct
    eta values times one of the distinct (zeta, lambda) powers, so the
    exponentials and powers are computed once per triple and shared.
    ``columns[f]`` is function f's place in the flattened (eta, power) grid;
    ``offset`` is where the block starts within an element pair's angular
    features."""

    etas: tuple[float, ...]
    powers: tuple[tuple[float, float], ...]
    columns: torch.Tensor
    offset: int
    with_side: bool

    @classmethod
    def of(cls, functions: Sequence[tuple[float, float, float]], offset: int, with_side: bool) -> _AngularTerms:
        etas = tuple(sorted({eta for eta, _, _ in functions}))
        powers = tuple(sorted({(zeta, lam) for _, zeta, lam in functions}))
        columns = [etas.index(eta) * len(powers) + powers.index((zeta, lam)) for eta, zeta, lam in functions]
        return cls(etas, powers, torch.tensor(columns, dtype=torch.long), offset, with_side)

    @property
    def size(self) -> int:
        return int(self.columns.shape[0])


@dataclass(frozen=True)
class _Pairs:
    """One chunk's pairs: vectors (P, 3) and what follows from them."""

    vectors: torch.Tensor
    center: torch.Tensor
    species: torch.Tensor
    n_centers: int
    distance_sq: torch.Tensor
    distance: torch.Tensor

    @classmethod
    def of(cls, vectors: torch.Tensor, center: torch.Tensor, species: torch.Tensor, n_centers: int) -> _Pairs:
        distance_sq = (vectors * vectors).sum(1)
        return cls(vectors, center, species, n_centers, distance_sq, distance_sq.sqrt())


@dataclass(frozen=True)
class _Triples:
    """Unordered neighbour pairs {j, k} of each centre: chunk-local pair
    indices ``first``, ``second``, their dot product (differentiable) and the
    output row (centre * element pairs + element-pair index)."""

    first: torch.Tensor
    second: torch.Tensor
    dot: torch.Tensor
    row: torch.Tensor


class _RecomputedChunk(torch.autograd.Function):
    """Gradient checkpointing of one chunk: the forward keeps only the pair
    vectors, the backward recomputes the chunk and differentiates it. With
    ``create_graph`` the recomputation is itself recorded, so higher
    derivatives work. (torch.utils.checkpoint does the same but imports
    torch._dynamo on first use, which costs seconds at worker start.)"""

    @staticmethod
    def forward(ctx, features, vectors, *constants):
        ctx.features = features
        ctx.constants = constants
        ctx.save_for_backward(vectors)
        with torch.no_grad():
            return features(vectors, *constants)

    @staticmethod
    def backward(ctx, grad):
        (vectors,) = ctx.saved_tensors
        higher_order = torch.is_grad_enabled()
        with torch.enable_grad():
            source = vectors if higher_order else vectors.detach().requires_grad_(True)
            values = ctx.features(source, *ctx.constants)
            # A scalar output, not grad_outputs: the latter makes autograd
            # import torch.fx on first use (seconds at worker start).
            (vectors_grad,) = torch.autograd.grad((values * grad).sum(), source, create_graph=higher_order)
        return (None, vectors_grad, *([None] * len(ctx.constants)))


class SymmetryFunctionSet:
    """Computes the symmetry functions of ``parameters`` for every atom.

    >>> sfs = SymmetryFunctionSet(SymmetryFunctionParameters.default(["Cu"]))
    >>> g = sfs(atoms)                                   # (nAtoms, n_features), float64
    >>> pos = torch.tensor(atoms.positions, requires_grad=True)
    >>> g = sfs(atoms, positions=pos)                    # differentiable w.r.t. pos

    Feature layout: see :mod:`mlpotential.atomistic.symmetry_function_parameters`.
    """

    def __init__(
        self, parameters: SymmetryFunctionParameters, triples_per_chunk: int = DEFAULT_TRIPLES_PER_CHUNK
    ) -> None:
        self.parameters = parameters
        self.triples_per_chunk = int(triples_per_chunk)
        self._cutoff = CUTOFF_FUNCTIONS[parameters.cutoff_function]
        n = parameters.n_elements
        pair_table = torch.empty((n, n), dtype=torch.long)
        for a in range(n):
            for b in range(a + 1):
                pair_table[a, b] = pair_table[b, a] = a * (a + 1) // 2 + b
        self._pair_table = pair_table
        self._g2 = torch.tensor(parameters.g2, dtype=torch.float64).reshape(-1, 2)
        self._angular_terms = [
            terms
            for terms in (
                _AngularTerms.of(parameters.g4, 0, with_side=True),
                _AngularTerms.of(parameters.g5, len(parameters.g4), with_side=False),
            )
            if terms.size
        ]
        self._symbol_index = {symbol: k for k, symbol in enumerate(parameters.elements)}

    @property
    def n_features(self) -> int:
        return self.parameters.n_features

    @property
    def elements(self) -> tuple[str, ...]:
        return self.parameters.elements

    @property
    def cutoff(self) -> float:
        return self.parameters.cutoff

    def species(self, symbols: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        """Element indices (into :attr:`elements`) of ``symbols``; an element
        outside the set raises :class:`UnsupportedSystemError`."""
        try:
            index = [self._symbol_index[s] for s in symbols]
        except KeyError:
            missing = sorted(set(symbols) - set(self._symbol_index))
            raise UnsupportedSystemError(
                f"element(s) {', '.join(missing)} not covered; this model knows {', '.join(self.elements)}"
            ) from None
        return torch.tensor(index, dtype=torch.long, device=device)

    def neighbor_list(self, positions: torch.Tensor, cell: torch.Tensor, pbc: Sequence[bool]) -> NeighborList:
        """Pairs within the cutoff (see :func:`build_neighbor_list`)."""
        return build_neighbor_list(positions, cell, pbc, self.cutoff)

    def __call__(
        self,
        atoms,
        positions: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Descriptors (nAtoms, n_features) of an ``ase.Atoms``. Pass
        ``positions`` (Angstrom, a tensor, e.g. with ``requires_grad``) to
        differentiate; otherwise the atoms' positions are used."""
        if positions is None:
            positions = torch.as_tensor(np.asarray(atoms.positions), dtype=dtype, device=device)
        cell = torch.as_tensor(np.asarray(atoms.cell.array), dtype=positions.dtype, device=positions.device)
        species = self.species(atoms.get_chemical_symbols(), device=positions.device)
        return self.compute(positions, species, cell, tuple(bool(p) for p in atoms.pbc))

    def compute(
        self, positions: torch.Tensor, species: torch.Tensor, cell: torch.Tensor, pbc: Sequence[bool]
    ) -> torch.Tensor:
        """Descriptors from tensors: positions (N, 3) and cell (3, 3) in
        Angstrom, species (N,) element indices; differentiable with respect to
        positions and cell."""
        neighbors = self.neighbor_list(positions, cell, pbc)
        return self.from_pair_vectors(pair_vectors(positions, cell, neighbors), neighbors, species)

    def from_pair_vectors(self, vectors: torch.Tensor, neighbors: NeighborList, species: torch.Tensor) -> torch.Tensor:
        """Descriptors (N, n_features) from the pair vectors (P, 3) of
        ``neighbors`` (Angstrom); differentiable with respect to ``vectors``."""
        _check_distances(vectors)
        parts = []
        for centers, pairs in self._chunks(neighbors):
            args = (
                vectors[pairs],
                neighbors.center[pairs] - centers.start,
                species.index_select(0, neighbors.neighbor[pairs]),
                len(centers),
            )
            if vectors.requires_grad and torch.is_grad_enabled():
                parts.append(_RecomputedChunk.apply(self._features, *args))
            else:
                parts.append(self._features(*args))
        return torch.cat(parts) if parts else vectors.new_zeros((0, self.n_features))

    def with_pair_jacobian(
        self, vectors: torch.Tensor, neighbors: NeighborList, species: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptors G (N, F) and their derivatives with respect to each
        pair vector, J (P, F, 3) with ``J[p] = dG[center[p]] / d vectors[p]``
        (1/Angstrom), both in closed form, without a gradient graph.

        The derivative of G with respect to atom positions follows:
        dG_i/dr_m = sum over pairs p of centre i of J[p] (delta(m, neighbor[p])
        - delta(m, i)); periodic self-images cancel as they should.
        """
        _check_distances(vectors)
        values, jacobians = [], []
        with torch.no_grad():
            for centers, pairs in self._chunks(neighbors):
                chunk = _Pairs.of(
                    vectors[pairs].detach(),
                    neighbors.center[pairs] - centers.start,
                    species.index_select(0, neighbors.neighbor[pairs]),
                    len(centers),
                )
                features, jacobian = self._features_and_jacobian(chunk)
                values.append(features)
                jacobians.append(jacobian)
        if not values:
            return vectors.new_zeros((0, self.n_features)), vectors.new_zeros((0, self.n_features, 3))
        return torch.cat(values), torch.cat(jacobians)

    def _chunks(self, neighbors: NeighborList) -> Iterator[tuple[range, slice]]:
        """(range of centres, slice of pairs) pieces with about
        ``triples_per_chunk`` triples each (pairs are sorted by centre)."""
        n_atoms = neighbors.n_atoms
        per_center = torch.bincount(neighbors.center, minlength=n_atoms).cpu()
        pair_end = torch.cumsum(per_center, 0)
        work = per_center * (per_center - 1) // 2 if self._angular_terms else per_center
        cumulative = torch.cumsum(work, 0).numpy()
        start = 0
        while start < n_atoms:
            base = cumulative[start - 1] if start else 0
            stop = int(np.searchsorted(cumulative, base + self.triples_per_chunk, side="right"))
            stop = min(max(stop, start + 1), n_atoms)
            first_pair = int(pair_end[start - 1]) if start else 0
            yield range(start, stop), slice(first_pair, int(pair_end[stop - 1]))
            start = stop

    def _features(
        self, vectors: torch.Tensor, center: torch.Tensor, neighbor_species: torch.Tensor, n_centers: int
    ) -> torch.Tensor:
        """Features (n_centers, F) of consecutive centres from their pairs."""
        pairs = _Pairs.of(vectors, center, neighbor_species, n_centers)
        blocks = []
        if self.parameters.g2:
            blocks.append(self._radial(pairs, with_jacobian=False)[0])
        if self._angular_terms:
            blocks.append(self._angular(pairs, with_jacobian=False)[0])
        return torch.cat(blocks, dim=1)

    def _features_and_jacobian(self, pairs: _Pairs) -> tuple[torch.Tensor, torch.Tensor]:
        values, jacobians = [], []
        if self.parameters.g2:
            value, jacobian = self._radial(pairs, with_jacobian=True)
            values.append(value)
            jacobians.append(jacobian)
        if self._angular_terms:
            value, jacobian = self._angular(pairs, with_jacobian=True)
            values.append(value)
            jacobians.append(jacobian)
        return torch.cat(values, dim=1), torch.cat(jacobians, dim=1)

    def _radial(self, pairs: _Pairs, with_jacobian: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G2 blocks (n_centers, elements * n_g2) and, if asked, their
        Jacobian with respect to the pair vectors (P, elements * n_g2, 3)."""
        p = self.parameters
        g2 = self._g2.to(pairs.vectors)
        eta, shift = g2[:, 0], g2[:, 1]
        offset = pairs.distance[:, None] - shift
        gauss = torch.exp(-eta * offset * offset)
        cutoff_value = self._cutoff.value(pairs.distance, p.cutoff)[:, None]
        terms = gauss * cutoff_value
        radial = terms.new_zeros((pairs.n_centers * p.n_elements, len(p.g2)))
        radial.index_add_(0, pairs.center * p.n_elements + pairs.species, terms)
        radial = radial.view(pairs.n_centers, -1)
        if not with_jacobian:
            return radial, None
        slope = -2.0 * eta * offset * terms + gauss * self._cutoff.derivative(pairs.distance, p.cutoff)[:, None]
        unit = pairs.vectors / pairs.distance[:, None]
        n_pairs = pairs.vectors.shape[0]
        jacobian = terms.new_zeros((n_pairs, p.n_elements, len(p.g2), 3))
        jacobian[torch.arange(n_pairs, device=terms.device), pairs.species] = slope[:, :, None] * unit[:, None, :]
        return radial, jacobian.view(n_pairs, -1, 3)

    def _angular(self, pairs: _Pairs, with_jacobian: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """G4/G5 blocks (n_centers, element pairs * n_angular) and, if asked,
        their Jacobian with respect to the pair vectors."""
        p = self.parameters
        n_pairs = pairs.vectors.shape[0]
        angular = pairs.vectors.new_zeros((pairs.n_centers, p.n_element_pairs, p.n_angular_per_pair))
        jacobian = None
        if with_jacobian:
            jacobian = pairs.vectors.new_zeros((n_pairs * p.n_element_pairs, p.n_angular_per_pair, 3))
        pair_values = self._pair_values(pairs)
        for terms in self._angular_terms:
            triples = self._triples(pairs, within_cutoff=terms.with_side)
            if triples is None:
                continue
            columns = terms.columns.to(pairs.vectors.device)
            grids = _angular_grid(
                terms,
                pair_values[terms.with_side].index_select(0, triples.first),
                pair_values[terms.with_side].index_select(0, triples.second),
                triples.dot,
                self._cutoff,
                p.cutoff,
                with_derivatives=with_jacobian,
            )
            value = grids[0].index_select(1, columns)
            summed = value.new_zeros((pairs.n_centers * p.n_element_pairs, terms.size)).index_add_(
                0, triples.row, value
            )
            block = slice(terms.offset, terms.offset + terms.size)
            angular[:, :, block] = summed.view(pairs.n_centers, p.n_element_pairs, -1)
            if with_jacobian:
                d_first, d_second, d_dot = (grid.index_select(1, columns) for grid in grids[1:])
                vector_j = pairs.vectors.index_select(0, triples.first)[:, None, :]
                vector_k = pairs.vectors.index_select(0, triples.second)[:, None, :]
                # f depends on d_j through r_j^2 and d_j . d_k only.
                on_first = 2.0 * d_first[:, :, None] * vector_j + d_dot[:, :, None] * vector_k
                on_second = 2.0 * d_second[:, :, None] * vector_k + d_dot[:, :, None] * vector_j
                pair_type = triples.row % p.n_element_pairs
                jacobian[:, block].index_add_(0, triples.first * p.n_element_pairs + pair_type, on_first)
                jacobian[:, block].index_add_(0, triples.second * p.n_element_pairs + pair_type, on_second)
        angular = angular.view(pairs.n_centers, -1)
        if jacobian is not None:
            jacobian = jacobian.view(n_pairs, -1, 3)
        return angular, jacobian

    def _pair_values(self, pairs: _Pairs) -> dict[bool, torch.Tensor]:
        """Per pair, for each angular block (keyed by ``with_side``): r^2, 1/r,
        then exp(-eta r^2) f_c(r) and its derivative with respect to r^2 for
        each distinct eta, so that one row gather serves a triple's side."""
        tables = {}
        cutoff_value = self._cutoff.value(pairs.distance, self.parameters.cutoff)[:, None]
        cutoff_slope = self._cutoff.derivative(pairs.distance, self.parameters.cutoff)[:, None]
        for terms in self._angular_terms:
            etas = torch.tensor(terms.etas, dtype=pairs.vectors.dtype, device=pairs.vectors.device)
            gauss = torch.exp(-pairs.distance_sq[:, None] * etas)
            weight = gauss * cutoff_value
            # d/d(r^2) [exp(-eta r^2) f_c(r)] = -eta w + exp(-eta r^2) f_c'(r) / (2 r)
            slope = -etas * weight + gauss * cutoff_slope / (2.0 * pairs.distance[:, None])
            tables[terms.with_side] = torch.cat(
                [pairs.distance_sq[:, None], (1.0 / pairs.distance)[:, None], weight, slope], dim=1
            )
        return tables

    def _triples(self, pairs: _Pairs, within_cutoff: bool) -> _Triples | None:
        """The chunk's triples. The pairs of each centre are laid out in a
        padded (centre, slot) grid; one batched matrix product gives every
        neighbour-neighbour dot product, and the triples are picked from its
        upper triangle (for G4 only those with r_jk below the cutoff)."""
        p = self.parameters
        device = pairs.vectors.device
        n_centers = pairs.n_centers
        per_center = torch.bincount(pairs.center, minlength=n_centers)
        width = int(per_center.max()) if pairs.center.numel() else 0
        if width < 2:
            return None
        first_pair = torch.cumsum(per_center, 0) - per_center
        n_pairs = pairs.center.shape[0]
        pair_index = torch.arange(n_pairs, device=device)
        slot = pairs.center * width + pair_index - first_pair.index_select(0, pairs.center)
        grid = pairs.vectors.new_zeros((n_centers * width, 3)).index_copy(0, slot, pairs.vectors)
        grid = grid.view(n_centers, width, 3)
        dot = torch.bmm(grid, grid.transpose(1, 2)).view(-1)
        upper_j, upper_k = torch.triu_indices(width, width, 1, device=device)
        with torch.no_grad():
            chosen = upper_k[None, :] < per_center[:, None]
            if within_cutoff:
                grid_distance_sq = pairs.distance_sq.new_zeros(n_centers * width).index_copy(0, slot, pairs.distance_sq)
                grid_distance_sq = grid_distance_sq.view(n_centers, width)
                upper_dot = dot.detach().view(n_centers, width * width).index_select(1, upper_j * width + upper_k)
                side_sq = (
                    grid_distance_sq.index_select(1, upper_j)
                    + grid_distance_sq.index_select(1, upper_k)
                    - 2.0 * upper_dot
                )
                chosen &= side_sq < p.cutoff * p.cutoff
            picked = chosen.view(-1).nonzero().squeeze(1)
        n_upper = upper_j.shape[0]
        center = torch.div(picked, n_upper, rounding_mode="floor")
        which = picked - center * n_upper
        j = upper_j.index_select(0, which)
        k = upper_k.index_select(0, which)
        first = first_pair.index_select(0, center) + j
        second = first_pair.index_select(0, center) + k
        row = center
        if p.n_elements > 1:
            pair_type = self._pair_table.to(device)[
                pairs.species.index_select(0, first), pairs.species.index_select(0, second)
            ]
            row = center * p.n_element_pairs + pair_type
        triple_dot = dot.index_select(0, (center * width + j) * width + k)
        return _Triples(first, second, triple_dot, row)


def position_jacobian(neighbors: NeighborList, pair_jacobian: torch.Tensor) -> torch.Tensor:
    """The dense derivative of every atom's descriptors with respect to every
    atom's position, (N centres, N atoms, 3, F) in 1/Angstrom (DScribe's
    layout for ``derivatives``), from :meth:`SymmetryFunctionSet.with_pair_jacobian`'s
    sparse form. Memory grows as N^2: for small systems."""
    n_atoms = neighbors.n_atoms
    n_features = pair_jacobian.shape[1]
    per_pair = pair_jacobian.transpose(1, 2)  # (P, 3, F)
    dense = pair_jacobian.new_zeros((n_atoms * n_atoms, 3, n_features))
    dense.index_add_(0, neighbors.center * n_atoms + neighbors.neighbor, per_pair)
    dense.index_add_(0, neighbors.center * (n_atoms + 1), -per_pair)
    return dense.view(n_atoms, n_atoms, 3, n_features)


def _angular_grid(
    terms: _AngularTerms,
    side_j: torch.Tensor,
    side_k: torch.Tensor,
    dot: torch.Tensor,
    cutoff: Cutoff,
    cutoff_radius: float,
    with_derivatives: bool,
) -> list[torch.Tensor]:
    """Per triple, the (eta, power) grid of G4 (``terms.with_side``) or G5
    terms, (T, n_etas * n_powers); with derivatives also their partial
    derivatives with respect to r_ij^2, r_ik^2 and d_ij . d_ik.

    ``side_j``/``side_k`` are rows of the pair table: r^2, 1/r, weights w_e,
    slopes dw_e/d(r^2)."""
    n_etas = len(terms.etas)
    x_j, x_k = side_j[:, 0], side_k[:, 0]
    inverse_jk = side_j[:, 1] * side_k[:, 1]
    cosine = dot * inverse_jk
    weight_j, weight_k = side_j[:, 2 : 2 + n_etas], side_k[:, 2 : 2 + n_etas]
    radial = weight_j * weight_k
    opposite = radial.new_ones(())
    if terms.with_side:
        etas = torch.tensor(terms.etas, dtype=dot.dtype, device=dot.device)
        opposite_sq = (x_j + x_k - 2.0 * dot).clamp(min=0.0)
        opposite_distance = opposite_sq.sqrt()
        opposite_gauss = torch.exp(-opposite_sq[:, None] * etas)
        opposite = opposite_gauss * cutoff.value(opposite_distance, cutoff_radius)[:, None]
    power_values, power_slopes = _half_cosine_powers(cosine, terms.powers, with_derivatives)
    powers = torch.stack(power_values, dim=1)
    angular_radial = radial * opposite

    def grid(radial_part: torch.Tensor, angular_part: torch.Tensor) -> torch.Tensor:
        # The 2 of 2^(1-zeta) (1 + lambda cos)^zeta = 2 ((1 + lambda cos) / 2)^zeta.
        return (2.0 * radial_part[:, :, None] * angular_part[:, None, :]).reshape(dot.shape[0], -1)

    value = grid(angular_radial, powers)
    if not with_derivatives:
        return [value]
    slopes = torch.stack(power_slopes, dim=1)
    slope_j, slope_k = side_j[:, 2 + n_etas :], side_k[:, 2 + n_etas :]
    if terms.with_side:
        # d/d(s^2) [exp(-eta s^2) f_c(s)] with s = r_jk, s^2 = r_j^2 + r_k^2 - 2 d_j . d_k
        safe = opposite_distance.clamp(min=1e-12)
        opposite_slope = (
            -etas * opposite
            + opposite_gauss * (cutoff.derivative(opposite_distance, cutoff_radius) / (2.0 * safe))[:, None]
        )
        side_term = radial * opposite_slope
    else:
        side_term = torch.zeros_like(radial)
    d_first = grid(slope_j * weight_k * opposite + side_term, powers) + grid(
        angular_radial, slopes * (-0.5 * cosine / x_j)[:, None]
    )
    d_second = grid(weight_j * slope_k * opposite + side_term, powers) + grid(
        angular_radial, slopes * (-0.5 * cosine / x_k)[:, None]
    )
    d_dot = grid(-2.0 * side_term, powers) + grid(angular_radial, slopes * inverse_jk[:, None])
    return [value, d_first, d_second, d_dot]


def _half_cosine_powers(
    cosine: torch.Tensor, powers: Sequence[tuple[float, float]], with_derivatives: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """b^zeta with b = (1 + lambda cos) / 2 for each (zeta, lambda), and if
    asked d(b^zeta)/d cos = zeta lambda / 2 b^(zeta - 1). Integer exponents by
    repeated squaring, much cheaper than a general power."""
    cache: dict[tuple[float, float], torch.Tensor] = {}
    values, slopes = [], []
    for zeta, lam in powers:
        if (1.0, lam) not in cache:
            cache[(1.0, lam)] = 0.5 + (0.5 * lam) * cosine
        values.append(_power(cache, zeta, lam))
        if with_derivatives:
            slopes.append((0.5 * zeta * lam) * _power(cache, zeta - 1.0, lam))
    return values, slopes


def _power(cache: dict[tuple[float, float], torch.Tensor], exponent: float, lam: float) -> torch.Tensor:
    known = cache.get((exponent, lam))
    if known is not None:
        return known
    base = cache[(1.0, lam)]
    if exponent == 0.0:
        value = torch.ones_like(base)
    elif exponent != int(exponent):
        # For collinear neighbours (1 + lambda cos) is 0 but rounds to about
        # -1e-16, and a fractional power of that is NaN. The finite limit is
        # 0: for the value (exponent > 0) and for the slope term (exponent < 0
        # only for zeta < 1, excluded; there the slope of cos vanishes too).
        # The inner where keeps the gradient of the masked branch finite.
        positive = base > 0.0
        value = torch.where(positive, torch.where(positive, base, 1.0) ** exponent, 0.0)
    else:
        half = _power(cache, float(int(exponent) // 2), lam)
        value = half * half if int(exponent) % 2 == 0 else half * half * base
    cache[(exponent, lam)] = value
    return value


def _check_distances(vectors: torch.Tensor) -> None:
    if vectors.shape[0] and float((vectors.detach() ** 2).sum(1).min()) < 1e-12:
        raise UnsupportedSystemError("two atoms (or an atom and a periodic image) coincide", "coords")
