"""The bridge between ASE and the wire, both directions, for worker and host.

* Systems: ``ase.Atoms`` (Angstrom) <-> SetSystem / SetCoords / SetLattice
  (Bohr). The first 1, 2 or 3 lattice vectors are the periodic directions.
* Results: an ASE calculator's ``results`` (eV, eV/Angstrom, eV/Angstrom^3,
  Voigt stress) <-> a ``results`` message (Hartree, Hartree/Bohr gradients,
  Hartree/Bohr^3 3x3 stress).

The unit conversions of the wire happen here and nowhere else. Each function
that changes an ``Atoms`` checks everything first, so a Set call that fails
leaves the system as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from mlpotential.protocol.errors import ProtocolError, Status
from mlpotential.protocol.messages import Results, SetCoords, SetLattice, SetSystem
from mlpotential.units import (
    BOHR_TO_ANGSTROM,
    HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3,
    HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
    HARTREE_TO_EV,
)

_SENDABLE_PERIODICITY = ([False] * 3, [True, False, False], [True, True, False], [True] * 3)


# ------------------------------------------------------------------ systems
def cell_from_vectors(vectors: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    """An ASE cell (3, 3) and pbc flags for 0-3 lattice vectors (rows, same
    unit in and out): the first n directions are periodic."""
    vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    cell = np.zeros((3, 3))
    cell[: len(vectors)] = vectors
    return cell, [i < len(vectors) for i in range(3)]


def lattice_bohr(atoms: Atoms) -> np.ndarray:
    """The periodic cell vectors of ``atoms`` in Bohr, shape (nPeriodic, 3)."""
    return atoms.cell.array[atoms.pbc] / BOHR_TO_ANGSTROM


def system_message(atoms: Atoms) -> SetSystem:
    """SetSystem (Bohr) for an ``ase.Atoms`` (Angstrom): the periodic
    directions must be the first 1, 2 or 3 cell vectors (ValueError otherwise)."""
    if atoms.pbc.tolist() not in _SENDABLE_PERIODICITY:
        raise ValueError(
            f"periodicity {atoms.pbc.tolist()} cannot be sent: the pipe protocol makes the first "
            "1, 2 or 3 lattice directions periodic"
        )
    return SetSystem(
        atom_symbols=atoms.get_chemical_symbols(),
        coords=atoms.positions / BOHR_TO_ANGSTROM,
        lattice=lattice_bohr(atoms),
        total_charge=float(atoms.info.get("charge", 0.0)),
    )


def coords_message(atoms: Atoms) -> SetCoords:
    """SetCoords (Bohr) for the positions of ``atoms`` (Angstrom)."""
    return SetCoords(atoms.positions / BOHR_TO_ANGSTROM)


def lattice_message(atoms: Atoms) -> SetLattice:
    """SetLattice (Bohr) for the periodic cell vectors of ``atoms`` (Angstrom)."""
    return SetLattice(lattice_bohr(atoms))


def _invalid(method: str, argument: str, message: str) -> ProtocolError:
    return ProtocolError(Status.INVALID_ARGUMENT, message, method, argument)


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
    cell, pbc = cell_from_vectors(message.lattice * BOHR_TO_ANGSTROM)
    atoms = Atoms(symbols=message.atom_symbols, positions=message.coords * BOHR_TO_ANGSTROM, cell=cell, pbc=pbc)
    atoms.info["charge"] = message.total_charge
    return atoms


def set_coords(atoms: Atoms, coords_bohr: np.ndarray) -> None:
    """New positions (Bohr) for the same atoms."""
    if len(coords_bohr) != len(atoms):
        raise _invalid(
            "SetCoords",
            "coords",
            f"SetCoords sends {len(coords_bohr)} atoms; the system has {len(atoms)} "
            "(a different atom count needs SetSystem)",
        )
    atoms.positions = coords_bohr * BOHR_TO_ANGSTROM


def set_lattice(atoms: Atoms, vectors_bohr: np.ndarray) -> None:
    """New lattice vectors (Bohr), as many as the system has."""
    periodic = int(sum(atoms.pbc))
    if len(vectors_bohr) != periodic:
        raise _invalid(
            "SetLattice",
            "vectors",
            f"SetLattice sends {len(vectors_bohr)} lattice vectors; the system has "
            f"{periodic} (a change of periodicity needs SetSystem)",
        )
    _check_lattice("SetLattice", "vectors", vectors_bohr)
    cell, _ = cell_from_vectors(vectors_bohr * BOHR_TO_ANGSTROM)
    atoms.set_cell(cell, scale_atoms=False)


# ------------------------------------------------------------------ results
def results_to_wire(
    results: Mapping[str, Any], gradients: bool = False, stress: bool = False, forces_std: bool = False
) -> Results:
    """A ``results`` message (atomic units) from an ASE calculator's results
    (eV units). ``gradients``/``stress``/``forces_std`` say which optional
    quantities the request asked for; ``energyStdDev`` travels whenever the
    calculator has it."""
    values: dict[str, Any] = {}
    if gradients:
        values["gradients"] = np.asarray(results["forces"]) / -HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    if stress:
        voigt_or_full = np.asarray(results["stress"])
        full = voigt_or_full if voigt_or_full.shape == (3, 3) else voigt_6_to_full_3x3_stress(voigt_or_full)
        values["stressTensor"] = full / HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3
    if "energy_std" in results:
        values["energyStdDev"] = float(results["energy_std"]) / HARTREE_TO_EV
    if forces_std and "forces_std" in results:
        values["forcesStdDev"] = np.asarray(results["forces_std"]) / HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    return Results(float(results["energy"]) / HARTREE_TO_EV, values)


def results_from_wire(results: Results) -> dict[str, Any]:
    """An ASE calculator's results (eV units, Voigt stress) from a
    ``results`` message (atomic units); the inverse of :func:`results_to_wire`."""
    energy = results.energy * HARTREE_TO_EV
    converted: dict[str, Any] = {"energy": energy, "free_energy": energy}
    values = results.values
    if "gradients" in values:
        converted["forces"] = np.asarray(values["gradients"]) * -HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    if "stressTensor" in values:
        stress = np.asarray(values["stressTensor"]) * HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3
        converted["stress"] = full_3x3_to_voigt_6_stress(stress)
    if "energyStdDev" in values:
        converted["energy_std"] = float(values["energyStdDev"]) * HARTREE_TO_EV
    if "forcesStdDev" in values:
        converted["forces_std"] = np.asarray(values["forcesStdDev"]) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
    return converted
