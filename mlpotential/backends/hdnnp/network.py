"""The HDNNP model: one feed-forward network per element on top of the
symmetry functions; total energy = sum of atomic energies (eV).

Atomic energy of atom i with element e:
``E_i = E_ref[e] + energy_scale * NN_e((G_i - mean[e]) / std[e])``,
where the descriptor scaling (mean, std; set by training), the per-element
reference energies and the energy scale are fitted on the training set before
training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet
from mlpotential.inputs import BadValue, Range, number

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}
"""Hidden-layer activations by name (model files store the name)."""


LAYER_SIZES = Range(1, 10_000)
"""Neurons a hidden layer may have (an element's network is trained on a
few thousand structures)."""

MAX_LAYERS = 100


@dataclass(frozen=True)
class NetworkShape:
    """Hidden layer sizes and activation of every element's network
    (AMP's default: two hidden layers of 10, tanh)."""

    hidden: tuple[int, ...] = (10, 10)
    activation: str = "tanh"

    def __post_init__(self) -> None:
        layers = self.hidden
        if not isinstance(layers, Sequence) or isinstance(layers, str) or not 1 <= len(layers) <= MAX_LAYERS:
            raise BadValue("hidden", f"must be a list of 1 to {MAX_LAYERS} layer sizes, not {layers!r}")
        object.__setattr__(self, "hidden", tuple(int(number("hidden", h, int, LAYER_SIZES)) for h in self.hidden))
        if self.activation not in ACTIVATIONS:
            raise BadValue(
                "activation", f"{self.activation!r} is not a known activation; choose one of: {', '.join(ACTIVATIONS)}"
            )


def _element_network(n_inputs: int, shape: NetworkShape) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_inputs
    for size in shape.hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[shape.activation]()]
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class HDNNPModel(nn.Module):
    """Descriptor definition, scaling and the per-element networks.

    Buffers: ``feature_mean``/``feature_std`` (elements, features),
    ``reference_energy`` (elements,) in eV, ``energy_scale`` (eV).
    """

    def __init__(self, descriptor: SymmetryFunctionParameters, shape: NetworkShape = NetworkShape()) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.shape = shape
        self.symmetry_functions = SymmetryFunctionSet(descriptor)
        n_elements, n_features = descriptor.n_elements, descriptor.n_features
        self.networks = nn.ModuleList(_element_network(n_features, shape) for _ in range(n_elements))
        self.register_buffer("feature_mean", torch.zeros(n_elements, n_features))
        self.register_buffer("feature_std", torch.ones(n_elements, n_features))
        self.register_buffer("reference_energy", torch.zeros(n_elements))
        self.register_buffer("energy_scale", torch.ones(()))

    @property
    def elements(self) -> tuple[str, ...]:
        return self.descriptor.elements

    def atomic_energies(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Energy of each atom (eV, shape (N,)) from its descriptor row
        (N, features) and element index (N,)."""
        return self.reference_energy.index_select(0, species) + self.network_energies(features, species)

    def network_energies(self, features: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """The networks' part of each atomic energy (eV): the atomic energy
        minus the element's reference energy."""
        if len(self.networks) == 1:
            # One element: no gathering by element needed.
            scaled = (features - self.feature_mean[0]) / self.feature_std[0]
            return self.energy_scale * self.networks[0](scaled).squeeze(1)
        scaled = (features - self.feature_mean.index_select(0, species)) / self.feature_std.index_select(0, species)
        output = features.new_zeros(features.shape[0])
        for element, network in enumerate(self.networks):
            members = (species == element).nonzero().squeeze(1)
            if members.numel():
                output = output.index_copy(0, members, network(scaled.index_select(0, members)).squeeze(1))
        return self.energy_scale * output

    def fit_reference_energies(
        self, composition: torch.Tensor, energies: torch.Tensor, minimum_scale: float = 1e-3
    ) -> None:
        """Least-squares per-element energies from structure compositions
        (structures, elements) and total energies (eV); the energy scale is the
        standard deviation of the per-atom residual (at least ``minimum_scale``
        eV), so the networks learn numbers of order one."""
        composition = composition.to(torch.float64)
        energies = energies.to(torch.float64)
        solution = torch.linalg.lstsq(composition, energies[:, None], driver="gelsd").solution.squeeze(1)
        residual = (energies - composition @ solution) / composition.sum(1)
        scale = float(residual.std(unbiased=False)) if residual.numel() > 1 else 1.0
        self.reference_energy.copy_(solution.to(self.reference_energy))
        self.energy_scale.fill_(max(scale, minimum_scale))


def composition_matrix(species_per_structure: Sequence[torch.Tensor], n_elements: int) -> torch.Tensor:
    """Counts of each element in each structure, (structures, elements)."""
    return torch.stack([torch.bincount(s, minlength=n_elements) for s in species_per_structure]).to(torch.float64)
