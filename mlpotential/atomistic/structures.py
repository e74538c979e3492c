"""Labelled structures, the training and test data of every trainable
backend (HDNNP, GPR), and the one reader of structure files.

A :class:`Structure` holds positions and cell in Angstrom, the total energy
in eV and the forces in eV/Angstrom. Files are read with ``ase.io`` (extxyz,
trajectory, ASE database, VASP OUTCAR, ...) or, for aenet XSF, with
:mod:`mlpotential.atomistic.xsf` (single files, folders of them, or zip
archives).

A structure without forces is *energy-only*: it enters the energy loss and not
the force loss. A data source can also be marked energy-only, which ignores
forces it may carry.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from mlpotential.atomistic.xsf import XSFError, read_xsf, read_xsf_zip
from mlpotential.inputs import COORDINATES


class DataError(ValueError):
    """Training or test data cannot be read or lacks what its use needs; the
    message names the file (and structure)."""


@dataclass
class Structure:
    """One structure and its reference labels.

    ``symbols``: the elements in atom order; ``positions``: (N, 3), Angstrom;
    ``cell``: (3, 3) lattice vectors as rows, Angstrom (zeros: no cell);
    ``pbc``: periodic along each lattice vector; ``energy``: total energy, eV,
    or None; ``forces``: (N, 3), eV/Angstrom, or None (energy-only);
    ``source``: where it was read (file, ``file:member``, ``file@frame``).
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    pbc: tuple[bool, bool, bool] = (False, False, False)
    energy: float | None = None
    forces: np.ndarray | None = None
    source: str = ""

    @property
    def num_atoms(self) -> int:
        return len(self.symbols)

    @property
    def periodic(self) -> bool:
        """Periodic along all three lattice vectors (a bulk cell)."""
        return all(self.pbc)

    @property
    def has_forces(self) -> bool:
        return self.forces is not None

    @classmethod
    def from_atoms(cls, atoms: Atoms, source: str = "") -> Structure:
        """From ASE atoms (Angstrom); the energy (eV) and forces (eV/Angstrom)
        come from an attached calculator when it has them."""
        results = atoms.calc.results if atoms.calc is not None else {}
        # files written by DFT codes may carry only the free energy
        energy = results.get("energy", results.get("free_energy"))
        forces = results.get("forces")
        return cls(
            symbols=tuple(atoms.get_chemical_symbols()),
            positions=np.array(atoms.positions, dtype=np.float64),
            cell=np.array(atoms.cell.array, dtype=np.float64),
            pbc=tuple(bool(p) for p in atoms.pbc),
            energy=None if energy is None else float(energy),
            forces=None if forces is None else np.array(forces, dtype=np.float64).reshape(len(atoms), 3),
            source=source,
        )

    def to_atoms(self) -> Atoms:
        """ASE atoms of the geometry (Angstrom), without labels."""
        return Atoms(symbols=self.symbols, positions=self.positions, cell=self.cell, pbc=self.pbc)


def read_structures(paths: Sequence[str | Path], file_format: str | None = None, index: str = ":") -> list[Structure]:
    """Every structure of the files, in order. ``file_format``: an ``ase.io``
    format name or ``"xsf"`` (aenet XSF; default: guessed from each name,
    ``*.zip`` being an archive of XSF files); ``index``: which frames of a
    multi-frame file (``ase.io`` syntax). Raises :class:`DataError` naming
    the file when one cannot be read."""
    structures = [
        Structure.from_atoms(atoms, source)
        for path in paths
        for source, atoms in _read_file(Path(path), file_format, index)
    ]
    for structure in structures:
        _check_numbers(structure)
    return structures


def _check_numbers(structure: Structure) -> None:
    """:class:`DataError` for a NaN or infinite label, or a coordinate outside
    :data:`~mlpotential.inputs.COORDINATES`: a file can hold them, and a fit
    on them fails far from the file that caused it."""
    geometry = np.concatenate([structure.positions.ravel(), structure.cell.ravel()])
    if not all(value in COORDINATES for value in geometry):
        raise DataError(f"{structure.source}: coordinates must be {COORDINATES.describe()}")
    for what, value in (("the energy", structure.energy), ("a force", structure.forces)):
        if value is not None and not np.isfinite(value).all():
            raise DataError(f"{structure.source}: {what} is NaN or infinite")


def require_labels(structures: Sequence[Structure], need_forces: bool, purpose: str) -> None:
    """Raise :class:`DataError` naming the first structure without an energy
    (or, with ``need_forces``, without forces)."""
    for structure in structures:
        if structure.energy is None:
            raise DataError(
                f"{structure.source}: no total energy ({purpose} needs one in eV; aenet XSF files carry it "
                "in the first line as '# total energy = <value> eV')"
            )
        if need_forces and structure.forces is None:
            raise DataError(f"{structure.source}: no forces on the atom lines ({purpose} needs them)")


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


def load_structures(source: DataSource, base: Path | None = None) -> list[Structure]:
    """Every structure of ``source`` (relative paths against ``base``)."""
    path = Path(source.path)
    if base is not None and not path.is_absolute():
        path = base / path
    structures = read_structures(_expand(path, source.path), source.format, source.index)
    if not structures:
        raise DataError(f"data source {source.path!r} holds no structures")
    if source.energy_only:
        structures = [dataclasses.replace(s, forces=None) for s in structures]
    return structures


def _expand(path: Path, given: str) -> list[Path]:
    """The files of a data source: a glob's matches, a folder's ``*.xsf``
    files, or the one file."""
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


def _read_file(file: Path, file_format: str | None, index: str) -> list[tuple[str, Atoms]]:
    """(source, atoms) of each structure in ``file``: ``file`` itself for a
    single structure, ``file:member`` in a zip archive, ``file@k`` for the
    k-th selected frame of a multi-frame file."""
    kind = (file_format or "").lower()
    try:
        if kind == "xsf" or (not kind and file.suffix.lower() == ".xsf"):
            return [(str(file), read_xsf(file))]
        if not kind and file.suffix.lower() == ".zip":
            return [(f"{file}:{member}", atoms) for member, atoms in read_xsf_zip(file)]
    except XSFError as exc:
        raise DataError(str(exc)) from exc
    from ase.io import read

    try:
        frames = read(file, index=index, format=file_format)
    except Exception as exc:  # ase.io raises many types for foreign files
        raise DataError(f"{file}: ase.io cannot read it ({type(exc).__name__}: {exc})") from exc
    if isinstance(frames, Atoms):
        frames = [frames]
    if len(frames) == 1:
        return [(str(file), frames[0])]
    return [(f"{file}@{k}", atoms) for k, atoms in enumerate(frames)]
