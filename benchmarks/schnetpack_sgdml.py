"""Benchmark of the SchNetPack and sGDML backends against their libraries' own
calculators, and of the worker against in-process evaluation.

Models: the tiny ones the tests train on EMT data of a Cu4Ag2 cluster
(tests/backends/emt_trained_models.py), trained here in a temporary folder
unless given. Measured, medians of repetitions, energy + forces per geometry:

* SchNetPack, in process: our calculator (float64, matscipy neighbour list,
  energy and forces from one model call) against the stock
  ``schnetpack.interfaces.SpkCalculator`` (its defaults: float32, ASE
  neighbour list; ``get_potential_energy`` then ``get_forces``), for the
  6-atom cluster and larger Cu-Ag icosahedra (the SchNet model takes any size);
* sGDML, in process: our calculator against sGDML's ``GDMLPredict.predict``
  called directly (the library with no ASE layer at all);
* through a worker (PipeEngine) against in process, same NumThreads, and the
  wall time from starting a worker to its first energy.

Prints a table and writes benchmarks/results/schnetpack_sgdml.json.

    .venv/bin/python benchmarks/schnetpack_sgdml.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "schnetpack_sgdml.json"
sys.path.insert(0, str(REPO))  # run as a script: the tests' model training is importable as tests.*

from tests.backends.emt_trained_models import (  # noqa: E402
    displaced,
    emt_minimum,
    emt_samples,
    train_schnet,
    train_sgdml,
)


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def energy_and_forces(calculator, atoms) -> Callable[[], object]:
    """A fresh geometry each call (a tiny move), so nothing is served from a cache."""
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(0)

    def run() -> object:
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_potential_energy()
        return atoms.get_forces()

    return run


def icosahedral_cluster(shells: int):
    """A Cu icosahedron with every fifth atom Ag (55, 147... atoms), Angstrom."""
    from ase.cluster import Icosahedron

    cluster = Icosahedron("Cu", noshells=shells, latticeconstant=3.7)
    cluster.numbers[::5] = 47
    return cluster


def schnetpack_in_process(model: Path, repeats: int) -> list[dict]:
    import torch

    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings
    from mlpotential.backends.schnetpack.compat import load_pickled_model

    ours = create_calculator(parse_settings({"Backend": "SchNetPack", "ParameterFile": str(model)}))
    from schnetpack.interfaces import SpkCalculator
    from schnetpack.transform import ASENeighborList

    class StockCalculator(SpkCalculator):
        """SpkCalculator unchanged but for the torch >= 2.6 loading shim."""

        def _load_model(self, model_file: str) -> torch.nn.Module:
            return load_pickled_model(model_file).to(torch.float64).eval()

    stock = StockCalculator(
        str(model), neighbor_list=ASENeighborList(cutoff=ours.outline.cutoff), energy_unit="eV", position_unit="Ang"
    )
    rows = []
    for name, atoms in (
        ("Cu4Ag2", emt_minimum()),
        ("Cu-Ag 55", icosahedral_cluster(3)),
        ("Cu-Ag 147", icosahedral_cluster(4)),
    ):
        ours_time = median_seconds(energy_and_forces(ours, atoms), repeats)
        stock_time = median_seconds(energy_and_forces(stock, atoms), repeats)
        rows.append(
            {
                "backend": "SchNetPack",
                "system": name,
                "atoms": len(atoms),
                "ours_s": ours_time,
                "peer": "stock SpkCalculator",
                "peer_s": stock_time,
            }
        )
    return rows


def sgdml_in_process(model: Path, repeats: int) -> dict:
    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings
    from mlpotential.backends.sgdml.calculator import (
        GDMLPredict,  # sgdml, imported without its logging side effect
    )
    from mlpotential.backends.sgdml.factory import read_model_file

    ours = create_calculator(
        parse_settings({"Backend": "sGDML", "ParameterFile": str(model), "MLEnergyUnit": "eV", "NumThreads": "1"})
    )
    predictor = GDMLPredict(read_model_file(str(model)), max_processes=1)
    atoms = emt_minimum()
    positions = atoms.positions.reshape(1, -1)
    return {
        "backend": "sGDML",
        "system": "Cu4Ag2",
        "atoms": len(atoms),
        "ours_s": median_seconds(energy_and_forces(ours, atoms), repeats),
        "peer": "GDMLPredict.predict",
        "peer_s": median_seconds(lambda: predictor.predict(positions), repeats),
    }


def through_worker(keywords: dict[str, str], repeats: int) -> dict:
    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings
    from mlpotential.host.pipe_engine import PipeEngine

    atoms = displaced(emt_minimum(), np.random.default_rng(1))
    local = create_calculator(parse_settings(keywords))
    start = time.perf_counter()
    with PipeEngine(keywords) as engine:
        probe = atoms.copy()
        probe.calc = engine
        probe.get_potential_energy()
        first = time.perf_counter() - start
        pipe_time = median_seconds(energy_and_forces(engine, atoms), repeats)
    return {
        "backend": keywords["Backend"],
        "system": "Cu4Ag2",
        "atoms": len(atoms),
        "ours_s": pipe_time,
        "peer": "same calculator in process",
        "peer_s": median_seconds(energy_and_forces(local, atoms), repeats),
        "worker_first_energy_s": first,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per timing (median taken)")
    parser.add_argument("--threads", type=int, default=1, help="threads, in process and in the worker")
    parser.add_argument("--schnetpack-model", type=Path, help="a SchNetPack model of the Cu4Ag2 cluster (else trained)")
    parser.add_argument("--sgdml-model", type=Path, help="an sGDML model of the Cu4Ag2 cluster in eV (else trained)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="mlpotential-bench-") as scratch:
        folder = Path(scratch)
        samples = emt_samples(200, seed=0) if not (args.schnetpack_model and args.sgdml_model) else []
        spk_model = args.schnetpack_model or train_schnet(folder, samples).path
        sgdml_model = args.sgdml_model or train_sgdml(folder / "sgdml.npz", samples).path
        threads = str(args.threads)
        rows = schnetpack_in_process(spk_model, args.repeats)
        rows.append(sgdml_in_process(sgdml_model, args.repeats))
        rows.append(
            through_worker(
                {"Backend": "SchNetPack", "ParameterFile": str(spk_model), "NumThreads": threads}, args.repeats
            )
        )
        rows.append(
            through_worker(
                {"Backend": "sGDML", "ParameterFile": str(sgdml_model), "MLEnergyUnit": "eV", "NumThreads": threads},
                args.repeats,
            )
        )

    print(f"energy + forces per geometry, median of {args.repeats}, {args.threads} thread(s)")
    header = (
        f"{'backend':<11} {'system':<10} {'atoms':>5}  {'ours ms':>8}  {'peer':<27} {'peer ms':>8}  {'ours/peer':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row["ours_s"] / row["peer_s"]
        row["ratio"] = ratio
        print(
            f"{row['backend']:<11} {row['system']:<10} {row['atoms']:>5}  {row['ours_s'] * 1e3:>8.2f}  "
            f"{row['peer']:<27} {row['peer_s'] * 1e3:>8.2f}  {ratio:>9.2f}"
        )
    for row in rows:
        if "worker_first_energy_s" in row:
            print(f"{row['backend']} worker: start to first energy {row['worker_first_energy_s']:.1f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"repeats": args.repeats, "threads": args.threads, "rows": rows}, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
