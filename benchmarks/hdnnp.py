"""Benchmark of the native HDNNP backend against its peers, one run, same
structures, same symmetry-function parameters (the default set for Cu:
8 G2 + 8 G4, cutoff 6.5 Angstrom), float64, one thread on every side unless
--threads says otherwise:

1. descriptors of a periodic Cu cell of 1008 atoms: ours vs DScribe's
   ``ACSF.create`` (C++);
2. energy and forces of a (16-10-10-1, tanh) network on that cell: our
   calculator vs TorchANI's AEV computer (its own neighbour lists, radial
   and angular cutoff 6.5 Angstrom, 8 radial and 8 angular features, the same
   counts as ours) plus the same network, forces by autograd;
3. descriptor derivatives of a 108-atom Cu cell: ours (closed form, also
   expanded to DScribe's dense layout) vs DScribe's ``derivatives`` (numerical
   only for ACSF), with the largest difference between the two;
4. training throughput (structures per second) on EMT data of Cu cells,
   slabs and clusters (descriptors already stored), on CPU and, when one is
   present, on a GPU.

Timings are medians of interleaved repetitions (wall clock; CPU time of the
process beside it, as the machine may be shared). Prints a table and writes
benchmarks/results/hdnnp.json.

    .venv/bin/python benchmarks/hdnnp.py [--repeats 5] [--threads 1] [--skip-derivatives]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
RESULTS = REPO / "benchmarks" / "results" / "hdnnp.json"

import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402

from mlpotential.atomistic.neighbors import pair_vectors  # noqa: E402
from mlpotential.atomistic.symmetry_function_parameters import (
    SymmetryFunctionParameters,  # noqa: E402
)
from mlpotential.atomistic.symmetry_functions import (  # noqa: E402
    SymmetryFunctionSet,
    position_jacobian,
)
from mlpotential.backends.hdnnp.calculator import HDNNPCalculator  # noqa: E402
from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape  # noqa: E402

CUTOFF = 6.5
PARAMETERS = SymmetryFunctionParameters.default(["Cu"], cutoff=CUTOFF)


def copper_cell(repeats: tuple[int, int, int], seed: int) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeats)
    atoms.rattle(0.05, seed=seed)
    return atoms


def timed(function) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(contenders: dict[str, callable], repeats: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds of each contender; one warm-up call each,
    then repetitions interleaved so that load changes hit all alike."""
    for function in contenders.values():
        function()
    samples = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            samples[name].append(timed(function))
    return {
        name: {
            "wall_s": statistics.median(s[0] for s in runs),
            "cpu_s": statistics.median(s[1] for s in runs),
            "repeats": repeats,
        }
        for name, runs in samples.items()
    }


def dscribe_acsf(parameters: SymmetryFunctionParameters, periodic: bool):
    from dscribe.descriptors import ACSF

    return ACSF(
        r_cut=parameters.cutoff,
        g2_params=[list(p) for p in parameters.g2],
        g4_params=[list(p) for p in parameters.g4],
        species=list(parameters.elements),
        periodic=periodic,
    )


def descriptors_benchmark(repeats: int) -> dict:
    atoms = copper_cell((6, 6, 7), seed=1)
    ours = SymmetryFunctionSet(PARAMETERS)
    acsf = dscribe_acsf(PARAMETERS, periodic=True)
    timings = compare({"ours": lambda: ours(atoms), "dscribe": lambda: acsf.create(atoms)}, repeats)
    ours_values = ours(atoms).numpy()
    theirs = acsf.create(atoms)
    columns = [1 + k for k in range(len(PARAMETERS.g2))] + list(range(1 + len(PARAMETERS.g2), theirs.shape[1]))
    difference = np.abs(ours_values - theirs[:, columns]) / np.maximum(np.abs(theirs[:, columns]), 1e-300)
    return {
        "atoms": len(atoms),
        "features": PARAMETERS.n_features,
        "timings": timings,
        "max_relative_difference": float(difference.max()),
    }


def torchani_peer(atoms: Atoms, neighborlist: str):
    from torchani.aev import AEVComputer, ANIAngular, ANIRadial

    # 8 radial shifts and 2 x 4 angular (shift, section) pairs: the feature
    # counts of our default set; TorchANI needs the angular cutoff strictly
    # below the radial one.
    aev = AEVComputer(
        radial=ANIRadial(0.5, list(np.linspace(0.9, CUTOFF - 0.5, 8)), CUTOFF),
        angular=ANIAngular(0.5, 4.0, [2.0, 4.0], [0.39, 1.18, 1.96, 2.75], CUTOFF - 1e-6),
        num_species=1,
        neighborlist=neighborlist,
    ).double()
    network = _network(aev.out_dim)
    species = torch.zeros((1, len(atoms)), dtype=torch.long)
    cell = torch.tensor(atoms.cell.array)
    pbc = torch.tensor([True, True, True])

    def energy_and_forces():
        positions = torch.tensor(atoms.positions)[None].requires_grad_(True)
        energy = network(aev(species, positions, cell, pbc)).sum()
        (gradient,) = torch.autograd.grad(energy, positions)
        return energy.item(), -gradient

    return energy_and_forces, aev.out_dim


def _network(n_inputs: int) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(n_inputs, 10), torch.nn.Tanh(), torch.nn.Linear(10, 10), torch.nn.Tanh(), torch.nn.Linear(10, 1)
    ).double()


def energy_forces_benchmark(repeats: int) -> dict:
    atoms = copper_cell((6, 6, 7), seed=2)
    torch.manual_seed(0)
    model = HDNNPModel(PARAMETERS, NetworkShape((10, 10), "tanh"))
    calculator = HDNNPCalculator(model)

    def ours():
        calculator.calculate(atoms, ["energy", "forces"])

    contenders = {"ours": ours}
    features = {}
    for neighborlist in ("cell_list", "all_pairs"):
        function, n_features = torchani_peer(atoms, neighborlist)
        contenders[f"torchani_{neighborlist}"] = function
        features[f"torchani_{neighborlist}"] = n_features
    timings = compare(contenders, repeats)
    fastest_peer = min((k for k in timings if k.startswith("torchani")), key=lambda k: timings[k]["wall_s"])
    return {
        "atoms": len(atoms),
        "features": {"ours": PARAMETERS.n_features, **features},
        "network": "features-10-10-1 tanh, float64",
        "timings": timings,
        "peer": fastest_peer,
    }


def derivatives_benchmark(repeats: int, skip_dscribe: bool) -> dict:
    atoms = copper_cell((3, 3, 3), seed=3)
    ours = SymmetryFunctionSet(PARAMETERS)
    positions = torch.tensor(atoms.positions)
    cell = torch.tensor(atoms.cell.array)
    species = ours.species(atoms.get_chemical_symbols())

    def pair_form():
        neighbors = ours.neighbor_list(positions, cell, atoms.pbc)
        return neighbors, ours.with_pair_jacobian(pair_vectors(positions, cell, neighbors), neighbors, species)[1]

    def dense_form():
        neighbors, jacobian = pair_form()
        return position_jacobian(neighbors, jacobian)

    timings = compare({"ours_pair_jacobian": pair_form, "ours_dense": dense_form}, repeats)
    result = {"atoms": len(atoms), "features": PARAMETERS.n_features, "timings": timings}
    if skip_dscribe:
        return result
    acsf = dscribe_acsf(PARAMETERS, periodic=True)
    theirs_holder = {}
    wall, cpu = timed(
        lambda: theirs_holder.update(
            value=acsf.derivatives(atoms, method="numerical", attach=True, return_descriptor=False)
        )
    )
    timings["dscribe_numerical"] = {"wall_s": wall, "cpu_s": cpu, "repeats": 1}
    theirs = theirs_holder["value"]
    columns = [1 + k for k in range(len(PARAMETERS.g2))] + list(range(1 + len(PARAMETERS.g2), theirs.shape[-1]))
    ours_dense = dense_form().numpy()
    result["max_abs_difference"] = float(np.abs(ours_dense - theirs[..., columns]).max())
    result["max_abs_value"] = float(np.abs(ours_dense).max())
    return result


def training_benchmark(devices: list[str], epochs: int) -> dict:
    """Structures per second of Adam epochs (batch 16) on 120 EMT structures
    (96 in training), descriptors already in the store."""
    sys.path.insert(0, str(REPO / "scripts"))
    from train_cu_emt import generate

    from mlpotential.atomistic.structures import Structure
    from mlpotential.backends.hdnnp.config import DescriptorSettings, Stage, TrainingConfig
    from mlpotential.backends.hdnnp.training import train

    structures = [Structure.from_atoms(atoms, f"emt@{k}") for k, atoms in enumerate(generate(120, seed=7))]
    results = {}
    with tempfile.TemporaryDirectory(prefix="hdnnp-bench-") as folder:
        for device in devices:
            config = TrainingConfig(
                data=(),
                descriptor=DescriptorSettings(elements=("Cu",), cutoff=CUTOFF),
                stages=(Stage(epochs=epochs, batch_size=16),),
                early_stopping_patience=0,
                device=device,
                progress=False,
                parity_plot=None,
                report=None,
                descriptor_store=Path(folder) / "store.sqlite",
                model_path=Path(folder) / f"model-{device.replace(':', '-')}.pt",
                base_dir=Path(folder),
            )
            cold = train(config, structures).report
            warm = train(config, structures).report
            results[device] = {
                "structures_per_second": warm["throughput_structures_per_second"],
                "fit_seconds": warm["seconds"]["fit"],
                "epochs": warm["epochs"],
                "training_structures": warm["data"]["split"]["train"],
                "descriptor_seconds_cold": cold["seconds"]["descriptors"],
                "descriptor_seconds_stored": warm["seconds"]["descriptors"],
                "atoms": warm["data"]["atoms"],
            }
    return results


def ratio(timings: dict, ours: str, peer: str) -> dict[str, float]:
    """How many times faster ours is (peer time / our time)."""
    return {clock: timings[peer][clock] / timings[ours][clock] for clock in ("wall_s", "cpu_s")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs timed per device")
    parser.add_argument(
        "--skip-derivatives", action="store_true", help="skip DScribe's numerical derivatives (minutes)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    descriptors = descriptors_benchmark(args.repeats)
    energy_forces = energy_forces_benchmark(args.repeats)
    derivatives = derivatives_benchmark(args.repeats, args.skip_derivatives)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    training = training_benchmark(devices, args.epochs)

    peer = energy_forces["peer"]
    rows = [
        ("descriptors, Cu 1008 atoms", descriptors["timings"], "ours", "dscribe", "DScribe ACSF.create"),
        (
            "energy+forces, Cu 1008 atoms",
            energy_forces["timings"],
            "ours",
            peer,
            f"TorchANI AEV ({peer.removeprefix('torchani_')}) + same net",
        ),
    ]
    if "dscribe_numerical" in derivatives["timings"]:
        rows.append(
            (
                "derivatives, Cu 108 atoms",
                derivatives["timings"],
                "ours_dense",
                "dscribe_numerical",
                "DScribe derivatives (numerical)",
            )
        )
    print(f"threads {args.threads}, float64, medians of {args.repeats} (wall clock; CPU time in brackets)")
    print(f"{'task':<30s} {'ours (s)':>18s} {'peer (s)':>18s} {'speed-up':>16s}  peer")
    comparisons = {}
    for task, timings, ours, other, label in rows:
        speed = ratio(timings, ours, other)
        comparisons[task] = {"ours": ours, "peer": other, "peer_label": label, "speedup": speed}
        print(
            f"{task:<30s} {timings[ours]['wall_s']:>8.4f} ({timings[ours]['cpu_s']:.4f}) "
            f"{timings[other]['wall_s']:>8.3f} ({timings[other]['cpu_s']:.3f}) "
            f"{speed['wall_s']:>7.1f}x ({speed['cpu_s']:.1f}x)  {label}"
        )
    print(f"descriptor agreement with DScribe: max relative difference {descriptors['max_relative_difference']:.2e}")
    if "max_abs_difference" in derivatives:
        print(
            "derivative agreement with DScribe (numerical): "
            f"max abs difference {derivatives['max_abs_difference']:.2e} "
            f"(largest value {derivatives['max_abs_value']:.2f}); ours in pair form "
            f"{derivatives['timings']['ours_pair_jacobian']['wall_s']:.4f} s"
        )
    for device, values in training.items():
        print(
            f"training throughput ({device}): {values['structures_per_second']:.0f} structures/s "
            f"({values['training_structures']} structures x {values['epochs']} epochs "
            f"in {values['fit_seconds']:.1f} s; "
            f"descriptors cold {values['descriptor_seconds_cold']:.1f} s, "
            f"stored {values['descriptor_seconds_stored']:.2f} s)"
        )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "torch": torch.__version__,
        "threads": args.threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    report = {
        "machine": machine,
        "parameters": PARAMETERS.to_dict(),
        "descriptors": descriptors,
        "energy_forces": energy_forces,
        "derivatives": derivatives,
        "training": training,
        "comparisons": comparisons,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
