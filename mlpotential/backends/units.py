"""Units: the one place where energy and distance units are converted.

Three unit systems meet in the engine:

* the wire (pipe protocol): Hartree, Bohr, Hartree/Bohr;
* ASE: eV, Angstrom, eV/Angstrom (every backend calculator reports in these);
* the model: whatever unit a model was trained in (``MLEnergyUnit``,
  ``MLDistanceUnit``), converted to ASE's units inside the backend.

All factors come from :mod:`ase.units` (CODATA 2014), so a value converted to
the wire and back is reproduced to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

from ase import units as _ase

HARTREE_EV: float = _ase.Hartree
"""eV per Hartree."""
BOHR_ANGSTROM: float = _ase.Bohr
"""Angstrom per Bohr."""
HARTREE_PER_BOHR_EV_PER_ANGSTROM: float = HARTREE_EV / BOHR_ANGSTROM
"""eV/Angstrom per Hartree/Bohr."""

ENERGY_UNITS_EV: dict[str, float] = {
    "Hartree": _ase.Hartree,
    "eV": 1.0,
    "kcal/mol": _ase.kcal / _ase.mol,
    "kJ/mol": _ase.kJ / _ase.mol,
}
"""eV per one of each energy unit a model may be trained in."""

DISTANCE_UNITS_ANGSTROM: dict[str, float] = {
    "angstrom": 1.0,
    "bohr": _ase.Bohr,
}
"""Angstrom per one of each distance unit a model may expect."""


@dataclass(frozen=True)
class ModelUnits:
    """The units a model itself works in, with the factors to ASE's units.

    ``energy`` is a key of :data:`ENERGY_UNITS_EV`, ``distance`` one of
    :data:`DISTANCE_UNITS_ANGSTROM`.
    """

    energy: str = "eV"
    distance: str = "angstrom"

    @property
    def energy_to_ev(self) -> float:
        """Multiply a model energy by this to get eV."""
        return ENERGY_UNITS_EV[self.energy]

    @property
    def distance_to_angstrom(self) -> float:
        """Multiply a model distance by this to get Angstrom."""
        return DISTANCE_UNITS_ANGSTROM[self.distance]

    @property
    def force_to_ev_per_angstrom(self) -> float:
        """Multiply a model force (energy/distance) by this to get eV/Angstrom."""
        return self.energy_to_ev / self.distance_to_angstrom
