"""``mlpotential run JOB.in``: the host simulation driver.

Runs a SinglePoint, GeometryOptimization or MolecularDynamics task through
:class:`~mlpotential.host.pipe_engine.PipeEngine` with ASE's optimizers
and integrators, and writes a results folder:

* ``final.xyz``: the last geometry with its energy and forces (extxyz);
* ``trajectory.xyz``: the optimisation steps or MD frames (extxyz);
* ``energies.csv``: per-step energies (Hartree and eV; MD: kinetic, total,
  conserved, temperature); with an engine that has an uncertainty, the
  energy standard deviation and the largest per-atom force deviation;
* ``md.png``: MD energies and temperature against time;
* ``mlpotential.txt``: the engine's statistics for the last geometry (when it has them);
* ``summary.json``: the task, the engine, final energies and statistics
  (MD: mean and standard deviation of the temperature, energy drift);
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

from mlpotential.driver.dynamics import conserved_energy, degrees_of_freedom, make_integrator, set_initial_velocities
from mlpotential.driver.dynamics import temperature as kinetic_temperature
from mlpotential.driver.engine import DriverEngine
from mlpotential.driver.job import Job
from mlpotential.driver.md_summary import MDSeries, describe_statistics, md_statistics, write_md_plot
from mlpotential.driver.progress import Progress
from mlpotential.driver.uncertainty import UNCERTAINTY_COLUMNS, UncertaintyTrack, step_uncertainty, uncertainty_label
from mlpotential.units import HARTREE_TO_EV


class StepLog:
    """Per-step records: energies.csv every step, trajectory.xyz every
    ``sampling`` steps; written as they come, so a failed run keeps them."""

    def __init__(
        self, directory: Path, columns: list[str], sampling: int = 1, uncertainty: UncertaintyTrack | None = None
    ) -> None:
        self.sampling = sampling
        self.uncertainty = uncertainty
        self.directory = directory
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


def _energy_columns(atoms: Atoms, uncertainty: UncertaintyTrack | None) -> tuple[list[float], list[float]]:
    """[energy (Hartree), energy (eV)] and, with an uncertainty, its step values."""
    energy = atoms.get_potential_energy()
    extra: list[float] = []
    if uncertainty is not None:
        extra = step_uncertainty(atoms.calc.results)
        uncertainty.add(extra)
    return [energy / HARTREE_TO_EV, energy], extra


def _statistics(atoms: Atoms) -> dict[str, Any]:
    std = atoms.calc.results.get("energy_std")
    if std is None:
        return {}
    return {"energy_std_hartree": std / HARTREE_TO_EV, "energy_std_ev": std}


def _single_point(job: Job, atoms: Atoms, log: StepLog) -> dict[str, Any]:
    energies, extra = _energy_columns(atoms, log.uncertainty)
    atoms.get_forces()
    log.record(0, atoms, energies + extra)
    return {"steps": 0}


def _optimize(job: Job, atoms: Atoms, log: StepLog) -> dict[str, Any]:
    from ase.optimize import BFGS, FIRE, LBFGS

    settings = job.optimization
    optimizer = {"BFGS": BFGS, "LBFGS": LBFGS, "FIRE": FIRE}[settings.method](atoms, logfile=None)
    fmax = settings.gradients * HARTREE_TO_EV  # Hartree/Angstrom -> eV/Angstrom
    progress = Progress(settings.max_iterations, "GeometryOptimization")

    def record() -> None:
        energies, extra = _energy_columns(atoms, log.uncertainty)
        largest = np.abs(atoms.get_forces()).max() / HARTREE_TO_EV
        log.record(optimizer.nsteps, atoms, energies + [largest] + extra)
        progress.update(optimizer.nsteps, {"energy_Ha": f"{energies[0]:.8f}", "max_gradient": f"{largest:.2e}"})

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
    settings = job.dynamics
    ensemble = settings.ensemble
    dof = degrees_of_freedom(atoms, ensemble.thermostat.type)
    set_initial_velocities(atoms, ensemble.velocities, dof)
    integrator = make_integrator(atoms, ensemble, settings.timestep, dof)
    series = MDSeries()
    progress = Progress(settings.steps, "MolecularDynamics")

    def record() -> None:
        energies, extra = _energy_columns(atoms, log.uncertainty)
        kinetic = atoms.get_kinetic_energy()
        step = integrator.nsteps
        conserved = conserved_energy(integrator)
        temperature = kinetic_temperature(atoms, dof)
        series.add(step * settings.timestep, energies[1], kinetic, conserved, temperature)
        total = energies[1] + kinetic
        row = [step * settings.timestep, *energies, kinetic, total, np.nan if conserved is None else conserved]
        log.record(step, atoms, row + [temperature] + extra)
        progress.update(
            step, {"E_pot_eV": f"{energies[1]:.6f}", "E_tot_eV": f"{total:.6f}", "T_K": f"{temperature:.1f}"}
        )

    integrator.attach(record, interval=1)
    try:
        integrator.run(settings.steps)
    finally:
        progress.close()
        if len(series) > 1:
            target = None if ensemble.thermostat.type == "None" else ensemble.thermostat.temperature
            write_md_plot(series, log.directory / "md.png", target)
    statistics = md_statistics(series, len(atoms), dof)
    for line in describe_statistics(statistics):
        print(line, flush=True)
    return {
        "steps": settings.steps,
        "timestep_fs": settings.timestep,
        "ensemble": ensemble.describe(),
        "thermostat": ensemble.thermostat.type,
        "barostat": ensemble.barostat.type,
        **statistics,
    }


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
            "conserved_ev",
            "temperature_k",
        ],
    }[job.task]
    return columns + (UNCERTAINTY_COLUMNS if has_std else [])


def _header(job: Job, results: Path) -> str:
    """What is about to run, printed before the worker starts."""
    engine = " ".join(f"{key} {value}" for key, value in job.engine.items()) or "defaults"
    lines = [
        f"mlpotential run: {job.task} of {job.atoms.get_chemical_formula()} ({len(job.atoms)} atoms) from {job.source}",
        f"Engine: {engine}",
    ]
    if job.task == "MolecularDynamics":
        settings = job.dynamics
        lines.append(f"Dynamics: {settings.steps} steps of {settings.timestep:g} fs, {settings.ensemble.describe()}")
    lines.append(f"Results: {results}/")
    return "\n".join(lines)


def run_job(job: Job, results: Path, worker_args: list[str] | None = None) -> dict[str, Any]:
    """Run ``job``, writing the results folder; returns the summary."""
    results.mkdir(parents=True, exist_ok=True)
    atoms = job.atoms.copy()
    started = time.perf_counter()
    print(_header(job, results), flush=True)
    barostat = job.task == "MolecularDynamics" and job.dynamics.ensemble.barostat.type != "None"
    calc = DriverEngine(
        job.engine,
        also=["forces_std", *(["stress"] if barostat else [])],
        base_directory=job.directory,
        worker_args=["--summary", str(results.resolve()), *(worker_args or [])],
    )
    try:
        atoms.calc = calc
        atoms.get_potential_energy()  # the first Solve: start-up errors surface here
        first_result = time.perf_counter() - started
        has_std = "energy_std" in calc.results
        log = StepLog(
            results,
            _columns(job, has_std),
            job.dynamics.sampling_frequency if job.task == "MolecularDynamics" else 1,
            UncertaintyTrack(uncertainty_label(job.engine)) if has_std else None,
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
        **(log.uncertainty.summary() if log.uncertainty is not None else {}),
        "seconds_to_first_result": first_result,
        "seconds": time.perf_counter() - started,
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
