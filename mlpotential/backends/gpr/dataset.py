"""Splitting labelled structures for the GPR into subsets of one
composition each.

A GPR over Cartesian coordinates (and the per-atom force layout of every
descriptor) only compares structures whose atoms are the same elements in
the same order, so a subset is one composition and periodicity, and its
structures must list their atoms in one order. The structures themselves and
their reader are :mod:`mlpotential.atomistic.structures`. Units: Angstrom,
eV, eV/Angstrom.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mlpotential.atomistic.structures import DataError, Structure


@dataclass
class StructureSubset:
    """Structures of one composition, stacked: ``positions`` (n, N, 3),
    ``cells`` (n, 3, 3) or None, ``energies`` (n,) or None, ``forces``
    (n, N, 3) or None. ``indices`` are the structures' places in the list
    they were split from."""

    symbols: tuple[str, ...]
    periodic: bool
    positions: np.ndarray
    cells: np.ndarray | None
    energies: np.ndarray | None
    forces: np.ndarray | None
    sources: list[str] = field(default_factory=list)
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def num_atoms(self) -> int:
        return len(self.symbols)

    @property
    def label(self) -> str:
        """A short name: the formula and the atom count."""
        return f"{Atoms(self.symbols).get_chemical_formula()} ({self.num_atoms} atoms)"

    def select(self, keep: Sequence[int]) -> StructureSubset:
        keep = np.asarray(keep, dtype=np.int64)
        return StructureSubset(
            symbols=self.symbols,
            periodic=self.periodic,
            positions=self.positions[keep],
            cells=None if self.cells is None else self.cells[keep],
            energies=None if self.energies is None else self.energies[keep],
            forces=None if self.forces is None else self.forces[keep],
            sources=[self.sources[i] for i in keep] if self.sources else [],
            indices=self.indices[keep],
        )


def split_by_composition(structures: Sequence[Structure]) -> list[StructureSubset]:
    """Group structures by composition and periodicity, in order of first
    appearance. Within a group every structure must list its atoms in the
    same order (the force layout and the Cartesian descriptor depend on it):
    a structure that does not raises :class:`DataError` naming both files,
    and so does a structure periodic along one or two axes only.
    Energies/forces are kept only when every structure of the subset has them."""
    groups: dict[tuple[tuple[str, ...], bool], list[int]] = {}
    first_of_composition: dict[tuple, int] = {}
    for index, structure in enumerate(structures):
        _require_whole_periodicity(structure)
        composition = (tuple(sorted(Counter(structure.symbols).items())), structure.periodic)
        first = first_of_composition.setdefault(composition, index)
        if structures[first].symbols != structure.symbols:
            raise DataError(
                f"{structure.source}: same composition as {structures[first].source} but the atoms are listed in "
                "another order; list them in one order (the GPR compares atom by atom)"
            )
        groups.setdefault((structure.symbols, structure.periodic), []).append(index)
    subsets = []
    for (symbols, periodic), members in groups.items():
        chosen = [structures[i] for i in members]
        energies = None
        if all(s.energy is not None for s in chosen):
            energies = np.array([s.energy for s in chosen], dtype=np.float64)
        forces = None
        if all(s.forces is not None for s in chosen):
            forces = np.stack([s.forces for s in chosen]).astype(np.float64)
        subsets.append(
            StructureSubset(
                symbols=symbols,
                periodic=periodic,
                positions=np.stack([s.positions for s in chosen]).astype(np.float64),
                cells=np.stack([s.cell for s in chosen]).astype(np.float64) if periodic else None,
                energies=energies,
                forces=forces,
                sources=[s.source for s in chosen],
                indices=np.array(members, dtype=np.int64),
            )
        )
    return subsets


def _require_whole_periodicity(structure: Structure) -> None:
    """A GPR is for molecules or bulk cells: a slab or wire (periodic along
    one or two axes) raises :class:`DataError` naming its file."""
    if any(structure.pbc) and not structure.periodic:
        raise DataError(
            f"{structure.source or 'a structure'}: partly periodic cells are not supported (pbc={list(structure.pbc)})"
        )
