"""Results a host can trust: a calculation whose energy, forces, stress or
uncertainty is not finite is an error (protocol status 3), never a success.

The message names the quantity as the host asked for it (``energy``,
``gradients``, ``stressTensor``, ``energyStdDev``, ``forcesStdDev``), the
atoms whose values are not finite where the quantity is per atom, and atoms
that sit on top of each other, the usual cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

_WIRE_NAMES = {
    "energy": "energy",
    "forces": "gradients",
    "stress": "stressTensor",
    "energy_std": "energyStdDev",
    "forces_std": "forcesStdDev",
}
"""ASE result name -> the name the host asked for."""

_PER_ATOM = ("forces", "forces_std")
_OVERLAP_ANGSTROM = 0.3
"""Atoms closer than this are reported as overlapping (no potential is meant for them)."""
_LISTED = 10
"""At most this many atoms or pairs are named in a message."""


def non_finite_result(results: Mapping[str, Any], atoms: Atoms, checked: tuple[str, ...]) -> tuple[str, str] | None:
    """The first of ``checked`` (ASE result names, in order) that holds a
    non-finite value, as (the host's name for it, a message for a person);
    None when all are finite."""
    for name in checked:
        if name not in results:
            continue
        values = np.asarray(results[name], dtype=float)
        finite = np.isfinite(values)
        if finite.all():
            continue
        wire_name = _WIRE_NAMES[name]
        message = f"the model returned non-finite {wire_name}"
        if name in _PER_ATOM:
            bad_atoms = np.flatnonzero(~finite.reshape(len(atoms), -1).all(axis=1))
            message += f" for {_atom_list(atoms, bad_atoms)}"
        elif values.ndim == 0:
            message += f" ({float(values)})"
        return wire_name, message + _overlap_hint(atoms)
    return None


def _atom_list(atoms: Atoms, indices: np.ndarray) -> str:
    symbols = atoms.get_chemical_symbols()
    named = ", ".join(f"{i + 1} ({symbols[i]})" for i in indices[:_LISTED])
    more = f" and {len(indices) - _LISTED} more" if len(indices) > _LISTED else ""
    return f"atom{'s' if len(indices) > 1 else ''} {named}{more}"


def _overlap_hint(atoms: Atoms) -> str:
    """Pairs of atoms (1-based) closer than :data:`_OVERLAP_ANGSTROM`, if any."""
    first, second, distance = neighbor_list("ijd", atoms, _OVERLAP_ANGSTROM)
    pairs = [(i, j, d) for i, j, d in zip(first, second, distance) if i < j]
    if not pairs:
        return ""
    described = "; ".join(f"atoms {i + 1} and {j + 1} are {d:.3f} Angstrom apart" for i, j, d in pairs[:_LISTED])
    return f" ({described}: no potential is meant for atoms this close)"
