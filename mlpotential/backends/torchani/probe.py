"""The installation probe of Backend TorchANI (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

from mlpotential.backends.probing import ProbeFailure, require_finite, water


def probe() -> str:
    """torchani's AEV computer (ANI-1x settings) on a water molecule: the
    built-in models need parameter files, the AEVs need none."""
    import torch
    from torchani import AEVComputer

    atoms = water()
    computer = AEVComputer.like_1x()
    species = torch.tensor([[("H", "C", "N", "O").index(s) for s in atoms.get_chemical_symbols()]])
    coordinates = torch.tensor(atoms.positions[None], dtype=torch.float32)
    aevs = computer(species, coordinates)
    if tuple(aevs.shape) != (1, len(atoms), computer.out_dim):
        raise ProbeFailure(f"AEV shape {tuple(aevs.shape)}, expected (1, {len(atoms)}, {computer.out_dim})")
    require_finite("torchani AEVComputer", aevs.numpy())
    return f"AEVs of H2O (ANI-1x settings): {computer.out_dim} per atom, finite"
