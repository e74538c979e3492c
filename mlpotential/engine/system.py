"""Systems: protocol messages (Bohr) <-> ``ase.Atoms`` (Angstrom), both ways.

Each function checks everything before it changes anything, so a Set call
that fails leaves the system as it was.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from mlpotential.backends.units import BOHR_ANGSTROM
from mlpotential.protocol.errors import ProtocolError, Status
from mlpotential.protocol.messages import SetSystem


_SENDABLE_PERIODICITY = ([False] * 3, [True, False, False], [True, True, False], [True] * 3)


def system_message(atoms: Atoms) -> SetSystem:
    """SetSystem (Bohr) for an ``ase.Atoms`` (Angstrom): the periodic
    directions must be the first 1, 2 or 3 cell vectors."""
    if atoms.pbc.tolist() not in _SENDABLE_PERIODICITY:
        raise ValueError(f"periodicity {atoms.pbc.tolist()} cannot be sent: the pipe protocol makes the first "
                         "1, 2 or 3 lattice directions periodic")  # fmt: skip
    return SetSystem(
        atom_symbols=atoms.get_chemical_symbols(),
        coords=atoms.positions / BOHR_ANGSTROM,
        lattice=atoms.cell.array[atoms.pbc] / BOHR_ANGSTROM,
        total_charge=float(atoms.info.get("charge", 0.0)),
    )


def _invalid(method: str, argument: str, message: str) -> ProtocolError:
    return ProtocolError(Status.INVALID_ARGUMENT, message, method, argument)


def cell_and_pbc(vectors_bohr: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    """ASE cell (3, 3) Angstrom and pbc flags for 0-3 lattice vectors (Bohr):
    the first n directions are periodic."""
    cell = np.zeros((3, 3))
    cell[: len(vectors_bohr)] = vectors_bohr * BOHR_ANGSTROM
    return cell, [i < len(vectors_bohr) for i in range(3)]


def _check_lattice(method: str, argument: str, vectors_bohr: np.ndarray) -> None:
    if len(vectors_bohr) and np.linalg.matrix_rank(vectors_bohr) < len(vectors_bohr):
        raise _invalid(method, argument, f"the {len(vectors_bohr)} lattice vectors are linearly dependent")


def atoms_from_system(message: SetSystem) -> Atoms:
    """A new ``ase.Atoms`` from SetSystem; unknown element symbols and
    degenerate lattices are invalid_argument."""
    unknown = sorted({symbol for symbol in message.atom_symbols if symbol not in atomic_numbers or symbol == "X"})
    if unknown:
        raise _invalid("SetSystem", "atomSymbols", f"unknown element symbol(s): {', '.join(map(repr, unknown))}")
    _check_lattice("SetSystem", "latticeVectors", message.lattice)
    cell, pbc = cell_and_pbc(message.lattice)
    atoms = Atoms(symbols=message.atom_symbols, positions=message.coords * BOHR_ANGSTROM, cell=cell, pbc=pbc)
    atoms.info["charge"] = message.total_charge
    return atoms


def set_coords(atoms: Atoms, coords_bohr: np.ndarray) -> None:
    """New positions (Bohr) for the same atoms."""
    if len(coords_bohr) != len(atoms):
        raise _invalid(
            "SetCoords", "coords", f"SetCoords sends {len(coords_bohr)} atoms; the system has {len(atoms)} "
            "(a different atom count needs SetSystem)",
        )  # fmt: skip
    atoms.positions = coords_bohr * BOHR_ANGSTROM


def set_lattice(atoms: Atoms, vectors_bohr: np.ndarray) -> None:
    """New lattice vectors (Bohr), as many as the system has."""
    periodic = int(sum(atoms.pbc))
    if len(vectors_bohr) != periodic:
        raise _invalid(
            "SetLattice", "vectors", f"SetLattice sends {len(vectors_bohr)} lattice vectors; the system has "
            f"{periodic} (a change of periodicity needs SetSystem)",
        )  # fmt: skip
    _check_lattice("SetLattice", "vectors", vectors_bohr)
    cell, _ = cell_and_pbc(vectors_bohr)
    atoms.set_cell(cell, scale_atoms=False)
