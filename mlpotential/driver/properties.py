"""The Properties block: gradients, the stress tensor, the Hessian and the
normal modes at the final geometry.

The Hessian comes from central finite differences of the engine's gradients
(each Cartesian coordinate displaced by +-:data:`DISPLACEMENT` Angstrom,
6N gradient evaluations), symmetrised, as ASE's ``Vibrations`` does. Normal
modes diagonalise the mass-weighted Hessian after projecting out the rigid
translations (and, for a molecule, the rotations), as AMS does; the
frequencies are in cm^-1, an imaginary one given as a negative number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from mlpotential.driver.job import PropertiesSettings
from mlpotential.driver.results import write_text_atomic
from mlpotential.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV

DISPLACEMENT = 0.01
"""Angstrom: the finite-difference displacement (ASE's ``Vibrations`` default)."""

HESSIAN_FILE = "hessian.txt"
NORMAL_MODES_FILE = "normal_modes.txt"

_EV_PER_ANGSTROM2_TO_HARTREE_PER_BOHR2 = BOHR_TO_ANGSTROM**2 / HARTREE_TO_EV
_HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3 = HARTREE_TO_EV / BOHR_TO_ANGSTROM**3


def finite_difference_hessian(atoms: Atoms, displacement: float = DISPLACEMENT) -> np.ndarray:
    """The Hessian (eV/Angstrom^2, (3N, 3N), symmetric) by central
    differences of the forces of ``atoms``'s calculator."""
    displaced = atoms.copy()
    displaced.calc = atoms.calc
    count = 3 * len(atoms)
    hessian = np.empty((count, count))
    for row in range(count):
        atom, axis = divmod(row, 3)
        forces = []
        for sign in (-1, 1):
            positions = atoms.positions.copy()
            positions[atom, axis] += sign * displacement
            displaced.positions = positions
            forces.append(displaced.get_forces())
        hessian[row] = (forces[0] - forces[1]).ravel() / (2 * displacement)
    return (hessian + hessian.T) / 2


def _rigid_motions(atoms: Atoms) -> np.ndarray:
    """Orthonormal mass-weighted vectors (rows) of the rigid translations and,
    for a molecule, rotations: the motions that cost no energy."""
    masses = atoms.get_masses()
    weights = np.sqrt(np.repeat(masses, 3))
    vectors = []
    for axis in range(3):
        translation = np.zeros((len(atoms), 3))
        translation[:, axis] = 1.0
        vectors.append(translation.ravel() * weights)
    if not atoms.pbc.any():
        centred = atoms.positions - atoms.get_center_of_mass()
        for axis in np.eye(3):
            vectors.append(np.cross(axis, centred).ravel() * weights)
    basis, singular, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    # a linear molecule has one rotation fewer: drop the vanishing direction
    return basis[:, singular > 1e-6 * singular.max()].T


def normal_modes(atoms: Atoms, hessian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (cm^-1, ascending; imaginary ones negative) and Cartesian
    modes ((modes, N, 3), each normalised) of ``hessian`` (eV/Angstrom^2),
    the rigid motions left out."""
    inverse_root_masses = 1 / np.sqrt(np.repeat(atoms.get_masses(), 3))
    weighted = hessian * np.outer(inverse_root_masses, inverse_root_masses)
    rigid = _rigid_motions(atoms)
    projector = np.eye(len(weighted)) - rigid.T @ rigid
    eigenvalues, vectors = np.linalg.eigh(projector @ weighted @ projector)
    # The rigid motions are eigenvectors of the projected matrix with value 0: drop them.
    overlap = np.einsum("ij,ij->j", rigid @ vectors, rigid @ vectors)
    keep = np.argsort(overlap)[: len(weighted) - len(rigid)]
    keep = keep[np.argsort(eigenvalues[keep])]
    # eV/(Angstrom^2 amu) -> energy hbar*omega (eV) -> cm^-1
    to_energy = units._hbar * 1e10 / np.sqrt(units._e * units._amu)
    values = eigenvalues[keep]
    frequencies = np.sign(values) * to_energy * np.sqrt(np.abs(values)) / units.invcm
    modes = (vectors[:, keep] * inverse_root_masses[:, None]).T
    modes /= np.linalg.norm(modes, axis=1, keepdims=True)
    return frequencies, modes.reshape(len(keep), len(atoms), 3)


def compute_properties(atoms: Atoms, settings: PropertiesSettings, results: Path) -> dict[str, Any]:
    """Compute what ``settings`` asks for at the geometry of ``atoms`` (its
    calculator attached), write the Hessian and normal modes to ``results``;
    the summary's ``properties``."""
    found: dict[str, Any] = {}
    if settings.gradients:
        found["gradients_hartree_per_bohr"] = (-atoms.get_forces() / HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM).tolist()
    if settings.stress_tensor:
        stress = atoms.get_stress(voigt=False) / _HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3
        found["stress_tensor_hartree_per_bohr3"] = stress.tolist()
    if settings.hessian or settings.normal_modes:
        hessian = finite_difference_hessian(atoms)
        found["hessian_displacement_angstrom"] = DISPLACEMENT
        if settings.hessian:
            in_atomic_units = hessian * _EV_PER_ANGSTROM2_TO_HARTREE_PER_BOHR2
            write_text_atomic(results / HESSIAN_FILE, _matrix_text(in_atomic_units, "Hessian, Hartree/Bohr^2"))
            found["hessian_file"] = HESSIAN_FILE
        if settings.normal_modes:
            frequencies, modes = normal_modes(atoms, hessian)
            write_text_atomic(results / NORMAL_MODES_FILE, _modes_text(atoms, frequencies, modes))
            found["frequencies_cm-1"] = frequencies.tolist()
            found["normal_modes_file"] = NORMAL_MODES_FILE
    return found


def _matrix_text(matrix: np.ndarray, title: str) -> str:
    rows = "\n".join(" ".join(f"{value: .10e}" for value in row) for row in matrix)
    return f"# {title}; rows and columns: atom 1 x, y, z, atom 2 x, ...\n{rows}\n"


def _modes_text(atoms: Atoms, frequencies: np.ndarray, modes: np.ndarray) -> str:
    lines = ["# Normal modes: frequency (cm^-1, negative = imaginary), then each atom's normalised displacement"]
    for number, (frequency, mode) in enumerate(zip(frequencies, modes), start=1):
        lines.append(f"mode {number} {frequency:.4f}")
        lines += [f"  {symbol:<2} {x: .6f} {y: .6f} {z: .6f}" for symbol, (x, y, z) in zip(atoms.symbols, mode)]
    return "\n".join(lines) + "\n"
