"""The cost of uncertainty: MD steps with energy and forces alone versus with
all uncertainties (energy_std and the per-atom forces_std), as a ratio of
time per step.

Rows:

* ANI-2x (8 members) on a periodic water box of 648 atoms
  (examples/water_box.xyz repeated 2 x 2 x 2), in process (TorchANICalculator)
  and through a worker (PipeEngine; forces_std is the Solve's ``other``
  flag). In process there is a third calculator: the per-member backward
  passes the one-pass members' forces replaced, for comparison;
* a committee of 4 HDNNP models (random weights, one descriptor set, as
  :func:`hdnnp_committee_row` builds them) on a 1000-atom copper cell, in
  process (HDNNPCommitteeCalculator).

NVE velocity Verlet, 0.5 fs, one thread. Within a repetition the calculators
of a row take turns step by step, so a change in the machine's load hits them
alike; a row's ratio is the median over the repetitions of the paired ratios
(time per step with uncertainties / without), because this shared machine's
speed wanders between repetitions. Prints a table and writes
benchmarks/results/uncertainty_cost.json.

    .venv/bin/python benchmarks/uncertainty_cost.py [--repeats 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the shared benchmark code is importable as benchmarks.*

from benchmarks.ani_md import interleaved_rates, prepared, with_force_statistics  # noqa: E402
from benchmarks.reporting import machine, write_report  # noqa: E402

SHARED = Path(os.environ.get("MLPOTENTIAL_SHARED", REPO.parent / "shared")).resolve()
RESULTS = REPO / "benchmarks" / "results" / "uncertainty_cost.json"
WATER_BOX = REPO / "examples" / "water_box.xyz"
TARGET = 1.5
"""Time per step with all uncertainties over energy and forces alone, at most (issue 16)."""
PLAIN = "energy+forces"
WITH_UNCERTAINTY = "+energy_std+forces_std"
PER_MEMBER_LOOP = "+uncertainty, per-member backward passes"

Row = dict[str, object]
Calculators = dict[str, Callable[[], object]]
"""A row's calculators by label, each made when the row is measured; the first is the reference."""


def cost_row(name: str, how: str, atoms, calculators: Calculators, steps: int, repeats: int, warmup: int) -> list[Row]:
    """One line per candidate calculator: time per step over the reference's
    (the first calculator), the median of the repetitions' paired ratios."""
    made = {label: make() for label, make in calculators.items()}
    rates: dict[str, list[float]] = {label: [] for label in made}
    for repeat in range(repeats):
        for label, rate in interleaved_rates(atoms, made, steps, 1, warmup).items():
            rates[label].append(rate)
            print(f"  repeat {repeat + 1}: {name} {how} {label:<42} {rate:8.3f} steps/s", flush=True)
    reference, *candidates = made
    lines = []
    for candidate in candidates:
        ratios = [r / c for r, c in zip(rates[reference], rates[candidate])]
        medians = {label: statistics.median(rates[label]) for label in (reference, candidate)}
        lines.append(
            {
                "system": name,
                "atoms": len(atoms),
                "how": how,
                "reference": reference,
                "candidate": candidate,
                "steps_per_second": medians,
                "all_steps_per_second": {label: rates[label] for label in (reference, candidate)},
                "ratio": statistics.median(ratios),
                "ratios": ratios,
                "extra_ms_per_step": 1e3 * (1 / medians[candidate] - 1 / medians[reference]),
                "target_ratio": TARGET if candidate == WITH_UNCERTAINTY else None,
            }
        )
    return lines


def ani_rows(threads: int, steps: int, repeats: int, warmup: int) -> list[Row]:
    """ANI-2x on the 648-atom water box: in process, and through a worker."""
    from ase.io import read

    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings
    from mlpotential.backends.torchani.calculator import TorchANICalculator
    from mlpotential.host.pipe_engine import PipeEngine

    keywords = {"Model": "ANI-2x", "ParameterDir": str(SHARED / "ani-model-zoo"), "NumThreads": str(threads)}
    box = prepared(read(WATER_BOX).repeat(2))
    in_process = create_calculator(parse_settings(keywords))

    def calculator(*, statistics_asked: bool, one_pass: bool = True) -> TorchANICalculator:
        made = (with_force_statistics(TorchANICalculator) if statistics_asked else TorchANICalculator)(
            in_process.model, model_name="ANI-2x", encoding=in_process.encoding, units=in_process.units
        )
        if not one_pass:
            made.ensemble_forces = None
        return made

    rows = cost_row(
        "ANI-2x water box",
        "in process",
        box,
        {
            PLAIN: lambda: calculator(statistics_asked=False),
            WITH_UNCERTAINTY: lambda: calculator(statistics_asked=True),
            PER_MEMBER_LOOP: lambda: calculator(statistics_asked=True, one_pass=False),
        },
        steps,
        repeats,
        warmup,
    )
    engines = [PipeEngine(keywords), with_force_statistics(PipeEngine)(keywords)]
    try:
        rows += cost_row(
            "ANI-2x water box",
            "worker (PipeEngine)",
            box,
            {PLAIN: lambda: engines[0], WITH_UNCERTAINTY: lambda: engines[1]},
            steps,
            repeats,
            warmup,
        )
    finally:
        for engine in engines:
            engine.close()
    return rows


def hdnnp_committee_row(steps: int, repeats: int, warmup: int) -> list[Row]:
    """The second row: a committee of 4 HDNNP models of one descriptor set
    (Cu, cutoff 4.5 Angstrom, networks 16-16, random weights from seeds 0-3)
    on bulk copper repeated to 1000 atoms, in process: committee energy and
    forces (every member's forces, averaged) versus the same with forces_std."""
    import torch
    from ase.build import bulk

    from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
    from mlpotential.backends.hdnnp.committee import HDNNPCommitteeCalculator
    from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape

    models = []
    for seed in range(4):
        torch.manual_seed(seed)
        models.append(HDNNPModel(SymmetryFunctionParameters.default(["Cu"], cutoff=4.5), NetworkShape((16, 16))))
    copper = prepared(bulk("Cu", "fcc", a=3.61).repeat(10))
    return cost_row(
        "HDNNP committee Cu",
        "in process",
        copper,
        {
            PLAIN: lambda: HDNNPCommitteeCalculator(models),
            WITH_UNCERTAINTY: lambda: with_force_statistics(HDNNPCommitteeCalculator)(models),
        },
        steps,
        repeats,
        warmup,
    )


def print_table(rows: Sequence[Row], threads: int, repeats: int) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nTime per MD step with uncertainties / without ({threads} thread(s), median of {repeats} paired "
        f"repetitions; load average {load} on {os.cpu_count()} CPUs)"
    )
    header = (
        f"{'system':<19} {'atoms':>5} {'how':<20} {'candidate':<42} {'steps/s':>7} {'plain':>7} {'ratio':>6} "
        f"{'target':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        rates = row["steps_per_second"]
        target = row["target_ratio"]
        print(
            f"{row['system']:<19} {row['atoms']:>5} {row['how']:<20} {row['candidate']:<42} "
            f"{rates[row['candidate']]:>7.3f} {rates[row['reference']]:>7.3f} {row['ratio']:>6.3f} "
            f"{'-' if target is None else f'{target:.2f}':>6}"
        )
    print(
        "ratio: median over the repetitions of (time per step of the candidate) / (time per step with energy and "
        "forces alone), the two taking turns step by step; steps/s: medians."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per calculator and repetition")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-hdnnp", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    # The worker and this process share one converted-model cache, outside the user's data directory.
    scratch = tempfile.TemporaryDirectory(prefix="uncertainty-cost-")
    os.environ["MLPOTENTIAL_DATA_DIR"] = scratch.name

    from mlpotential.backends.runtime import configure_threads

    # The worker's own thread set-up (before torch is imported), so both sides run alike.
    configure_threads(args.threads)
    import torch

    try:
        rows = ani_rows(args.threads, args.steps, args.repeats, args.warmup)
        if not args.skip_hdnnp:
            rows += hdnnp_committee_row(args.steps, args.repeats, args.warmup)
    finally:
        scratch.cleanup()
    print_table(rows, args.threads, args.repeats)
    report = {
        "benchmark": "uncertainty_cost",
        "threads": args.threads,
        "repeats": args.repeats,
        "steps": args.steps,
        "warmup": args.warmup,
        "timestep_fs": 0.5,
        "machine": machine(torch=torch.__version__),
        "results": rows,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
