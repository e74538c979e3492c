"""The growing dataset of an active-learning run: extended XYZ with the
reference's labels and the iteration that added each frame.

Each frame carries ``REF_energy`` (eV) and ``REF_stress`` (eV/Angstrom^3,
3D-periodic cells) in its info, ``REF_forces`` (eV/Angstrom) in its arrays,
``iteration`` (0: the initial structures) and ``origin`` (where it came
from). Frames are appended as they are labelled, so an interrupted run
loses nothing it computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from mlpotential.atomistic.structures import Structure
from mlpotential.learning.labelling import Label


def labelled_frame(atoms: Atoms, label: Label, iteration: int, origin: str) -> Atoms:
    """``atoms`` with the reference's labels, ready for the dataset file."""
    frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update({"REF_energy": float(label.energy), "iteration": int(iteration), "origin": origin})
    frame.arrays["REF_forces"] = np.asarray(label.forces, dtype=np.float64)
    if label.stress is not None:
        frame.info["REF_stress"] = np.asarray(label.stress, dtype=np.float64)
    return frame


def append_frames(path: Path, frames: Sequence[Atoms]) -> None:
    """Add labelled frames to the dataset file (extended XYZ)."""
    if frames:
        write(path, list(frames), format="extxyz", append=path.exists())


def read_frames(path: Path) -> list[Atoms]:
    """Every frame of the dataset file (none if it does not exist yet)."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    return list(read(path, index=":", format="extxyz"))


def as_structures(frames: Sequence[Atoms]) -> list[Structure]:
    """The frames as training structures (Angstrom, eV, eV/Angstrom)."""
    structures = []
    for index, frame in enumerate(frames):
        atoms = frame.copy()
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(frame.info["REF_energy"]), forces=np.asarray(frame.arrays["REF_forces"])
        )
        structures.append(Structure.from_atoms(atoms, source=f"{frame.info.get('origin', 'dataset')}#{index}"))
    return structures
