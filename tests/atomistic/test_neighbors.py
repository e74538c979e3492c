"""The torch neighbour search finds exactly the pairs ASE's neighbour list
finds, with the same periodic images, for bulk, small and skewed cells, slabs,
wires and molecules, whether or not atoms are wrapped into the cell; its
brute-force and cell-list paths agree, and both can leave out coincident
atoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list

from mlpotential.atomistic.neighbors import build_neighbor_list, pair_vectors
from tests.random_structures import random_crystal


def pair_set(center, neighbor, shift) -> set[tuple[int, int, tuple[int, ...]]]:
    return {(int(i), int(j), tuple(int(s) for s in shift_row)) for i, j, shift_row in zip(center, neighbor, shift)}


def ours(atoms: Atoms, cutoff: float):
    return build_neighbor_list(torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), atoms.pbc, cutoff)


def skewed_cell() -> Atoms:
    atoms = bulk("NaCl", "rocksalt", a=5.6) * (2, 1, 1)
    atoms.set_cell(atoms.cell.array + np.random.default_rng(0).normal(0, 0.3, (3, 3)), scale_atoms=True)
    atoms.rattle(0.2, seed=3)
    return atoms


def unwrapped_cell() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61)
    atoms.rattle(0.1, seed=2)
    atoms.positions += [7.3, -11.0, 2.5]
    return atoms


def wire() -> Atoms:
    atoms = molecule("CH4")
    atoms.cell = [4.0, 0.0, 0.0]
    atoms.pbc = (True, False, False)
    return atoms


def sparse_gas() -> Atoms:
    """Atoms thousands of Angstrom apart and one close pair: the cell list
    must not allocate a bin per cutoff-sized cube of empty space."""
    atoms = Atoms("H40", positions=np.random.default_rng(0).uniform(0, 3000, (40, 3)))
    atoms.positions[1] = atoms.positions[0] + [1.0, 0.5, 0.0]
    return atoms


CASES = {
    "bulk 108 atoms": (lambda: bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3)), 6.5),
    "one-atom cell, many images": (unwrapped_cell, 6.5),
    "skewed cell": (skewed_cell, 6.0),
    "random triclinic": (lambda: random_crystal("NaNaClCl", seed=1), 7.0),
    "slab": (lambda: fcc111("Cu", (3, 3, 4), vacuum=6.0), 6.5),
    "molecule": (lambda: molecule("C6H6"), 3.0),
    "wire": (wire, 5.0),
    "sparse gas": (sparse_gas, 5.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pairs_equal_ase(case: str) -> None:
    make, cutoff = CASES[case]
    atoms = make()
    atoms.rattle(0.03, seed=7)
    i, j, shifts = neighbor_list("ijS", atoms, cutoff)
    found = ours(atoms, cutoff)
    assert found.n_pairs == len(i) > 0
    assert pair_set(found.center, found.neighbor, found.cell_shift) == pair_set(i, j, shifts)
    assert bool((found.center[1:] >= found.center[:-1]).all()), "pairs must be sorted by centre"
    vectors = pair_vectors(torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), found)
    assert float(vectors.norm(dim=1).max()) < cutoff


@pytest.mark.parametrize("case", list(CASES))
def test_brute_force_and_cell_list_agree(case: str) -> None:
    make, cutoff = CASES[case]
    atoms = make()
    atoms.rattle(0.03, seed=7)
    arguments = (torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), atoms.pbc, cutoff)
    binned = build_neighbor_list(*arguments, brute_force_limit=0)
    every = build_neighbor_list(*arguments, brute_force_limit=10**9)
    assert bool((binned.center[1:] >= binned.center[:-1]).all()) and bool((every.center[1:] >= every.center[:-1]).all())
    assert pair_set(binned.center, binned.neighbor, binned.cell_shift) == pair_set(
        every.center, every.neighbor, every.cell_shift
    )


@pytest.mark.parametrize("brute_force_limit", [0, 10**9])
def test_coincident_atoms_are_pairs_unless_left_out(brute_force_limit: int) -> None:
    atoms = Atoms("H3", positions=[[1, 1, 1], [1, 1, 1], [2, 1, 1]], cell=np.eye(3) * 6.0, pbc=True)
    arguments = (torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), atoms.pbc, 2.0, brute_force_limit)
    kept = build_neighbor_list(*arguments)
    apart = build_neighbor_list(*arguments, keep_coincident=False)
    assert kept.n_pairs == 6
    kept_pairs = pair_set(kept.center, kept.neighbor, kept.cell_shift)
    assert kept_pairs - pair_set(apart.center, apart.neighbor, apart.cell_shift) == {
        (0, 1, (0, 0, 0)),
        (1, 0, (0, 0, 0)),
    }


def test_empty_and_isolated_systems() -> None:
    assert ours(Atoms(), 5.0).n_pairs == 0
    assert ours(Atoms("Cu"), 5.0).n_pairs == 0
    assert ours(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 10]]), 5.0).n_pairs == 0


def test_degenerate_periodic_cell_is_refused() -> None:
    atoms = Atoms("Cu", cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True)
    with pytest.raises(ValueError, match="linearly dependent"):
        ours(atoms, 3.0)
