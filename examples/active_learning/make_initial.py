"""Write the example's starting structures: six 32-atom fcc copper cells,
lattice constants 3.56 to 3.66 Angstrom, atoms displaced by 0.05 Angstrom
(rms), unlabelled (the loop labels them with EMT). Run once; the files are
in the repository.

    python examples/active_learning/make_initial.py
"""

from __future__ import annotations

from pathlib import Path

from ase.build import bulk
from ase.io import write

HERE = Path(__file__).resolve().parent
LATTICE_CONSTANTS = (3.56, 3.58, 3.60, 3.62, 3.64, 3.66)
"""Angstrom; EMT's copper is at 3.59."""


def initial_structures():
    structures = []
    for seed, lattice_constant in enumerate(LATTICE_CONSTANTS):
        atoms = bulk("Cu", "fcc", a=lattice_constant, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=seed)
        structures.append(atoms)
    return structures


if __name__ == "__main__":
    write(HERE / "initial.xyz", initial_structures(), format="extxyz")
    print(f"written: {HERE / 'initial.xyz'}")
