"""Small copper structures for the active-learning tests."""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.build import bulk
from ase.io import write

HERE = Path(__file__).resolve().parent
FAILING_REFERENCE = HERE / "failing_emt.py"


def copper_cells(count: int, atoms_per_cell: int = 4) -> list[Atoms]:
    """``count`` rattled fcc copper cells (4 or 32 atoms), lattice constants
    around EMT's 3.59 Angstrom."""
    cells = []
    for k in range(count):
        atoms = bulk("Cu", "fcc", a=3.56 + 0.02 * k, cubic=True)
        if atoms_per_cell == 32:
            atoms = atoms.repeat(2)
        atoms.rattle(0.05, seed=k)
        cells.append(atoms)
    return cells


def unreachable(atoms: Atoms) -> Atoms:
    """``atoms`` with its first atom moved to x = -2 Angstrom, where the
    failing reference gives up."""
    broken = atoms.copy()
    broken.positions[0, 0] = -2.0
    return broken


def write_structures(path: Path, structures: list[Atoms]) -> Path:
    write(path, structures, format="extxyz")
    return path
