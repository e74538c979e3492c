"""A committee of HDNNP models that share one descriptor set: the symmetry
functions and their derivatives are computed once, in closed form, for all
members; each member adds only its networks' forward and backward pass.

For every pair p (vector d_p from its centre to its neighbour, Angstrom) the
closed form gives J_p = dG[centre_p]/d d_p (F x 3). A member's energy
gradient with respect to the descriptors, C = dE/dG (N x F), then gives
dE/d d_p = C[centre_p] J_p, from which follow the forces (minus the sum over
the pairs an atom is neighbour or centre of) and the virial (sum over pairs
of d_p (x) dE/d d_p). Results as :class:`~mlpotential.backends.committee.CommitteeCalculator`:
mean energy, forces and stress, energy_std and forces_std (ddof=1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers
from ase.stress import full_3x3_to_voigt_6_stress

from mlpotential.atomistic.neighbors import pair_vectors
from mlpotential.backends.calculator_base import check_elements, check_stress_periodicity
from mlpotential.backends.committee import committee_statistics
from mlpotential.backends.hdnnp.network import HDNNPModel
from mlpotential.units import ModelUnits

_MODEL = "the HDNNP committee"


def share_descriptors(models: Sequence[HDNNPModel]) -> bool:
    """Whether all ``models`` use the same descriptor set (then they can share it)."""
    return all(model.descriptor == models[0].descriptor for model in models[1:])


class HDNNPCommitteeCalculator(Calculator):
    """Several HDNNP models of one descriptor set (eV, Angstrom, float64)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energy_std", "forces_std"]

    def __init__(
        self, models: Sequence[HDNNPModel], device: torch.device | str = "cpu", units: ModelUnits = ModelUnits()
    ) -> None:
        super().__init__()
        if len(models) < 2 or not share_descriptors(models):
            raise ValueError("an HDNNP committee needs two or more models of one descriptor set")
        self.device = torch.device(device)
        self.models = [model.to(device=self.device, dtype=torch.float64).eval() for model in models]
        for model in self.models:
            for parameter in model.parameters():
                parameter.requires_grad_(False)
        self.symmetry_functions = self.models[0].symmetry_functions
        self.units = units
        self.elements = tuple(atomic_numbers[symbol] for symbol in self.symmetry_functions.elements)

    def calculate(
        self, atoms: Atoms | None = None, properties: Sequence[str] = ("energy",), system_changes=all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        check_elements(_MODEL, atoms.numbers, self.elements)
        check_stress_periodicity(_MODEL, atoms, properties)
        want_stress = "stress" in properties
        want_forces = want_stress or "forces" in properties or "forces_std" in properties
        functions = self.symmetry_functions
        species = functions.species(atoms.get_chemical_symbols(), device=self.device)
        to_model = 1.0 / self.units.distance_to_angstrom
        positions = torch.tensor(np.asarray(atoms.positions) * to_model, dtype=torch.float64, device=self.device)
        cell = torch.tensor(np.asarray(atoms.cell.array) * to_model, dtype=torch.float64, device=self.device)
        neighbors = functions.neighbor_list(positions, cell, tuple(bool(p) for p in atoms.pbc))
        vectors = pair_vectors(positions, cell, neighbors)
        features, jacobian = functions.with_pair_jacobian(vectors, neighbors, species)

        energies, forces, virials = [], [], []
        for model in self.models:
            leaf = features.detach().requires_grad_(want_forces)
            with torch.set_grad_enabled(want_forces):
                energy = model.atomic_energies(leaf, species).sum()
            energies.append(energy.item())
            if not want_forces:
                continue
            (descriptor_gradient,) = torch.autograd.grad(energy, leaf)
            pair_gradient = torch.einsum("pf,pfc->pc", descriptor_gradient[neighbors.center], jacobian)
            gradient = torch.zeros_like(positions)
            gradient.index_add_(0, neighbors.neighbor, pair_gradient)
            gradient.index_add_(0, neighbors.center, -pair_gradient)
            forces.append(-gradient.cpu().numpy())
            if want_stress:
                virials.append((vectors.T @ pair_gradient).cpu().numpy())

        energy_unit, force_unit = self.units.energy_to_ev, self.units.force_to_ev_per_angstrom
        values: dict[str, list[np.ndarray]] = {"energy": [np.float64(e * energy_unit) for e in energies]}
        if forces:
            values["forces"] = [f * force_unit for f in forces]
        if virials:
            volume = atoms.get_volume()
            values["stress"] = [full_3x3_to_voigt_6_stress(0.5 * (v + v.T) * energy_unit / volume) for v in virials]
        self.results = committee_statistics(values, with_forces_std="forces_std" in properties)
