"""Short in-process runs of the driver's ensembles (ASE's EMT; the
integrators and velocities exactly as ``mlpotential run`` builds them),
shared by tests/driver/test_ensemble_statistics.py and
benchmarks/ensembles.py."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.optimize import BFGS

from mlpotential.driver.dynamics import (
    EnsembleSettings,
    conserved_energy,
    degrees_of_freedom,
    make_integrator,
    set_initial_velocities,
    temperature,
)


def copper_cluster() -> Atoms:
    atoms = Icosahedron("Cu", noshells=2)
    atoms.calc = EMT()
    return atoms


def ethanol() -> Atoms:
    """Ethanol relaxed with EMT (EMT's C, H and O are crude, but bind it)."""
    atoms = molecule("CH3CH2OH")
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=0.01, steps=300)
    return atoms


def sample(
    atoms: Atoms,
    settings: EnsembleSettings,
    steps: int,
    timestep_fs: float,
    skip: int = 0,
) -> tuple[int, np.ndarray]:
    """Columns: temperature (K), kinetic energy (eV), conserved energy (eV,
    NaN where none), cube root of the volume (Angstrom, NaN for a cluster),
    one row per step after the first ``skip``."""
    dof = degrees_of_freedom(atoms, settings.thermostat.type)
    set_initial_velocities(atoms, settings.velocities, dof)
    integrator = make_integrator(atoms, settings, timestep_fs, dof)
    rows: list[tuple[float, float, float, float]] = []

    def record() -> None:
        if integrator.nsteps >= skip:
            conserved = conserved_energy(integrator)
            rows.append(
                (
                    temperature(atoms, dof),
                    atoms.get_kinetic_energy(),
                    np.nan if conserved is None else conserved,
                    float(np.cbrt(atoms.get_volume())) if atoms.pbc.all() else np.nan,
                )
            )

    integrator.attach(record, interval=1)
    integrator.run(steps)
    return dof, np.array(rows)


def emt_lattice_constant() -> float:
    """EMT copper's fcc lattice constant at 0 K: its energy minimum (Angstrom)."""
    from ase.build import bulk
    from scipy.optimize import minimize_scalar

    def energy(a: float) -> float:
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = EMT()
        return atoms.get_potential_energy()

    return float(minimize_scalar(energy, bracket=(3.5, 3.6, 3.7), tol=1e-10).x)
