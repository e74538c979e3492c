"""G4/G5 with a non-integer zeta where two neighbours are collinear with the
centre atom (every perfect crystal, every cell shorter than the cutoff):
(1 + lambda cos) rounds to about -1e-16 there, and a fractional power of it
was NaN. The finite limit is the answer, in process and through a worker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet
from mlpotential.units import BOHR_TO_ANGSTROM

FRACTIONAL = SymmetryFunctionParameters(
    elements=("Cu",),
    cutoff=6.0,
    g2=((0.1, 0.0),),
    g4=((0.005, 1.5, 1.0), (0.005, 1.5, -1.0), (0.005, 2.5, -1.0)),
    g5=((0.005, 2.5, -1.0), (0.005, 1.5, 1.0)),
)


def crystals():
    for a in np.linspace(3.4, 3.8, 9):
        for cubic in (False, True):
            atoms = bulk("Cu", "fcc", a=a, cubic=cubic)
            yield atoms
            through_bohr = atoms.copy()  # the rounding a worker sees
            through_bohr.positions = atoms.positions / BOHR_TO_ANGSTROM * BOHR_TO_ANGSTROM
            through_bohr.cell = atoms.cell.array / BOHR_TO_ANGSTROM * BOHR_TO_ANGSTROM
            yield through_bohr


def test_values_and_position_derivatives_are_finite_for_perfect_crystals() -> None:
    functions = SymmetryFunctionSet(FRACTIONAL)
    for atoms in crystals():
        positions = torch.tensor(atoms.positions, requires_grad=True)
        values = functions(atoms, positions=positions)
        values.sum().backward()
        assert torch.isfinite(values).all() and torch.isfinite(positions.grad).all(), atoms.cell.cellpar()


def test_the_value_at_the_perfect_crystal_is_the_limit_of_nearby_geometries() -> None:
    functions = SymmetryFunctionSet(FRACTIONAL)
    atoms = bulk("Cu", "fcc", a=3.4, cubic=True)
    perfect = functions(atoms)
    nearby = atoms.copy()
    nearby.positions += np.random.default_rng(0).normal(scale=1e-7, size=nearby.positions.shape)
    np.testing.assert_allclose(perfect.numpy(), functions(nearby).numpy(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("a", [3.4, 3.61])
def test_an_hdnnp_crystal_energy_is_finite_and_the_same_through_the_worker(tmp_path, a: float) -> None:
    from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
    from mlpotential.backends.hdnnp.model_file import save_model
    from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape
    from mlpotential.host.pipe_engine import PipeEngine

    torch.manual_seed(0)
    path = save_model(HDNNPModel(FRACTIONAL, NetworkShape((4,))), tmp_path / "fractional-zeta.pt")
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.calc = HDNNPCalculator.from_file(path)
    in_process = atoms.get_potential_energy()
    assert np.isfinite(in_process) and np.isfinite(atoms.get_forces()).all()
    with PipeEngine({"Backend": "HDNNP", "ParameterFile": str(path), "NumThreads": "1"}) as engine:
        atoms.calc = engine
        assert atoms.get_potential_energy() == pytest.approx(in_process, rel=1e-10)
