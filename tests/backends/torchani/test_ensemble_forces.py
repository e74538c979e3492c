"""All members' forces of an ANI ensemble from one pass (ensemble_forces.py)
against torchani's own per-member autograd (``members_forces``, one backward
pass per member) and numpy's statistics over the members, in float32 (the
models as published) and float64 (exact but for rounding), on a molecule and
on periodic water boxes; and the models that keep the per-member loop."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.io import read
from ase.units import Hartree

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.torchani.calculator import SpeciesEncoding, TorchANICalculator
from mlpotential.backends.torchani.ensemble_forces import ensemble_forces_for
from tests.backends.torchani.test_torchani import ani_environment, water_box  # noqa: F401 (ani_environment: an autouse fixture)

WATER_BOX = Path(__file__).resolve().parents[3] / "examples" / "water_box.xyz"
MODELS = ("ANI-2x", "ANI-1x")
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
"""Largest difference allowed, relative to the largest force component."""


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    """ANI-2x and ANI-1x as loaded by the factory (float32), inside the imported
    ``ani_environment`` (autouse: torchani's data dir on the shared model zoo)."""
    return {name: create_calculator(parse_settings({"Model": name})).model for name in MODELS}


def systems() -> dict[str, Atoms]:
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=3)
    box = read(WATER_BOX)
    box.rattle(0.02, seed=4)
    return {"ethanol": ethanol, "water box": box}


def calculator_for(model: torch.nn.Module, dtype: torch.dtype) -> TorchANICalculator:
    model = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    return TorchANICalculator(model, model_name="ANI", encoding=SpeciesEncoding())


def torchani_member_forces(model: torch.nn.Module, atoms: Atoms, dtype: torch.dtype) -> np.ndarray:
    """torchani's own per-member forces (members, atoms, 3), eV/Angstrom."""
    species = torch.tensor(atoms.numbers).unsqueeze(0)
    coordinates = torch.tensor(atoms.positions, dtype=dtype).unsqueeze(0)
    cell, pbc = None, None
    if atoms.pbc.any():
        cell, pbc = torch.tensor(atoms.cell.array, dtype=dtype), torch.tensor(atoms.pbc)
    _, _, forces = model.members_forces((species, coordinates), cell, pbc)
    return forces[:, 0].detach().numpy().astype(np.float64) * Hartree


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("system", ["ethanol", "water box"])
@pytest.mark.parametrize("name", MODELS)
def test_one_pass_equals_the_members_autograd(
    models: dict[str, torch.nn.Module], name: str, system: str, dtype: torch.dtype
) -> None:
    calculator = calculator_for(models[name], dtype)
    assert calculator.ensemble_forces is not None
    atoms = systems()[system]
    periodic = bool(atoms.pbc.all())
    plain_properties = ["energy", "forces", *(["stress"] if periodic else [])]
    calculator.calculate(atoms, plain_properties)
    plain = dict(calculator.results)
    calculator.calculate(atoms, [*plain_properties, "forces_std"])
    results = dict(calculator.results)

    member_forces = torchani_member_forces(calculator.model, atoms, dtype)
    tolerance = TOLERANCE[dtype] * np.abs(member_forces).max()
    np.testing.assert_allclose(results["forces_std"], np.std(member_forces, axis=0, ddof=1), rtol=0, atol=tolerance)
    np.testing.assert_allclose(results["forces"], member_forces.mean(axis=0), rtol=0, atol=tolerance)
    np.testing.assert_allclose(results["forces"], plain["forces"], rtol=0, atol=tolerance)
    # The energy and its statistics come from the same forward pass as without forces_std.
    assert results["energy"] == plain["energy"]
    assert results["energy_std"] == plain["energy_std"]
    if periodic:
        stress_tolerance = TOLERANCE[dtype] * np.abs(plain["stress"]).max()
        np.testing.assert_allclose(results["stress"], plain["stress"], rtol=0, atol=stress_tolerance)


def test_cell_list_box(models: dict[str, torch.nn.Module]) -> None:
    """A box of 192 atoms, whose neighbours come from torchani's cell list."""
    calculator = calculator_for(models["ANI-2x"], torch.float32)
    box = water_box(copies=4)
    calculator.calculate(box, ["energy", "forces", "forces_std"])
    member_forces = torchani_member_forces(calculator.model, box, torch.float32)
    tolerance = TOLERANCE[torch.float32] * np.abs(member_forces).max()
    np.testing.assert_allclose(
        calculator.results["forces_std"], np.std(member_forces, axis=0, ddof=1), rtol=0, atol=tolerance
    )


def test_all_ani2x_elements(models: dict[str, torch.nn.Module]) -> None:
    """Every AEV block in use: H, C, N, O, S, F and Cl within each other's cutoffs (float64)."""
    atoms = molecule("CH3SH")
    for offset, name in zip(([3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 3.0, 0]), ("CH3Cl", "NH3", "HF", "H2O")):
        part = molecule(name)
        part.translate(offset)
        atoms += part
    atoms.rattle(0.05, seed=6)
    calculator = calculator_for(models["ANI-2x"], torch.float64)
    calculator.calculate(atoms, ["energy", "forces", "forces_std"])
    member_forces = torchani_member_forces(calculator.model, atoms, torch.float64)
    tolerance = TOLERANCE[torch.float64] * np.abs(member_forces).max()
    np.testing.assert_allclose(
        calculator.results["forces_std"], np.std(member_forces, axis=0, ddof=1), rtol=0, atol=tolerance
    )
    np.testing.assert_allclose(calculator.results["forces"], member_forces.mean(axis=0), rtol=0, atol=tolerance)


@pytest.mark.parametrize(
    "atoms",
    [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), Atoms("OH2", positions=[[0, 0, 0], [0, 0, 0.96], [0, 8, 0]])],
    ids=["no triples", "an atom without neighbours"],
)
def test_few_neighbours(models: dict[str, torch.nn.Module], atoms: Atoms) -> None:
    calculator = calculator_for(models["ANI-2x"], torch.float64)
    calculator.calculate(atoms, ["energy", "forces", "forces_std"])
    member_forces = torchani_member_forces(calculator.model, atoms, torch.float64)
    tolerance = TOLERANCE[torch.float64] * np.abs(member_forces).max()
    np.testing.assert_allclose(
        calculator.results["forces_std"], np.std(member_forces, axis=0, ddof=1), rtol=0, atol=tolerance
    )


def test_member_virials(models: dict[str, torch.nn.Module]) -> None:
    """Each member's derivative by a symmetric strain equals autograd's
    through the strained positions and cell (float64)."""
    model = copy.deepcopy(models["ANI-2x"]).double()
    forces = ensemble_forces_for(model)
    assert forces is not None
    box = systems()["water box"]
    species = torch.tensor(box.numbers).unsqueeze(0)
    positions = torch.tensor(box.positions).unsqueeze(0)
    cell, pbc = torch.tensor(box.cell.array), torch.tensor(box.pbc)
    members = list(model.neural_networks.members)

    energies: list[torch.Tensor] = []
    handles = [member.register_forward_hook(lambda _m, _a, out: energies.append(out)) for member in members]
    with forces.observe() as observed:
        model((species, positions), cell=cell, pbc=pbc)
    gradients = forces.gradients(observed, energies, virial=True)

    strain = torch.zeros((3, 3), dtype=torch.float64, requires_grad=True)
    deformation = torch.eye(3, dtype=torch.float64) + 0.5 * (strain + strain.T)
    energies.clear()
    model((species, positions @ deformation), cell=cell @ deformation, pbc=pbc)
    for handle in handles:
        handle.remove()
    expected = torch.stack([torch.autograd.grad(energy.sum(), strain, retain_graph=True)[0] for energy in energies])
    assert gradients.virial is not None
    torch.testing.assert_close(gradients.virial, expected, rtol=0, atol=1e-10 * expected.abs().max().item())


def _other_angular_class(model: torch.nn.Module) -> torch.nn.Module:
    changed = copy.deepcopy(model)
    angular = changed.aev_computer.angular
    angular.__class__ = type("SameAngular", (type(angular),), {})
    return changed


def _inactive_member(model: torch.nn.Module) -> torch.nn.Module:
    changed = copy.deepcopy(model)
    changed.neural_networks.set_active_members(list(range(7)))
    return changed


@pytest.mark.parametrize(
    "change",
    [_other_angular_class, _inactive_member, lambda model: model.neural_networks],
    ids=["angular subclass", "inactive member", "not an ANI model"],
)
def test_other_models_keep_the_loop(
    models: dict[str, torch.nn.Module], change: Callable[[torch.nn.Module], torch.nn.Module]
) -> None:
    assert ensemble_forces_for(change(models["ANI-2x"])) is None


def test_the_loop_gives_the_same_statistics(models: dict[str, torch.nn.Module]) -> None:
    """A model outside the one-pass structure still reports forces_std, by
    one backward pass per member: the same numbers."""
    fast = calculator_for(models["ANI-2x"], torch.float32)
    loop = TorchANICalculator(_other_angular_class(models["ANI-2x"]), model_name="ANI", encoding=SpeciesEncoding())
    assert loop.ensemble_forces is None
    box = systems()["water box"]
    fast.calculate(box, ["energy", "forces", "forces_std"])
    loop.calculate(box, ["energy", "forces", "forces_std"])
    tolerance = TOLERANCE[torch.float32] * np.abs(loop.results["forces"]).max()
    np.testing.assert_allclose(fast.results["forces_std"], loop.results["forces_std"], rtol=0, atol=tolerance)
    np.testing.assert_allclose(fast.results["forces"], loop.results["forces"], rtol=0, atol=tolerance)
