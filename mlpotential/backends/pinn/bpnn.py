"""PiNN's Behler-Parrinello network (``pinn/networks/bpnn.py``,
``pinn/layers/bpsf.py``) evaluated in torch, in PiNN's own conventions.

Symmetry functions, per ``sf_spec`` entry, for every centre atom i whose
element matches ``i`` (parameter lists zipped, one feature per position):

* G2: sum over pairs (i, j) of exp(-eta (r_ij - Rs)^2) fc(r_ij);
* G3: sum over ORDERED pairs (p, q) of different neighbour-list entries of
  i (both (j, k) and (k, j); j and k may be images of one atom) with
  r_jk = |diff_q - diff_p| < rc, of
  2^(1-zeta) (1 + lambda cos) ^ zeta exp(-eta (r_ij^2 + r_ik^2 + r_jk^2)) fc_ij fc_ik fc_jk;
* G4: the same without the r_jk factor and condition.

Because the angular sums run over ordered pairs they are twice the
unordered-pair G4/G5 of Behler's papers and DScribe. With ``fp_scale``
each feature becomes 2 (x - min) / max(max - min, 1e-6) - 1. An atom of
element e reads its own entries (``i == e``) first, then the ``ALL``
entries, each in ``sf_spec`` order, into the subnet of e: Dense layers with
bias and activation, then one Dense to a single output, no bias, linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlpotential.backends.pinn.checkpoint import Checkpoint
from mlpotential.backends.pinn.dense import DenseStack
from mlpotential.backends.pinn.params import BPNNParams, SymmetryFunctionSpec
from mlpotential.backends.pinn.radial import cutoff_function
from mlpotential.backends.pinn.variables import WeightsError, check_stack, dense_layers_by_scope, read_network_variables

ROOT_SCOPE = "bpnn"
FEED_FORWARD_SCOPE = "bpnn/bp_feed_forward"
_MIN_RANGE = 1e-6


@dataclass
class _PairSpecies:
    """Atomic numbers of each pair's centre and neighbour."""

    centre: np.ndarray
    neighbour: np.ndarray


@dataclass
class _Couples:
    """Ordered couples (p, q) of pairs sharing a centre, with what every
    G3/G4 entry needs: cos of the angle j-i-k, r_ij^2 + r_ik^2,
    fc(r_ij) fc(r_ik), and r_jk for G3."""

    first: np.ndarray
    second: np.ndarray
    centre: torch.Tensor
    cosine: torch.Tensor
    radial_sq: torch.Tensor
    fc_product: torch.Tensor
    r_jk: torch.Tensor
    jk_within_cutoff: np.ndarray


@dataclass
class _Subnet:
    hidden: DenseStack
    output: DenseStack
    blocks: list[int]


def ordered_neighbour_couples(centre: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (p, q), p != q, of neighbour-list entries that share a
    centre atom: every ordered couple, so (p, q) and (q, p) both appear.
    ``centre`` must be sorted."""
    counts = np.bincount(centre, minlength=n_atoms)
    starts = np.cumsum(counts) - counts
    per_pair = counts[centre]
    first = np.repeat(np.arange(len(centre)), per_pair)
    block_start = np.cumsum(per_pair) - per_pair
    second = starts[centre[first]] + (np.arange(len(first)) - np.repeat(block_start, per_pair))
    distinct = first != second
    return first[distinct], second[distinct]


class BPNN:
    """A BPNN with its trained weights: atomic outputs eps_i from pairs."""

    def __init__(
        self, params: BPNNParams, subnets: dict[int, _Subnet], dtype: torch.dtype, device: torch.device
    ) -> None:
        self.params = params
        self.cutoff = params.rc
        self.elements = frozenset(subnets)
        self._subnets = subnets
        self._dtype = dtype
        self._device = device
        self._fc = cutoff_function(params.cutoff_type, params.rc)
        self._needs_couples = any(spec.kind in ("G3", "G4") for spec in params.sf_spec)
        self._scales = [self._scaling(k) for k in range(len(params.sf_spec))] if params.fp_scale else None
        self._constants = [self._entry_constants(spec) for spec in params.sf_spec]

    def _entry_constants(self, spec: SymmetryFunctionSpec) -> dict[str, torch.Tensor]:
        """An entry's parameter lists as tensors, made once."""
        names = (
            {"rs": spec.rs, "eta": spec.eta}
            if spec.kind == "G2"
            else {"lambd": spec.lambd, "zeta": spec.zeta, "eta": spec.eta}
        )
        constants = {
            key: torch.as_tensor(values, dtype=self._dtype, device=self._device) for key, values in names.items()
        }
        if spec.kind != "G2":
            constants["prefactor"] = 2.0 ** (1.0 - constants["zeta"])
            lambd = constants["lambd"]
            constants["angle_floor"] = torch.where(lambd.abs() <= 1.0, 0.0, -torch.inf).to(self._dtype)
        return constants

    def _scaling(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        mins, maxs = (np.asarray(v, dtype=np.float64) for v in self.params.fp_range[k])
        width = np.maximum(maxs - mins, _MIN_RANGE)
        return (
            torch.as_tensor(mins, dtype=self._dtype, device=self._device),
            torch.as_tensor(width, dtype=self._dtype, device=self._device),
        )

    def atomic_outputs(
        self, numbers: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor, diff: torch.Tensor
    ) -> torch.Tensor:
        """eps_i for every atom, shape (n_atoms,); ``diff`` (n_pairs, 3) in
        the model's length unit, pairs sorted by centre."""
        features = self.symmetry_functions(numbers, centre, neighbour, diff)
        if self._scales is not None:
            features = [2.0 * (block - mins) / width - 1.0 for block, (mins, width) in zip(features, self._scales)]
        output = torch.zeros(numbers.shape[0], dtype=self._dtype, device=self._device)
        for element, subnet in self._subnets.items():
            rows = torch.nonzero(numbers == element)[:, 0]
            if len(rows) == 0:
                continue
            atom_features = torch.cat([features[k][rows] for k in subnet.blocks], dim=1)
            output = output.index_add(0, rows, subnet.output(subnet.hidden(atom_features))[:, 0])
        return output

    def symmetry_functions(
        self, numbers: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor, diff: torch.Tensor
    ) -> list[torch.Tensor]:
        """The unscaled features of every ``sf_spec`` entry, one (n_atoms,
        entry size) block each; rows of atoms that the entry's ``i`` does not
        select are zero."""
        n_atoms = numbers.shape[0]
        z = numbers.cpu().numpy()
        species = _PairSpecies(z[centre.cpu().numpy()], z[neighbour.cpu().numpy()])
        distance = torch.linalg.vector_norm(diff, dim=1)
        fc = self._fc(distance)
        couples = self._couples(diff, distance, fc, centre, n_atoms) if self._needs_couples else None
        blocks = []
        for spec, constants in zip(self.params.sf_spec, self._constants):
            if spec.kind == "G2":
                blocks.append(self._g2(spec, constants, distance, fc, centre, species, n_atoms))
            else:
                blocks.append(self._angular(spec, constants, couples, species, n_atoms))
        return blocks

    def _g2(
        self,
        spec: SymmetryFunctionSpec,
        constants: dict[str, torch.Tensor],
        distance: torch.Tensor,
        fc: torch.Tensor,
        centre: torch.Tensor,
        species: _PairSpecies,
        n_atoms: int,
    ) -> torch.Tensor:
        selected = _matches(species.centre, spec.i) & _matches(species.neighbour, spec.j)
        index = torch.as_tensor(np.nonzero(selected)[0], device=self._device)
        values = torch.exp(-constants["eta"] * (distance[index][:, None] - constants["rs"]) ** 2) * fc[index][:, None]
        block = torch.zeros(n_atoms, spec.size, dtype=self._dtype, device=self._device)
        return block.index_add(0, centre[index], values)

    def _couples(
        self, diff: torch.Tensor, distance: torch.Tensor, fc: torch.Tensor, centre: torch.Tensor, n_atoms: int
    ) -> _Couples:
        first_np, second_np = ordered_neighbour_couples(centre.cpu().numpy(), n_atoms)
        first = torch.as_tensor(first_np, device=self._device)
        second = torch.as_tensor(second_np, device=self._device)
        r_ij, r_ik = distance[first], distance[second]
        r_jk = torch.linalg.vector_norm(diff[second] - diff[first], dim=1)
        return _Couples(
            first=first_np,
            second=second_np,
            centre=centre[first],
            cosine=(diff[first] * diff[second]).sum(dim=1) / (r_ij * r_ik),
            radial_sq=r_ij**2 + r_ik**2,
            fc_product=fc[first] * fc[second],
            r_jk=r_jk,
            jk_within_cutoff=(r_jk < self.cutoff).cpu().numpy(),
        )

    def _angular(
        self,
        spec: SymmetryFunctionSpec,
        constants: dict[str, torch.Tensor],
        couples: _Couples,
        species: _PairSpecies,
        n_atoms: int,
    ) -> torch.Tensor:
        first, second = couples.first, couples.second
        selected = (
            _matches(species.centre[first], spec.i)
            & _matches(species.neighbour[first], spec.j)
            & _matches(species.neighbour[second], spec.k)
        )
        if spec.kind == "G3":
            selected &= couples.jk_within_cutoff
        index = torch.as_tensor(np.nonzero(selected)[0], device=self._device)
        radial_sq = couples.radial_sq[index][:, None]
        cutoff = couples.fc_product[index][:, None]
        if spec.kind == "G3":
            r_jk = couples.r_jk[index]
            radial_sq = radial_sq + (r_jk**2)[:, None]
            cutoff = cutoff * self._fc(r_jk)[:, None]
        # 1 + lambda cos >= 0 when |lambda| <= 1; the floor only removes
        # round-off below zero, which a fractional power would turn into NaN.
        angle = torch.maximum(1.0 + constants["lambd"] * couples.cosine[index][:, None], constants["angle_floor"])
        values = constants["prefactor"] * angle ** constants["zeta"] * torch.exp(-constants["eta"] * radial_sq) * cutoff
        block = torch.zeros(n_atoms, spec.size, dtype=self._dtype, device=self._device)
        return block.index_add(0, couples.centre[index], values)


def _matches(elements: np.ndarray, wanted: int | None) -> np.ndarray:
    return np.ones(len(elements), dtype=bool) if wanted is None else elements == wanted


def load_bpnn(params: BPNNParams, checkpoint: Checkpoint, dtype: torch.dtype, device: torch.device) -> BPNN:
    """Build the BPNN of ``params`` from ``bpnn/bp_feed_forward/dense_N``:
    in ascending N, the element subnets in ``nn_spec`` order, each with
    len(nn_spec[e]) + 1 layers. Raise
    :class:`~mlpotential.backends.pinn.variables.WeightsError` on any
    mismatch with ``params``."""
    where = checkpoint.prefix
    groups = dense_layers_by_scope(read_network_variables(checkpoint, ROOT_SCOPE), where)
    extra = sorted(scope for scope in groups if scope != FEED_FORWARD_SCOPE)
    if extra:
        raise WeightsError(f"checkpoint {where}: unexpected BPNN layer scopes {', '.join(extra)}")
    layers = groups.get(FEED_FORWARD_SCOPE, [])
    expected = sum(len(widths) + 1 for _, widths in params.nn_spec)
    if len(layers) != expected:
        raise WeightsError(
            f"checkpoint {where}: {FEED_FORWARD_SCOPE} holds {len(layers)} Dense layers; "
            f"params.yml nn_spec implies {expected}"
        )
    subnets = {}
    position = 0
    for element, widths in params.nn_spec:
        blocks = params.feature_blocks(element)
        n_features = sum(params.sf_spec[k].size for k in blocks)
        role = f"subnet of element {element}"
        own = layers[position : position + len(widths) + 1]
        position += len(widths) + 1
        hidden = check_stack(own[:-1], n_features, list(widths), True, role, f"nn_spec[{element}] and sf_spec", where)
        in_width = widths[-1] if widths else n_features
        output = check_stack(own[-1:], in_width, [1], False, role + " (output)", f"nn_spec[{element}]", where)
        subnets[element] = _Subnet(
            hidden=DenseStack(hidden, params.act, dtype, device),
            output=DenseStack(output, None, dtype, device),
            blocks=blocks,
        )
    return BPNN(params, subnets, dtype, device)
