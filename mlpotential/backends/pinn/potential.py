"""PiNN's ``potential_model`` at prediction time: energy, forces and stress
from a network's atomic outputs.

E = e_unit * (sum_i eps_i / e_scale + sum_i e_dress[Z_i]) (elements without
a dress contribute 0). Everything is a function of the pair vectors
diff_p = r_j' - r_i, so one backward pass gives dE/ddiff, and from it
forces (F_i = -dE/dr_i, with d diff_p / d r_j = +I, d diff_p / d r_i = -I)
and, for periodic cells, PiNN's stress sigma_ab = (1/V) sum_p diff_a dE/ddiff_b.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from mlpotential.atomistic.neighbors import pinn_pairs
from mlpotential.backends.pinn.params import EnergyModelParams

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


class AtomicNetwork(Protocol):
    """What :class:`PinnPotential` needs from PiNet or BPNN."""

    cutoff: float
    elements: frozenset[int]

    def atomic_outputs(
        self, numbers: torch.Tensor, centre: torch.Tensor, neighbour: torch.Tensor, diff: torch.Tensor
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Prediction:
    """One evaluation in ASE units: ``energy`` eV, ``forces`` (n, 3)
    eV/Angstrom, ``stress`` Voigt (xx yy zz yz xz xy) eV/Angstrom^3 or None,
    ``n_pairs`` the neighbour-list size."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    n_pairs: int


class PinnPotential:
    """A loaded PiNN model: network, energy scaling and unit factors.

    ``energy_to_ev`` converts training-label energy units to eV (PiNN's
    e_unit, or MLEnergyUnit); ``distance_to_angstrom`` is the model's
    length unit in Angstrom (MLDistanceUnit).
    """

    def __init__(
        self,
        network: AtomicNetwork,
        energy_model: EnergyModelParams,
        energy_to_ev: float,
        distance_to_angstrom: float,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.network = network
        self.energy_model = energy_model
        self.energy_to_ev = energy_to_ev
        self.distance_to_angstrom = distance_to_angstrom
        self.dtype = dtype
        self.device = device

    @property
    def cutoff_angstrom(self) -> float:
        """The network's cutoff radius in Angstrom."""
        return self.network.cutoff * self.distance_to_angstrom

    def predict(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray | None, stress: bool) -> Prediction:
        """Energy and forces of one structure; ``positions`` (n, 3) in
        Angstrom; ``cell`` (3, 3, rows are lattice vectors, Angstrom) makes it
        periodic in all three directions; ``stress`` also computes the stress
        (needs a cell)."""
        pairs = pinn_pairs(positions, self.cutoff_angstrom, cell)
        device = self.device
        diff = torch.tensor(pairs.diff, dtype=self.dtype, device=device, requires_grad=True)
        centre = torch.as_tensor(pairs.centre, device=device)
        neighbour = torch.as_tensor(pairs.neighbour, device=device)
        numbers_t = torch.as_tensor(np.asarray(numbers, dtype=np.int64), device=device)
        network_energy = self.network.atomic_outputs(
            numbers_t, centre, neighbour, diff / self.distance_to_angstrom
        ).sum()
        scale = self.energy_to_ev / self.energy_model.e_scale
        # The dress is a per-element constant: added in float64, outside autograd.
        dress = sum(self.energy_model.e_dress.get(int(z), 0.0) for z in numbers)
        energy = scale * float(network_energy.detach()) + self.energy_to_ev * dress
        if len(pairs) and network_energy.requires_grad:
            (gradient,) = torch.autograd.grad(network_energy, diff)
            gradient = gradient * scale
        else:
            gradient = torch.zeros_like(diff)
        forces = torch.zeros(len(numbers), 3, dtype=self.dtype, device=device)
        forces = forces.index_add(0, centre, gradient).index_add(0, neighbour, -gradient)
        voigt = None
        if stress:
            tensor = (diff.detach()[:, :, None] * gradient[:, None, :]).sum(dim=0) / abs(float(np.linalg.det(cell)))
            voigt = np.array([float(tensor[a, b]) for a, b in VOIGT])
        return Prediction(energy, forces.detach().cpu().numpy().astype(np.float64), voigt, len(pairs))
