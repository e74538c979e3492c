"""``mlpotential run JOB.in``: the host simulation driver.

Runs a SinglePoint, GeometryOptimization or MolecularDynamics task through
:class:`~mlpotential.engine.pipe_engine.PipeEngine` with ASE's optimizers
and integrators, and writes a results folder:

* ``final.xyz``: the last geometry with its energy and forces (extxyz);
* ``trajectory.xyz``: the optimisation steps or MD frames (extxyz);
* ``energies.csv``: per-step energies (Hartree and eV; MD: kinetic, total, temperature);
* ``mlpotential.txt``: the engine's statistics for the last geometry (when it has them);
* ``summary.json``: the task, the engine, final energies and statistics;
* ``worker.log``: what the worker printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.io import write
from tqdm import tqdm

from mlpotential.backends.units import HARTREE_EV
from mlpotential.engine.client import EngineError
from mlpotential.engine.input_reader import InputError
from mlpotential.engine.job import Job, read_job
from mlpotential.engine.launcher import WorkerDiedError
from mlpotential.engine.pipe_engine import PipeEngine


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
    return [energy / HARTREE_EV, energy], std


def _statistics(atoms: Atoms) -> dict[str, Any]:
    std = atoms.calc.results.get("energy_std")
    if std is None:
        return {}
    return {"energy_std_hartree": std / HARTREE_EV, "energy_std_ev": std}


def _single_point(job: Job, atoms: Atoms, log: StepLog) -> dict[str, Any]:
    energies, std = _energy_columns(atoms)
    atoms.get_forces()
    log.record(0, atoms, energies + ([std] if std is not None else []))
    return {"steps": 0}


def _optimize(job: Job, atoms: Atoms, log: StepLog) -> dict[str, Any]:
    from ase.optimize import BFGS, FIRE, LBFGS

    settings = job.optimization
    optimizer = {"BFGS": BFGS, "LBFGS": LBFGS, "FIRE": FIRE}[settings.method](atoms, logfile=None)
    fmax = settings.gradients * HARTREE_EV  # Hartree/Angstrom -> eV/Angstrom
    progress = tqdm(total=settings.max_iterations, desc="GeometryOptimization", unit="step", disable=None)

    def record() -> None:
        energies, std = _energy_columns(atoms)
        largest = np.abs(atoms.get_forces()).max() / HARTREE_EV
        log.record(optimizer.nsteps, atoms, energies + [largest] + ([std] if std is not None else []))
        progress.set_postfix(energy_Ha=f"{energies[0]:.8f}", max_gradient=f"{largest:.2e}")
        progress.update(1 if optimizer.nsteps else 0)

    optimizer.attach(record, interval=1)
    try:
        converged = bool(optimizer.run(fmax=fmax, steps=settings.max_iterations))
    finally:
        progress.close()
    if not converged:
        print(f"mlpotential run: GeometryOptimization did not converge in {settings.max_iterations} iterations "
              f"(largest gradient {np.abs(atoms.get_forces()).max() / HARTREE_EV:.3e} Hartree/Angstrom, "
              f"threshold {settings.gradients:g})", file=sys.stderr)  # fmt: skip
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
    timestep = settings.timestep * units.fs
    if settings.thermostat == "Langevin":
        integrator = Langevin(atoms, timestep, temperature_K=settings.temperature,
                              friction=settings.friction / units.fs,
                              rng=np.random.default_rng(settings.thermostat_seed), logfile=None)  # fmt: skip
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
        "MolecularDynamics": ["step", "time_fs", "energy_hartree", "energy_ev", "kinetic_ev", "total_ev",
                              "temperature_k"],  # fmt: skip
    }[job.task]
    return columns + (["energy_std_ev"] if has_std else [])


def run_job(job: Job, results: Path, worker_args: list[str] | None = None) -> dict[str, Any]:
    """Run ``job``, writing the results folder; returns the summary."""
    results.mkdir(parents=True, exist_ok=True)
    atoms = job.atoms.copy()
    started = time.perf_counter()
    calc = PipeEngine(job.engine, base_directory=job.directory,
                      worker_args=["--summary", str(results.resolve()), *(worker_args or [])])  # fmt: skip
    try:
        atoms.calc = calc
        atoms.get_potential_energy()  # the first Solve: start-up errors surface here
        first_result = time.perf_counter() - started
        log = StepLog(results, _columns(job, "energy_std" in calc.results),
                      job.dynamics.sampling_frequency if job.task == "MolecularDynamics" else 1)  # fmt: skip
        try:
            task = {"SinglePoint": _single_point, "GeometryOptimization": _optimize,
                    "MolecularDynamics": _dynamics}[job.task]  # fmt: skip
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
        "energy_hartree": energy / HARTREE_EV,
        "energy_ev": energy,
        **_statistics(atoms),
        **details,
        "seconds_to_first_result": first_result,
        "seconds": time.perf_counter() - started,
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpotential run", description="Run an AMS-style job through a worker.")
    parser.add_argument("input", type=Path, help="the job file (Task, System, Engine MLPotential ... EndEngine)")
    parser.add_argument("--results", type=Path, help="results folder (default: <input name>.results)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        job = read_job(args.input)
    except InputError as exc:
        print(f"mlpotential run: {exc}", file=sys.stderr)
        return 2
    results = args.results or Path(args.input.stem + ".results")
    try:
        summary = run_job(job, results)
    except EngineError as exc:
        print(f"mlpotential run: the engine failed: {exc.message} (keyword or argument: {exc.argument or '-'})",
              file=sys.stderr)  # fmt: skip
        return 1
    except WorkerDiedError as exc:
        print(f"mlpotential run: {exc}", file=sys.stderr)
        return 1
    print(f"{job.task} of {summary['formula']} ({summary['atoms']} atoms)")
    print(f"Final energy: {summary['energy_hartree']:.10f} Hartree ({summary['energy_ev']:.6f} eV)")
    if "energy_std_hartree" in summary:
        print(f"Ensemble energy standard deviation: {summary['energy_std_hartree']:.3e} Hartree")
    if "converged" in summary:
        print(f"Converged: {summary['converged']} after {summary['steps']} steps")
    print(f"Results in {results}/")
    return 0 if summary.get("converged", True) else 3
