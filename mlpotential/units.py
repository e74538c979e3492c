"""Units: every conversion factor of the package, in one place.

Four unit systems meet in the engine:

* the wire (pipe protocol, i-PI): Hartree, Bohr, Hartree/Bohr;
* ASE: eV, Angstrom, eV/Angstrom (every backend calculator reports in these),
  and ASE's own time unit for dynamics;
* the model: whatever unit a model was trained in (``MLEnergyUnit``,
  ``MLDistanceUnit``), converted to ASE's units inside the backend;
* LAMMPS, coupled through :mod:`mlpotential.lammps`: the units of the
  input's ``units`` style (:data:`LAMMPS_UNIT_STYLES`).

Each name says its direction: multiply a value in X by ``X_TO_Y`` to get Y.
All factors come from :mod:`ase.units` (CODATA 2014, ASE's default), so a
value converted to the wire and back is reproduced to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

from ase import units as _ase

HARTREE_TO_EV: float = _ase.Hartree
"""eV per Hartree (CODATA 2014: 27.211386...)."""
BOHR_TO_ANGSTROM: float = _ase.Bohr
"""Angstrom per Bohr (CODATA 2014: 0.52917721...)."""
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM: float = HARTREE_TO_EV / BOHR_TO_ANGSTROM
"""eV/Angstrom per Hartree/Bohr."""
HARTREE_PER_BOHR3_TO_EV_PER_ANGSTROM3: float = HARTREE_TO_EV / BOHR_TO_ANGSTROM**3
"""eV/Angstrom^3 per Hartree/Bohr^3 (stress)."""
RYDBERG_TO_EV: float = _ase.Ry
"""eV per Rydberg (half a Hartree)."""
FS_TO_ASE_TIME: float = _ase.fs
"""ASE time units per femtosecond (ASE's time unit is Angstrom*sqrt(amu/eV))."""
PASCAL_TO_EV_PER_ANGSTROM3: float = _ase.Pascal
"""eV/Angstrom^3 per Pascal (pressure)."""
PRESSURE_UNIT_TO_PASCAL: dict[str, float] = {"Pa": 1.0, "bar": 1e5, "atm": 101325.0, "MPa": 1e6, "GPa": 1e9}
"""Pascal per unit of a pressure given in the job input (``Pressure 1 [bar]``, AMS's notation)."""

ENERGY_UNIT_TO_EV: dict[str, float] = {
    "Hartree": _ase.Hartree,
    "eV": 1.0,
    "kcal/mol": _ase.kcal / _ase.mol,
    "kJ/mol": _ase.kJ / _ase.mol,
}
"""eV per one of each energy unit a model may be trained in (the MLEnergyUnit values)."""

DISTANCE_UNIT_TO_ANGSTROM: dict[str, float] = {
    "angstrom": 1.0,
    "bohr": _ase.Bohr,
}
"""Angstrom per one of each distance unit a model may expect (the MLDistanceUnit values)."""


@dataclass(frozen=True)
class ModelUnits:
    """The units a model itself works in, with the factors to ASE's units.

    ``energy`` is a key of :data:`ENERGY_UNIT_TO_EV`, ``distance`` one of
    :data:`DISTANCE_UNIT_TO_ANGSTROM`.
    """

    energy: str = "eV"
    distance: str = "angstrom"

    @property
    def energy_to_ev(self) -> float:
        """Multiply a model energy by this to get eV."""
        return ENERGY_UNIT_TO_EV[self.energy]

    @property
    def distance_to_angstrom(self) -> float:
        """Multiply a model distance by this to get Angstrom."""
        return DISTANCE_UNIT_TO_ANGSTROM[self.distance]

    @property
    def force_to_ev_per_angstrom(self) -> float:
        """Multiply a model force (energy/distance) by this to get eV/Angstrom."""
        return self.energy_to_ev / self.distance_to_angstrom


LAMMPS_UNIT_STYLES: dict[str, ModelUnits] = {
    "metal": ModelUnits("eV", "angstrom"),
    "real": ModelUnits("kcal/mol", "angstrom"),
    "electron": ModelUnits("Hartree", "bohr"),
}
"""The energy and distance units of each LAMMPS ``units`` style the LAMMPS
coupling serves (forces are energy/distance, the virial is an energy, masses
are in amu in all three)."""
