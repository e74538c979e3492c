"""The PiNN reference test sets (../shared/pinn-reference/<model>/test_predictions.npz,
described in that folder's README): structures with PiNN's own predictions."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

MODELS = ("pinet", "bpnn", "pinet_gaussian")

# How far our results may lie from PiNN's stored predictions, which PiNN computed in float32.
ENERGY_TOLERANCE = 1e-4  # eV
FORCE_TOLERANCE = 2e-4  # eV/Angstrom
STRESS_TOLERANCE = 1e-5  # eV/Angstrom^3


@dataclass
class ReferenceStructure:
    """One test structure with PiNN's prediction (eV, eV/Angstrom, eV/Angstrom^3)."""

    name: str
    atoms: Atoms
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None


def read_reference(folder: Path) -> list[ReferenceStructure]:
    """The test set of the reference model in ``folder``, in file order; the
    stress is ``None`` where PiNN gives none (the file holds NaN there)."""
    data = np.load(folder / "test_predictions.npz")
    structures = []
    for k, name in enumerate(data["names"]):
        # per-atom arrays are concatenated over all structures
        rows = slice(data["offsets"][k], data["offsets"][k + 1])
        atoms = Atoms(
            numbers=data["numbers"][rows], positions=data["positions"][rows], cell=data["cell"][k], pbc=data["pbc"][k]
        )
        stress = data["stress"][k] if not np.isnan(data["stress"][k]).any() else None
        structures.append(ReferenceStructure(str(name), atoms, float(data["energy"][k]), data["forces"][rows], stress))
    return structures


def writable_copy(model_dir: Path, destination: Path) -> Path:
    """A copy of ``model_dir`` at ``destination``, to break or edit."""
    # copyfile leaves out the file modes: copies of read-only shared files stay writable
    shutil.copytree(model_dir, destination, copy_function=shutil.copyfile)
    return destination
