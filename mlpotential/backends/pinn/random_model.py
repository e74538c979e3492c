"""A tiny PiNet with random weights, built in memory: for smoke tests (the
installer's ``--list`` check, tests) where no trained model directory exists.

It is assembled by the same code as a trained model: :func:`load_pinet`
reads the weights from :class:`RandomPinetVariables`, an in-memory stand-in
for the checkpoint whose variables carry the names, shapes and dtype
(float32) that PiNN's checkpoints have, so the loader's checks, the network
and :class:`PinnPotential` all run as they do on a real model. The energies
mean nothing physically.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from mlpotential.backends.pinn.params import EnergyModelParams, PiNetParams
from mlpotential.backends.pinn.pinet import ROOT_SCOPE, load_pinet
from mlpotential.backends.pinn.potential import PinnPotential


def tiny_pinet_params(elements: Sequence[int] = (1, 8)) -> PiNetParams:
    """A small PiNet over ``elements`` (atomic numbers) that still has every
    part: two interaction blocks (so a PP layer), a two-layer PI, a residual
    projection, a hidden output layer."""
    return PiNetParams(
        atom_types=tuple(sorted(set(elements))),
        rc=4.0,
        n_basis=3,
        pp_nodes=(6,),
        pi_nodes=(6, 4),
        ii_nodes=(5,),
        out_nodes=(4,),
        depth=2,
    )


class RandomPinetVariables:
    """Random weights for the PiNet of ``params``, standing in for a
    checkpoint (``prefix``, ``entries``, ``read_many``). Variables are named
    as PiNN (Keras) names them, ``pi_net/gc_block_1/pi_layer_1/ff_layer_4/
    dense_7/kernel``, with Keras's global counters in construction order.
    Kernels are normal with standard deviation 1/sqrt(fan-in), biases
    normal with 0.1; the same ``seed`` gives the same weights."""

    def __init__(self, params: PiNetParams, seed: int = 0) -> None:
        self.prefix = Path(f"<random PiNet weights, seed {seed}>")
        self._rng = np.random.default_rng(seed)
        self._counters = {"dense": 0, "ff_layer": 0}
        self.entries: dict[str, np.ndarray] = {}
        n_basis = params.basis_size
        prop_width = len(params.atom_types)
        for t in range(params.depth):
            suffix = "" if t == 0 else f"_{t}"
            block = f"{ROOT_SCOPE}/gc_block{suffix}"
            x_width = prop_width
            if t > 0 and params.pp_nodes:
                self._stack(f"{block}/{self._next('ff_layer')}", prop_width, params.pp_nodes, bias=True)
                x_width = params.pp_nodes[-1]
            pi_widths = (*params.pi_nodes[:-1], params.pi_nodes[-1] * n_basis)
            self._stack(f"{block}/pi_layer{suffix}/{self._next('ff_layer')}", 2 * x_width, pi_widths, bias=True)
            self._stack(f"{block}/{self._next('ff_layer')}", params.pi_nodes[-1], params.ii_nodes, bias=False)
            q_width = params.ii_nodes[-1]
            out = f"{ROOT_SCOPE}/out_layer{suffix}"
            if params.out_nodes:
                self._stack(f"{out}/{self._next('ff_layer')}", q_width, params.out_nodes, bias=True)
            self._stack(out, params.out_nodes[-1] if params.out_nodes else q_width, (1,), bias=False)
            if prop_width != q_width:
                self._stack(f"{ROOT_SCOPE}/res_update{suffix}", prop_width, (q_width,), bias=False)
            prop_width = q_width

    def read_many(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """The arrays of ``names``, as :meth:`Checkpoint.read_many` gives them."""
        return {name: self.entries[name] for name in names}

    def _next(self, kind: str) -> str:
        number = self._counters[kind]
        self._counters[kind] += 1
        return kind if number == 0 else f"{kind}_{number}"

    def _stack(self, scope: str, in_width: int, widths: Sequence[int], bias: bool) -> None:
        for out_width in widths:
            layer = f"{scope}/{self._next('dense')}"
            kernel = self._rng.normal(scale=1.0 / math.sqrt(in_width), size=(in_width, out_width))
            self.entries[f"{layer}/kernel"] = kernel.astype(np.float32)
            if bias:
                self.entries[f"{layer}/bias"] = self._rng.normal(scale=0.1, size=out_width).astype(np.float32)
            in_width = out_width


def random_pinet_potential(
    elements: Sequence[int] = (1, 8),
    seed: int = 0,
    params: PiNetParams | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> PinnPotential:
    """A PiNet potential with random weights over ``elements`` (atomic
    numbers; :func:`tiny_pinet_params`), or of ``params`` when given, built
    by :func:`load_pinet` exactly as from a checkpoint; energies in eV
    (e_unit 1, no dress), lengths in Angstrom. For smoke tests only; wrap it
    in :class:`~mlpotential.backends.pinn.calculator.PinnCalculator` for
    ASE."""
    params = params or tiny_pinet_params(elements)
    device = device or torch.device("cpu")
    network = load_pinet(params, RandomPinetVariables(params, seed), dtype, device)
    return PinnPotential(network, EnergyModelParams(e_dress={}), 1.0, 1.0, dtype, device)
