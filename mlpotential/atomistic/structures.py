"""Training data: structures with a total energy (eV) and, where known,
forces (eV/Angstrom), read from anything ``ase.io`` reads (extxyz,
trajectory, ASE database, VASP OUTCAR, ...) and from aenet XSF files (single
files, folders of them, or zip archives).

A structure without forces is *energy-only*: it enters the energy loss and not
the force loss. A data source can also be marked energy-only, which ignores
forces it may carry.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from mlpotential.atomistic.xsf import XSFError, read_xsf, read_xsf_zip


class DataError(ValueError):
    """Training data cannot be read or lacks what training needs; the message
    names the file (and structure)."""


@dataclass(frozen=True)
class DataSource:
    """Where structures come from.

    ``path``: a file, a folder of ``*.xsf`` files, a zip archive of them, or a
    glob pattern; ``format``: an ``ase.io`` format name or ``"xsf"`` (default:
    guessed from the name); ``index``: which frames of a multi-frame file
    (``ase.io`` syntax, default all); ``energy_only``: ignore forces.
    """

    path: str
    format: str | None = None
    index: str = ":"
    energy_only: bool = False


@dataclass
class Structure:
    """One training structure: the atoms (positions in Angstrom), total
    energy (eV), forces (eV/Angstrom, (N, 3)) or None, and where it came
    from."""

    atoms: Atoms
    energy: float
    forces: np.ndarray | None
    origin: str

    @property
    def has_forces(self) -> bool:
        return self.forces is not None


def load_structures(source: DataSource, base: Path | None = None) -> list[Structure]:
    """Every structure of ``source`` (relative paths against ``base``)."""
    path = Path(source.path)
    if base is not None and not path.is_absolute():
        path = base / path
    files = _expand(path, source.path)
    structures = []
    for file in files:
        for origin, atoms in _read(file, source):
            structures.append(_structure(atoms, origin, source.energy_only))
    if not structures:
        raise DataError(f"data source {source.path!r} holds no structures")
    return structures


def _expand(path: Path, given: str) -> list[Path]:
    if any(ch in given for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path)))
        if not files:
            raise DataError(f"data source {given!r}: the pattern matches no file")
        return files
    if path.is_dir():
        files = sorted(path.glob("*.xsf"))
        if not files:
            raise DataError(f"data source {given!r}: the folder holds no *.xsf files")
        return files
    if not path.exists():
        raise DataError(f"data source {given!r}: {path} does not exist")
    return [path]


def _read(file: Path, source: DataSource) -> list[tuple[str, Atoms]]:
    kind = (source.format or "").lower()
    try:
        if kind == "xsf" or (not kind and file.suffix.lower() == ".xsf"):
            return [(str(file), read_xsf(file))]
        if not kind and file.suffix.lower() == ".zip":
            return [(f"{file}:{member}", atoms) for member, atoms in read_xsf_zip(file)]
    except XSFError as exc:
        raise DataError(str(exc)) from exc
    from ase.io import read

    try:
        frames = read(file, index=source.index, format=source.format)
    except Exception as exc:  # ase.io raises many types for foreign files
        raise DataError(f"{file}: ase.io cannot read it ({type(exc).__name__}: {exc})") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    return [(f"{file}@{k}", atoms) for k, atoms in enumerate(frames)]


def _structure(atoms: Atoms, origin: str, energy_only: bool) -> Structure:
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = results.get("energy", results.get("free_energy"))
    if energy is None:
        raise DataError(f"{origin}: the structure has no energy; training needs total energies (eV)")
    forces = None if energy_only else results.get("forces")
    if forces is not None:
        forces = np.array(forces, dtype=np.float64).reshape(len(atoms), 3)
    clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=atoms.pbc)
    return Structure(clean, float(energy), forces, origin)
