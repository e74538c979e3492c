"""Active learning against the naive alternative with the same number of
reference calls: as many randomly rattled copper cells (32 atoms, lattice
constant uniform in 3.56-3.66 Angstrom, displacements of rms amplitude
uniform in 0.02-0.15 Angstrom), labelled by EMT and trained the same way
(the example's model settings: same committee size, seeds, network,
descriptors, training stages).

Rows:

* active learning: the final committee of ``mlpotential learn`` on
  examples/active_learning/learn.yaml, as the loop trained it;
* active learning, retrained: its dataset, trained from scratch as the
  random set is (separates the data's value from warm starts', when the
  run used them; without, the same models as the row above);
* random: the rattled cells.

Error: every committee on independent MD frames, NVT runs with EMT itself
(Langevin, 4 fs, 1000 steps, every 10th frame kept) at 500 K (the example's
check temperature) and 700 K (its highest exploration temperature): force
RMSE (eV/Angstrom), energy RMSE (meV/atom), and the largest per-atom force
deviation the committee shows there. Prints a table and writes
benchmarks/results/active_learning.json.

    .venv/bin/python benchmarks/active_learning.py [--results DIR]

``--results`` reuses the results folder of a finished run; otherwise the
example runs into a temporary folder first (minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the shared benchmark code is importable as benchmarks.*

from ase import Atoms, units  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import thermalize_momenta  # noqa: E402

from benchmarks.reporting import machine, write_report  # noqa: E402
from mlpotential.atomistic.structures import Structure  # noqa: E402
from mlpotential.backends.hdnnp.committee import HDNNPCommitteeCalculator  # noqa: E402
from mlpotential.backends.hdnnp.model_file import load_model  # noqa: E402
from mlpotential.learning.config import load_config  # noqa: E402
from mlpotential.learning.dataset import as_structures, read_frames  # noqa: E402
from mlpotential.learning.training import train_committee  # noqa: E402

CONFIG = REPO / "examples" / "active_learning" / "learn.yaml"
RESULTS = REPO / "benchmarks" / "results" / "active_learning.json"
TEMPERATURES = (500.0, 700.0)


def rattled_cells(count: int, seed: int = 0) -> list[Structure]:
    """``count`` random copper cells labelled by EMT."""
    rng = np.random.default_rng(seed)
    structures = []
    for _ in range(count):
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.56, 3.66), cubic=True).repeat(2)
        atoms.positions += rng.normal(0.0, rng.uniform(0.02, 0.15) / np.sqrt(3), atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_forces()
        structures.append(Structure.from_atoms(atoms, source="rattled"))
    return structures


def emt_md_frames(temperature: float, steps: int = 1000, every: int = 10, seed: int = 7) -> list[Atoms]:
    """Frames of an NVT run with EMT, each with EMT's energy and forces."""
    rng = np.random.default_rng(seed)
    atoms = bulk("Cu", "fcc", a=3.60, cubic=True).repeat(2)
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature, rng=rng)
    dynamics = Langevin(atoms, 4 * units.fs, temperature_K=temperature, friction=0.01 / units.fs, fixcm=False, rng=rng)
    frames = []
    for step, _ in enumerate(dynamics.irun(steps)):
        if step % every == 0 and step > 0:
            frame = atoms.copy()
            frame.info["energy"] = atoms.get_potential_energy()
            frame.arrays["reference_forces"] = atoms.get_forces()
            frames.append(frame)
    return frames


def errors(committee: list[Path], frames: list[Atoms]) -> dict[str, float]:
    """The committee's errors and largest per-atom force deviation on ``frames``."""
    calculator = HDNNPCommitteeCalculator([load_model(path) for path in committee])
    force_errors, energy_errors, largest = [], [], 0.0
    for frame in frames:
        calculator.calculate(frame, ["energy", "forces", "forces_std"])
        force_errors.append(calculator.results["forces"] - frame.arrays["reference_forces"])
        energy_errors.append((calculator.results["energy"] - frame.info["energy"]) / len(frame))
        largest = max(largest, float(np.linalg.norm(calculator.results["forces_std"], axis=1).max()))
    return {
        "force_rmse": float(np.sqrt(np.mean(np.square(force_errors)))),
        "energy_rmse_mev_per_atom": 1000 * float(np.sqrt(np.mean(np.square(energy_errors)))),
        "largest_force_std": largest,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="active learning vs random rattling, same reference calls")
    parser.add_argument("--results", type=Path, help="a finished `mlpotential learn` results folder of the example")
    args = parser.parse_args()
    config = load_config(CONFIG)
    with tempfile.TemporaryDirectory(prefix="al-benchmark-") as scratch:
        results = args.results
        started = time.perf_counter()
        if results is None:
            results = Path(scratch) / "learn"
            command = [sys.executable, "-m", "mlpotential", "learn", str(CONFIG), "--results", str(results)]
            subprocess.run(command, check=True, cwd=REPO)
        learn_seconds = time.perf_counter() - started if args.results is None else None
        report = json.loads((results / "report.json").read_text())
        calls = int(report["reference_calls"])
        dataset = as_structures(read_frames(results / "dataset.xyz"))
        committees = {"active learning": [Path(p) for p in report["final_committee"]]}
        for name, structures in (("active learning, retrained", dataset), ("random", rattled_cells(calls))):
            folder = Path(scratch) / name.replace(" ", "_").replace(",", "")
            committees[name] = [member.path for member in train_committee(structures, config.model, folder)]
        test_sets = {temperature: emt_md_frames(temperature) for temperature in TEMPERATURES}
        rows = {
            name: {f"{t:g} K": errors(committee, frames) for t, frames in test_sets.items()}
            for name, committee in committees.items()
        }

    print(f"reference calls: {calls} each; error on EMT NVT frames (100 per temperature)")
    header = f"{'training data':<28s}" + "".join(
        f"  {f'{t:g} K F RMSE':>13s}  {'E RMSE':>8s}  {'max std':>8s}" for t in TEMPERATURES
    )
    print(header)
    print(" " * 28 + "".join(f"  {'eV/A':>13s}  {'meV/atom':>8s}  {'eV/A':>8s}" for _ in TEMPERATURES))
    for name, by_temperature in rows.items():
        cells = "".join(
            f"  {e['force_rmse']:>13.4f}  {e['energy_rmse_mev_per_atom']:>8.2f}  {e['largest_force_std']:>8.3f}"
            for e in by_temperature.values()
        )
        print(f"{name:<28s}{cells}")
    write_report(
        RESULTS,
        {
            "reference_calls": calls,
            "iterations": len(report["iterations"]) - 1,
            "learn_seconds": learn_seconds,
            "test_frames_per_temperature": len(test_sets[TEMPERATURES[0]]),
            "rows": rows,
            "machine": machine(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
