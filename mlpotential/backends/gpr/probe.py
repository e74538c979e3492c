"""The installation probe of Backend GPR (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mlpotential.backends.probing import ProbeFailure, our_calculator, require_finite, require_module


def probe() -> str:
    """A Gaussian process (Cartesian descriptor) trained on four EMT
    geometries of H2, written with the GPR model-file writer and evaluated
    through our GPR backend at one of them: it must give back the training
    energy and forces, with an uncertainty."""
    require_module("mlpotential.backends.gpr.gp")
    from ase import Atoms
    from ase.calculators.emt import EMT

    from mlpotential.backends.gpr.descriptors import CartesianDescriptor
    from mlpotential.backends.gpr.gp import GaussianProcess, Hyperparameters
    from mlpotential.backends.gpr.model_file import save_models

    def hydrogen(distance: float) -> Atoms:
        return Atoms("H2", positions=[(0, 0, 0), (0, 0, distance)])

    positions, energies, forces = [], [], []
    for distance in (0.70, 0.75, 0.80, 0.85):
        atoms = hydrogen(distance)
        atoms.calc = EMT()
        positions.append(atoms.positions.copy())
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    process = GaussianProcess(CartesianDescriptor(), ("H", "H"), Hyperparameters(scale=0.4, weight=1.0, noise=1e-6))
    process.set_training_data(np.array(positions), None, np.array(energies), np.array(forces))
    process.fit()
    with tempfile.TemporaryDirectory(prefix="mlpotential-probe-") as folder:
        path = Path(folder) / "probe-model.pt"
        save_models(path, [process])
        atoms = hydrogen(0.75)
        atoms.calc = our_calculator({"Backend": "GPR", "ParameterFile": str(path)})
        energy, predicted = atoms.get_potential_energy(), atoms.get_forces()
        energy_std = atoms.calc.results["energy_std"]
    require_finite("GPR", energy, predicted, energy_std)
    error = max(abs(energy - energies[1]), float(np.abs(predicted - forces[1]).max()))
    if error > 1e-3:
        raise ProbeFailure(f"GPR missed its own training data by {error:.1e} eV (or eV/Angstrom)")
    return f"GPR on 4 EMT H2 geometries: training data reproduced to {error:.0e}, std {energy_std:.0e} eV"
