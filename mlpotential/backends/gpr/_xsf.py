"""aenet-style XSF files: one structure per file, the total energy in the
first comment line, forces after the coordinates.

Private to the GPR package until the shared reader of the native HDNNP
(``mlpotential/backends/hdnnp/xsf.py``) exists; there must be one reader in
the end.

The format, as aenet and aenet-gpr write it::

    # total energy = -16688.9969866290994105 eV

    CRYSTAL                      (or ATOMS for a molecule, then atom lines)
    PRIMVEC
     10.317 0.0 0.0
     ...
    PRIMCOORD
     46 1
    Li  x y z  fx fy fz
    ...

Units: Angstrom, eV, eV/Angstrom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

_ENERGY_LINE = re.compile(r"total\s+energy\s*=\s*(\S+)", re.IGNORECASE)


class XsfFormatError(ValueError):
    """An XSF file that cannot be read; the message names the file and line."""


@dataclass
class XsfStructure:
    """One structure of an XSF file.

    ``cell`` is None for a molecule (ATOMS block); ``energy`` (eV) is None
    when the file has no ``# total energy = ... eV`` line; ``forces``
    (eV/Angstrom, shape (N, 3)) is None when no atom line carries forces.
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    cell: np.ndarray | None
    energy: float | None
    forces: np.ndarray | None
    path: str


def _symbol(token: str, where: str) -> str:
    if token.isdigit():
        number = int(token)
        if 0 < number < len(chemical_symbols):
            return chemical_symbols[number]
    elif token.capitalize() in atomic_numbers:
        return token.capitalize()
    raise XsfFormatError(f"{where}: {token!r} is not a chemical element")


def _floats(tokens: list[str], where: str) -> list[float]:
    try:
        return [float(token) for token in tokens]
    except ValueError:
        raise XsfFormatError(f"{where}: expected numbers, found {' '.join(tokens)!r}") from None


def read_xsf(path: str | Path) -> XsfStructure:
    """Read one aenet XSF file (Angstrom, eV, eV/Angstrom).

    Raises :class:`XsfFormatError` naming the file (and line) when the file
    is not a single-structure XSF, when PRIMCOORD announces a different atom
    count than it lists, or when only some atoms carry forces.
    """
    path = str(path)
    try:
        raw_lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise XsfFormatError(f"cannot read XSF file {path}: {exc}") from exc

    energy = None
    for line in raw_lines:
        if line.lstrip().startswith("#"):
            match = _ENERGY_LINE.search(line)
            if match:
                value = _floats([match.group(1)], f"{path}: energy line {line.strip()!r}")[0]
                energy = value
                break
    # (line number, content) without comments and blank lines
    lines = [
        (number, line.split("#", 1)[0].strip())
        for number, line in enumerate(raw_lines, start=1)
        if line.split("#", 1)[0].strip()
    ]
    keywords = [content.split()[0].upper() for _, content in lines]
    if "ANIMSTEPS" in keywords:
        raise XsfFormatError(f"{path}: ANIMSTEPS (several structures in one file) is not supported; write one structure per file")

    cell = None
    atom_lines: list[tuple[int, str]]
    if "PRIMCOORD" in keywords:
        if "PRIMVEC" not in keywords:
            raise XsfFormatError(f"{path}: PRIMCOORD without PRIMVEC (the cell)")
        vec = keywords.index("PRIMVEC")
        rows = lines[vec + 1 : vec + 4]
        if len(rows) < 3:
            raise XsfFormatError(f"{path}: PRIMVEC needs three lattice-vector lines")
        cell = np.array([_floats(content.split()[:3], f"{path}:{number}") for number, content in rows])
        if cell.shape != (3, 3):
            raise XsfFormatError(f"{path}: PRIMVEC lines need three numbers each")
        start = keywords.index("PRIMCOORD")
        if start + 1 >= len(lines):
            raise XsfFormatError(f"{path}: PRIMCOORD has no atom-count line")
        count_number, count_line = lines[start + 1]
        try:
            declared = int(count_line.split()[0])
        except ValueError:
            raise XsfFormatError(f"{path}:{count_number}: expected the atom count after PRIMCOORD, found {count_line!r}") from None
        atom_lines = [
            (number, content)
            for number, content in lines[start + 2 :]
            if content.split()[0].upper() not in ("CONVVEC", "PRIMVEC", "CRYSTAL", "SLAB", "POLYMER")
        ]
        if len(atom_lines) != declared:
            raise XsfFormatError(
                f"{path}:{count_number}: PRIMCOORD announces {declared} atoms but {len(atom_lines)} atom lines follow"
            )
    elif "ATOMS" in keywords:
        atom_lines = lines[keywords.index("ATOMS") + 1 :]
    else:
        raise XsfFormatError(f"{path}: neither an ATOMS nor a CRYSTAL/PRIMCOORD block was found")
    if not atom_lines:
        raise XsfFormatError(f"{path}: the structure has no atoms")

    symbols = []
    positions = []
    forces = []
    columns = set()
    for number, content in atom_lines:
        tokens = content.split()
        where = f"{path}:{number}"
        if len(tokens) not in (4, 7):
            raise XsfFormatError(f"{where}: an atom line needs 'element x y z' or 'element x y z fx fy fz', found {content!r}")
        columns.add(len(tokens))
        symbols.append(_symbol(tokens[0], where))
        values = _floats(tokens[1:], where)
        positions.append(values[:3])
        forces.append(values[3:])
    if len(columns) > 1:
        raise XsfFormatError(f"{path}: some atom lines carry forces and some do not")
    return XsfStructure(
        symbols=tuple(symbols),
        positions=np.array(positions, dtype=np.float64),
        cell=cell,
        energy=energy,
        forces=np.array(forces, dtype=np.float64) if 7 in columns else None,
        path=path,
    )


def write_xsf(
    path: str | Path,
    symbols: tuple[str, ...] | list[str],
    positions: np.ndarray,
    energy: float,
    forces: np.ndarray | None = None,
    cell: np.ndarray | None = None,
) -> None:
    """Write one structure in aenet's XSF flavour (Angstrom, eV, eV/Angstrom):
    a molecule (ATOMS) when ``cell`` is None, else a crystal (PRIMVEC/PRIMCOORD)."""
    lines = [f"# total energy = {float(energy):.16f} eV", ""]
    if cell is None:
        lines.append("ATOMS")
    else:
        lines += ["CRYSTAL", "PRIMVEC"]
        lines += [" " + " ".join(f"{value:.14f}" for value in row) for row in np.asarray(cell)]
        lines += ["PRIMCOORD", f" {len(symbols)} 1"]
    for index, symbol in enumerate(symbols):
        fields = [f"{value:.14f}" for value in positions[index]]
        if forces is not None:
            fields += [f"{value:.14f}" for value in forces[index]]
        lines.append(f"{symbol:<2} " + " ".join(f"{field:>20}" for field in fields))
    Path(path).write_text("\n".join(lines) + "\n")
