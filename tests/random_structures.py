"""Random structures for tests: molecules in a box and triclinic crystals."""

from __future__ import annotations

import numpy as np
from ase import Atoms


def random_molecule(symbols: str, seed: int, box: float = 4.0, closest: float = 0.9) -> Atoms:
    """Atoms at random positions in a box, no two closer than ``closest`` Angstrom."""
    rng = np.random.default_rng(seed)
    count = len(Atoms(symbols))
    positions: list[np.ndarray] = []
    while len(positions) < count:
        candidate = rng.uniform(0.0, box, 3)
        if all(np.linalg.norm(candidate - p) >= closest for p in positions):
            positions.append(candidate)
    return Atoms(symbols, positions=positions)


def random_crystal(symbols: str, seed: int, closest: float = 1.2) -> Atoms:
    """A random triclinic cell (about 4-6 Angstrom edges) with randomly
    placed atoms, no two (or two images) closer than ``closest``."""
    rng = np.random.default_rng(seed)
    cell = np.diag(rng.uniform(4.0, 6.0, 3)) + rng.uniform(-0.8, 0.8, (3, 3)) * (1 - np.eye(3))
    count = len(Atoms(symbols))
    while True:
        atoms = Atoms(symbols, cell=cell, pbc=True, scaled_positions=rng.uniform(0.0, 1.0, (count, 3)))
        distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * closest
        if distances.min() >= closest:
            return atoms
