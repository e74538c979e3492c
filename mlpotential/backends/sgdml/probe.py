"""The installation probe of Backend sGDML (see :mod:`mlpotential.backends.probing`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mlpotential.backends.probing import ProbeFailure, our_calculator, require_finite, water


def probe() -> str:
    """A four-geometry sGDML model of water (EMT labels) trained with
    sgdml's own trainer, evaluated through our sGDML backend: at a training
    geometry the forces must come back as trained."""
    from ase.calculators.emt import EMT
    from sgdml.train import GDMLTrain

    rng = np.random.default_rng(0)
    geometries, energies, forces = [], [], []
    for _ in range(4):
        atoms = water()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.calc = EMT()
        geometries.append(atoms.positions.copy())
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    dataset = {
        "type": "d",
        "name": np.array("installer-probe"),
        "theory": np.array("EMT"),
        "R": np.array(geometries),
        "z": water().numbers,
        "E": np.array(energies),
        "F": np.array(forces),
    }
    trainer = GDMLTrain(max_processes=1)
    task = trainer.create_task(dataset, 4, dataset, 0, sig=2, lam=1e-10, use_sym=False)
    model = trainer.train(task)
    with tempfile.TemporaryDirectory(prefix="mlpotential-probe-") as folder:
        path = Path(folder) / "probe-model.npz"
        np.savez_compressed(path, **model)
        atoms = water()
        atoms.positions = task["R_train"][0]
        atoms.calc = our_calculator({"Backend": "sGDML", "ParameterFile": str(path), "MLEnergyUnit": "eV"})
        predicted = atoms.get_forces()
    error = float(np.abs(predicted - task["F_train"][0]).max())
    require_finite("sGDML", predicted)
    if error > 1e-4:
        raise ProbeFailure(f"sGDML reproduced its training forces only to {error:.2e} eV/Angstrom")
    return f"sGDML model of 4 water geometries: training forces reproduced to {error:.1e} eV/Angstrom"
