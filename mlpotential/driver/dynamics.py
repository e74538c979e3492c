"""The ensembles of the driver's molecular dynamics: initial velocities,
thermostats, barostats and the degrees of freedom that the temperature
counts.

Times are in fs, temperatures in K, pressures in Pa (as AMS's input has
them); ASE's integrators get them in its own units (eV, Angstrom, ASE time).

The temperature is ``2 K / (f kB)`` with ``f`` the degrees of freedom that
the dynamics really moves (:func:`degrees_of_freedom`): an integrator that
conserves the total momentum (velocity Verlet, Berendsen, Bussi, Nose-Hoover
chains, MTK) never moves the centre of mass, and a free molecule's angular
momentum stays zero as well, so 3 (and 3 or 2 rotations) are not counted.
Langevin dynamics (with ``fixcm=False``: ASE's default ``fixcm=True``
removes the random kicks' net force but keeps the friction on the centre of
mass, which heats small systems) moves every degree of freedom, 3N.

ASE's thermostats count 3N; each is given the target that makes the
kinetic energy average ``f kB T / 2`` (Berendsen, Nose-Hoover chains, MTK:
the temperature scaled by f/3N; Bussi: its count of degrees of freedom set
to f, so that its kinetic-energy distribution is the canonical one of f).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.md.md import MolecularDynamics
from ase.units import kB

from mlpotential.units import FS_TO_ASE_TIME, PASCAL_TO_EV_PER_ANGSTROM3

THERMOSTATS = ("None", "Berendsen", "NHC", "Langevin", "Bussi")
BAROSTATS = ("None", "Berendsen", "MTK")
VELOCITY_TYPES = ("Random", "Zero")
BAROSTAT_THERMOSTAT = {"Berendsen": "Berendsen", "MTK": "NHC"}
"""The thermostat each barostat runs with (ASE integrates them together)."""
RESCALING = ("Berendsen", "NHC", "Bussi")
"""Thermostats that scale the velocities: from rest they stay at rest."""


class DynamicsError(ValueError):
    """A combination of settings that cannot run (the message is one line)."""


@dataclass
class ThermostatSettings:
    """``temperature`` K; ``tau`` fs (the coupling time; Langevin: the
    friction is 1/tau unless ``friction``, 1/fs, is given); ``chain_length``
    the Nose-Hoover chain's thermostats; ``seed`` for Langevin and Bussi."""

    type: str = "None"
    temperature: float = 300.0
    tau: float = 100.0
    friction: float | None = None
    chain_length: int = 3
    seed: int | None = None

    def friction_per_fs(self) -> float:
        return self.friction if self.friction is not None else 1.0 / self.tau


@dataclass
class BarostatSettings:
    """``pressure`` Pa, ``tau`` fs, ``bulk_modulus`` Pa (Berendsen's
    coupling strength: the compressibility is its inverse)."""

    type: str = "None"
    pressure: float = 0.0
    tau: float = 1000.0
    bulk_modulus: float = 2.2e9


@dataclass
class VelocitySettings:
    """``Random``: Maxwell-Boltzmann at ``temperature`` K, scaled to exactly
    that temperature; ``Zero``: at rest."""

    type: str = "Zero"
    temperature: float = 300.0
    seed: int | None = None


@dataclass
class EnsembleSettings:
    velocities: VelocitySettings = field(default_factory=VelocitySettings)
    thermostat: ThermostatSettings = field(default_factory=ThermostatSettings)
    barostat: BarostatSettings = field(default_factory=BarostatSettings)

    def check(self, atoms: Atoms) -> None:
        """Refuse what cannot run, in one line naming the keys."""
        thermostat, barostat = self.thermostat.type, self.barostat.type
        if barostat != "None":
            if not atoms.pbc.all():
                raise DynamicsError(
                    f"Barostat {barostat} needs a system periodic in 3 dimensions (a Lattice block with 3 vectors)"
                )
            needed = BAROSTAT_THERMOSTAT[barostat]
            if thermostat != needed:
                raise DynamicsError(f"Barostat {barostat} runs with Thermostat Type {needed}, not {thermostat}")
        at_rest = self.velocities.type == "Zero" or self.velocities.temperature == 0
        if thermostat in RESCALING and at_rest:
            raise DynamicsError(
                f"Thermostat {thermostat} rescales the velocities and cannot start from rest: "
                "give InitialVelocities Type Random with a Temperature above 0"
            )

    def describe(self) -> str:
        """``NVT (Bussi, 300 K, tau 100 fs)``, ``NVE``, ``NPT (MTK, ...)``."""
        thermostat, barostat = self.thermostat, self.barostat
        if thermostat.type == "None":
            return "NVE (velocity Verlet)"
        coupling = (
            f"friction {thermostat.friction_per_fs():g}/fs"
            if thermostat.type == "Langevin"
            else f"tau {thermostat.tau:g} fs"
        )
        if barostat.type == "None":
            return f"NVT ({thermostat.type}, {thermostat.temperature:g} K, {coupling})"
        return (
            f"NPT ({barostat.type} barostat, {barostat.pressure:g} Pa, tau {barostat.tau:g} fs; "
            f"{thermostat.type}, {thermostat.temperature:g} K, {coupling})"
        )


def rotational_degrees_of_freedom(atoms: Atoms) -> int:
    """3 for a non-linear molecule, 2 for a linear one, 0 for one atom."""
    if len(atoms) < 2:
        return 0
    moments = atoms.get_moments_of_inertia()
    return int(np.sum(moments > 1e-8 * moments.max()))


def degrees_of_freedom(atoms: Atoms, thermostat: str) -> int:
    """The degrees of freedom the dynamics moves (see the module's docstring)."""
    total = 3 * len(atoms)
    if thermostat == "Langevin" or len(atoms) < 2:
        return total
    removed = 3
    if not atoms.pbc.any():
        removed += rotational_degrees_of_freedom(atoms)
    return max(total - removed, 1)


def temperature(atoms: Atoms, dof: int) -> float:
    """The kinetic temperature (K) over ``dof`` degrees of freedom."""
    return 2.0 * atoms.get_kinetic_energy() / (dof * kB)


def set_initial_velocities(atoms: Atoms, settings: VelocitySettings, dof: int) -> None:
    """Maxwell-Boltzmann velocities without centre-of-mass motion (and
    without rotation for a molecule), scaled so that :func:`temperature`
    over ``dof`` is exactly the requested temperature; or none."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    if settings.type == "Zero" or settings.temperature == 0:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
        return
    # each momentum component normal with variance m kB T
    widths = np.sqrt(atoms.get_masses() * kB * settings.temperature)[:, np.newaxis]
    atoms.set_momenta(np.random.default_rng(settings.seed).standard_normal((len(atoms), 3)) * widths)
    if len(atoms) > 1:
        Stationary(atoms, preserve_temperature=False)
        if not atoms.pbc.any():
            with np.errstate(divide="ignore", invalid="ignore"):  # a linear molecule's zero moment; ASE skips it
                ZeroRotation(atoms, preserve_temperature=False)
    kinetic = atoms.get_kinetic_energy()
    if kinetic > 0:
        atoms.set_momenta(atoms.get_momenta() * np.sqrt(0.5 * dof * kB * settings.temperature / kinetic))


def make_integrator(atoms: Atoms, settings: EnsembleSettings, timestep_fs: float, dof: int) -> MolecularDynamics:
    """The ASE integrator of the ensemble, on ``atoms`` whose velocities
    are already set."""
    thermostat, barostat = settings.thermostat, settings.barostat
    timestep = timestep_fs * FS_TO_ASE_TIME
    tau = thermostat.tau * FS_TO_ASE_TIME
    # ASE's thermostats aim at 3N kB T / 2; this target makes it f kB T / 2
    counted_as_3n = thermostat.temperature * dof / (3 * len(atoms))
    rng = np.random.default_rng(thermostat.seed)
    if barostat.type == "MTK":
        from ase.md.nose_hoover_chain import IsotropicMTKNPT

        return IsotropicMTKNPT(
            atoms,
            timestep,
            temperature_K=counted_as_3n,
            pressure_au=barostat.pressure * PASCAL_TO_EV_PER_ANGSTROM3,
            tdamp=tau,
            pdamp=barostat.tau * FS_TO_ASE_TIME,
            tchain=thermostat.chain_length,
            pchain=thermostat.chain_length,
        )
    if barostat.type == "Berendsen":
        from ase.md.nptberendsen import NPTBerendsen

        return NPTBerendsen(
            atoms,
            timestep,
            temperature_K=counted_as_3n,
            pressure_au=barostat.pressure * PASCAL_TO_EV_PER_ANGSTROM3,
            taut=tau,
            taup=barostat.tau * FS_TO_ASE_TIME,
            compressibility_au=1.0 / (barostat.bulk_modulus * PASCAL_TO_EV_PER_ANGSTROM3),
        )
    if thermostat.type == "Langevin":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms,
            timestep,
            temperature_K=thermostat.temperature,
            friction=thermostat.friction_per_fs() / FS_TO_ASE_TIME,
            fixcm=False,
            rng=rng,
        )
    if thermostat.type == "Berendsen":
        from ase.md.nvtberendsen import NVTBerendsen

        return NVTBerendsen(atoms, timestep, temperature_K=counted_as_3n, taut=tau)
    if thermostat.type == "NHC":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(
            atoms, timestep, temperature_K=counted_as_3n, tdamp=tau, tchain=thermostat.chain_length
        )
    if thermostat.type == "Bussi":
        from ase.md.bussi import Bussi

        integrator = Bussi(atoms, timestep, temperature_K=thermostat.temperature, taut=tau, rng=rng)
        # its kinetic-energy distribution is the canonical one of this many degrees of freedom
        integrator.ndof = dof
        integrator.target_kinetic_energy = 0.5 * kB * thermostat.temperature * dof
        return integrator
    from ase.md.verlet import VelocityVerlet

    return VelocityVerlet(atoms, timestep)


def conserved_energy(integrator: MolecularDynamics) -> float | None:
    """The quantity the integrator conserves (eV): the total energy for
    velocity Verlet, plus the thermostat's (and barostat's) energy for Nose-
    Hoover chains and MTK, minus the energy Bussi's rescaling put in; None
    for Langevin and Berendsen, which conserve nothing."""
    from ase.md.bussi import Bussi
    from ase.md.verlet import VelocityVerlet

    if hasattr(integrator, "get_conserved_energy"):
        return float(integrator.get_conserved_energy())
    if isinstance(integrator, Bussi):
        return float(integrator.atoms.get_total_energy() - integrator.transferred_energy)
    if type(integrator) is VelocityVerlet:
        return float(integrator.atoms.get_total_energy())
    return None
