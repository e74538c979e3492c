"""Start-up of a TorchANI worker: launch to first result.

Times, for each model asked for, a real worker (PipeEngine over named pipes)
from launch to the first energy and forces of ethanol:

* cold: an empty user data directory, so the worker parses the NeuroChem
  files and writes the converted-model cache;
* warm: the same directory again, so the worker loads the cache;

and, as peers in the same run, a fresh Python process that loads the same
NeuroChem files with torchani itself (``torchani.neurochem``) and evaluates
the same structure, and a worker of the ASE backend (EMT, no torch) for the
cost of the process and the pipes alone. Median of the repetitions; prints
a table and writes benchmarks/results/ani_startup.json.

    .venv/bin/python benchmarks/ani_startup.py [--models ANI-2x ANI-1x] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the shared benchmark code is importable as benchmarks.*

from benchmarks.reporting import machine, write_report  # noqa: E402

SHARED = Path(os.environ.get("MLPOTENTIAL_SHARED", REPO.parent / "shared")).resolve()
RESULTS = REPO / "benchmarks" / "results" / "ani_startup.json"
INFO_NAMES = {"ANI-2x": "ani2x", "ANI-1ccx": "ani1ccx", "ANI-1x": "ani1x"}

# The peer: torchani alone, in a fresh process, from launch to the first energy and forces.
TORCHANI_PEER = """
import sys, torch, torchani
from ase.build import molecule
torch.set_num_threads(int(sys.argv[2]))
model = torchani.neurochem.load_model_from_name(sys.argv[1])
atoms = molecule("CH3CH2OH")
atoms.calc = model.ase()
atoms.get_forces()
print("result", atoms.get_potential_energy(), flush=True)
"""


def time_worker(keywords: dict[str, str], env: dict[str, str]) -> float:
    """Seconds from launching a worker to its first energy and forces of ethanol."""
    from ase.build import molecule

    from mlpotential.host.pipe_engine import PipeEngine

    atoms = molecule("CH3CH2OH")
    start = time.perf_counter()
    with PipeEngine(keywords, env=env) as engine:
        atoms.calc = engine
        atoms.get_forces()
        elapsed = time.perf_counter() - start
    return elapsed


def time_torchani_peer(model: str, threads: int, env: dict[str, str]) -> float:
    """Seconds from launching a Python process that loads ``model`` with
    torchani to the line with its first result."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", TORCHANI_PEER, INFO_NAMES[model], str(threads)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("result"):
            elapsed = time.perf_counter() - start
            break
    else:
        raise RuntimeError("the torchani peer gave no result")
    process.wait()
    return elapsed


def summary(times: list[float]) -> dict[str, float | list[float]]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "all": times}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["ANI-2x"], choices=list(INFO_NAMES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    zoo = SHARED / "ani-model-zoo"
    scratch = Path(tempfile.mkdtemp(prefix="ani-startup-"))
    try:
        torchani_data = scratch / "torchani-data"
        torchani_data.mkdir()
        (torchani_data / "Neurochem").symlink_to(zoo, target_is_directory=True)
        base_env = {**os.environ, "TORCHANI_DATA_DIR": str(torchani_data), "TORCHANI_NO_WARN_EXTENSIONS": "1"}

        results: dict[str, dict[str, dict]] = {}
        ase_times = []
        for _ in range(args.repeats):
            ase_env = {**base_env, "MLPOTENTIAL_DATA_DIR": str(scratch / "ase-data")}
            ase_times.append(time_worker({"Backend": "ASE", "Model": "EMT", "NumThreads": "1"}, ase_env))
        for model in args.models:
            keywords = {"Model": model, "ParameterDir": str(zoo), "NumThreads": str(args.threads)}
            cold, warm, peer = [], [], []
            for repeat in range(args.repeats):
                data = scratch / f"user-data-{model}-{repeat}"
                env = {**base_env, "MLPOTENTIAL_DATA_DIR": str(data)}
                cold.append(time_worker(keywords, env))
                warm.append(time_worker(keywords, env))
                peer.append(time_torchani_peer(model, args.threads, base_env))
                shutil.rmtree(data, ignore_errors=True)
            results[model] = {"cold": summary(cold), "warm": summary(warm), "torchani": summary(peer)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    ase_median = statistics.median(ase_times)
    header = f"{'model':<9} {'start':<34} {'median s':>9} {'min s':>7} {'max s':>7} {'/ torchani':>10}"
    print(header)
    print("-" * len(header))
    labels = {
        "cold": "worker, cold (parse + write cache)",
        "warm": "worker, warm (cached model)",
        "torchani": "torchani alone (NeuroChem files)",
    }
    for model, entry in results.items():
        peer_median = entry["torchani"]["median"]
        for kind, label in labels.items():
            row = entry[kind]
            ratio = row["median"] / peer_median
            print(f"{model:<9} {label:<34} {row['median']:>9.2f} {row['min']:>7.2f} {row['max']:>7.2f} {ratio:>10.2f}")
    print(
        f"{'-':<9} {'worker, ASE backend (no torch)':<34} {ase_median:>9.2f} {min(ase_times):>7.2f} "
        f"{max(ase_times):>7.2f}"
    )

    report = {
        "benchmark": "ani_startup",
        "what": "seconds from launching a process to its first energy and forces of ethanol",
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": machine(),
        "models": results,
        "ase_backend_worker": summary(ase_times),
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
