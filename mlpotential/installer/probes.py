"""Does a backend work here? A real import and a tiny evaluation per
backend, run by ``mlpotential install --list`` in a fresh interpreter each
(``python -m mlpotential.installer.probes NAME``), so that one broken
library cannot take the listing down and no state leaks between backends.

Each check returns a one-line description of what it evaluated (energies in
eV) and raises when something does not work. The command prints one JSON
line: ``{"ok": bool, "detail": str}`` (the torch check adds its facts).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class ProbeFailure(RuntimeError):
    """The evaluation ran but its result is wrong."""


def _water():
    from ase.build import molecule

    return molecule("H2O")


def _require_finite(name: str, *values: Any) -> None:
    for value in values:
        if not np.all(np.isfinite(np.asarray(value, dtype=float))):
            raise ProbeFailure(f"{name} gave a non-finite result")


def _our_calculator(keywords: dict[str, str]):
    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings

    return create_calculator(parse_settings(keywords))


def _require_module(module: str) -> None:
    """Our own backend modules are written alongside the wizard; say so
    plainly when one is not there rather than failing with an ImportError."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing too
        found = False
    if not found:
        raise ProbeFailure(f"module missing ({module})")


def check_torch() -> dict[str, Any]:
    """The torch build: version, CUDA build or CPU, CUDA usable or not."""
    import torch

    cuda_available = torch.cuda.is_available()
    facts: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": cuda_available,
        "device_count": torch.cuda.device_count() if cuda_available else 0,
    }
    if cuda_available:
        facts["device_name"] = torch.cuda.get_device_name(0)
    value = torch.ones(4, dtype=torch.float64).sum().item()
    if value != 4.0:
        raise ProbeFailure(f"torch summed four ones to {value}")
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    facts["detail"] = f"torch {torch.__version__}, {build}, CUDA available: {'yes' if cuda_available else 'no'}"
    return facts


def check_ase() -> str:
    """ASE's EMT through our ASE backend, on a water molecule."""
    atoms = _water()
    atoms.calc = _our_calculator({"Backend": "ASE", "Model": "EMT"})
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    _require_finite("EMT", energy, forces)
    return f"EMT energy of H2O: {energy:.4f} eV"


def check_torchani() -> str:
    """torchani's AEV computer (ANI-1x settings) on a water molecule: the
    built-in models need parameter files, the AEVs need none."""
    import torch
    from torchani import AEVComputer

    atoms = _water()
    computer = AEVComputer.like_1x()
    species = torch.tensor([[("H", "C", "N", "O").index(s) for s in atoms.get_chemical_symbols()]])
    coordinates = torch.tensor(atoms.positions[None], dtype=torch.float32)
    aevs = computer(species, coordinates)
    if tuple(aevs.shape) != (1, len(atoms), computer.out_dim):
        raise ProbeFailure(f"AEV shape {tuple(aevs.shape)}, expected (1, {len(atoms)}, {computer.out_dim})")
    _require_finite("torchani AEVComputer", aevs.numpy())
    return f"AEVs of H2O (ANI-1x settings): {computer.out_dim} per atom, finite"


def check_sgdml() -> str:
    """A four-geometry sGDML model of water (EMT labels) trained with
    sgdml's own trainer, evaluated through our sGDML backend: at a training
    geometry the forces must come back as trained."""
    from ase.calculators.emt import EMT
    from sgdml.train import GDMLTrain

    rng = np.random.default_rng(0)
    geometries, energies, forces = [], [], []
    for _ in range(4):
        atoms = _water()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.calc = EMT()
        geometries.append(atoms.positions.copy())
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    dataset = {
        "type": "d",
        "name": np.array("installer-probe"),
        "theory": np.array("EMT"),
        "R": np.array(geometries),
        "z": _water().numbers,
        "E": np.array(energies),
        "F": np.array(forces),
    }
    trainer = GDMLTrain(max_processes=1)
    task = trainer.create_task(dataset, 4, dataset, 0, sig=2, lam=1e-10, use_sym=False)
    model = trainer.train(task)
    with tempfile.TemporaryDirectory(prefix="mlpotential-probe-") as folder:
        path = Path(folder) / "probe-model.npz"
        np.savez_compressed(path, **model)
        atoms = _water()
        atoms.positions = task["R_train"][0]
        atoms.calc = _our_calculator({"Backend": "sGDML", "ParameterFile": str(path), "MLEnergyUnit": "eV"})
        predicted = atoms.get_forces()
    error = float(np.abs(predicted - task["F_train"][0]).max())
    _require_finite("sGDML", predicted)
    if error > 1e-4:
        raise ProbeFailure(f"sGDML reproduced its training forces only to {error:.2e} eV/Angstrom")
    return f"sGDML model of 4 water geometries: training forces reproduced to {error:.1e} eV/Angstrom"


def check_schnetpack() -> str:
    """An untrained SchNet (8 features, one interaction) on a water molecule,
    imported with our SchNetPack backend's compatibility shim."""
    import torch

    from mlpotential.backends.schnetpack.compat import import_schnetpack

    spk = import_schnetpack()
    from schnetpack.transform import MatScipyNeighborList

    torch.manual_seed(0)
    cutoff = 3.0
    model = spk.model.NeuralNetworkPotential(
        representation=spk.representation.SchNet(
            n_atom_basis=8,
            n_interactions=1,
            radial_basis=spk.nn.GaussianRBF(n_rbf=8, cutoff=cutoff),
            cutoff_fn=spk.nn.CosineCutoff(cutoff),
        ),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=8, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )
    converter = spk.interfaces.AtomsConverter(neighbor_list=MatScipyNeighborList(cutoff=cutoff), dtype=torch.float32)
    results = model(converter(_water()))
    energy, forces = results["energy"].detach().numpy(), results["forces"].detach().numpy()
    _require_finite("SchNet", energy, forces)
    if forces.shape != (3, 3):
        raise ProbeFailure(f"SchNet forces have shape {forces.shape}, expected (3, 3)")
    return "untrained SchNet (8 features, 1 interaction) on H2O: finite energy and forces"


def _copper_cluster():
    """A 13-atom copper icosahedron, its symmetry broken so forces are not zero."""
    from ase.cluster import Icosahedron

    cluster = Icosahedron("Cu", noshells=2)
    cluster.rattle(0.05, seed=1)
    return cluster


def _force_matches_energy_slope(atoms, atom: int = 1, axis: int = 0, step: float = 1e-4) -> float:
    """|F - (-dE/dx)| for one coordinate, dE/dx by a central difference (eV/Angstrom)."""
    force = atoms.get_forces()[atom, axis]
    if force == 0.0:
        raise ProbeFailure("the force to compare with the energy slope is exactly zero")
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.calc = atoms.calc
        moved.positions[atom, axis] += sign * step
        energies.append(moved.get_potential_energy())
    return abs(force + (energies[0] - energies[1]) / (2 * step))


def check_hdnnp() -> str:
    """An untrained HDNNP for copper (default symmetry functions, one hidden
    layer of 4) written with the HDNNP model-file writer and evaluated through
    our HDNNP backend on a 13-atom cluster: forces must be the slope of the
    energy."""
    _require_module("mlpotential.backends.hdnnp.network")
    import torch

    from mlpotential.atomistic.symmetry_function_parameters import (
        SymmetryFunctionParameters,
    )
    from mlpotential.backends.hdnnp.model_file import save_model
    from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape

    torch.manual_seed(0)
    model = HDNNPModel(SymmetryFunctionParameters.default(["Cu"], cutoff=4.0), NetworkShape((4,)))
    with tempfile.TemporaryDirectory(prefix="mlpotential-probe-") as folder:
        path = save_model(model, Path(folder) / "probe-model.pt")
        atoms = _copper_cluster()
        atoms.calc = _our_calculator({"Backend": "HDNNP", "ParameterFile": str(path)})
        energy = atoms.get_potential_energy()
        mismatch = _force_matches_energy_slope(atoms)
    _require_finite("HDNNP", energy, atoms.get_forces())
    if mismatch > 1e-5:
        raise ProbeFailure(f"HDNNP forces differ from the energy slope by {mismatch:.1e} eV/Angstrom")
    return f"untrained HDNNP on Cu13: forces equal the energy slope to {mismatch:.0e} eV/Angstrom"


def check_gpr() -> str:
    """A Gaussian process (Cartesian descriptor) trained on four EMT
    geometries of H2, written with the GPR model-file writer and evaluated
    through our GPR backend at one of them: it must give back the training
    energy and forces, with an uncertainty."""
    _require_module("mlpotential.backends.gpr.gp")
    from ase import Atoms
    from ase.calculators.emt import EMT

    from mlpotential.backends.gpr.descriptors import CartesianDescriptor
    from mlpotential.backends.gpr.gp import GaussianProcess, Hyperparameters
    from mlpotential.backends.gpr.model_file import save_models

    def hydrogen(distance: float) -> Atoms:
        return Atoms("H2", positions=[(0, 0, 0), (0, 0, distance)])

    positions, energies, forces = [], [], []
    for distance in (0.70, 0.75, 0.80, 0.85):
        atoms = hydrogen(distance)
        atoms.calc = EMT()
        positions.append(atoms.positions.copy())
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    process = GaussianProcess(CartesianDescriptor(), ("H", "H"), Hyperparameters(scale=0.4, weight=1.0, noise=1e-6))
    process.set_training_data(np.array(positions), None, np.array(energies), np.array(forces))
    process.fit()
    with tempfile.TemporaryDirectory(prefix="mlpotential-probe-") as folder:
        path = Path(folder) / "probe-model.pt"
        save_models(path, [process])
        atoms = hydrogen(0.75)
        atoms.calc = _our_calculator({"Backend": "GPR", "ParameterFile": str(path)})
        energy, predicted = atoms.get_potential_energy(), atoms.get_forces()
        energy_std = atoms.calc.results["energy_std"]
    _require_finite("GPR", energy, predicted, energy_std)
    error = max(abs(energy - energies[1]), float(np.abs(predicted - forces[1]).max()))
    if error > 1e-3:
        raise ProbeFailure(f"GPR missed its own training data by {error:.1e} eV (or eV/Angstrom)")
    return f"GPR on 4 EMT H2 geometries: training data reproduced to {error:.0e}, std {energy_std:.0e} eV"


def check_pinn() -> str:
    """A tiny PiNet with random weights (H, O), assembled in memory by the
    same loader as a PiNN model directory and evaluated through our PiNN
    backend's ASE calculator on a slightly distorted water molecule: every
    force component must be the slope of the energy."""
    _require_module("mlpotential.backends.pinn.random_model")
    from mlpotential.backends.pinn.calculator import PinnCalculator
    from mlpotential.backends.pinn.random_model import random_pinet_potential

    atoms = _water()
    atoms.rattle(0.05, seed=1)  # no component of the forces is zero by symmetry
    atoms.calc = PinnCalculator(random_pinet_potential(elements=(1, 8), seed=0))
    energy = atoms.get_potential_energy()
    _require_finite("PiNN", energy, atoms.get_forces())
    mismatch = max(_force_matches_energy_slope(atoms, atom, axis) for atom in range(len(atoms)) for axis in range(3))
    if mismatch > 1e-5:
        raise ProbeFailure(f"PiNN forces differ from the energy slope by {mismatch:.1e} eV/Angstrom")
    return f"random-weight PiNet on H2O: forces equal the energy slope to {mismatch:.0e} eV/Angstrom"


CHECKS: dict[str, Callable[[], str]] = {
    "ase": check_ase,
    "torchani": check_torchani,
    "sgdml": check_sgdml,
    "schnetpack": check_schnetpack,
    "pinn": check_pinn,
    "hdnnp": check_hdnnp,
    "gpr": check_gpr,
}
"""The check of each backend, by its ``mlpotential install`` argument."""


def run_check(name: str) -> dict[str, Any]:
    """Run one check (``"torch"`` or a backend's install argument) and
    return ``{"ok": ..., "detail": ...}``; nothing escapes."""
    try:
        if name == "torch":
            return {"ok": True, **check_torch()}
        # Libraries chatter on stdout (sgdml's progress lines); the JSON answer owns it.
        with contextlib.redirect_stdout(sys.stderr):
            detail = CHECKS[name]()
        return {"ok": True, "detail": detail}
    except Exception as exc:  # the answer reports any failure, whatever raised it
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"ok": False, "detail": message if isinstance(exc, ProbeFailure) else f"{type(exc).__name__}: {message}"}


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    if len(names) != 1 or names[0] not in ("torch", *CHECKS):
        print(f"usage: python -m mlpotential.installer.probes {{torch,{','.join(CHECKS)}}}", file=sys.stderr)
        return 2
    print(json.dumps(run_check(names[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
