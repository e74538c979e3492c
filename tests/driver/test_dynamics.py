"""The driver's ensembles (mlpotential/driver/dynamics.py): degrees of
freedom, initial velocities at exactly the requested temperature, the
integrators ASE runs for each Thermostat/Barostat, and their input."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.units import kB

from mlpotential.driver.dynamics import (
    BarostatSettings,
    DynamicsError,
    EnsembleSettings,
    ThermostatSettings,
    VelocitySettings,
    conserved_energy,
    degrees_of_freedom,
    make_integrator,
    set_initial_velocities,
    temperature,
)
from mlpotential.driver.input_reader import InputError
from mlpotential.driver.job import read_job


def copper_cluster() -> Atoms:
    atoms = Icosahedron("Cu", noshells=2)
    atoms.calc = EMT()
    return atoms


def angular_momentum(atoms: Atoms) -> np.ndarray:
    positions = atoms.positions - atoms.get_center_of_mass()
    return np.cross(positions, atoms.get_momenta()).sum(axis=0)


@pytest.mark.parametrize(
    ("atoms", "thermostat", "expected"),
    [
        (Icosahedron("Cu", noshells=2), "None", 3 * 13 - 6),  # a molecule: no drift, no rotation
        (Icosahedron("Cu", noshells=2), "Bussi", 3 * 13 - 6),
        (molecule("CO2"), "NHC", 3 * 3 - 5),  # linear: two rotations
        (bulk("Cu", cubic=True), "Berendsen", 3 * 4 - 3),  # periodic: no drift, rotation is no symmetry
        (Icosahedron("Cu", noshells=2), "Langevin", 3 * 13),  # the bath moves every degree of freedom
        (Atoms("Cu", positions=[[0, 0, 0]]), "None", 3),
    ],
    ids=["cluster NVE", "cluster Bussi", "linear molecule", "crystal", "Langevin", "one atom"],
)
def test_degrees_of_freedom(atoms: Atoms, thermostat: str, expected: int) -> None:
    assert degrees_of_freedom(atoms, thermostat) == expected


@pytest.mark.parametrize("thermostat", ["None", "Langevin"])
@pytest.mark.parametrize("make", [copper_cluster, lambda: bulk("Cu", cubic=True).repeat(2), lambda: molecule("CO2")])
def test_random_velocities_are_at_exactly_the_temperature_without_drift_or_rotation(make, thermostat: str) -> None:
    atoms = make()
    dof = degrees_of_freedom(atoms, thermostat)
    set_initial_velocities(atoms, VelocitySettings("Random", 300.0, seed=4), dof)
    assert temperature(atoms, dof) == pytest.approx(300.0, rel=1e-12)
    assert 2 * atoms.get_kinetic_energy() / (dof * kB) == pytest.approx(300.0, rel=1e-12)
    np.testing.assert_allclose(atoms.get_momenta().sum(axis=0), 0.0, atol=1e-12)
    if not atoms.pbc.any():
        np.testing.assert_allclose(angular_momentum(atoms), 0.0, atol=1e-10)


def test_seeded_velocities_repeat_and_zero_velocities_are_zero() -> None:
    first, second = copper_cluster(), copper_cluster()
    for atoms in (first, second):
        set_initial_velocities(atoms, VelocitySettings("Random", 300.0, seed=9), 33)
    np.testing.assert_array_equal(first.get_velocities(), second.get_velocities())
    set_initial_velocities(first, VelocitySettings("Zero"), 33)
    assert not first.get_momenta().any()


@pytest.mark.parametrize(
    ("thermostat", "barostat", "integrator"),
    [
        ("None", "None", "VelocityVerlet"),
        ("Berendsen", "None", "NVTBerendsen"),
        ("NHC", "None", "NoseHooverChainNVT"),
        ("Langevin", "None", "Langevin"),
        ("Bussi", "None", "Bussi"),
        ("Berendsen", "Berendsen", "NPTBerendsen"),
        ("NHC", "MTK", "IsotropicMTKNPT"),
    ],
)
def test_each_ensemble_runs_its_integrator(thermostat: str, barostat: str, integrator: str) -> None:
    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.calc = EMT()
    settings = EnsembleSettings(
        VelocitySettings("Random", 300.0, 1), ThermostatSettings(thermostat, seed=2), BarostatSettings(barostat)
    )
    settings.check(atoms)
    dof = degrees_of_freedom(atoms, thermostat)
    set_initial_velocities(atoms, settings.velocities, dof)
    dynamics = make_integrator(atoms, settings, 2.0, dof)
    assert type(dynamics).__name__ == integrator
    dynamics.run(5)
    if integrator == "Langevin":
        assert dynamics.fix_com is False  # ASE's default (True) runs small systems hot
    assert (conserved_energy(dynamics) is None) == (thermostat in ("Langevin", "Berendsen"))


def test_conserved_energies_are_conserved() -> None:
    """NVE, NHC and Bussi each conserve their own quantity (a short run)."""
    for thermostat in ("None", "NHC", "Bussi"):
        atoms = copper_cluster()
        settings = EnsembleSettings(
            VelocitySettings("Random", 300.0, 3), ThermostatSettings(thermostat, tau=20, seed=4)
        )
        dof = degrees_of_freedom(atoms, thermostat)
        set_initial_velocities(atoms, settings.velocities, dof)
        dynamics = make_integrator(atoms, settings, 2.0, dof)
        values = []
        dynamics.attach(lambda: values.append(conserved_energy(dynamics)), interval=1)  # noqa: B023
        dynamics.run(200)
        assert np.ptp(values) / len(atoms) < 2e-4, thermostat


CLUSTER_JOB = """\
Task MolecularDynamics
System
  Atoms
    Cu 0.0 0.0 0.0
    Cu 2.5 0.1 0.0
    Cu 1.2 2.2 0.1
  End
{lattice}End
Engine MLPotential
  Model EMT
EndEngine
MolecularDynamics
{md}End
"""
LATTICE = "  Lattice\n    5 0 0\n    0 5 0\n    0 0 5\n  End\n"


def job_file(tmp_path, md: str, lattice: str = "") -> str:
    path = tmp_path / "job.in"
    path.write_text(CLUSTER_JOB.format(md=md, lattice=lattice))
    return path


def test_ams_thermostat_and_barostat_blocks_are_read(tmp_path) -> None:
    md = (
        "  InitialVelocities\n    Temperature 500\n  End\n"
        "  Thermostat\n    Type nhc\n    Temperature 500\n    Tau 40\n    ChainLength 5\n  End\n"
        "  Barostat\n    Type MTK\n    Pressure 2.5 [bar]\n    Tau 800\n  End\n"
    )
    ensemble = read_job(job_file(tmp_path, md, LATTICE)).dynamics.ensemble
    assert ensemble.thermostat == ThermostatSettings("NHC", 500.0, 40.0, None, 5, None)
    assert ensemble.barostat.type == "MTK" and ensemble.barostat.tau == 800.0
    assert ensemble.barostat.pressure == pytest.approx(2.5e5)


def test_langevin_friction_is_one_over_tau_or_the_older_friction_key(tmp_path) -> None:
    thermostat = read_job(job_file(tmp_path, "  Thermostat\n    Type Langevin\n    Tau 50\n  End\n")).dynamics
    assert thermostat.ensemble.thermostat.friction_per_fs() == pytest.approx(0.02)
    older = read_job(job_file(tmp_path, "  Thermostat\n    Type Langevin\n    Friction 0.05\n  End\n")).dynamics
    assert older.ensemble.thermostat.friction_per_fs() == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("md", "lattice", "fragment"),
    [
        ("  Barostat\n    Type MTK\n  End\n", "", "line 13: Barostat MTK needs a system periodic in 3 dimensions"),
        (
            "  Thermostat\n    Type Langevin\n  End\n  Barostat\n    Type MTK\n  End\n",
            LATTICE,
            "runs with Thermostat Type NHC",
        ),
        (
            "  Thermostat\n    Type Bussi\n  End\n",
            "",
            "Thermostat Bussi rescales the velocities and cannot start from rest",
        ),
        (
            "  Thermostat\n    Type Andersen\n  End\n",
            "",
            "Type 'Andersen' is not allowed; allowed: None, Berendsen, NHC",
        ),
        ("  Thermostat\n    ChainLength 0\n  End\n", "", "ChainLength must be at least 1 and at most 100"),
        ("  Barostat\n    Pressure 1 [psi]\n  End\n", LATTICE, "Pressure unit [psi] is not known"),
        (
            "  Barostat\n    Pressure 2e7 [GPa]\n  End\n",
            LATTICE,
            "Pressure must be at least -1000 and at most 1000 GPa",
        ),
    ],
    ids=["barostat without lattice", "MTK with Langevin", "Bussi at rest", "unknown", "chain", "unit", "range"],
)
def test_ensemble_errors_name_the_line(tmp_path, md: str, lattice: str, fragment: str) -> None:
    with pytest.raises(InputError) as raised:
        read_job(job_file(tmp_path, md, lattice))
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_barostat_refuses_a_slab() -> None:
    slab = bulk("Cu", cubic=True)
    slab.pbc = [True, True, False]
    with pytest.raises(DynamicsError, match="periodic in 3 dimensions"):
        EnsembleSettings(thermostat=ThermostatSettings("NHC"), barostat=BarostatSettings("MTK")).check(slab)
