"""What every backend's installation probe uses: a tiny evaluation through
our own factory, and checks that say plainly what went wrong.

A backend's probe (``backends/<name>/probe.py``, ``probe() -> str``) is named
in its registry record; ``mlpotential install --list`` runs each in a fresh
interpreter (:mod:`mlpotential.installer.probes`). A probe returns a one-line
description of what it evaluated (energies in eV) and raises when something
does not work.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np


class ProbeFailure(RuntimeError):
    """The evaluation ran but its result is wrong."""


def water():
    from ase.build import molecule

    return molecule("H2O")


def require_finite(name: str, *values: Any) -> None:
    for value in values:
        if not np.all(np.isfinite(np.asarray(value, dtype=float))):
            raise ProbeFailure(f"{name} gave a non-finite result")


def our_calculator(keywords: dict[str, str]):
    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings

    return create_calculator(parse_settings(keywords))


def require_module(module: str) -> None:
    """Our own backend modules are written alongside the wizard; say so
    plainly when one is not there rather than failing with an ImportError."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing too
        found = False
    if not found:
        raise ProbeFailure(f"module missing ({module})")


def copper_cluster():
    """A 13-atom copper icosahedron, its symmetry broken so forces are not zero."""
    from ase.cluster import Icosahedron

    cluster = Icosahedron("Cu", noshells=2)
    cluster.rattle(0.05, seed=1)
    return cluster


def force_matches_energy_slope(atoms, atom: int = 1, axis: int = 0, step: float = 1e-4) -> float:
    """|F - (-dE/dx)| for one coordinate, dE/dx by a central difference (eV/Angstrom)."""
    force = atoms.get_forces()[atom, axis]
    if force == 0.0:
        raise ProbeFailure("the force to compare with the energy slope is exactly zero")
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.calc = atoms.calc
        moved.positions[atom, axis] += sign * step
        energies.append(moved.get_potential_energy())
    return abs(force + (energies[0] - energies[1]) / (2 * step))
