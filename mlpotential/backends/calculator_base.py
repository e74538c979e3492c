"""The checks a backend's ASE calculator makes on a system before evaluating
it, written once so that every backend refuses a system in the same words.

Each check raises :class:`mlpotential.errors.UnsupportedSystemError` with the
system argument at fault (``atomSymbols`` or ``latticeVectors``) and a message
that names the model (``model``: ``"ANI-1x"``, ``"the PiNN model"``...), what
in the system it cannot evaluate and what it can. They are functions rather
than a base class because the calculators derive from three different ASE
calculators (``Calculator``, SchNetPack's ``SpkCalculator``, sGDML's
``SGDMLCalculator``).

Rules only one backend has stay in that backend: sGDML's atom order and
trained lattice, PiNN's cell volume, GPR's model per composition.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from ase import Atoms
from ase.data import chemical_symbols

from mlpotential.errors import UnsupportedSystemError


def element_names(numbers: Iterable[int]) -> str:
    """The chemical symbols of atomic ``numbers`` in their order, comma
    separated (``"H, C, N, O"``); ``Z=n`` for a number without a symbol."""
    return ", ".join(chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}" for z in map(int, numbers))


def unsupported_elements(numbers: Iterable[int], supported: Collection[int]) -> list[int]:
    """The atomic numbers among ``numbers`` that are not in ``supported``,
    each once, in increasing order."""
    return sorted({int(z) for z in numbers} - {int(z) for z in supported})


def check_elements(model: str, numbers: Iterable[int], supported: Sequence[int]) -> None:
    """Refuse a system with an element outside ``supported`` (atomic
    numbers, named in the message in the model's own order), e.g. ``ANI-1x
    does not cover the element S of this system; ANI-1x supports H, C, N, O``."""
    unknown = unsupported_elements(numbers, supported)
    if not unknown:
        return
    plural = "s" if len(unknown) > 1 else ""
    raise UnsupportedSystemError(
        f"{model} does not cover the element{plural} {element_names(unknown)} of this system; "
        f"{model} supports {element_names(supported)}",
        "atomSymbols",
    )


def check_stress_periodicity(model: str, atoms: Atoms, properties: Collection[str]) -> None:
    """Refuse a request for the stress (eV/Angstrom^3) of a system that is not
    periodic in all three directions: stress is per volume of the cell, and
    only three lattice vectors make one."""
    if "stress" in properties and not atoms.pbc.all():
        raise UnsupportedSystemError(
            f"{model} computes the stress tensor only for a system periodic in all three directions; "
            f"this system has pbc={atoms.pbc.tolist()}",
            "latticeVectors",
        )


def check_molecule_or_periodic(model: str, atoms: Atoms) -> None:
    """Refuse a system periodic in one or two directions (a slab, a wire),
    for a model that knows only molecules and systems periodic in all three."""
    if atoms.pbc.any() and not atoms.pbc.all():
        raise UnsupportedSystemError(
            f"{model} evaluates molecules (no periodic direction) or systems periodic in all three directions; "
            f"this system has pbc={atoms.pbc.tolist()}",
            "latticeVectors",
        )
