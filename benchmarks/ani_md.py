"""Molecular dynamics throughput of the TorchANI backend: through the pipe
versus in process.

NVE molecular dynamics (ASE velocity Verlet, 0.5 fs, initial velocities at
300 K from a fixed seed) of ethanol and of a periodic box of 216 water
molecules (648 atoms, 1 g/cm^3), with ANI-2x on one thread on both sides.
Three pairs, each measured on its own with its two calculators taking turns
in chunks of steps (10 for ethanol, 1 for the box), so that a change in the
machine's load hits both alike and neither warms the other's caches. Steps
per second are the median of the repetitions; a ratio is the median of the
repetitions' own ratios (the machine's speed wanders between repetitions,
the two of a pair share it):

* pipe (PipeEngine: a real worker over named pipes) versus torchani's own
  ASE calculator in process (``model.ase()``), the peer: the target ratio;
* mlpotential's calculator in process (TorchANICalculator) versus the peer,
  on the same loaded model: what our calculator itself costs;
* with force statistics (energy, forces, energy standard deviation and the
  members' force standard deviation every step, the Solve's ``other``
  flag): pipe versus mlpotential's calculator in process, since torchani's
  calculator has no such mode.

Prints a table and writes benchmarks/results/ani_md.json.

    .venv/bin/python benchmarks/ani_md.py [--repeats 3] [--ethanol-steps 200] [--box-steps 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the shared benchmark code is importable as benchmarks.*

from benchmarks.reporting import machine, write_report  # noqa: E402

SHARED = Path(os.environ.get("MLPOTENTIAL_SHARED", REPO.parent / "shared")).resolve()
RESULTS = REPO / "benchmarks" / "results" / "ani_md.json"
TARGETS = {"ethanol": 0.9, "water box": 0.97}
"""Throughput ratio pipe / torchani in process (without force statistics) the issue asks for."""


def water_box(copies: int = 6, spacing: float = 3.104):
    """``copies``^3 randomly oriented water molecules on a cubic grid (3.104
    Angstrom per molecule is 1.0 g/cm^3), periodic."""
    from ase import Atoms
    from ase.build import molecule

    rng = np.random.default_rng(2024)
    box = Atoms(cell=[copies * spacing] * 3, pbc=True)
    for index in np.ndindex(copies, copies, copies):
        water = molecule("H2O")
        water.rotate(rng.uniform(0.0, 360.0), rng.normal(size=3), center="COM")
        water.translate((np.array(index) + 0.5) * spacing)
        box += water
    return box


def with_force_statistics(calculator_class: type) -> type:
    """A subclass of ``calculator_class`` that asks for ``forces_std`` on every calculation."""

    class WithForceStatistics(calculator_class):
        def calculate(self, atoms=None, properties=("energy",), system_changes=None):
            from ase.calculators.calculator import all_changes

            wanted = [*properties, *(["forces_std"] if "forces_std" not in properties else [])]
            super().calculate(atoms, wanted, all_changes if system_changes is None else system_changes)

    WithForceStatistics.__name__ = f"{calculator_class.__name__}WithForceStatistics"
    return WithForceStatistics


def interleaved_rates(atoms, calculators: dict[str, object], steps: int, chunk: int, warmup: int) -> dict[str, float]:
    """Velocity-Verlet steps per second (0.5 fs) of each calculator over
    ``steps`` steps after ``warmup`` steps. The calculators take turns in
    chunks of ``chunk`` steps, so a change in the machine's load hits all of
    them alike."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    dynamics = {}
    for kind, calculator in calculators.items():
        system = atoms.copy()
        system.calc = calculator
        dynamics[kind] = VelocityVerlet(system, timestep=0.5 * units.fs)
        dynamics[kind].run(warmup)
    elapsed = dict.fromkeys(calculators, 0.0)
    done = 0
    while done < steps:
        count = min(chunk, steps - done)
        for kind, run in dynamics.items():
            start = time.perf_counter()
            run.run(count)
            elapsed[kind] += time.perf_counter() - start
        done += count
    return {kind: steps / seconds for kind, seconds in elapsed.items()}


def prepared(atoms):
    """``atoms`` with velocities at 300 K from a fixed seed."""
    from ase.md.velocitydistribution import thermalize_momenta

    atoms = atoms.copy()
    thermalize_momenta(atoms, 300, rng=np.random.default_rng(7))
    return atoms


Pair = tuple[str, str]
"""(reference, candidate): the candidate's throughput is reported over the reference's."""


def run(
    systems: dict[str, tuple[object, int, int]],
    calculators: dict[str, Callable[[], object]],
    pairs: Sequence[Pair],
    repeats: int,
    warmup: int,
) -> dict[str, dict[Pair, dict[str, list[float]]]]:
    """steps/s per system, pair and calculator, one value per repetition."""
    rates = {name: {pair: {kind: [] for kind in pair} for pair in pairs} for name in systems}
    for repeat in range(repeats):
        for name, (atoms, steps, chunk) in systems.items():
            for pair in pairs:
                made = {kind: calculators[kind]() for kind in pair}
                for kind, rate in interleaved_rates(atoms, made, steps, chunk, warmup).items():
                    rates[name][pair][kind].append(rate)
                    print(f"  repeat {repeat + 1}: {name:<9} {kind:<30} {rate:9.3f} steps/s", flush=True)
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ANI-2x", choices=["ANI-2x", "ANI-1ccx", "ANI-1x"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ethanol-steps", type=int, default=200)
    parser.add_argument("--box-steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    # The worker and this process share one converted-model cache, outside the user's data directory.
    scratch = tempfile.TemporaryDirectory(prefix="ani-md-")
    os.environ["MLPOTENTIAL_DATA_DIR"] = scratch.name

    from mlpotential.backends.runtime import configure_threads

    # The worker's own thread set-up (before torch is imported), so both sides run alike.
    configure_threads(args.threads)

    import torch
    from ase.build import molecule

    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings
    from mlpotential.backends.torchani.calculator import TorchANICalculator
    from mlpotential.host.pipe_engine import PipeEngine

    keywords = {"Model": args.model, "ParameterDir": str(SHARED / "ani-model-zoo"), "NumThreads": str(args.threads)}
    in_process = create_calculator(parse_settings(keywords))
    model = in_process.model
    box = water_box()
    systems = {
        "ethanol": (prepared(molecule("CH3CH2OH")), args.ethanol_steps, 10),
        "water box": (prepared(box), args.box_steps, 1),
    }

    statistics_class = with_force_statistics(TorchANICalculator)
    pipe = PipeEngine(keywords)
    pipe_statistics = with_force_statistics(PipeEngine)(keywords)
    calculators = {
        "torchani in process": model.ase,
        "mlpotential in process": lambda: in_process,
        "pipe": lambda: pipe,
        "mlpotential in process + stats": lambda: statistics_class(
            model, model_name=args.model, encoding=in_process.encoding, units=in_process.units
        ),
        "pipe + stats": lambda: pipe_statistics,
    }
    pairs: list[Pair] = [
        ("torchani in process", "pipe"),
        ("torchani in process", "mlpotential in process"),
        ("mlpotential in process + stats", "pipe + stats"),
    ]
    try:
        rates = run(systems, calculators, pairs, args.repeats, args.warmup)
    finally:
        pipe.close()
        pipe_statistics.close()
        scratch.cleanup()

    header = (
        f"{'system':<10} {'atoms':>5} {'candidate':<13} {'steps/s':>8} {'reference':<30} {'steps/s':>8} "
        f"{'ratio':>6} {'ms/step':>8} {'target':>6}"
    )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nMD steps per second ({args.model}, {args.threads} thread(s), median of {args.repeats}; "
        f"load average {load} on {os.cpu_count()} CPUs)"
    )
    print(header)
    print("-" * len(header))
    short = {"pipe": "pipe", "mlpotential in process": "mlp in-proc", "pipe + stats": "pipe + stats"}
    table = []
    for name, (atoms, _, _) in systems.items():
        for reference, candidate in pairs:
            measured = rates[name][(reference, candidate)]
            medians = {kind: statistics.median(values) for kind, values in measured.items()}
            # Within a repetition the two took turns under the same load; across
            # repetitions the machine's speed wanders by tens of percent here, so
            # the ratio is the median of the paired ratios, not a ratio of medians.
            ratio = statistics.median(c / r for c, r in zip(measured[candidate], measured[reference]))
            cost = 1e3 * (1 / medians[candidate] - 1 / medians[reference])
            target = TARGETS[name] if (reference, candidate) == pairs[0] else None
            print(
                f"{name:<10} {len(atoms):>5} {short[candidate]:<13} {medians[candidate]:>8.3f} {reference:<30} "
                f"{medians[reference]:>8.3f} {ratio:>6.3f} {cost:>8.2f} "
                f"{'-' if target is None else f'{target:.2f}':>6}"
            )
            table.append(
                {
                    "system": name,
                    "atoms": len(atoms),
                    "candidate": candidate,
                    "reference": reference,
                    "steps_per_second": medians,
                    "all": measured,
                    "ratio": ratio,
                    "ratio_of_medians": medians[candidate] / medians[reference],
                    "extra_ms_per_step": cost,
                    "target_ratio": target,
                    "meets_target": None if target is None else ratio >= target,
                }
            )
    print(
        "ratio: median over the repetitions of candidate / reference steps per second (each pair measured on "
        "its own, the two taking turns); ms/step: the candidate's extra time per step, from the medians."
    )

    report = {
        "benchmark": "ani_md",
        "model": args.model,
        "threads": args.threads,
        "repeats": args.repeats,
        "steps": {
            "ethanol": args.ethanol_steps,
            "water box": args.box_steps,
            "warmup": args.warmup,
            "chunks": {name: chunk for name, (_, _, chunk) in systems.items()},
        },
        "timestep_fs": 0.5,
        "machine": machine(torch=torch.__version__),
        "results": table,
    }
    write_report(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
