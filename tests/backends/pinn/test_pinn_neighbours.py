"""PiNN's neighbour list: against a literal enumeration of PiNN's rule,
against ASE's neighbour list, the pair counts the reference README states,
both search methods, and strictness at rc and at zero distance."""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlpotential.atomistic.neighbors import image_repeats, pinn_pairs
from tests.backends.pinn_reference import read_reference


@pytest.fixture(scope="module")
def structures(pinn_reference_root: Path) -> dict[str, Atoms]:
    return {structure.name: structure.atoms for structure in read_reference(pinn_reference_root / "pinet")}


def literal_pinn_pairs(atoms: Atoms, rc: float) -> list[tuple[int, int, tuple[float, ...]]]:
    """PiNN's rule written out loop by loop: wrap, then every image with
    |m_k| <= ceil(rc |column k of C^-1|), keep 0 < r < rc."""
    positions = atoms.positions
    shifts = [np.zeros(3)]
    if atoms.pbc.any():
        cell = atoms.cell.array
        fractional = np.linalg.solve(cell.T, positions.T).T % 1.0
        positions = fractional @ cell
        limits = np.ceil(rc * np.linalg.norm(np.linalg.inv(cell), axis=0)).astype(int)
        ranges = [range(-n, n + 1) for n in limits]
        shifts = [np.array(m) @ cell for m in product(*ranges)]
    pairs = []
    for i, j in product(range(len(atoms)), repeat=2):
        for shift in shifts:
            diff = positions[j] + shift - positions[i]
            if 0 < np.linalg.norm(diff) < rc:
                pairs.append((i, j, tuple(np.round(diff, 9))))
    return sorted(pairs)


def as_sorted(pairs, decimals: int = 9) -> list[tuple[int, int, tuple[float, ...]]]:
    return sorted(
        (int(i), int(j), tuple(np.round(d, decimals))) for i, j, d in zip(pairs.centre, pairs.neighbour, pairs.diff)
    )


def our_pairs(atoms: Atoms, rc: float, **options):
    return pinn_pairs(atoms.positions, rc, atoms.cell.array if atoms.pbc.any() else None, **options)


@pytest.mark.parametrize("rc", [4.0, 4.5, 5.0])
def test_same_pairs_as_pinns_rule_written_out(structures: dict[str, Atoms], rc: float) -> None:
    for name, atoms in structures.items():
        if len(atoms) > 14:
            continue  # the literal loops are slow; the large cells are checked against ASE below
        assert as_sorted(our_pairs(atoms, rc)) == literal_pinn_pairs(atoms, rc), name


@pytest.mark.parametrize("rc", [4.0, 4.5])
def test_same_pairs_as_ase_for_periodic_cells(structures: dict[str, Atoms], rc: float) -> None:
    for name, atoms in structures.items():
        if not atoms.pbc.all():
            continue
        i, j, d = neighbor_list("ijD", atoms, rc)
        expected = sorted((int(a), int(b), tuple(np.round(v, 9))) for a, b, v in zip(i, j, d))
        assert as_sorted(our_pairs(atoms, rc)) == expected, name


def test_binned_search_equals_all_candidates(structures: dict[str, Atoms]) -> None:
    for name, atoms in structures.items():
        for rc in (4.0, 5.0):
            assert as_sorted(our_pairs(atoms, rc, brute_force_limit=0)) == as_sorted(our_pairs(atoms, rc)), name


def test_pair_counts_stated_by_the_reference(structures: dict[str, Atoms]) -> None:
    copper = structures["Cu1_primitive_fcc_pbc"]
    assert image_repeats(copper.cell.array, 4.0).tolist() == [2, 2, 2]
    assert image_repeats(copper.cell.array, 4.5).tolist() == [3, 3, 3]
    assert [len(our_pairs(copper, rc)) for rc in (4.0, 4.5, 5.0)] == [18, 42, 42]
    water = structures["H2O_in_5A_box_interacting_with_images_pbc"]
    assert [len(our_pairs(water, rc)) - 6 for rc in (4.0, 4.5, 5.0)] == [2, 4, 16]


def test_cutoff_and_zero_distance_are_strict() -> None:
    # 4.0 and 2.0 are exact in binary, so the distances are exactly rc and rc/2.
    line = Atoms("H3", positions=[[0, 0, 0], [4.0, 0, 0], [2.0, 0, 0]])
    assert sorted(zip(*(our_pairs(line, 4.0).centre, our_pairs(line, 4.0).neighbour))) == [
        (0, 2),
        (1, 2),
        (2, 0),
        (2, 1),
    ]
    on_top = Atoms("H2", positions=[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert len(our_pairs(on_top, 4.0)) == 0
    # In a 5 Angstrom cube with rc 5, an atom's own image lies exactly at rc.
    alone = Atoms("Cu", positions=[[1.0, 2.0, 3.0]], cell=np.eye(3) * 5.0, pbc=True)
    assert len(our_pairs(alone, 5.0)) == 0
    assert len(our_pairs(alone, 5.0 + 1e-9)) == 6


def test_wrapping_gives_the_same_vectors(structures: dict[str, Atoms]) -> None:
    atoms = structures["Cu32_cubic_rattled_pbc"]
    moved = atoms.copy()
    moved.positions[:5] += atoms.cell.array[0] * 2 - atoms.cell.array[2]
    moved_pairs, pairs = our_pairs(moved, 4.5), our_pairs(atoms, 4.5)
    assert as_sorted(moved_pairs, decimals=6) == as_sorted(pairs, decimals=6)
