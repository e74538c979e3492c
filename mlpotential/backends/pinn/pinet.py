"""PiNet (``pinn/networks/pinet.py``) evaluated in torch.

Per interaction block t = 0 .. depth-1:

* PP: X = FF_pp(P) (Dense with bias and activation; empty at t = 0);
* PI: for each pair p = (i, j), h_p = FF_pi([X_i || X_j]) (every layer with
  bias and activation, the last one pi_nodes[-1] * n_basis wide), read
  row-major as H_p[c, b]; I'_pc = sum_b H_p[c, b] e_pb;
* II: I = FF_ii(I') (no bias, with activation);
* IP: Q_i = sum over pairs centred on i of I_p;
* output: eps_i += w_t . FF_out(Q_i) (hidden layers with bias and no
  activation, w_t without bias); it reads Q, before the residual update;
* ResUpdate: P = Q + P, or Q + P . R_t when the widths differ.

P at t = 0 is the one-hot vector of Z over ``atom_types``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlpotential.backends.pinn.dense import ACTIVATIONS, DenseStack, DenseWeights
from mlpotential.backends.pinn.params import PiNetParams
from mlpotential.backends.pinn.radial import cutoff_function, gaussian_basis, polynomial_basis
from mlpotential.backends.pinn.variables import (
    VariableSource,
    WeightsError,
    check_stack,
    dense_layers_by_scope,
    read_network_variables,
)

ROOT_SCOPE = "pi_net"


class _PairInteraction:
    """FF_pi applied to [X_i || X_j] for every pair. The first layer's kernel
    is split into its centre and neighbour halves, applied per atom and then
    gathered per pair: the same Dense layer with far fewer multiplications
    (atoms instead of pairs)."""

    def __init__(self, layers: list[DenseWeights], activation: str, dtype: torch.dtype, device: torch.device) -> None:
        first = layers[0]
        half = first.kernel.shape[0] // 2
        self._centre_kernel = torch.as_tensor(first.kernel[:half], dtype=dtype, device=device)
        self._neighbour_kernel = torch.as_tensor(first.kernel[half:], dtype=dtype, device=device)
        self._bias = torch.as_tensor(first.bias, dtype=dtype, device=device)
        self._activation = ACTIVATIONS[activation]
        self._rest = DenseStack(layers[1:], activation, dtype, device)

    def __call__(self, x: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        hidden = (x @ self._centre_kernel)[centre] + (x @ self._neighbour_kernel)[neighbour] + self._bias
        return self._rest(self._activation(hidden))


@dataclass
class _Block:
    """The layers of interaction block t and its output and residual layers."""

    pp: DenseStack | None
    pi: _PairInteraction
    ii: DenseStack
    out_hidden: DenseStack
    out_final: DenseStack
    residual: DenseStack | None


class PiNet:
    """A PiNet with its trained weights: atomic outputs eps_i from pairs."""

    def __init__(self, params: PiNetParams, blocks: list[_Block], dtype: torch.dtype, device: torch.device) -> None:
        self.params = params
        self.cutoff = params.rc
        self.elements = frozenset(params.atom_types)
        self._blocks = blocks
        self._dtype = dtype
        self._device = device
        self._fc = cutoff_function(params.cutoff_type, params.rc)
        self._atom_types = torch.as_tensor(params.atom_types, device=device)
        if params.basis_type == "polynomial":
            n_basis = params.n_basis
            self._exponents = n_basis if isinstance(n_basis, tuple) else tuple(range(1, n_basis + 1))
        else:
            centres = (
                np.asarray(params.center)
                if params.center is not None
                else np.linspace(0.0, params.rc, int(params.n_basis))
            )
            self._centres = torch.as_tensor(centres, dtype=dtype, device=device)
            self._gammas = torch.as_tensor(
                np.broadcast_to(params.gamma, centres.shape).copy(), dtype=dtype, device=device
            )

    def atomic_outputs(
        self, numbers: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor, diff: torch.Tensor
    ) -> torch.Tensor:
        """eps_i for every atom, shape (n_atoms,); ``diff`` (n_pairs, 3) in
        the model's length unit, pairs as in
        :func:`mlpotential.atomistic.neighbors.pinn_pairs`."""
        n_atoms = numbers.shape[0]
        distance = torch.linalg.vector_norm(diff, dim=1)
        fc = self._fc(distance)
        if self.params.basis_type == "polynomial":
            basis = polynomial_basis(fc, self._exponents)
        else:
            basis = gaussian_basis(distance, fc, self._centres, self._gammas)
        n_basis = basis.shape[1]
        prop = (numbers[:, None] == self._atom_types[None, :]).to(self._dtype)
        output = torch.zeros(n_atoms, dtype=self._dtype, device=self._device)
        for block in self._blocks:
            x = block.pp(prop) if block.pp is not None else prop
            weights = block.pi(x, centre, neighbour)
            interaction = (
                weights.reshape(weights.shape[0], self.params.pi_nodes[-1], n_basis) * basis[:, None, :]
            ).sum(dim=2)
            interaction = block.ii(interaction)
            pooled = torch.zeros(n_atoms, interaction.shape[1], dtype=self._dtype, device=self._device)
            pooled = pooled.index_add(0, centre, interaction)
            output = output + block.out_final(block.out_hidden(pooled))[:, 0]
            prop = pooled + (block.residual(prop) if block.residual is not None else prop)
        return output


def load_pinet(params: PiNetParams, checkpoint: VariableSource, dtype: torch.dtype, device: torch.device) -> PiNet:
    """Build the PiNet of ``params`` from the variables under ``pi_net/`` of
    ``checkpoint`` (a :class:`~mlpotential.backends.pinn.checkpoint.Checkpoint`
    or an in-memory stand-in), checking every layer's shape against ``params``; raise
    :class:`~mlpotential.backends.pinn.variables.WeightsError` naming the
    variable and the setting on any mismatch or leftover layer."""
    where = checkpoint.prefix
    groups = dense_layers_by_scope(read_network_variables(checkpoint, ROOT_SCOPE), where)
    used: set[str] = set()

    def take(scope: str) -> list[DenseWeights]:
        used.add(scope)
        return groups.get(scope, [])

    def stack(layers: list[DenseWeights], activation: str | None) -> DenseStack:
        return DenseStack(layers, activation, dtype, device)

    act = params.act
    n_basis = params.basis_size
    prop_width = len(params.atom_types)
    blocks = []
    for t in range(params.depth):
        suffix = "" if t == 0 else f"_{t}"
        block = f"{ROOT_SCOPE}/gc_block{suffix}"
        pi_scopes = [s for s in groups if re.fullmatch(rf"{block}/pi_layer(_\d+)?/ff_layer(_\d+)?", s)]
        ff_scopes = [s for s in groups if re.fullmatch(rf"{block}/ff_layer(_\d+)?", s)]
        with_bias = [s for s in ff_scopes if groups[s][0].bias is not None]
        without_bias = [s for s in ff_scopes if groups[s][0].bias is None]
        has_pp = t > 0 and len(params.pp_nodes) > 0
        _expect_count(pi_scopes, 1, f"PI layer of interaction block {t}", where)
        _expect_count(with_bias, 1 if has_pp else 0, f"PP layer of interaction block {t}", where)
        _expect_count(without_bias, 1, f"II layer of interaction block {t}", where)
        pp = None
        x_width = prop_width
        if has_pp:
            pp_layers = check_stack(
                take(with_bias[0]), prop_width, list(params.pp_nodes), True, f"PP layer of block {t}", "pp_nodes", where
            )
            pp = stack(pp_layers, act)
            x_width = params.pp_nodes[-1]
        pi_widths = list(params.pi_nodes[:-1]) + [params.pi_nodes[-1] * n_basis]
        pi_layers = check_stack(
            take(pi_scopes[0]), 2 * x_width, pi_widths, True, f"PI layer of block {t}", "pi_nodes and n_basis", where
        )
        ii_layers = check_stack(
            take(without_bias[0]),
            params.pi_nodes[-1],
            list(params.ii_nodes),
            False,
            f"II layer of block {t}",
            "ii_nodes",
            where,
        )
        q_width = params.ii_nodes[-1]

        out = f"{ROOT_SCOPE}/out_layer{suffix}"
        hidden_scopes = [s for s in groups if re.fullmatch(rf"{out}/ff_layer(_\d+)?", s)]
        _expect_count(hidden_scopes, 1 if params.out_nodes else 0, f"hidden output layers of block {t}", where)
        hidden = check_stack(
            take(hidden_scopes[0]) if hidden_scopes else [],
            q_width,
            list(params.out_nodes),
            True,
            f"output layer {t}",
            "out_nodes",
            where,
        )
        final_in = params.out_nodes[-1] if params.out_nodes else q_width
        final = check_stack(
            take(out), final_in, [1], False, f"final output Dense of block {t}", "out_nodes/out_units", where
        )

        residual = None
        if prop_width != q_width:
            residual_layers = check_stack(
                take(f"{ROOT_SCOPE}/res_update{suffix}"),
                prop_width,
                [q_width],
                False,
                f"residual update {t}",
                "atom_types and ii_nodes",
                where,
            )
            residual = stack(residual_layers, None)
        blocks.append(
            _Block(
                pp=pp,
                pi=_PairInteraction(pi_layers, act, dtype, device),
                ii=stack(ii_layers, act),
                out_hidden=stack(hidden, None),
                out_final=stack(final, None),
                residual=residual,
            )
        )
        prop_width = q_width
    leftover = sorted(layer.name for scope in groups if scope not in used for layer in groups[scope])
    if leftover:
        raise WeightsError(
            f"checkpoint {where}: layers {', '.join(leftover)} are not part of a PiNet with depth {params.depth} "
            "as params.yml describes (depth or layer settings differ from training?)"
        )
    return PiNet(params, blocks, dtype, device)


def _expect_count(scopes: list[str], count: int, role: str, checkpoint: Path) -> None:
    if len(scopes) != count:
        found = ", ".join(scopes) or "none"
        raise WeightsError(f"checkpoint {checkpoint}: expected {count} scope(s) for the {role}, found {found}")
