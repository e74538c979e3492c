"""Checks of a backend's ASE calculator in this process, shared by the backend tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from mlpotential.errors import KeywordError


def evaluate(calculator: Calculator, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy and forces of ``atoms`` with ``calculator`` (on a copy: ``atoms`` keeps its own calculator)."""
    atoms = atoms.copy()
    atoms.calc = calculator
    return atoms.get_potential_energy(), atoms.get_forces()


def central_difference_forces(
    calculator: Calculator, atoms: Atoms, step: float, indices: Sequence[int] | None = None
) -> np.ndarray:
    """Minus the gradient of the energy ``calculator`` gives at ``atoms``, by
    central differences of ``step`` Angstrom, to hold its forces against: one
    row per atom of ``indices`` (default: every atom)."""
    indices = range(len(atoms)) if indices is None else indices
    numeric = np.zeros((len(indices), 3))
    for row, index in enumerate(indices):
        for axis in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[index, axis] += sign * step
                moved.calc = calculator
                energies.append(moved.get_potential_energy())
            numeric[row, axis] = -(energies[0] - energies[1]) / (2 * step)
    return numeric


def central_difference_stress(calculator: Calculator, atoms: Atoms, step: float = 1e-5) -> np.ndarray:
    """The stress (eV/Angstrom^3, 3x3, symmetric) as (1/V) dE/d(strain), by
    central differences of ``step`` in each strain component, to hold a
    calculator's stress against."""
    stress = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * step
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ strain, scale_atoms=True)
                strained.calc = calculator
                energies.append(strained.get_potential_energy())
            stress[a, b] = (energies[0] - energies[1]) / (2 * step) / atoms.get_volume()
    return 0.5 * (stress + stress.T)


def assert_bohr_model_sees_positions_in_bohr(bohr_model: Calculator, angstrom_model: Calculator, atoms: Atoms) -> None:
    """The same model read with MLDistanceUnit bohr (``bohr_model``) and
    angstrom: E_bohr(x a0) = E(x) and F_bohr(x a0) = F(x) / a0."""
    # a geometry whose coordinates, read in bohr, are ``atoms`` in Angstrom
    in_bohr = atoms.copy()
    in_bohr.positions *= units.Bohr
    energy_bohr, forces_bohr = evaluate(bohr_model, in_bohr)
    energy, forces = evaluate(angstrom_model, atoms)
    assert energy_bohr == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(forces_bohr, forces / units.Bohr, rtol=0, atol=1e-8)


def assert_model_file_refused(create: Callable[[Path], Calculator], path: Path, expected: str, *fragments: str) -> None:
    """``create(path)`` refuses the file with a :class:`KeywordError` for
    ParameterFile whose message names the file, each of ``fragments`` (what
    the file is instead) and ``expected`` (what the backend expects)."""
    with pytest.raises(KeywordError) as error:
        create(path)
    assert error.value.keyword == "ParameterFile"
    for fragment in (str(path), *fragments):
        assert fragment in error.value.message
    assert expected in error.value.message
