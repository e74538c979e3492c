"""The ASE calculator of an HDNNP model: energy (eV), per-atom energies,
forces (eV/Angstrom) and, for cells periodic in all three directions, stress
(eV/Angstrom^3, ASE's sign convention).

The evaluation runs in float64 so that the same structure gives the same
numbers to rounding wherever it is evaluated (in process or in a worker).
Forces and stress come from one autograd pass through the symmetry functions:
stress is the derivative with respect to a homogeneous strain applied to the
pair vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers
from ase.stress import full_3x3_to_voigt_6_stress

from mlpotential.atomistic.neighbors import pair_vectors
from mlpotential.backends.calculator_base import check_elements, check_stress_periodicity
from mlpotential.backends.hdnnp.model_file import load_model
from mlpotential.backends.hdnnp.network import HDNNPModel
from mlpotential.units import ModelUnits

_MODEL = "the HDNNP model"
"""How refusals name the model."""


class HDNNPCalculator(Calculator):
    """An ASE calculator for :class:`HDNNPModel`.

    ``units`` are the units the model works in (eV and Angstrom for every
    model ``mlpotential train`` writes); results are always reported in ASE
    units.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: HDNNPModel,
        device: torch.device | str = "cpu",
        units: ModelUnits = ModelUnits(),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.device = torch.device(device)
        self.model = model.to(device=self.device, dtype=torch.float64).eval()
        self.units = units
        self.elements = tuple(atomic_numbers[symbol] for symbol in self.model.elements)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path, device: torch.device | str = "cpu", **kwargs) -> HDNNPCalculator:
        """Load a model file written by ``mlpotential train``."""
        return cls(load_model(path), device=device, **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if len(atoms) == 0:
            self.results = {"energy": 0.0, "free_energy": 0.0, "energies": np.zeros(0), "forces": np.zeros((0, 3))}
            if "stress" in properties:
                self.results["stress"] = np.zeros(6)
            return
        symmetry_functions = self.model.symmetry_functions
        # species() refuses unknown elements too, in the symmetry functions' words: checked first so that
        # the refusal reads like every backend's
        check_elements(_MODEL, atoms.numbers, self.elements)
        check_stress_periodicity(_MODEL, atoms, properties)
        species = symmetry_functions.species(atoms.get_chemical_symbols(), device=self.device)
        to_model = 1.0 / self.units.distance_to_angstrom
        positions = torch.tensor(np.asarray(atoms.positions) * to_model, dtype=torch.float64, device=self.device)
        cell = torch.tensor(np.asarray(atoms.cell.array) * to_model, dtype=torch.float64, device=self.device)
        pbc = tuple(bool(p) for p in atoms.pbc)
        want_stress = "stress" in properties

        positions.requires_grad_(True)
        strain = torch.zeros((3, 3), dtype=torch.float64, device=self.device, requires_grad=want_stress)
        neighbors = symmetry_functions.neighbor_list(positions, cell, pbc)
        with torch.enable_grad():
            vectors = pair_vectors(positions, cell, neighbors)
            if want_stress:
                vectors = vectors @ (torch.eye(3, dtype=torch.float64, device=self.device) + strain)
            features = symmetry_functions.from_pair_vectors(vectors, neighbors, species)
            atomic = self.model.atomic_energies(features, species)
            energy = atomic.sum()
            inputs = [positions, strain] if want_stress else [positions]
            gradients = torch.autograd.grad(energy, inputs)

        energy_unit = self.units.energy_to_ev
        force_unit = self.units.force_to_ev_per_angstrom
        self.results["energy"] = energy.item() * energy_unit
        self.results["free_energy"] = self.results["energy"]
        self.results["energies"] = atomic.detach().cpu().numpy() * energy_unit
        self.results["forces"] = -gradients[0].cpu().numpy() * force_unit
        if want_stress:
            virial = gradients[1].cpu().numpy() * energy_unit
            virial = 0.5 * (virial + virial.T)
            self.results["stress"] = full_3x3_to_voigt_6_stress(virial / atoms.get_volume())
