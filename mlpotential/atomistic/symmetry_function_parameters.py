"""Symmetry-function parameter sets: which G2, G4 and G5 functions a
descriptor holds, for which elements, with which cutoff.

Definitions (Behler, J. Chem. Phys. 134, 074106 (2011), with DScribe's
conventions; r in Angstrom, eta in 1/Angstrom^2, R_s in Angstrom):

* G2_i = sum_j exp(-eta (r_ij - R_s)^2) f_c(r_ij), one block per neighbour element;
* G4_i = 2^(1-zeta) sum_{j<k} (1 + lambda cos theta_ijk)^zeta
  exp(-eta (r_ij^2 + r_ik^2 + r_jk^2)) f_c(r_ij) f_c(r_ik) f_c(r_jk);
* G5_i = the same without the r_jk terms;

one angular block per unordered element pair, each neighbour pair {j, k}
counted once (PiNN's angular functions count ordered pairs and are twice
these).

Feature layout of one atom: for each element a (sorted by atomic number) its
G2 block; then for each element pair (a, b) with a >= b, in the order (0,0),
(1,0), (1,1), (2,0), ..., its G4 block followed by its G5 block. This is
DScribe's ACSF layout without the G1 and G3 columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ase.data import atomic_numbers, chemical_symbols

from mlpotential.atomistic.cutoffs import CUTOFF_FUNCTIONS, CUTOFF_RADII
from mlpotential.inputs import BadValue, Range, number

DEFAULT_CUTOFF = 6.5
"""Angstrom; AMP's default cutoff radius."""

RADIAL_COUNTS = Range(1, 100)
"""How many G2 functions the default set may have (``n_radial``)."""

_ETAS = Range(0, 10_000, "1/Angstrom^2")
_ZETAS = Range(1, 1000)
_LAMBDAS = (-1.0, 1.0)
_Column = tuple[str, Range | tuple[float, ...]]
_COLUMNS: dict[str, tuple[_Column, ...]] = {
    "g2": (("eta", _ETAS), ("R_s", Range(0, CUTOFF_RADII.maximum, "Angstrom"))),
    "g4": (("eta", _ETAS), ("zeta", _ZETAS), ("lambda", _LAMBDAS)),
    "g5": (("eta", _ETAS), ("zeta", _ZETAS), ("lambda", _LAMBDAS)),
}
"""The columns of each function list and the values each allows."""


@dataclass(frozen=True)
class SymmetryFunctionParameters:
    """A complete symmetry-function descriptor definition.

    ``elements`` are chemical symbols sorted by atomic number (the
    constructor sorts them); ``g2`` holds (eta, R_s) pairs, ``g4`` and ``g5``
    (eta, zeta, lambda) triplets; ``cutoff`` in Angstrom; ``cutoff_function``
    a name in :data:`~mlpotential.atomistic.cutoffs.CUTOFF_FUNCTIONS`.
    """

    elements: tuple[str, ...]
    cutoff: float = DEFAULT_CUTOFF
    g2: tuple[tuple[float, float], ...] = ()
    g4: tuple[tuple[float, float, float], ...] = ()
    g5: tuple[tuple[float, float, float], ...] = ()
    cutoff_function: str = "cosine"

    def __post_init__(self) -> None:
        elements = tuple(sorted(set(self.elements), key=_atomic_number))
        if not elements:
            raise ValueError("a symmetry-function set needs at least one element")
        object.__setattr__(self, "elements", elements)
        object.__setattr__(self, "g2", tuple((float(e), float(r)) for e, r in self.g2))
        object.__setattr__(self, "g4", tuple((float(e), float(z), float(lam)) for e, z, lam in self.g4))
        object.__setattr__(self, "g5", tuple((float(e), float(z), float(lam)) for e, z, lam in self.g5))
        object.__setattr__(self, "cutoff", float(number("cutoff", self.cutoff, float, CUTOFF_RADII)))
        if self.cutoff_function not in CUTOFF_FUNCTIONS:
            known = ", ".join(CUTOFF_FUNCTIONS)
            raise BadValue("cutoff_function", f"{self.cutoff_function!r} is not a known cutoff function; use {known}")
        if not (self.g2 or self.g4 or self.g5):
            raise ValueError("a symmetry-function set needs at least one G2, G4 or G5 function")
        for name, columns in _COLUMNS.items():
            for row in getattr(self, name):
                _check_row(name, row, columns)

    @property
    def n_elements(self) -> int:
        return len(self.elements)

    @property
    def n_element_pairs(self) -> int:
        return self.n_elements * (self.n_elements + 1) // 2

    @property
    def n_radial(self) -> int:
        """Number of G2 features of one atom."""
        return len(self.g2) * self.n_elements

    @property
    def n_angular_per_pair(self) -> int:
        return len(self.g4) + len(self.g5)

    @property
    def n_features(self) -> int:
        return self.n_radial + self.n_angular_per_pair * self.n_element_pairs

    def element_pairs(self) -> list[tuple[str, str]]:
        """Element pairs in feature order: (a, b) with a >= b by atomic number."""
        return [(self.elements[a], self.elements[b]) for a in range(self.n_elements) for b in range(a + 1)]

    def feature_labels(self) -> list[str]:
        """A readable name for each feature column."""
        labels = [f"G2[{el}](eta={eta:g},Rs={rs:g})" for el in self.elements for eta, rs in self.g2]
        for a, b in self.element_pairs():
            labels += [f"G4[{a}-{b}](eta={e:g},zeta={z:g},lambda={lam:+g})" for e, z, lam in self.g4]
            labels += [f"G5[{a}-{b}](eta={e:g},zeta={z:g},lambda={lam:+g})" for e, z, lam in self.g5]
        return labels

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (model files, caches)."""
        return {
            "elements": list(self.elements),
            "cutoff": self.cutoff,
            "cutoff_function": self.cutoff_function,
            "g2": [list(p) for p in self.g2],
            "g4": [list(p) for p in self.g4],
            "g5": [list(p) for p in self.g5],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SymmetryFunctionParameters:
        """Inverse of :meth:`to_dict`; raises ValueError naming what is wrong."""
        unknown = set(data) - {"elements", "cutoff", "cutoff_function", "g2", "g4", "g5"}
        if unknown:
            raise ValueError(f"unknown symmetry-function settings: {', '.join(sorted(unknown))}")
        if "elements" not in data:
            raise ValueError("symmetry-function settings need 'elements'")
        return cls(
            elements=tuple(_element_symbol(e) for e in data["elements"]),
            cutoff=float(data.get("cutoff", DEFAULT_CUTOFF)),
            cutoff_function=str(data.get("cutoff_function", "cosine")),
            g2=tuple(_rows(data.get("g2", ()), 2, "g2 (eta, Rs)")),
            g4=tuple(_rows(data.get("g4", ()), 3, "g4 (eta, zeta, lambda)")),
            g5=tuple(_rows(data.get("g5", ()), 3, "g5 (eta, zeta, lambda)")),
        )

    @classmethod
    def default(
        cls,
        elements: Iterable[str],
        cutoff: float = DEFAULT_CUTOFF,
        n_radial: int = 8,
        cutoff_function: str = "cosine",
    ) -> SymmetryFunctionParameters:
        """A general-purpose set chosen from the elements and the cutoff.

        G2: ``n_radial`` Gaussians centred at R_s = 0 whose widths
        sigma = 1/sqrt(2 eta) grow geometrically from 0.15 to 0.6 times the
        cutoff, so they resolve the first shells and still see the cutoff
        region; G4: AMP's angular set, eta = 0.005/Angstrom^2, zeta 1, 2, 4,
        16 and lambda +1, -1 (8 functions per element pair).
        """
        # checked before the widths are computed from them
        cutoff = float(number("cutoff", cutoff, float, CUTOFF_RADII))
        n_radial = int(number("n_radial", n_radial, int, RADIAL_COUNTS))
        if n_radial == 1:
            widths = [0.3 * cutoff]
        else:
            ratio = (0.6 / 0.15) ** (1.0 / (n_radial - 1))
            widths = [0.15 * cutoff * ratio**k for k in range(n_radial)]
        g2 = tuple((round(1.0 / (2.0 * w * w), 8), 0.0) for w in widths)
        g4 = tuple((0.005, zeta, lam) for zeta in (1.0, 2.0, 4.0, 16.0) for lam in (1.0, -1.0))
        return cls(elements=tuple(elements), cutoff=cutoff, g2=g2, g4=g4, cutoff_function=cutoff_function)


def _check_row(name: str, row: tuple[float, ...], columns: tuple[_Column, ...]) -> None:
    """One G2, G4 or G5 function's parameters within what their columns allow."""
    for (column, allowed), value in zip(columns, row):
        if value not in allowed:
            shown = allowed.describe() if isinstance(allowed, Range) else " or ".join(f"{v:+g}" for v in allowed)
            raise BadValue(name, f"{column} must be {shown}, not {value}")


def _atomic_number(symbol: str) -> int:
    return atomic_numbers[_element_symbol(symbol)]


def _element_symbol(value: str | int) -> str:
    if isinstance(value, int) and 0 < value < len(chemical_symbols):
        return chemical_symbols[value]
    if isinstance(value, str) and value in atomic_numbers and value != "X":
        return value
    raise BadValue("elements", f"{value!r} is not a chemical element symbol")


def _rows(value: Sequence[Sequence[float]], width: int, what: str) -> list[tuple[float, ...]]:
    rows = []
    for row in value:
        if not isinstance(row, Sequence) or isinstance(row, str) or len(row) != width:
            raise ValueError(f"each {what} entry must be a list of {width} numbers, got {row!r}")
        try:
            rows.append(tuple(float(x) for x in row))
        except (TypeError, ValueError):
            raise ValueError(f"each {what} entry must be a list of {width} numbers, got {row!r}") from None
    return rows
