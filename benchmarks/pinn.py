"""Benchmark of the PiNN backend against PiNN's own timings.

PiNN (TensorFlow 2.9, Python 3.10) cannot run here, so the peer numbers are
the ones PiNN recorded on a 2-core CPU machine for the same three models and
test sets (../shared/pinn-reference/README.md, section 6). Measured here, per
model: importing the backend, loading the model directory, the first
structure after loading, every later structure (energy + forces, + stress
for periodic cells; median of repetitions), the whole test set, and a real
worker's first Solve (process start, imports, load, first structure) through
PipeEngine. Prints a table and writes benchmarks/results/pinn.json.

    .venv/bin/python benchmarks/pinn.py [--repeats 5] [--threads 1] [--worker-starts 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the tests' reading of the PiNN test sets is importable as tests.*

from tests.backends.pinn_reference import MODELS, read_reference  # noqa: E402

SHARED = Path(os.environ.get("MLPOTENTIAL_SHARED", REPO.parent / "shared")).resolve()
RESULTS = REPO / "benchmarks" / "results" / "pinn.json"

# PiNN's own timings (README section 6), seconds: import tensorflow+pinn,
# pinn.get_calc, 1st structure (graph build + restore + run), later
# structures (range), rebuild at the periodicity switch, test-set total
# without the import.
PINN_RECORDED = {
    "pinet": {
        "import": 2.0,
        "get_calc": 0.06,
        "first": 2.9,
        "later": (0.002, 0.010),
        "rebuild": 2.4,
        "total": 5.5,
        "structures": 23,
    },
    "bpnn": {
        "import": 2.5,
        "get_calc": 0.09,
        "first": 8.1,
        "later": (0.004, 0.031),
        "rebuild": 6.6,
        "total": 15.0,
        "structures": 22,
    },
    "pinet_gaussian": {
        "import": 2.4,
        "get_calc": 0.08,
        "first": 2.9,
        "later": (0.002, 0.020),
        "rebuild": 2.0,
        "total": 5.1,
        "structures": 23,
    },
}


def evaluate(atoms, calc) -> None:
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.get_forces()
    if atoms.pbc.all():
        atoms.get_stress()


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_seconds(repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds to import the backend (torch included)
    in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import mlpotential.backends.pinn; print(time.perf_counter() - t)"
    walls, cpus = [], []
    for _ in range(repeats):
        cpu = children_cpu_seconds()
        result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
        walls.append(float(result.stdout))
        cpus.append(children_cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def in_process(model: str, repeats: int, threads: int) -> dict:
    import torch

    from mlpotential.backends.keywords import parse_settings
    from mlpotential.backends.pinn.factory import create_calculator

    torch.set_num_threads(threads)
    folder = SHARED / "pinn-reference" / model
    settings = parse_settings({"Backend": "PiNN", "ParameterDir": str(folder / "model"), "NumThreads": str(threads)})
    structures = read_reference(folder)
    loads, firsts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        calc = create_calculator(settings)
        loaded = time.perf_counter()
        evaluate(structures[0].atoms.copy(), calc)
        loads.append(loaded - start)
        firsts.append(time.perf_counter() - loaded)
    per_structure, per_structure_cpu = {}, {}
    for structure in structures:
        walls, cpus = [], []
        for _ in range(repeats):
            copy = structure.atoms.copy()
            calc.reset()  # ASE would otherwise return the cached results of the same structure
            start, start_cpu = time.perf_counter(), time.process_time()
            evaluate(copy, calc)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - start_cpu)
        per_structure[structure.name] = statistics.median(walls)
        per_structure_cpu[structure.name] = statistics.median(cpus)
    totals = []
    for _ in range(repeats):
        start = time.perf_counter()
        calc = create_calculator(settings)
        for structure in structures:
            evaluate(structure.atoms.copy(), calc)
        totals.append(time.perf_counter() - start)
    return {
        "load": statistics.median(loads),
        "first": statistics.median(firsts),
        "per_structure": per_structure,
        "per_structure_cpu": per_structure_cpu,
        "later_min": min(per_structure.values()),
        "later_median": statistics.median(per_structure.values()),
        "later_max": max(per_structure.values()),
        "later_cpu_min": min(per_structure_cpu.values()),
        "later_cpu_median": statistics.median(per_structure_cpu.values()),
        "later_cpu_max": max(per_structure_cpu.values()),
        "total": statistics.median(totals),
        "structures": len(structures),
    }


def worker_timings(model: str, starts: int, threads: int) -> dict:
    """Wall seconds from starting a worker to its first energy and forces,
    and CPU seconds of that worker's whole life (start, first Solve, exit),
    medians over fresh workers; then the whole test set through one worker."""
    from mlpotential.host.pipe_engine import PipeEngine

    folder = SHARED / "pinn-reference" / model
    keywords = {"Backend": "PiNN", "ParameterDir": str(folder / "model"), "NumThreads": str(threads)}
    structures = read_reference(folder)
    firsts, cpus = [], []
    for _ in range(starts):
        cpu = children_cpu_seconds()
        start = time.perf_counter()
        with PipeEngine(keywords) as engine:
            evaluate(structures[0].atoms.copy(), engine)
            firsts.append(time.perf_counter() - start)
        cpus.append(children_cpu_seconds() - cpu)
    start = time.perf_counter()
    with PipeEngine(keywords) as engine:
        for structure in structures:
            evaluate(structure.atoms.copy(), engine)
        total = time.perf_counter() - start
    return {
        "first_solve": statistics.median(firsts),
        "first_solve_worker_cpu": statistics.median(cpus),
        "total_with_start": total,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per timing (median taken)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in process and in the worker")
    parser.add_argument("--worker-starts", type=int, default=3, help="fresh workers per model")
    args = parser.parse_args(argv)

    import_wall, import_cpu = import_seconds(args.repeats)
    rows = {}
    for model in MODELS:
        ours = in_process(model, args.repeats, args.threads)
        ours.update(worker_timings(model, args.worker_starts, args.threads))
        ours["import"], ours["import_cpu"] = import_wall, import_cpu
        rows[model] = ours

    ms = 1e3
    print(
        f"PiNN backend vs PiNN's recorded timings (PiNN: 2-core CPU; here: {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, {args.threads} thread(s), median of {args.repeats})"
    )
    header = f"{'model':15s} {'quantity':36s} {'PiNN':>12s} {'ours':>12s} {'PiNN/ours':>10s}"
    print(header)
    print("-" * len(header))
    for model, ours in rows.items():
        pinn = PINN_RECORDED[model]
        later = f"{pinn['later'][0] * ms:.0f}-{pinn['later'][1] * ms:.0f} ms"
        lines = [
            ("import (tensorflow+pinn | torch)", pinn["import"], ours["import"]),
            ("  same, CPU seconds (ours)", pinn["import"], ours["import_cpu"]),
            ("load model directory", pinn["get_calc"], ours["load"]),
            ("first structure after loading", pinn["first"], ours["first"]),
            ("worker: start to first Solve", pinn["import"] + pinn["get_calc"] + pinn["first"], ours["first_solve"]),
            (
                "  same, worker CPU seconds (ours)",
                pinn["import"] + pinn["get_calc"] + pinn["first"],
                ours["first_solve_worker_cpu"],
            ),
            (f"test set, {ours['structures']} structures (no import)", pinn["total"], ours["total"]),
        ]
        for label, theirs, mine in lines:
            print(f"{model:15s} {label:36s} {theirs:11.3f}s {mine:11.4f}s {theirs / mine:10.1f}")
        for label, key in (("later structures, each", "later"), ("  same, CPU time (ours)", "later_cpu")):
            ours_later = f"{ours[key + '_min'] * ms:.1f}-{ours[key + '_max'] * ms:.1f} ms"
            ratio = (sum(pinn["later"]) / 2) / ours[key + "_median"]
            print(f"{model:15s} {label:36s} {later:>12s} {ours_later:>12s} {ratio:10.1f}")
    print(
        "PiNN/ours for 'later structures' compares the middle of PiNN's range with our median; "
        "'worker: start to first Solve' for PiNN is its import + get_calc + first structure. CPU seconds "
        "do not grow when other jobs share the cores; wall seconds do."
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "description": "PiNN backend timings (s) vs PiNN's recorded timings (README section 6)",
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "load_average_1min": os.getloadavg()[0],
                    "threads": args.threads,
                },
                "repeats": args.repeats,
                "worker_starts": args.worker_starts,
                "pinn_recorded": PINN_RECORDED,
                "ours": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
