"""The random-weight PiNet for smoke tests (mlpotential/backends/pinn/random_model.py):
assembled by the checkpoint loader, forces the slope of its energy, the same
model for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from mlpotential.backends.pinn.calculator import PinnCalculator
from mlpotential.backends.pinn.params import PiNetParams
from mlpotential.backends.pinn.pinet import load_pinet
from mlpotential.backends.pinn.random_model import RandomPinetVariables, random_pinet_potential, tiny_pinet_params
from mlpotential.backends.pinn.variables import WeightsError
from tests.backends.calculator_checks import central_difference_forces, evaluate
from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)


def distorted_water() -> Atoms:
    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=1)
    return atoms


@pytest.mark.parametrize(
    "params",
    [
        None,
        PiNetParams(atom_types=(1, 8), basis_type="gaussian", n_basis=5, cutoff_type="f2", pp_nodes=(), depth=3),
    ],
    ids=["tiny", "gaussian-f2-no-pp"],
)
def test_forces_are_the_energy_slope(params: PiNetParams | None) -> None:
    calculator = PinnCalculator(random_pinet_potential(elements=(1, 8), seed=0, params=params))
    atoms = distorted_water()
    energy, forces = evaluate(calculator, atoms)
    assert np.isfinite(energy)
    assert np.abs(forces).min() > 1e-4  # every component genuinely tested
    np.testing.assert_allclose(forces, central_difference_forces(calculator, atoms, 1e-4), rtol=0, atol=1e-7)


def test_the_seed_decides_the_model() -> None:
    atoms = distorted_water()
    first = evaluate(PinnCalculator(random_pinet_potential(seed=0)), atoms)
    again = evaluate(PinnCalculator(random_pinet_potential(seed=0)), atoms)
    other = evaluate(PinnCalculator(random_pinet_potential(seed=1)), atoms)
    assert first[0] == again[0]
    np.testing.assert_array_equal(first[1], again[1])
    assert abs(first[0] - other[0]) > 1e-3


def test_weights_look_like_a_checkpoint_and_pass_its_checks() -> None:
    """float32 variables under PiNN's scopes, read by load_pinet with all its
    checks: one variable fewer is refused by name."""
    params = tiny_pinet_params((1, 6, 8))
    variables = RandomPinetVariables(params, seed=0)
    assert all(name.startswith("pi_net/") for name in variables.entries)
    assert {array.dtype for array in variables.entries.values()} == {np.dtype(np.float32)}
    missing = "pi_net/gc_block_1/pi_layer_1/ff_layer_4/dense_8/bias"
    del variables.entries[missing]
    with pytest.raises(WeightsError, match="pi_net/gc_block_1/pi_layer_1/ff_layer_4/dense_8"):
        load_pinet(params, variables, torch.float64, torch.device("cpu"))
