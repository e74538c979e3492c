"""Labelled structures for the GPR: reading them and splitting a mixed set
into subsets of one composition each.

A GPR over Cartesian coordinates (and the per-atom force layout of every
descriptor) only compares structures whose atoms are the same elements in
the same order, so a subset is one composition and periodicity, and its
structures must list their atoms in one order. Units: Angstrom, eV,
eV/Angstrom.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from mlpotential.atomistic.xsf import XSFError, read_xsf


class DataError(ValueError):
    """Training or test data that cannot be used; the message names the file."""


@dataclass
class Structure:
    """One structure with its (optional) reference energy (eV) and forces
    (eV/Angstrom, shape (N, 3)). ``cell`` is None for a molecule."""

    symbols: tuple[str, ...]
    positions: np.ndarray
    cell: np.ndarray | None = None
    energy: float | None = None
    forces: np.ndarray | None = None
    source: str = ""

    @property
    def periodic(self) -> bool:
        return self.cell is not None

    @property
    def key(self) -> tuple[tuple[str, ...], bool]:
        """What a GPR model is specific to: ordered elements and periodicity."""
        return (self.symbols, self.periodic)

    @classmethod
    def from_atoms(cls, atoms: Atoms, source: str = "") -> Structure:
        """From ASE atoms; energy and forces are taken from an attached
        calculator when it has them."""
        energy = forces = None
        if atoms.calc is not None:
            energy = atoms.calc.results.get("energy")
            forces = atoms.calc.results.get("forces")
        periodic = bool(np.all(atoms.pbc))
        if np.any(atoms.pbc) and not periodic:
            raise DataError(
                f"{source or 'a structure'}: partly periodic cells are not supported (pbc={atoms.pbc.tolist()})"
            )
        return cls(
            symbols=tuple(atoms.get_chemical_symbols()),
            positions=np.array(atoms.positions, dtype=np.float64),
            cell=np.array(atoms.cell.array, dtype=np.float64) if periodic else None,
            energy=None if energy is None else float(energy),
            forces=None if forces is None else np.array(forces, dtype=np.float64),
            source=source,
        )


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
    a structure that does not raises :class:`DataError` naming both files.
    Energies/forces are kept only when every structure of the subset has them."""
    groups: dict[tuple[tuple[str, ...], bool], list[int]] = {}
    first_of_composition: dict[tuple, int] = {}
    for index, structure in enumerate(structures):
        composition = (tuple(sorted(Counter(structure.symbols).items())), structure.periodic)
        first = first_of_composition.setdefault(composition, index)
        if structures[first].symbols != structure.symbols:
            raise DataError(
                f"{structure.source}: same composition as {structures[first].source} but the atoms are listed in "
                "another order; list them in one order (the GPR compares atom by atom)"
            )
        groups.setdefault(structure.key, []).append(index)
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


def read_structures(paths: Sequence[str | Path], file_format: str = "xsf") -> list[Structure]:
    """Read structures from files: aenet XSF (one structure per file, the
    shared reader of the HDNNP backend), or any format ASE reads (every frame
    of every file). Raises :class:`DataError` naming the file when one cannot
    be read."""
    structures: list[Structure] = []
    for path in paths:
        path = str(path)
        if file_format == "xsf":
            try:
                atoms = read_xsf(path)
            except XSFError as exc:
                raise DataError(str(exc)) from exc
            structures.append(Structure.from_atoms(atoms, source=path))
            continue
        import ase.io

        try:
            frames = ase.io.read(path, index=":", format=file_format)
        except Exception as exc:  # ASE raises many kinds for a bad file
            raise DataError(f"cannot read {path} as {file_format!r}: {exc}") from exc
        for number, atoms in enumerate(frames):
            source = path if len(frames) == 1 else f"{path}@{number}"
            structures.append(Structure.from_atoms(atoms, source=source))
    return structures


def require_labels(structures: Sequence[Structure], need_forces: bool, purpose: str) -> None:
    """Raise :class:`DataError` naming the first file without an energy
    (or, with ``need_forces``, without forces)."""
    for structure in structures:
        if structure.energy is None:
            raise DataError(
                f"{structure.source}: no total energy ({purpose} needs one; aenet XSF files carry it "
                "in the first line as '# total energy = <value> eV')"
            )
        if need_forces and structure.forces is None:
            raise DataError(f"{structure.source}: no forces on the atom lines ({purpose} needs them)")
