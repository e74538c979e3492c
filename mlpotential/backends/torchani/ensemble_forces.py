"""Every member's forces of a torchani ANI ensemble without a backward pass
through the AEV per member.

An ANI energy is a sum of atomic networks applied to atomic environment
vectors (AEVs). Each AEV row is a sum of terms: a radial term per pair of
atoms within the radial cutoff (a function of the pair's distance) and an
angular term per triple (a central atom and two neighbours within the
angular cutoff: a function of the two distances and the two difference
vectors). Differentiating each member through torchani's graph repeats the
AEV's backward pass, once per member. Here instead:

1. each member's derivative by the AEV, dE_m/dAEV, comes from one backward
   pass through the members' atomic networks only (from their first layers'
   outputs, detached), times the first layers' weights, and only for the
   AEV features the system can have: those of its elements and pairs of
   elements (for water in ANI-2x, 128 of 1008);
2. the derivatives of every radial and angular term by its own inputs are
   computed in closed form, once, for all pairs and triples;
3. the members' dE_m/dAEV are gathered to the pairs and triples and
   contracted with those derivatives, for all members at once, giving each
   member's derivative by every pair's difference vector; these are summed
   into the atoms' gradients and, for stress, into the virial.

The result equals the members' autograd gradients to floating-point
rounding. The closed forms are those of torchani 2.9's ``ANIRadial``,
``ANIAngular`` and ``CutoffCosine`` (the built-in ANI models); a model of any
other structure is refused by :func:`ensemble_forces_for` and needs one
backward pass per member.

Work on triples goes in blocks of :data:`TRIPLE_BLOCK` through buffers that
are reused: tensors of all triples at once (80 MB of gathered cotangents for
a 648-atom water box) spent more time in the page faults of their fresh
memory than in arithmetic.

Units: the model's own (ANI: Hartree and Angstrom), so gradients are in
Hartree/Angstrom and virials in Hartree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor

# torchani warns on import that its optional CUDA extensions are absent; the
# pure-PyTorch code paths used here do not need them.
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

from torchani.aev import AEVComputer, ANIAngular, ANIRadial  # noqa: E402
from torchani.arch import ANI  # noqa: E402
from torchani.cutoffs import CutoffCosine  # noqa: E402
from torchani.neighbors import Neighbors, Triples, discard_outside_cutoff, neighbors_to_triples  # noqa: E402
from torchani.nn import ANINetworks, AtomicNetwork, Ensemble  # noqa: E402
from torchani.potentials import NNPotential  # noqa: E402

TRIPLE_BLOCK = 4096
"""Triples handled at a time: a block's gathered cotangents (4096 triples x
8 members x 32 features, 4 MB in float32) stay in the cache."""

GATHER_COST = 50
"""A gathered weight costs about as much as this many multiply-adds of a
matrix product: gathering a first layer's columns for the system's AEV
features pays only when it saves more multiply-adds per gathered weight (the
648-atom water box: thousands; ethanol, a few atoms per element: under 20,
where gathering made a step about 15 % slower)."""


@dataclass(frozen=True)
class MemberGradients:
    """Each member's energy derivatives: ``positions`` (members, atoms, 3) by
    the atoms' positions; ``virial`` (members, 3, 3) by a symmetric strain of
    positions and cell, when asked for."""

    positions: Tensor
    virial: Tensor | None


@dataclass
class Observed:
    """What one call of the model showed: its neighbours, the atoms' element
    indices, and per member the outputs of its atomic networks' first layers
    (leaves that require grad), as (element index, output) in the order of
    the calls."""

    neighbors: Neighbors | None = None
    elem_idxs: Tensor | None = None
    first_layer_outputs: dict[int, list[tuple[int, Tensor]]] = field(default_factory=dict)


class _Rows(NamedTuple):
    """Each member's derivative by the AEV features the system can have, as
    the rows its terms are added into: one block of rows per atom and element
    of the system (radial) or pair of its elements (angular)."""

    radial: Tensor  #: (atoms, blocks, members, radial features)
    angular: Tensor  #: (atoms, blocks, members, angular features)
    radial_blocks: Tensor  #: element index -> its block, (elements,)
    angular_blocks: Tensor  #: element pair index (``triu_index``) -> its block, (element pairs,)


class EnsembleForces:
    """All members' gradients of a torchani ANI ensemble (see the module's
    docstring); made by :func:`ensemble_forces_for`."""

    def __init__(self, model: ANI) -> None:
        nnp = model.potentials["nnp"]
        self.computer: AEVComputer = nnp.aev_computer
        self.neighborlist: torch.nn.Module = model.neighborlist
        # Per member, its atomic networks in the order of the element indices.
        self.networks = [list(member.atomics.values()) for member in nnp.neural_networks.members]

    @contextmanager
    def observe(self) -> Iterator[Observed]:
        """Watch one call of the model: keep its neighbours and detach the
        output of every atomic network's first layer, as a leaf for
        :meth:`gradients`. The model's output does not change by a bit."""
        observed = Observed()

        def keep_neighbors(_module: torch.nn.Module, args: tuple[Any, ...], neighbors: Neighbors) -> None:
            observed.neighbors, observed.elem_idxs = neighbors, args[1]

        def detach_output(member: int, element: int, _module: torch.nn.Module, _args: Any, output: Tensor) -> Tensor:
            leaf = output.detach().requires_grad_(True)
            observed.first_layer_outputs.setdefault(member, []).append((element, leaf))
            return leaf

        handles = [self.neighborlist.register_forward_hook(keep_neighbors)]
        for member, networks in enumerate(self.networks):
            for element, network in enumerate(networks):
                hook = partial(detach_output, member, element)
                handles.append(_first_layer(network).register_forward_hook(hook))
        try:
            yield observed
        finally:
            for handle in handles:
                handle.remove()

    def gradients(self, observed: Observed, member_energies: Sequence[Tensor], virial: bool) -> MemberGradients:
        """The members' gradients (Hartree/Angstrom; virial in Hartree) of the
        call ``observed`` watched, whose members returned ``member_energies``
        (in the order of the members)."""
        if (
            observed.neighbors is None
            or observed.elem_idxs is None
            or len(observed.first_layer_outputs) != len(self.networks)
        ):
            raise RuntimeError("the model did not run its neighbour list and its networks as expected")
        elem_idxs = observed.elem_idxs.view(-1)
        rows = self._aev_cotangents(observed.first_layer_outputs, member_energies, elem_idxs)
        neighbors = discard_outside_cutoff(observed.neighbors, self.computer.radial.cutoff)
        pairs = Neighbors(neighbors.indices, neighbors.distances.detach(), neighbors.diff_vectors.detach())
        vector_gradients = self._radial_vector_gradients(pairs, elem_idxs, rows)
        self._add_angular_vector_gradients(pairs, elem_idxs, rows, vector_gradients)
        return MemberGradients(
            positions=_atom_gradients(pairs.indices, vector_gradients, elem_idxs.shape[0]),
            virial=_virials(pairs.diff_vectors, vector_gradients) if virial else None,
        )

    def _aev_cotangents(
        self,
        first_layer_outputs: dict[int, list[tuple[int, Tensor]]],
        member_energies: Sequence[Tensor],
        elem_idxs: Tensor,
    ) -> _Rows:
        """Each member's derivative by the AEV features of the system's
        elements: a backward pass through that member's networks down to
        their first layers' outputs, times those layers' weights (an AEV row
        x enters as x W^T + b)."""
        radial_blocks, angular_blocks, columns = _feature_blocks(self.computer, elem_idxs)
        # Each member's energy depends on its own leaves only, so one backward pass of the members' sum
        # gives every member's derivatives.
        leaves = [
            (member, element, output)
            for member in range(len(member_energies))
            for element, output in first_layer_outputs[member]
        ]
        gradients = torch.autograd.grad(torch.stack(list(member_energies)).sum(), [leaf for *_, leaf in leaves])
        by_element: dict[int, list[Tensor]] = {}
        for (member, element, _), gradient in zip(leaves, gradients):
            weight = _first_layer(self.networks[member][element]).weight
            by_element.setdefault(element, []).append(_input_gradient(gradient, weight, columns))
        atoms, members = elem_idxs.shape[0], len(member_energies)
        shapes = [
            (int((blocks >= 0).sum()), term.num_feats)
            for blocks, term in ((radial_blocks, self.computer.radial), (angular_blocks, self.computer.angular))
        ]
        radial, angular = (member_energies[0].new_zeros((atoms, count, members, width)) for count, width in shapes)
        for element, gradients in by_element.items():
            # An element's networks read the rows of its atoms in this order (torchani's ANINetworks).
            selected = (elem_idxs == element).nonzero().view(-1)
            radial_part, angular_part = torch.stack(gradients, dim=1).split([c * w for c, w in shapes], 2)
            radial.index_copy_(0, selected, radial_part.unflatten(2, shapes[0]).transpose(1, 2))
            angular.index_copy_(0, selected, angular_part.unflatten(2, shapes[1]).transpose(1, 2))
        return _Rows(radial, angular, radial_blocks, angular_blocks)

    def _radial_vector_gradients(self, pairs: Neighbors, elem_idxs: Tensor, rows: _Rows) -> Tensor:
        """Each member's derivative by each pair's difference vector through
        the radial terms, (pairs, 3, members). A pair's terms are added to the
        row of each of its atoms for the other atom's element (torchani's
        ``_collect_radial``) and depend on its vector through its length."""
        first, second = pairs.indices
        blocks, flat_rows = rows.radial.shape[1], rows.radial.flatten(0, 1)
        cotangents = flat_rows.index_select(0, first * blocks + rows.radial_blocks[elem_idxs[second]])
        cotangents += flat_rows.index_select(0, second * blocks + rows.radial_blocks[elem_idxs[first]])
        slopes = _radial_term_slopes(self.computer.radial, pairs.distances)
        by_distance = torch.bmm(slopes.unsqueeze(1), cotangents.transpose(1, 2))
        units = pairs.diff_vectors / pairs.distances.unsqueeze(-1)
        return units.unsqueeze(-1) * by_distance

    def _add_angular_vector_gradients(
        self, pairs: Neighbors, elem_idxs: Tensor, rows: _Rows, vector_gradients: Tensor
    ) -> None:
        """Add each member's derivative by each pair's difference vector
        through the angular terms to ``vector_gradients`` (pairs, 3, members),
        a block of triples at a time."""
        angular = self.computer.angular
        close = (pairs.distances <= angular.cutoff).nonzero().flatten()
        indices = pairs.indices.index_select(1, close)
        triples = neighbors_to_triples(
            Neighbors(indices, pairs.distances.index_select(0, close), pairs.diff_vectors.index_select(0, close))
        )
        row_index = self._angular_rows(triples, indices, elem_idxs, rows)
        pair_index = close[triples.side_idxs]
        factors = _triple_factors(angular, triples)
        rows_of_blocks = rows.angular.flatten(0, 1)
        count, members = row_index.shape[0], rows_of_blocks.shape[1]
        flat_gradients = vector_gradients.flatten(1)
        block_size = min(count, TRIPLE_BLOCK)
        gathered = rows_of_blocks.new_empty((block_size, *rows_of_blocks.shape[1:]))
        products = rows_of_blocks.new_empty((block_size, 3, angular.shifts.shape[0], angular.sections.shape[0]))
        for start in range(0, count, TRIPLE_BLOCK):
            block = slice(start, start + TRIPLE_BLOCK)
            size = min(TRIPLE_BLOCK, count - start)
            torch.index_select(rows_of_blocks, 0, row_index[block], out=gathered[:size])
            radial, radial_slopes = factors.radial[block].unsqueeze(2), factors.radial_slopes[block].unsqueeze(2)
            angle, angle_slopes = factors.angle[block].unsqueeze(1), factors.angle_slopes[block].unsqueeze(1)
            torch.mul(radial, angle, out=products[:size, 0])
            torch.mul(radial_slopes, angle, out=products[:size, 1])
            torch.mul(radial, angle_slopes, out=products[:size, 2])
            # The cotangents contracted with each of the three products: (3, members, triples), so
            # that the elementwise work below runs along the triples.
            contracted = torch.bmm(products[:size].flatten(2, 3), gathered[:size].transpose(1, 2))
            contracted = contracted.permute(1, 2, 0).contiguous()
            alpha, beta, gamma = factors.coefficients[..., block].unsqueeze(3)
            # (the triple's two pairs, 3, members, triples)
            gradients = alpha * contracted[0]
            gradients.addcmul_(beta, contracted[1]).addcmul_(gamma, contracted[2])
            rows_of_pairs = gradients.permute(0, 3, 1, 2).reshape(2 * size, 3 * members)
            flat_gradients.index_add_(0, pair_index[:, block].flatten(), rows_of_pairs)

    def _angular_rows(self, triples: Triples, indices: Tensor, elem_idxs: Tensor, rows: _Rows) -> Tensor:
        """The row of ``rows.angular`` (atoms and blocks flattened) each
        triple's terms are added into: its central atom's, for its side
        atoms' pair of elements (torchani's ``_collect_angular``)."""
        pair_species = elem_idxs[indices][:, triples.side_idxs]
        species = torch.where(triples.diff_signs == 1, pair_species[1], pair_species[0])
        blocks = rows.angular_blocks[self.computer.triu_index[species[0], species[1]]]
        return triples.central_idxs * rows.angular.shape[1] + blocks


def ensemble_forces_for(model: torch.nn.Module) -> EnsembleForces | None:
    """:class:`EnsembleForces` for a torchani ANI ensemble of exactly the
    structure it relies on; ``None`` for any other model (TorchScript, other
    potentials, cuAEV, other terms or cutoff functions, overridden methods,
    shared networks, inactive members), which then needs one backward pass
    per member."""
    if not isinstance(model, ANI) or type(model).forward is not ANI.forward:
        return None
    if type(model).compute_from_neighbors is not ANI.compute_from_neighbors:
        return None
    enabled = [name for name, potential in model.potentials.items() if potential._enabled]
    nnp = model.potentials["nnp"] if enabled == ["nnp"] else None
    if type(nnp) is not NNPotential:
        return None
    computer, ensemble = nnp.aev_computer, nnp.neural_networks
    if (
        type(computer) is not AEVComputer
        or computer.strategy != "pyaev"
        or computer.neighborlist is not model.neighborlist
    ):
        return None
    radial, angular = computer.radial, computer.angular
    if type(radial) is not ANIRadial or type(angular) is not ANIAngular:
        return None
    if type(radial.cutoff_fn) is not CutoffCosine or type(angular.cutoff_fn) is not CutoffCosine:
        return None
    if type(ensemble) is not Ensemble or ensemble.active_members_idxs != list(range(len(ensemble.members))):
        return None
    if any(type(member) is not ANINetworks or member.out_dim != 1 for member in ensemble.members):
        return None
    # Every member its own network per element (no aliases), each called once, on its element's atoms,
    # and each a torchani network whose first layer is linear.
    networks = [network for member in ensemble.members for network in member.atomics.values()]
    if len({id(network) for network in networks}) != len(ensemble.members) * computer.num_species:
        return None
    if any(
        type(network) is not AtomicNetwork or type(_first_layer(network)) is not torch.nn.Linear for network in networks
    ):
        return None
    return EnsembleForces(model)


def _feature_blocks(computer: AEVComputer, elem_idxs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The AEV features a system can have other than zero: the radial ones
    of its elements and the angular ones of its pairs of elements. Returns
    each element's block (radial; -1: absent), (elements,), each element
    pair's block (angular), (element pairs,), and the AEV columns of the
    blocks, radial then angular."""
    elements = torch.unique(elem_idxs)
    element_pairs = torch.unique(computer.triu_index[elements.unsqueeze(1), elements])
    columns = torch.cat(
        [
            _columns(elements, computer.radial.num_feats, 0),
            _columns(element_pairs, computer.angular.num_feats, computer.radial_len),
        ]
    )
    return (
        _block_numbers(elements, computer.num_species),
        _block_numbers(element_pairs, computer.num_species_pairs),
        columns,
    )


def _block_numbers(present: Tensor, size: int) -> Tensor:
    numbers = torch.full((size,), -1, dtype=torch.long, device=present.device)
    numbers[present] = torch.arange(len(present), device=present.device)
    return numbers


def _columns(blocks: Tensor, width: int, offset: int) -> Tensor:
    """The AEV columns of ``blocks`` of ``width`` features each, from ``offset``."""
    return offset + (blocks.unsqueeze(1) * width + torch.arange(width, device=blocks.device)).flatten()


def _input_gradient(gradient: Tensor, weight: Tensor, columns: Tensor) -> Tensor:
    """``gradient @ weight[:, columns]``: the derivative by a linear layer's
    input, restricted to ``columns``, from the derivative by its output (rows:
    atoms), by the cheaper way (:data:`GATHER_COST`)."""
    saved_per_gathered = gradient.shape[0] * (weight.shape[1] - columns.shape[0]) / columns.shape[0]
    if saved_per_gathered > GATHER_COST:
        return gradient @ weight.index_select(1, columns)
    return (gradient @ weight).index_select(1, columns)


def _first_layer(network: AtomicNetwork) -> torch.nn.Module:
    """The layer that reads a torchani atomic network's input (the AEV)."""
    return network.layers[0] if len(network.layers) else network.final_layer


class _TripleFactors(NamedTuple):
    """What the derivatives of the triples' angular terms by their pairs'
    difference vectors are made of (:func:`_triple_factors`)."""

    radial: Tensor  #: (triples, shifts)
    radial_slopes: Tensor  #: (triples, shifts), by either distance
    angle: Tensor  #: (triples, sections)
    angle_slopes: Tensor  #: (triples, sections), by the cosine
    coefficients: Tensor  #: alpha, beta and gamma: (3, the triple's two pairs, 3, triples)


def _triple_factors(angular: ANIAngular, triples: Triples) -> _TripleFactors:
    """torchani (``_BaseAngular.forward``) computes a triple's terms as
    ``radial(d1, d2)[s] * angle(cos)[z] * fc(d1) * fc(d2)`` (feature
    ``s * len(z) + z``), with ``cos = u1 . u2 / (d1 d2)``, where each ``u``
    is a pair's difference vector ``v`` times the triple's sign for that pair
    and ``d = |v|``. By the chain rule, the derivative of the terms by each
    component of ``v1`` and ``v2`` is ``alpha radial x angle + beta radial' x
    angle + gamma radial x angle'``, with coefficients per triple.
    """
    distances = triples.distances
    d1, d2 = distances
    product = torch.clamp(d1 * d2, min=1e-10)
    # Vectors as (the two pairs, 3, triples): the work below runs along the triples.
    vectors = triples.diff_vectors.transpose(1, 2).contiguous()
    cosines = (vectors[0] * vectors[1]).sum(0) / product
    fc, fc_slopes = _cosine_cutoff(distances, angular.cutoff)
    f = fc[0] * fc[1]
    signs = triples.diff_signs.to(vectors.dtype).unsqueeze(1)

    coefficients = vectors.new_empty((3, *vectors.shape))
    # d|v|/dv: the unit vectors of the pairs' own vectors.
    units = vectors * signs / distances.unsqueeze(1)
    # Through fc(d1) fc(d2) and through radial(d1, d2), by the distances.
    torch.mul((fc_slopes * fc.flip(0)).unsqueeze(1), units, out=coefficients[0])
    torch.mul(f, units, out=coefficients[1])
    # Through cos, by the vectors (d cos/d u1 = u2 / (d1 d2)) and by the distances.
    by_cosine = vectors.flip(0) * signs - (cosines * distances.flip(0)).unsqueeze(1) * units
    torch.mul(f / product, by_cosine, out=coefficients[2])
    return _TripleFactors(*_angular_radial(angular, d1, d2), *_angular_angle(angular, cosines), coefficients)


def _cosine_cutoff(distances: Tensor, cutoff: float) -> tuple[Tensor, Tensor]:
    """``CutoffCosine``, 0.5 cos(pi d / cutoff) + 0.5, and its derivative by d (1/Angstrom)."""
    phase = distances * (math.pi / cutoff)
    return 0.5 * torch.cos(phase) + 0.5, (-0.5 * math.pi / cutoff) * torch.sin(phase)


def _radial_term_slopes(radial: ANIRadial, distances: Tensor) -> Tensor:
    """The derivative of ``ANIRadial``'s terms, 0.25 exp(-eta (d - shift)^2)
    fc(d), by the distance (pairs, features; 1/Angstrom)."""
    offsets = distances.unsqueeze(-1) - radial.shifts
    gaussians = 0.25 * torch.exp(-radial.eta * offsets**2)
    fc, fc_slopes = _cosine_cutoff(distances.unsqueeze(-1), radial.cutoff)
    return gaussians * (fc_slopes - 2 * radial.eta * offsets * fc)


def _angular_radial(angular: ANIAngular, d1: Tensor, d2: Tensor) -> tuple[Tensor, Tensor]:
    """``ANIAngular.compute_radial``, exp(-eta ((d1 + d2)/2 - shift)^2), and
    its derivative by either distance (triples, shifts)."""
    offsets = ((d1 + d2) / 2).unsqueeze(-1) - angular.shifts
    values = torch.exp(-angular.eta * offsets**2)
    return values, -angular.eta * offsets * values


def _angular_angle(angular: ANIAngular, cosines: Tensor) -> tuple[Tensor, Tensor]:
    """``ANIAngular.compute_cos_angles``, 2 ((1 + cos(acos(0.95 c) - section))/2)^zeta,
    and its derivative by the cosine c (triples, sections)."""
    deviations = torch.acos(0.95 * cosines).unsqueeze(-1) - angular.sections
    bases = (1 + torch.cos(deviations)) / 2
    powers = bases ** (angular.zeta - 1)
    acos_slopes = 0.95 / torch.sqrt(1 - (0.95 * cosines) ** 2)
    slopes = angular.zeta * powers * torch.sin(deviations) * acos_slopes.unsqueeze(-1)
    return 2 * bases * powers, slopes


def _atom_gradients(indices: Tensor, vector_gradients: Tensor, atoms: int) -> Tensor:
    """(members, atoms, 3) from the derivatives by the pairs' difference
    vectors (pairs, 3, members); a pair's vector is its first atom's position
    minus its second's (plus a lattice vector)."""
    first, second = indices
    gradients = vector_gradients.new_zeros((atoms, *vector_gradients.shape[1:]))
    gradients.index_add_(0, first, vector_gradients)
    gradients.index_add_(0, second, -vector_gradients)
    return gradients.permute(2, 0, 1)


def _virials(vectors: Tensor, vector_gradients: Tensor) -> Tensor:
    """(members, 3, 3): the derivative by a symmetric strain ``e`` that maps
    every difference vector ``v`` to ``v (1 + e)``."""
    virial = torch.einsum("pa,pbm->mab", vectors, vector_gradients)
    return 0.5 * (virial + virial.transpose(1, 2))
