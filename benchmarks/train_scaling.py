"""HDNNP training on 1, 2, ... processes (torch.distributed, gloo on CPU):
training throughput (structures per second of the fit, descriptors already
computed), parallel efficiency, and how far the model trained on several
ranks is from the one-process model (same seed, same global batch).

Data: 200 Cu32 cells (fcc, lattice constant scaled by 0.97-1.03, atoms
displaced by 0.08 Angstrom, EMT energies and forces), the default
descriptor (cutoff 6.5 Angstrom, 16 features), (10, 10) tanh networks, Adam
with batch 16 (``--batch-size``), float32, one thread per process. Also the descriptor store's
size beside what the per-image form (store version 1) would take.

Prints a table and writes benchmarks/results/train_scaling.json.

    .venv/bin/python benchmarks/train_scaling.py [--processes 1 2 4] [--epochs 40] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "train_scaling.json"

import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402
from ase.io import write  # noqa: E402

from benchmarks.reporting import machine, write_report  # noqa: E402
from mlpotential.atomistic.structures import DataSource  # noqa: E402
from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters  # noqa: E402
from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet  # noqa: E402
from mlpotential.backends.hdnnp.calculator import HDNNPCalculator  # noqa: E402
from mlpotential.backends.hdnnp.config import Stage, TrainingConfig  # noqa: E402
from mlpotential.backends.hdnnp.parallel_training import train_in_processes  # noqa: E402
from mlpotential.backends.hdnnp.training import TrainingResult, train  # noqa: E402

CUTOFF = 6.5


def copper_cells(count: int, seed: int) -> list[Atoms]:
    """Cu32 cells with EMT energies (eV) and forces (eV/Angstrom)."""
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(count):
        atoms = bulk("Cu", "fcc", a=3.61 * rng.uniform(0.97, 1.03), cubic=True).repeat((2, 2, 2))
        atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        cells.append(atoms)
    return cells


def per_image_store_bytes(cells: list[Atoms]) -> int:
    """What store version 1 held: a float32 Jacobian (features x 3) and two
    int32 indices per neighbour image, and float64 features per atom."""
    parameters = SymmetryFunctionParameters.default(["Cu"], cutoff=CUTOFF)
    functions = SymmetryFunctionSet(parameters)
    total = 0
    for atoms in cells:
        neighbors = functions.neighbor_list(
            torch.tensor(atoms.positions), torch.tensor(atoms.cell.array), tuple(atoms.pbc)
        )
        total += neighbors.n_pairs * (parameters.n_features * 3 * 4 + 8) + len(atoms) * parameters.n_features * 8
    return total


def model_difference(one: TrainingResult, other: TrainingResult, cells: list[Atoms]) -> dict[str, float]:
    """Largest parameter difference, and largest energy (eV/atom) and force
    (eV/Angstrom) differences over ``cells``."""
    parameters = max(
        float((value - other.model.state_dict()[name]).abs().max()) for name, value in one.model.state_dict().items()
    )
    energies, forces = [], []
    for atoms in cells:
        results = []
        for result in (one, other):
            copy = atoms.copy()
            copy.calc = HDNNPCalculator(result.model)
            results.append((copy.get_potential_energy() / len(copy), copy.get_forces()))
        energies.append(abs(results[0][0] - results[1][0]))
        forces.append(float(np.abs(results[0][1] - results[1][1]).max()))
    return {
        "max_parameter_difference": parameters,
        "max_energy_difference_ev_per_atom": float(max(energies)),
        "max_force_difference_ev_per_angstrom": float(max(forces)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--structures", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch (structures)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)

    cells = copper_cells(args.structures, seed=0)
    runs: dict[int, dict] = {}
    results: dict[int, TrainingResult] = {}
    with tempfile.TemporaryDirectory(prefix="train-scaling-") as folder:
        write(Path(folder) / "cells.extxyz", cells)
        for processes in args.processes:
            config = TrainingConfig(
                data=(DataSource("cells.extxyz"),),
                stages=(Stage(epochs=args.epochs, batch_size=args.batch_size),),
                early_stopping_patience=0,
                dtype=args.dtype,
                threads=1,
                progress=False,
                parity_plot=None,
                report=None,
                model_path=Path(f"ranks{processes}/model.pt"),
                base_dir=Path(folder),
            )
            torch.set_num_threads(1)
            result = train(config) if processes == 1 else train_in_processes(config, processes)
            results[processes] = result
            report = result.report
            runs[processes] = {
                "structures_per_second": report["throughput_structures_per_second"],
                "fit_seconds": report["seconds"]["fit"],
                "descriptor_seconds": report["seconds"]["descriptors"],
                "store_bytes": report["descriptor_cache"]["bytes"],
                "test_errors": report["errors"]["test"],
            }
    baseline = runs[min(runs)]
    for processes, run in runs.items():
        speedup = run["structures_per_second"] / baseline["structures_per_second"]
        run["speedup"] = speedup
        run["parallel_efficiency"] = speedup / (processes / min(runs))
        if processes != min(runs):
            run["difference_from_fewest"] = model_difference(results[min(runs)], results[processes], cells[:20])

    training = runs[min(runs)]
    store = {"bytes": training["store_bytes"], "per_image_bytes": per_image_store_bytes(cells)}
    print(
        f"{args.structures} Cu32 cells, {args.epochs} Adam epochs, batch {args.batch_size}, {args.dtype}, "
        "one thread per process, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'processes':>9s} {'structures/s':>13s} {'speed-up':>9s} {'efficiency':>10s} {'descriptors (s)':>15s}")
    for processes, run in runs.items():
        print(
            f"{processes:>9d} {run['structures_per_second']:>13.0f} {run['speedup']:>8.2f}x "
            f"{run['parallel_efficiency']:>10.0%} {run['descriptor_seconds']:>15.1f}"
        )
    for processes, run in runs.items():
        if "difference_from_fewest" in run:
            difference = run["difference_from_fewest"]
            print(
                f"{processes} processes vs {min(runs)}: max parameter difference "
                f"{difference['max_parameter_difference']:.2e}, "
                f"energy {difference['max_energy_difference_ev_per_atom']:.2e} eV/atom, "
                f"forces {difference['max_force_difference_ev_per_angstrom']:.2e} eV/Angstrom"
            )
    print(
        f"descriptor store: {store['bytes'] / 1e6:.1f} MB (per-image form, version 1: "
        f"{store['per_image_bytes'] / 1e6:.1f} MB, {store['per_image_bytes'] / store['bytes']:.1f}x larger)"
    )
    write_report(
        RESULTS,
        {
            "machine": machine(torch=torch.__version__),
            "settings": vars(args) | {"threads_per_process": 1, "cutoff": CUTOFF},
            "runs": {str(k): v for k, v in runs.items()},
            "descriptor_store": store,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
