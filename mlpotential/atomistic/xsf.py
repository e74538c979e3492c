"""aenet's XSF structure files: read and write.

aenet writes the total energy into the first comment line
(``# total energy = -123.45 eV``) and per atom ``symbol x y z [fx fy fz]``
(Angstrom, eV/Angstrom). Both the molecular form (``ATOMS``) and the periodic
form (``CRYSTAL`` / ``SLAB`` / ``POLYMER`` with ``PRIMVEC`` and
``PRIMCOORD``) are read. A structure whose atom lines carry only positions is
energy-only. Multi-frame (``ANIMSTEPS``) files are not supported.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols

from mlpotential.units import HARTREE_TO_EV, RYDBERG_TO_EV

_ENERGY = re.compile(
    r"total\s+energy\s*[=:]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?)\s*([A-Za-z]+)?", re.IGNORECASE
)
_ENERGY_UNITS = {
    "ev": 1.0,
    "ha": HARTREE_TO_EV,
    "hartree": HARTREE_TO_EV,
    "ry": RYDBERG_TO_EV,
    "rydberg": RYDBERG_TO_EV,
}
_PERIODICITY = {"CRYSTAL": (True, True, True), "SLAB": (True, True, False), "POLYMER": (True, False, False)}


class XSFError(ValueError):
    """An XSF file does not follow the format; the message names the file
    and line."""


def read_xsf(path: str | Path) -> Atoms:
    """One structure from an XSF file, with a SinglePointCalculator holding
    the total energy (eV) and, when the file has them, the forces
    (eV/Angstrom); ``atoms.info["energy_only"]`` is True when it has none."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise XSFError(f"{path}: cannot read the file: {exc}") from exc
    return parse_xsf(text, str(path))


def parse_xsf(text: str, name: str = "<xsf>") -> Atoms:
    """Like :func:`read_xsf`, from the file's text (``name`` for messages)."""
    energy = None
    content: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            match = _ENERGY.search(line)
            if match and energy is None:
                unit = (match.group(2) or "eV").lower()
                if unit not in _ENERGY_UNITS:
                    raise XSFError(f"{name}:{number}: unknown energy unit {match.group(2)!r}; expected eV")
                energy = float(match.group(1).replace("d", "e").replace("D", "e")) * _ENERGY_UNITS[unit]
            continue
        if line:
            content.append((number, line))
    if not content:
        raise XSFError(f"{name}: no structure found")

    lines = iter(content)
    number, keyword = next(lines)
    keyword = keyword.split()[0].upper()
    if keyword == "ANIMSTEPS":
        raise XSFError(f"{name}:{number}: multi-frame (ANIMSTEPS) XSF files are not supported; one structure per file")
    if keyword == "ATOMS":
        rows = [(n, line) for n, line in lines]
        symbols, positions, forces = _atom_lines(rows, name)
        atoms = Atoms(symbols=symbols, positions=positions, pbc=False)
    elif keyword in _PERIODICITY:
        cell, rows = _periodic_block(lines, name)
        symbols, positions, forces = _atom_lines(rows, name)
        atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=_PERIODICITY[keyword])
    else:
        raise XSFError(f"{name}:{number}: expected ATOMS, CRYSTAL, SLAB or POLYMER, found {keyword!r}")

    atoms.info["energy_only"] = forces is None
    if energy is not None or forces is not None:
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def _periodic_block(lines: Iterator[tuple[int, str]], name: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
    cell = None
    for number, line in lines:
        keyword = line.split()[0].upper()
        if keyword in ("PRIMVEC", "CONVVEC"):
            vectors = [_numbers(next(lines, (number, "")), 3, name) for _ in range(3)]
            if keyword == "PRIMVEC":
                cell = np.array(vectors)
        elif keyword == "PRIMCOORD":
            count_line = next(lines, None)
            if count_line is None:
                raise XSFError(f"{name}:{number}: PRIMCOORD without the atom count line")
            try:
                count = int(count_line[1].split()[0])
            except (ValueError, IndexError):
                raise XSFError(f"{name}:{count_line[0]}: expected the number of atoms after PRIMCOORD") from None
            rows = [next(lines, None) for _ in range(count)]
            if rows and rows[-1] is None:
                raise XSFError(f"{name}: PRIMCOORD announces {count} atoms but the file ends before")
            if cell is None:
                raise XSFError(f"{name}:{number}: PRIMCOORD before PRIMVEC; the lattice vectors must come first")
            extra = next(lines, None)
            if extra is not None:
                raise XSFError(f"{name}:{extra[0]}: PRIMCOORD announces {count} atoms but more lines follow")
            return cell, rows
        else:
            raise XSFError(f"{name}:{number}: unexpected line {line!r} in a periodic structure")
    raise XSFError(f"{name}: periodic structure without PRIMCOORD")


def _numbers(row: tuple[int, str], count: int, name: str) -> list[float]:
    number, line = row
    try:
        values = [float(v) for v in line.split()]
    except ValueError:
        values = []
    if len(values) != count:
        raise XSFError(f"{name}:{number}: expected {count} numbers, found {line!r}")
    return values


def _atom_lines(rows: list[tuple[int, str]], name: str) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    symbols, positions, forces = [], [], []
    widths = set()
    for number, line in rows:
        fields = line.split()
        if len(fields) not in (4, 7):
            raise XSFError(f"{name}:{number}: expected 'symbol x y z [fx fy fz]', found {line!r}")
        symbols.append(_symbol(fields[0], name, number))
        try:
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise XSFError(f"{name}:{number}: non-numeric coordinates in {line!r}") from None
        positions.append(values[:3])
        forces.append(values[3:])
        widths.add(len(fields))
    if not symbols:
        raise XSFError(f"{name}: the structure has no atoms")
    if len(widths) > 1:
        raise XSFError(f"{name}: some atom lines have forces and some do not")
    has_forces = widths == {7}
    return symbols, np.array(positions), np.array(forces) if has_forces else None


def _symbol(field: str, name: str, number: int) -> str:
    if field.isdigit() and 0 < int(field) < len(chemical_symbols):
        return chemical_symbols[int(field)]
    symbol = field.capitalize()
    if symbol not in atomic_numbers or symbol == "X":
        raise XSFError(f"{name}:{number}: {field!r} is not a chemical element")
    return symbol


def write_xsf(
    path: str | Path,
    atoms: Atoms,
    energy: float | None = None,
    forces: np.ndarray | None = None,
    with_forces: bool = True,
) -> Path:
    """Write ``atoms`` in aenet's XSF form. ``energy`` (eV) and ``forces``
    (eV/Angstrom) default to the atoms' calculator results when present;
    without forces (or with ``with_forces=False``: an energy-only file) the
    atom lines carry positions only."""
    path = Path(path)
    if atoms.calc is not None:
        if energy is None and "energy" in atoms.calc.results:
            energy = atoms.get_potential_energy()
        if forces is None and "forces" in atoms.calc.results:
            forces = atoms.get_forces()
    if not with_forces:
        forces = None
    lines = []
    if energy is not None:
        lines += [f"# total energy = {energy:.16f} eV", ""]
    atom_rows = []
    for k, (symbol, position) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions)):
        row = f"{symbol:<3s}" + "".join(f" {x:20.14f}" for x in position)
        if forces is not None:
            row += "".join(f" {f:20.14f}" for f in forces[k])
        atom_rows.append(row)
    pbc = tuple(bool(p) for p in atoms.pbc)
    if not any(pbc):
        lines += ["ATOMS", *atom_rows]
    else:
        keyword = {value: key for key, value in _PERIODICITY.items()}.get(pbc)
        if keyword is None:
            raise XSFError(f"{path}: XSF cannot express periodicity {pbc}; use all three, (x, y) or x")
        lines += [keyword, "PRIMVEC", *(" ".join(f"{x:20.14f}" for x in v) for v in atoms.cell.array)]
        lines += ["PRIMCOORD", f"{len(atoms)} 1", *atom_rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_xsf_zip(path: str | Path) -> Iterator[tuple[str, Atoms]]:
    """(member name, structure) for each ``*.xsf`` in a zip archive, in name
    order, skipping macOS metadata (``__MACOSX/``, ``._*``)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise XSFError(f"{path}: not a readable zip archive: {exc}") from exc
    with archive:
        names = sorted(
            n
            for n in archive.namelist()
            if n.lower().endswith(".xsf") and not n.startswith("__MACOSX/") and not Path(n).name.startswith("._")
        )
        for member in names:
            yield member, parse_xsf(archive.read(member).decode(), f"{path}:{member}")
