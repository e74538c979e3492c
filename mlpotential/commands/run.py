"""``mlpotential run JOB.in``: run an AMS-style job through a worker and
write its results folder (see :mod:`mlpotential.driver.run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mlpotential.driver.input_reader import InputError
from mlpotential.driver.job import Job, read_job
from mlpotential.driver.results import (
    COMPLETED,
    CONVERGED,
    INTERRUPTED,
    NOT_CONVERGED,
    ResultsFolderError,
    prepare_results_folder,
)
from mlpotential.driver.run import run_job
from mlpotential.host.client import EngineError
from mlpotential.host.launcher import WorkerDiedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpotential run", description="Run an AMS-style job through a worker.")
    parser.add_argument("input", type=Path, help="the job file (Task, System, Engine MLPotential ... EndEngine)")
    parser.add_argument("--results", type=Path, help="results folder (default: <input name>.results)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="empty the results folder first when it holds a previous job's results (only a folder that "
        "mlpotential run made; never one that holds the job file, the current or the home directory)",
    )
    return parser


EXIT_CODES = {CONVERGED: 0, COMPLETED: 0, NOT_CONVERGED: 3, INTERRUPTED: 130}
"""The exit status of each job status (failed: 1, raised as an error)."""


def _report(job: Job, summary: dict[str, Any], results: Path) -> None:
    print(f"{job.task} of {summary['formula']} ({summary['atoms']} atoms): {summary['status']}")
    if summary["energy_hartree"] is not None:
        print(f"Final energy: {summary['energy_hartree']:.10f} Hartree ({summary['energy_ev']:.6f} eV)")
    if "energy_std_hartree" in summary:
        kind = summary.get("uncertainty", "standard deviation")
        print(f"Energy uncertainty: {summary['energy_std_hartree']:.3e} Hartree ({kind})")
    if "converged" in summary:
        print(f"Converged: {summary['converged']} after {summary['steps']} steps")
    if summary["status"] == NOT_CONVERGED:
        thresholds = summary["convergence_thresholds"]
        print(
            f"mlpotential run: GeometryOptimization did not converge in {job.optimization.max_iterations} "
            f"iterations (last step: {summary.get('last_step_criteria')}; thresholds: {thresholds})",
            file=sys.stderr,
        )
    if "frequencies_cm-1" in summary.get("properties", {}):
        frequencies = ", ".join(f"{value:.1f}" for value in summary["properties"]["frequencies_cm-1"])
        print(f"Frequencies (cm^-1): {frequencies}")
    print(f"Results in {results}/")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:  # before the job started (or after it ended): nothing to keep
        print("mlpotential run: interrupted", file=sys.stderr)
        return EXIT_CODES[INTERRUPTED]


def _run(args: argparse.Namespace) -> int:
    try:
        job = read_job(args.input)
    except InputError as exc:
        print(f"mlpotential run: {exc}", file=sys.stderr)
        return 2
    results = args.results or Path(args.input.stem + ".results")
    try:
        results = prepare_results_folder(results, args.input, args.overwrite)
    except ResultsFolderError as exc:
        print(f"mlpotential run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mlpotential run: cannot prepare {exc.filename or results}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        summary = run_job(job, results)
    except EngineError as exc:
        print(
            f"mlpotential run: the engine failed: {exc.message} (keyword or argument: {exc.argument or '-'}); "
            f"what was computed is in {results}/",
            file=sys.stderr,
        )
        return 1
    except WorkerDiedError as exc:
        print(f"mlpotential run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the results folder cannot be written
        print(f"mlpotential run: cannot write {exc.filename or results}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if summary["status"] == INTERRUPTED:
        print(f"mlpotential run: interrupted; what was computed is in {results}/", file=sys.stderr)
        return EXIT_CODES[INTERRUPTED]
    _report(job, summary, results)
    return EXIT_CODES[summary["status"]]
