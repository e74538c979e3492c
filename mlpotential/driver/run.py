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
* ``summary.json``: the task, its ``status`` (converged, not converged,
  completed, failed, interrupted), the engine, final energies and
  statistics (MD: mean and standard deviation of the temperature, energy
  drift), the properties asked for, and the provenance;
* ``hessian.txt``, ``normal_modes.txt``: when the Properties block asks for them;
* ``worker.log``: what the worker printed (our worker's starts with its provenance).

The folder is made ready first (:mod:`mlpotential.driver.results`). A job
that fails or is interrupted (Ctrl-C) still writes ``final.xyz`` (the last
geometry computed), ``worker.log`` and ``summary.json``; the per-step files
hold every step done.
"""

from __future__ import annotations

import csv
import json
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from mlpotential.driver.dynamics import conserved_energy, degrees_of_freedom, make_integrator, set_initial_velocities
from mlpotential.driver.dynamics import temperature as kinetic_temperature
from mlpotential.driver.engine import DriverEngine
from mlpotential.driver.job import Job
from mlpotential.driver.md_summary import MDRun, MDSeries
from mlpotential.driver.optimization import ConvergenceCheck, optimize
from mlpotential.driver.progress import Progress
from mlpotential.driver.properties import compute_properties
from mlpotential.driver.provenance import host_provenance, worker_provenance
from mlpotential.driver.results import (
    COMPLETED,
    CONVERGED,
    FAILED,
    INTERRUPTED,
    NOT_CONVERGED,
    write_atoms_atomic,
    write_text_atomic,
)
from mlpotential.driver.uncertainty import UNCERTAINTY_COLUMNS, UncertaintyTrack, step_uncertainty, uncertainty_label
from mlpotential.host.pipe_engine import PipeEngine
from mlpotential.units import HARTREE_TO_EV

_ASE_RESULTS = ("energy", "free_energy", "forces", "stress")
_UNCERTAINTIES = ("energy_std", "forces_std")


class StepLog:
    """Per-step records: energies.csv every step, trajectory.xyz every
    ``sampling`` steps; written as they come, so a failed run keeps them."""

    def __init__(
        self, directory: Path, columns: list[str], sampling: int = 1, uncertainty: UncertaintyTrack | None = None
    ) -> None:
        self.sampling = sampling
        self.uncertainty = uncertainty
        self.trajectory = directory / "trajectory.xyz"
        self.trajectory.unlink(missing_ok=True)
        self._file = open(directory / "energies.csv", "w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(columns)

        self.last_frame: Atoms | None = None
        self.last_step: int | None = None
        self.dynamics: MDRun | None = None

    def record(self, step: int, atoms: Atoms, values: list[float]) -> None:
        self._csv.writerow([step, *(f"{value:.12g}" for value in values)])
        self._file.flush()
        if step % self.sampling == 0:
            write(self.trajectory, atoms, format="extxyz", append=True)
        # the geometry to write as final.xyz should the job stop before its end
        self.last_frame, self.last_step = frame_with_results(atoms), step

    def close(self) -> None:
        self._file.close()


def frame_with_results(atoms: Atoms) -> Atoms | None:
    """A copy of ``atoms`` holding its calculator's results (energy, forces,
    ...) when they belong to its present geometry, else None."""
    calc = atoms.calc
    if calc is None or "energy" not in calc.results or calc.check_state(atoms):
        return None
    frame = atoms.copy()
    frame.calc = SinglePointCalculator(frame, **{key: calc.results[key] for key in _ASE_RESULTS if key in calc.results})
    # ASE's single-point calculator takes only its own properties: the uncertainties go in afterwards
    frame.calc.results.update({key: calc.results[key] for key in _UNCERTAINTIES if key in calc.results})
    return frame


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
    settings = job.optimization
    progress = Progress(settings.max_iterations, "GeometryOptimization")

    def record(step: int, check: ConvergenceCheck) -> None:
        energies, extra = _energy_columns(atoms, log.uncertainty)
        log.record(step, atoms, energies + [check.max_gradient] + extra)
        progress.update(step, {"energy_Ha": f"{energies[0]:.8f}", "max_gradient": f"{check.max_gradient:.2e}"})

    try:
        details = optimize(atoms, settings, record)
    finally:
        progress.close()
    details["status"] = CONVERGED if details["converged"] else NOT_CONVERGED
    return details


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

    # summarised when the job ends, however it ends (see _finish)
    log.dynamics = MDRun(
        series,
        dof,
        None if ensemble.thermostat.type == "None" else ensemble.thermostat.temperature,
        {
            "steps": settings.steps,
            "timestep_fs": settings.timestep,
            "ensemble": ensemble.describe(),
            "thermostat": ensemble.thermostat.type,
            "barostat": ensemble.barostat.type,
        },
    )
    integrator.attach(record, interval=1)
    try:
        integrator.run(settings.steps)
    finally:
        progress.close()
    return {}


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
    if job.worker_command is not None:
        engine = f"Pipe WorkerCommand {shlex.join(job.worker_command)}"
    else:
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


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C ignored while the results are written, so that a second one
    cannot cut them short (only the main thread can set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _engine(job: Job, results: Path, worker_args: list[str] | None) -> PipeEngine:
    # ASE asks for the stress apart from the forces: asked with them, it costs no second Solve
    barostat = job.task == "MolecularDynamics" and job.dynamics.ensemble.barostat.type != "None"
    lattice = job.task == "GeometryOptimization" and job.optimization.optimize_lattice
    also = ["stress"] if barostat or lattice else []
    if job.worker_command is not None:  # Engine Pipe: any AMS-compatible worker, asked only for what AMS has
        return DriverEngine(worker_command=job.worker_command, also=also)
    return DriverEngine(
        job.engine,
        also=["forces_std", *also],
        base_directory=job.directory,
        worker_args=["--summary", str(results.resolve()), *(worker_args or [])],
    )


def _uncertainty_label(job: Job) -> str:
    if job.worker_command is not None:  # another program: what its deviation means is its own
        return "standard deviation (reported by the Engine Pipe worker)"
    return uncertainty_label(job.engine)


def run_job(job: Job, results: Path, worker_args: list[str] | None = None) -> dict[str, Any]:
    """Run ``job``, writing the results folder (made ready beforehand by
    :func:`~mlpotential.driver.results.prepare_results_folder`); returns the
    summary. Ctrl-C ends the job with status ``interrupted``; an error of the
    engine or the worker ends it with status ``failed`` and is raised again
    once the results are written."""
    atoms = job.atoms.copy()
    started = time.perf_counter()
    timing: dict[str, float] = {}
    details: dict[str, Any] = {}
    status, failure = FAILED, None
    calc = log = final = None
    print(_header(job, results), flush=True)
    try:
        calc = _engine(job, results, worker_args)
        atoms.calc = calc
        atoms.get_potential_energy()  # the first Solve: start-up errors surface here
        timing["seconds_to_first_result"] = time.perf_counter() - started
        has_std = "energy_std" in calc.results
        log = StepLog(
            results,
            _columns(job, has_std),
            job.dynamics.sampling_frequency if job.task == "MolecularDynamics" else 1,
            UncertaintyTrack(_uncertainty_label(job)) if has_std else None,
        )
        task = {"SinglePoint": _single_point, "GeometryOptimization": _optimize, "MolecularDynamics": _dynamics}[
            job.task
        ]
        details = task(job, atoms, log)
        status = details.pop("status", COMPLETED)
        atoms.get_forces()
        final = frame_with_results(atoms)
        if job.properties.any:
            if status == NOT_CONVERGED:  # as AMS: properties of a geometry that is no minimum mislead
                details["properties"] = "not computed: the optimisation did not converge"
            else:
                details["properties"] = compute_properties(atoms, job.properties, results)
    except KeyboardInterrupt:
        status = INTERRUPTED
    except Exception as exc:  # recorded in the summary, then raised again
        status, failure = FAILED, exc
    with _interrupts_held():
        summary = _finish(job, results, atoms, calc, log, final, status, failure)
        summary.update(details)
        summary.update(timing, seconds=time.perf_counter() - started)
        write_text_atomic(results / "summary.json", json.dumps(summary, indent=2) + "\n")
    if failure is not None:
        raise failure
    return summary


def _finish(
    job: Job,
    results: Path,
    atoms: Atoms,
    calc: PipeEngine | None,
    log: StepLog | None,
    final: Atoms | None,
    status: str,
    failure: Exception | None,
) -> dict[str, Any]:
    """Write final.xyz and worker.log, stop the worker; the summary's
    first entries. ``final`` is the geometry at the task's end with its
    results; a job cut short writes the last geometry it computed."""
    if log is not None:
        log.close()
    if final is None:
        final = (log.last_frame if log is not None else None) or frame_with_results(atoms) or atoms.copy()
    write_atoms_atomic(results / "final.xyz", final)
    worker_log = ""
    if calc is not None:
        calc.close()
        worker_log = calc.worker_log()
    write_text_atomic(results / "worker.log", worker_log)
    energy = final.calc.results.get("energy") if final.calc is not None else None
    summary: dict[str, Any] = {
        "task": job.task,
        "status": status,
        "input": job.source,
        "engine": job.engine if job.worker_command is None else {"Pipe": {"WorkerCommand": job.worker_command}},
        "formula": final.get_chemical_formula(),
        "atoms": len(final),
        "charge": job.charge,
        "energy_hartree": None if energy is None else energy / HARTREE_TO_EV,
        "energy_ev": energy,
    }
    if final.calc is not None:
        summary.update(_statistics(final))
    if failure is not None:
        summary["error"] = " ".join(str(failure).split()) or type(failure).__name__
    if log is not None and log.last_step is not None:
        summary["last_step"] = log.last_step
    if log is not None and log.uncertainty is not None:
        summary.update(log.uncertainty.summary())
    if log is not None and log.dynamics is not None:
        summary.update(log.dynamics.finish(results, len(final)))
    summary["provenance"] = {
        "host": host_provenance(Path(job.source), calc.command if calc is not None else []),
        "worker": worker_provenance(worker_log),
    }
    return summary
