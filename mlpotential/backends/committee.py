"""A committee of models: the members' mean energy, forces and stress, and
their sample standard deviations (ddof=1) as the uncertainty.

Any backend given several model files serves them as a committee. The
members must cover the same elements and work in the same units (they are
checked when the committee is built, naming the files). Results, in ASE
units: ``energy``/``free_energy`` (eV), ``forces`` (eV/Angstrom),
``stress`` (eV/Angstrom^3), ``energy_std`` (eV, every calculation) and,
when asked for, ``forces_std`` (eV/Angstrom, (nAtoms, 3), the std of each
component), the names TorchANI's ensembles use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlpotential.backends.calculator_base import element_names
from mlpotential.errors import KeywordError

_MEMBER_PROPERTIES = ("energy", "forces", "stress")


class CommitteeCalculator(Calculator):
    """Members (ASE calculators) evaluated one after the other; ``names``
    (their model files) name them in errors."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energy_std", "forces_std"]

    def __init__(self, members: Sequence[Calculator], names: Sequence[str], keyword: str = "ParameterFile") -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("a committee needs at least two members")
        check_members_agree(members, names, keyword)
        self.members = list(members)
        self.names = list(names)

    def calculate(
        self, atoms: Atoms | None = None, properties: Sequence[str] = ("energy",), system_changes=all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        wanted = ["energy"] + [name for name in ("forces", "stress") if name in properties]
        if "forces_std" in properties and "forces" not in wanted:
            wanted.append("forces")
        values: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for member in self.members:
            member.calculate(self.atoms, wanted, system_changes)
            for name in wanted:
                values[name].append(np.asarray(member.results[name], dtype=np.float64))
        self.results = committee_statistics(values, with_forces_std="forces_std" in properties)


def committee_statistics(values: dict[str, list[np.ndarray]], with_forces_std: bool) -> dict[str, object]:
    """Mean of each quantity over the members and the sample standard
    deviations (ddof=1) of the energy and, if asked, of each force component."""
    stacked = {name: np.stack(items) for name, items in values.items()}
    energy = float(stacked["energy"].mean())
    results: dict[str, object] = {
        "energy": energy,
        "free_energy": energy,
        "energy_std": float(stacked["energy"].std(ddof=1)),
    }
    if "forces" in stacked:
        results["forces"] = stacked["forces"].mean(axis=0)
        if with_forces_std:
            results["forces_std"] = stacked["forces"].std(axis=0, ddof=1)
    if "stress" in stacked:
        results["stress"] = stacked["stress"].mean(axis=0)
    return results


def check_members_agree(members: Sequence[Calculator], names: Sequence[str], keyword: str) -> None:
    """Members must cover the same elements (where they say which: an
    ``elements`` attribute of atomic numbers) and work in the same units (a
    ``units`` attribute); :class:`KeywordError` names the files otherwise."""
    for attribute, describe in (("elements", _describe_elements), ("units", _describe_units)):
        pairs = zip(members, names)
        known = [(name, getattr(member, attribute)) for member, name in pairs if hasattr(member, attribute)]
        if not known:
            continue
        first_name, first = known[0]
        for name, value in known[1:]:
            if _canonical(value) != _canonical(first):
                raise KeywordError(
                    keyword,
                    f"the committee's members disagree on their {attribute}: {first_name} has {describe(first)}, "
                    f"{name} has {describe(value)}; members must be models of the same elements in the same units",
                )


def _canonical(value: object) -> object:
    return tuple(sorted(value)) if isinstance(value, (tuple, list)) else value


def _describe_elements(value: object) -> str:
    return element_names(sorted(value)) if value is not None else "any element"


def _describe_units(value: object) -> str:
    return f"{value.energy} and {value.distance}"
