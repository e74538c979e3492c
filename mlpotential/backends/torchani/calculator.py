"""The ASE calculator of the TorchANI backend: any torchani-style model
called as ``model((species, coordinates))`` (plus ``cell=``, ``pbc=`` for
periodic systems) that returns energies, with ensemble statistics when the
model is a torchani ensemble.

Units: the model works in its own units (ANI: Hartree and Angstrom); results
are eV, eV/Angstrom and eV/Angstrom^3 (ASE's stress sign), converted from the
model's float32 output in float64, so a Hartree energy converted back is the
model's own number.

Ensemble statistics: the ensemble's members are observed with forward hooks
during the one ordinary forward pass, so the energy is exactly the model's own
mean and the statistics cost no extra evaluation. ``energy_std`` (eV) is the
sample standard deviation (ddof=1) of the members' energies on every
calculation; ``forces_std`` (eV/Angstrom, (nAtoms, 3)) is the sample standard
deviation of the members' forces, computed only when asked for. For torchani's
own ANI ensembles (the built-in models) all members' forces then come from one
pass over the AEV's pairs and triples (ensemble_forces.py), and the forces and
stress are the members' mean, equal to autograd's to float rounding; any other
ensemble takes one backward pass per member.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from mlpotential.backends.calculator_base import check_elements, check_stress_periodicity
from mlpotential.units import ModelUnits

if TYPE_CHECKING:
    from mlpotential.backends.torchani.ensemble_forces import EnsembleForces


@dataclass(frozen=True)
class SpeciesEncoding:
    """How atoms are handed to a model.

    ``codes`` maps an atomic number to the model's species index (``None``:
    the model takes atomic numbers as they are); ``supported`` lists the
    atomic numbers the model covers (``None``: the model does not say).
    """

    supported: tuple[int, ...] | None = None
    codes: Mapping[int, int] | None = None

    def encode(self, numbers: np.ndarray) -> np.ndarray:
        if self.codes is None:
            return np.asarray(numbers, dtype=np.int64)
        return np.array([self.codes[int(z)] for z in numbers], dtype=np.int64)


def ensemble_members(model: torch.nn.Module) -> tuple[torch.nn.Module, ...]:
    """The members of a torchani ensemble model (``model.neural_networks.members``);
    empty for a single network or a model of another kind."""
    networks = getattr(model, "neural_networks", None)
    members = getattr(networks, "members", None)
    if isinstance(members, torch.nn.ModuleList) and len(members) > 1:
        return tuple(members)
    return ()


@contextmanager
def _member_outputs(members: Sequence[torch.nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Collect the output of each member called inside the block."""
    outputs: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, _args: Any, output: torch.Tensor) -> None:
        outputs.append(output)

    handles = [member.register_forward_hook(keep) for member in members]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _energy_tensor(output: Any) -> torch.Tensor:
    """The energies of a model's output: ``.energies`` (torchani), the second
    item of a ``(species, energies)`` pair (the AMS convention), or a tensor."""
    if hasattr(output, "energies"):
        energies = output.energies
    elif isinstance(output, (tuple, list)) and len(output) == 2:
        energies = output[1]
    else:
        energies = output
    if not isinstance(energies, torch.Tensor) or energies.numel() != 1:
        shape = tuple(energies.shape) if isinstance(energies, torch.Tensor) else type(energies).__name__
        raise TypeError(f"the model should return one energy for one structure, got {shape}")
    return energies.reshape(())


def _ensemble_forces(model: torch.nn.Module) -> EnsembleForces | None:
    """The one-pass members' forces for a torchani ANI ensemble, else ``None``."""
    if "torchani.arch" not in sys.modules:
        # A model built by torchani has imported it; importing it for any other model would cost seconds.
        return None
    from mlpotential.backends.torchani.ensemble_forces import ensemble_forces_for

    return ensemble_forces_for(model)


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


class TorchANICalculator(Calculator):
    """ASE calculator for a torchani-style model (eV, Angstrom).

    ``model_name`` names the model in error messages; ``encoding`` says how
    atoms become species; ``units`` are the model's own units; the model is
    expected on ``device`` already. An element the model does not cover raises
    :class:`UnsupportedSystemError` naming it, the model and the elements it
    supports.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        model_name: str,
        encoding: SpeciesEncoding,
        units: ModelUnits = ModelUnits("Hartree", "angstrom"),
        device: torch.device | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.model_name = model_name
        self.encoding = encoding
        self.units = units
        self.device = device or torch.device("cpu")
        self.dtype = _model_dtype(model)
        self.members = ensemble_members(model)
        self.ensemble_forces = _ensemble_forces(model) if self.members else None
        self.implemented_properties = ["energy", "free_energy", "forces", "stress"]
        if self.members:
            self.implemented_properties += ["energy_std", "forces_std"]

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if self.encoding.supported is not None:
            check_elements(self.model_name, atoms.numbers, self.encoding.supported)
        check_stress_periodicity(self.model_name, atoms, properties)
        want_stress = "stress" in properties
        want_forces_std = "forces_std" in properties and bool(self.members)
        if want_forces_std and self.ensemble_forces is not None:
            self.results = self._ensemble_results(atoms, self.ensemble_forces, want_stress)
        else:
            want_forces = want_forces_std or "forces" in properties
            self.results = self._autograd_results(atoms, want_forces, want_forces_std, want_stress)

    def _autograd_results(
        self, atoms: Atoms, want_forces: bool, want_forces_std: bool, want_stress: bool
    ) -> dict[str, Any]:
        """Energy, forces and stress by autograd of the mean energy; the
        members' forces, for ``forces_std``, by one backward pass per member."""
        species, positions, cell, pbc = self._inputs(atoms)
        positions.requires_grad_(want_forces)
        coordinates = positions
        strain = torch.zeros((3, 3), dtype=self.dtype, device=self.device, requires_grad=want_stress)
        if want_stress:
            # Stress as the energy's derivative with respect to a symmetric strain of positions and cell.
            deformation = torch.eye(3, dtype=self.dtype, device=self.device) + 0.5 * (strain + strain.T)
            coordinates, cell = coordinates @ deformation, cell @ deformation

        with torch.set_grad_enabled(want_forces or want_stress), _member_outputs(self.members) as member_energies:
            energy = self._energy(species, coordinates, cell, pbc)

        results = self._energy_results(energy, member_energies)
        force_to_ev_per_angstrom = self.units.force_to_ev_per_angstrom
        if want_forces_std:
            member_gradients = torch.stack(
                [
                    torch.autograd.grad(member.sum(), positions, retain_graph=True)[0].squeeze(0)
                    for member in member_energies
                ]
            )
            member_forces = -member_gradients.cpu().numpy().astype(np.float64)
            results["forces_std"] = np.std(member_forces, axis=0, ddof=1) * force_to_ev_per_angstrom
        if want_forces or want_stress:
            inputs = [positions] if want_forces else []
            if want_stress:
                inputs.append(strain)
            gradients = torch.autograd.grad(energy, inputs)
            if want_forces:
                forces = -gradients[0].squeeze(0).cpu().numpy().astype(np.float64)
                results["forces"] = forces * force_to_ev_per_angstrom
            if want_stress:
                results["stress"] = self._stress(gradients[-1], atoms)
        return results

    def _ensemble_results(self, atoms: Atoms, ensemble_forces: EnsembleForces, want_stress: bool) -> dict[str, Any]:
        """Energy, ``forces_std`` and the forces (and stress) as the members'
        mean, all members' gradients from one pass (see ensemble_forces.py):
        the same numbers as by autograd, to rounding."""
        species, positions, cell, pbc = self._inputs(atoms)
        with torch.enable_grad(), ensemble_forces.observe() as observed, _member_outputs(self.members) as members:
            energy = self._energy(species, positions, cell, pbc)
        gradients = ensemble_forces.gradients(observed, members, virial=want_stress)

        results = self._energy_results(energy, members)
        member_forces = -gradients.positions.cpu().numpy().astype(np.float64)
        force_to_ev_per_angstrom = self.units.force_to_ev_per_angstrom
        results["forces"] = member_forces.mean(axis=0) * force_to_ev_per_angstrom
        results["forces_std"] = np.std(member_forces, axis=0, ddof=1) * force_to_ev_per_angstrom
        if gradients.virial is not None:
            results["stress"] = self._stress(gradients.virial.double().mean(dim=0), atoms)
        return results

    def _inputs(self, atoms: Atoms) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Species (1, nAtoms), positions (1, nAtoms, 3), and for a periodic
        system the cell (3, 3) and pbc (3,), in the model's distance unit."""
        to_model_distance = 1.0 / self.units.distance_to_angstrom
        species = torch.as_tensor(self.encoding.encode(atoms.numbers), device=self.device).unsqueeze(0)
        positions = torch.tensor(atoms.positions * to_model_distance, dtype=self.dtype, device=self.device).unsqueeze(0)
        if not atoms.pbc.any():
            return species, positions, None, None
        cell = torch.tensor(atoms.cell.complete() * to_model_distance, dtype=self.dtype, device=self.device)
        return species, positions, cell, torch.tensor(atoms.pbc, dtype=torch.bool, device=self.device)

    def _energy(
        self, species: torch.Tensor, coordinates: torch.Tensor, cell: torch.Tensor | None, pbc: torch.Tensor | None
    ) -> torch.Tensor:
        """The model's energy (model units, a 0-d tensor)."""
        if cell is None:
            return _energy_tensor(self.model((species, coordinates)))
        return _energy_tensor(self.model((species, coordinates), cell=cell, pbc=pbc))

    def _energy_results(self, energy: torch.Tensor, member_energies: Sequence[torch.Tensor]) -> dict[str, Any]:
        """``energy``, ``free_energy`` and, for an ensemble, ``energy_std`` (eV)."""
        energy_to_ev = self.units.energy_to_ev
        results: dict[str, Any] = {"energy": energy.item() * energy_to_ev}
        results["free_energy"] = results["energy"]
        if len(member_energies) > 1:
            values = torch.stack([member.detach().reshape(()) for member in member_energies]).cpu().numpy()
            results["energy_std"] = float(np.std(values.astype(np.float64), ddof=1)) * energy_to_ev
        return results

    def _stress(self, virial: torch.Tensor, atoms: Atoms) -> np.ndarray:
        """ASE's Voigt stress (eV/Angstrom^3) from the energy's derivative by
        a symmetric strain (model energy unit)."""
        virial_ev = virial.detach().cpu().numpy().astype(np.float64) * self.units.energy_to_ev
        return full_3x3_to_voigt_6_stress(virial_ev / atoms.get_volume())
