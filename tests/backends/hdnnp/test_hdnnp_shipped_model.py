"""The shipped Cu-EMT model reproduces EMT on structures it never saw, and
the script that makes it is deterministic with its seed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc100, fcc110
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron, Octahedron

from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
from mlpotential.backends.hdnnp.factory import built_in_model_path
from mlpotential.backends.hdnnp.model_file import read_metadata

REPO = Path(__file__).resolve().parents[3]


def unseen_copper(seed: int) -> list:
    """Thermally displaced copper the model was not trained on (its own
    generator, another seed, other sizes)."""
    rng = np.random.default_rng(seed)
    structures = [
        bulk("Cu", "fcc", a=3.63, cubic=True).repeat((2, 2, 3)),
        bulk("Cu", "fcc", a=3.58).repeat((4, 3, 3)),
        fcc100("Cu", (2, 3, 5), vacuum=7.0),
        fcc110("Cu", (2, 2, 5), vacuum=7.0),
        Icosahedron("Cu", 3),
        Octahedron("Cu", 5, 2),
    ]
    for atoms in structures:
        atoms.positions += rng.normal(0.0, 0.06, atoms.positions.shape)
    return structures


def test_shipped_model_matches_emt_on_unseen_structures() -> None:
    model = HDNNPCalculator.from_file(built_in_model_path("Cu-EMT"))
    energy_errors, force_errors = [], []
    for atoms in unseen_copper(seed=99):
        reference = atoms.copy()
        reference.calc = EMT()
        atoms.calc = model
        energy_errors.append((atoms.get_potential_energy() - reference.get_potential_energy()) / len(atoms))
        force_errors.append((atoms.get_forces() - reference.get_forces()).ravel())
    energy_rmse = float(np.sqrt(np.mean(np.square(energy_errors))))
    force_rmse = float(np.sqrt(np.mean(np.square(np.concatenate(force_errors)))))
    assert energy_rmse < 0.008, f"energy RMSE {energy_rmse * 1000:.2f} meV/atom"
    assert force_rmse < 0.1, f"force RMSE {force_rmse:.3f} eV/Angstrom"


def test_shipped_model_records_its_training() -> None:
    training = read_metadata(built_in_model_path("Cu-EMT"))["training"]
    assert training["seed"] == 2024
    assert training["data"]["structures"] == 500
    assert training["errors"]["test"]["energy_rmse"] < 0.005
    assert training["errors"]["test"]["force_rmse"] < 0.1


def test_training_script_is_deterministic(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from train_cu_emt import main
    finally:
        sys.path.pop(0)
    outputs = []
    for run in ("a", "b"):
        model = tmp_path / f"{run}.pt"
        arguments = [
            "--output",
            str(model),
            "--report",
            str(tmp_path / f"{run}.json"),
            "--plot",
            "",
            "--structures",
            "12",
            "--epochs",
            "2",
            "--seed",
            "5",
            "--quiet",
        ]
        assert main(arguments) == 0
        outputs.append(torch.load(model, weights_only=True)["tensors"])
    assert outputs[0].keys() == outputs[1].keys()
    for name in outputs[0]:
        assert torch.equal(outputs[0][name], outputs[1][name]), name


@pytest.mark.slow
def test_training_script_remakes_the_shipped_model(tmp_path: Path) -> None:
    """The full run (about 10 minutes on one core): the defaults reproduce
    the shipped file's weights bit for bit and reach the accuracy targets."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from train_cu_emt import main
    finally:
        sys.path.pop(0)
    model = tmp_path / "cu_emt.pt"
    assert main(["--output", str(model), "--report", str(tmp_path / "report.json"), "--plot", "", "--quiet"]) == 0
    remade = torch.load(model, weights_only=True)["tensors"]
    shipped = torch.load(built_in_model_path("Cu-EMT"), weights_only=True)["tensors"]
    assert remade.keys() == shipped.keys()
    for name in shipped:
        assert torch.equal(remade[name], shipped[name]), name
    errors = read_metadata(model)["training"]["errors"]["test"]
    assert errors["energy_rmse"] < 0.005 and errors["force_rmse"] < 0.1
