"""``mlpotential run JOB.in``: run an AMS-style job through a worker and
write its results folder (see :mod:`mlpotential.driver.run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlpotential.driver.input_reader import InputError
from mlpotential.driver.job import read_job
from mlpotential.driver.run import run_job
from mlpotential.host.client import EngineError
from mlpotential.host.launcher import WorkerDiedError


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
        print(
            f"mlpotential run: the engine failed: {exc.message} (keyword or argument: {exc.argument or '-'})",
            file=sys.stderr,
        )
        return 1
    except WorkerDiedError as exc:
        print(f"mlpotential run: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the results folder cannot be made or written
        print(f"mlpotential run: cannot write {exc.filename or results}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{job.task} of {summary['formula']} ({summary['atoms']} atoms)")
    print(f"Final energy: {summary['energy_hartree']:.10f} Hartree ({summary['energy_ev']:.6f} eV)")
    if "energy_std_hartree" in summary:
        kind = summary.get("uncertainty", "standard deviation")
        print(f"Energy uncertainty: {summary['energy_std_hartree']:.3e} Hartree ({kind})")
    if "converged" in summary:
        print(f"Converged: {summary['converged']} after {summary['steps']} steps")
    print(f"Results in {results}/")
    return 0 if summary.get("converged", True) else 3
