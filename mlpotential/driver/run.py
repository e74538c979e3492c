"""``mlpotential run JOB.in``: the host simulation driver.

Runs a SinglePoint, GeometryOptimization or MolecularDynamics task through
:class:`~mlpotential.host.pipe_engine.PipeEngine` with ASE's optimizers
and integrators, and writes a results folder:

* ``final.xyz``: the last geometry with its energy and forces (extxyz);
* ``trajectory.xyz``: the optimisation steps or MD frames (extxyz);
* ``energies.csv``: per-step energies (Hartree and eV; MD: kinetic, total, temperature);
* ``mlpotential.txt``: the engine's statistics for the last geometry (when it has them);
* ``summary.json``: the task, the engine, final energies and statistics;
* ``worker.log``: what the worker printed.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import write
from tqdm import tqdm

from mlpotential.driver.job import Job
from mlpotential.host.pipe_engine import PipeEngine
from mlpotential.units import FS_TO_ASE_TIME, HARTREE_TO_EV


class StepLog:
    """Per-step records: energies.csv every step, trajectory.xyz every
    ``sampling`` steps; written as they come, so a failed run keeps them."""

    def __init__(self, directory: Path, columns: list[str], sampling: int = 1) -> None:
        self.sampling = sampling
        self.trajectory = directory / "trajectory.xyz"
        self.trajectory.unlink(missing_ok=True)
        self._file = open(directory / "energies.csv", "w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(columns)

    def record(self, step: int, atoms: Atoms, values: list[float]) -> None:
        self._csv.writerow([step, *(f"{value:.12g}" for value in values)])
        self._file.flush()
        if step % self.sampling == 0:
            write(self.trajectory, atoms, format="extxyz", append=True)

    def close(self) -> None:
        self._file.close()


def _energy_columns(atoms: Atoms) -> tuple[list[float], float | None]:
    energy = atoms.get_potential_energy()
    std = atoms.calc.results.get("energy_std")
    return [energy / HARTREE_TO_EV, energy], std


def _statistics(atoms: Atoms) -> dict[str, Any]:
    std = atoms.calc.results.get("energy_std")
    if std is None:
        return {}
    return {"energy_std_hartree": std / HARTREE_TO_EV, "energy_std_ev": std}


def _single_point(job: Job, atoms: Atoms, log: StepLog) -> dict[str, Any]:
    energies, std = _energy_columns(atoms)
    atoms.get_forces()
    log.record(0, atoms, energies + ([std] if std is not None else []))
    return {"steps": 0}


def _optimize(job: Job, atoms: Atoms, log: StepLog) -> dict[str, Any]:
    from ase.optimize import BFGS, FIRE, LBFGS

    settings = job.optimization
    optimizer = {"BFGS": BFGS, "LBFGS": LBFGS, "FIRE": FIRE}[settings.method](atoms, logfile=None)
    fmax = settings.gradients * HARTREE_TO_EV  # Hartree/Angstrom -> eV/Angstrom
    progress = tqdm(total=settings.max_iterations, desc="GeometryOptimization", unit="step", disable=None)

    def record() -> None:
        energies, std = _energy_columns(atoms)
        largest = np.abs(atoms.get_forces()).max() / HARTREE_TO_EV
        log.record(optimizer.nsteps, atoms, energies + [largest] + ([std] if std is not None else []))
        progress.set_postfix(energy_Ha=f"{energies[0]:.8f}", max_gradient=f"{largest:.2e}")
        progress.update(1 if optimizer.nsteps else 0)

    optimizer.attach(record, interval=1)
    try:
        converged = bool(optimizer.run(fmax=fmax, steps=settings.max_iterations))
    finally:
        progress.close()
    if not converged:
        print(
            f"mlpotential run: GeometryOptimization did not converge in {settings.max_iterations} iterations "
            f"(largest gradient {np.abs(atoms.get_forces()).max() / HARTREE_TO_EV:.3e} Hartree/Angstrom, "
            f"threshold {settings.gradients:g})",
            file=sys.stderr,
        )
    return {"converged": converged, "steps": optimizer.nsteps, "method": settings.method}


def _dynamics(job: Job, atoms: Atoms, log: StepLog) -> dict[str, Any]:
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    settings = job.dynamics
    if settings.velocities == "Random":
        rng = np.random.default_rng(settings.seed)
        MaxwellBoltzmannDistribution(atoms, temperature_K=settings.initial_temperature, rng=rng)
        Stationary(atoms)
        if not atoms.pbc.any():
            ZeroRotation(atoms)
    timestep = settings.timestep * FS_TO_ASE_TIME
    if settings.thermostat == "Langevin":
        integrator = Langevin(
            atoms,
            timestep,
            temperature_K=settings.temperature,
            friction=settings.friction / FS_TO_ASE_TIME,
            rng=np.random.default_rng(settings.thermostat_seed),
            logfile=None,
        )
    else:
        integrator = VelocityVerlet(atoms, timestep, logfile=None)
    progress = tqdm(total=settings.steps, desc="MolecularDynamics", unit="step", disable=None)

    def record() -> None:
        energies, std = _energy_columns(atoms)
        kinetic = atoms.get_kinetic_energy()
        step = integrator.nsteps
        row = [step * settings.timestep, *energies, kinetic, energies[1] + kinetic, atoms.get_temperature()]
        log.record(step, atoms, row + ([std] if std is not None else []))
        progress.update(1 if step else 0)

    integrator.attach(record, interval=1)
    try:
        integrator.run(settings.steps)
    finally:
        progress.close()
    return {"steps": settings.steps, "timestep_fs": settings.timestep, "thermostat": settings.thermostat}


def _columns(job: Job, has_std: bool) -> list[str]:
    columns = {
        "SinglePoint": ["step", "energy_hartree", "energy_ev"],
        "GeometryOptimization": ["step", "energy_hartree", "energy_ev", "max_gradient_hartree_per_angstrom"],
        "MolecularDynamics": [
            "step",
            "time_fs",
            "energy_hartree",
            "energy_ev",
            "kinetic_ev",
            "total_ev",
            "temperature_k",
        ],
    }[job.task]
    return columns + (["energy_std_ev"] if has_std else [])


def run_job(job: Job, results: Path, worker_args: list[str] | None = None) -> dict[str, Any]:
    """Run ``job``, writing the results folder; returns the summary."""
    results.mkdir(parents=True, exist_ok=True)
    atoms = job.atoms.copy()
    started = time.perf_counter()
    calc = PipeEngine(
        job.engine,
        base_directory=job.directory,
        worker_args=["--summary", str(results.resolve()), *(worker_args or [])],
    )
    try:
        atoms.calc = calc
        atoms.get_potential_energy()  # the first Solve: start-up errors surface here
        first_result = time.perf_counter() - started
        log = StepLog(
            results,
            _columns(job, "energy_std" in calc.results),
            job.dynamics.sampling_frequency if job.task == "MolecularDynamics" else 1,
        )
        try:
            task = {"SinglePoint": _single_point, "GeometryOptimization": _optimize, "MolecularDynamics": _dynamics}[
                job.task
            ]
            details = task(job, atoms, log)
        finally:
            log.close()
        energy = atoms.get_potential_energy()
        atoms.get_forces()
        write(results / "final.xyz", atoms, format="extxyz")
    finally:
        (results / "worker.log").write_text(calc.worker_log())
        calc.close()
    summary = {
        "task": job.task,
        "input": job.source,
        "engine": job.engine,
        "formula": atoms.get_chemical_formula(),
        "atoms": len(atoms),
        "energy_hartree": energy / HARTREE_TO_EV,
        "energy_ev": energy,
        **_statistics(atoms),
        **details,
        "seconds_to_first_result": first_result,
        "seconds": time.perf_counter() - started,
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
