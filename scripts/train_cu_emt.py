"""Generate ASE-EMT reference data of copper and train the shipped HDNNP
model ``Cu-EMT`` (mlpotential/backends/hdnnp/models/cu_emt.pt).

The data: strained and thermally displaced fcc bulk cells (some with a
vacancy), (100)/(111)/(110) slabs (some with an adatom) and icosahedral,
octahedral and decahedral clusters, each with EMT energies and forces. Every
random choice comes from one seeded generator and training runs on one
thread, so the same seed gives the same data and the same model.

    .venv/bin/python scripts/train_cu_emt.py                    # writes the shipped model
    .venv/bin/python scripts/train_cu_emt.py --output /tmp/m.pt --structures 120 --epochs 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Decahedron, Icosahedron, Octahedron
from ase.io import write

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlpotential.atomistic.structures import DataSource  # noqa: E402
from mlpotential.backends.hdnnp.config import (  # noqa: E402
    DescriptorSettings,
    LossSettings,
    Stage,
    TrainingConfig,
)
from mlpotential.backends.hdnnp.network import NetworkShape  # noqa: E402
from mlpotential.backends.hdnnp.training import train  # noqa: E402

LATTICE_CONSTANT = 3.61
"""Angstrom, fcc copper (EMT's equilibrium is close to it)."""


def _rattled(atoms: Atoms, rng: np.random.Generator, largest: float) -> Atoms:
    atoms.positions += rng.normal(0.0, rng.uniform(0.02, largest), atoms.positions.shape)
    return atoms


def bulk_cell(rng: np.random.Generator) -> Atoms:
    """A 32- or 27-atom fcc cell, scaled by up to 4 %, sheared, displaced."""
    scale = rng.uniform(0.96, 1.04)
    if rng.random() < 0.5:
        atoms = bulk("Cu", "fcc", a=LATTICE_CONSTANT * scale, cubic=True).repeat((2, 2, 2))
    else:
        atoms = bulk("Cu", "fcc", a=LATTICE_CONSTANT * scale).repeat((3, 3, 3))
    strain = rng.normal(0.0, 0.015, (3, 3))
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
    if rng.random() < 0.2:
        del atoms[int(rng.integers(len(atoms)))]
    return _rattled(atoms, rng, 0.10)


def slab(rng: np.random.Generator) -> Atoms:
    """A 3x3x4 (100), (111) or (110) slab, 6 Angstrom of vacuum each side,
    sometimes with an adatom 2.35-2.6 Angstrom from its nearest neighbour,
    displaced."""
    builder = (fcc100, fcc111, fcc110)[int(rng.integers(3))]
    atoms = builder("Cu", size=(3, 3, 4), a=LATTICE_CONSTANT * rng.uniform(0.98, 1.02), vacuum=6.0)
    if rng.random() < 0.3:
        _add_adatom(atoms, rng)
    atoms.info.clear()
    return _rattled(atoms, rng, 0.10)


def _add_adatom(atoms: Atoms, rng: np.random.Generator) -> None:
    """An atom above a random point of the top layer, raised until its
    nearest neighbour is at a bond length drawn from 2.35-2.6 Angstrom."""
    bond = rng.uniform(2.35, 2.6)
    point = rng.uniform(0.0, 1.0, 2) @ atoms.cell.array[:2, :2]
    top = atoms.positions[:, 2].max()
    for height in np.arange(1.0, 3.0, 0.01):
        candidate = Atoms("Cu", positions=[[point[0], point[1], top + height]])
        trial = atoms + candidate
        if trial.get_distances(len(atoms), range(len(atoms)), mic=True).min() >= bond:
            atoms.extend(candidate)
            return


def cluster(rng: np.random.Generator) -> Atoms:
    """An icosahedral, octahedral or decahedral cluster of 13 to 55 atoms,
    scaled by up to 4 %, displaced."""
    choice = int(rng.integers(5))
    scale = LATTICE_CONSTANT * rng.uniform(0.96, 1.04)
    atoms = [
        lambda: Icosahedron("Cu", 2, latticeconstant=scale),
        lambda: Icosahedron("Cu", 3, latticeconstant=scale),
        lambda: Octahedron("Cu", 4, 1, latticeconstant=scale),
        lambda: Octahedron("Cu", 3, 0, latticeconstant=scale),
        lambda: Decahedron("Cu", 2, 2, 0, latticeconstant=scale),
    ][choice]()
    atoms.center()
    return _rattled(atoms, rng, 0.10)


def generate(n_structures: int, seed: int) -> list[Atoms]:
    """EMT-labelled structures: 40 % bulk, 30 % slabs, 30 % clusters."""
    rng = np.random.default_rng(seed)
    counts = (int(0.4 * n_structures), int(0.3 * n_structures))
    makers = [bulk_cell] * counts[0] + [slab] * counts[1] + [cluster] * (n_structures - sum(counts))
    structures = []
    for make in makers:
        atoms = make(rng)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info.clear()
        structures.append(atoms)
    return structures


def training_config(data_file: Path, args: argparse.Namespace, workdir: Path) -> TrainingConfig:
    return TrainingConfig(
        data=(DataSource(path=data_file.name),),
        seed=args.seed,
        test_fraction=0.1,
        validation_fraction=0.1,
        descriptor=DescriptorSettings(elements=("Cu",), cutoff=args.cutoff),
        network=NetworkShape(hidden=(10, 10), activation="tanh"),
        loss=LossSettings(energy_weight=1.0, force_weight=args.force_weight),
        stages=(Stage(optimizer="adam", epochs=args.epochs, learning_rate=5e-3, batch_size=16, plateau_patience=40),),
        early_stopping_patience=150,
        threads=args.threads,
        progress=not args.quiet,
        model_path=Path(args.output).resolve(),
        parity_plot=Path(args.plot).resolve() if args.plot else None,
        report=None,
        descriptor_store=workdir / "descriptors.sqlite",
        base_dir=workdir,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(REPO / "mlpotential/backends/hdnnp/models/cu_emt.pt"))
    parser.add_argument("--report", default=str(REPO / "benchmarks/results/hdnnp_cu_emt_training.json"))
    parser.add_argument("--plot", default=str(REPO / "benchmarks/results/hdnnp_cu_emt_parity.png"))
    parser.add_argument("--structures", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--cutoff", type=float, default=6.0, help="Angstrom; EMT itself reaches 5.9")
    parser.add_argument("--force-weight", type=float, default=0.04)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--threads", type=int, default=1, help="1 keeps the result bit-reproducible")
    parser.add_argument("--keep-data", help="also write the generated data (extxyz) to this path")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    structures = generate(args.structures, args.seed)
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="cu-emt-") as folder:
        workdir = Path(folder)
        data_file = workdir / "cu_emt.extxyz"
        write(data_file, structures)
        if args.keep_data:
            write(args.keep_data, structures)
        result = train(training_config(data_file, args, workdir))
    report = {
        "seed": args.seed,
        "structures": args.structures,
        "atoms": int(sum(len(a) for a in structures)),
        "generation_seconds": generated,
        "training": result.report,
        "model": str(Path(args.output).resolve().relative_to(REPO))
        if Path(args.output).resolve().is_relative_to(REPO)
        else args.output,
    }
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2, default=str) + "\n")
    for name, errors in result.errors.items():
        print(
            f"{name:<10s} E RMSE {errors['energy_rmse'] * 1000:7.3f} meV/atom   "
            f"F RMSE {errors.get('force_rmse', float('nan')):.4f} eV/Angstrom"
        )
    seconds = result.report["seconds"]
    print(f"generation {generated:.1f} s, descriptors {seconds['descriptors']:.1f} s, fit {seconds['fit']:.1f} s")
    print(f"model written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
