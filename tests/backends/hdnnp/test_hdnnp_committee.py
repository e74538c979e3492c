"""An HDNNP committee sharing one descriptor set equals its members
evaluated one by one (numpy mean and ddof=1 standard deviation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.cluster import Icosahedron

from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
from mlpotential.backends.hdnnp.committee import HDNNPCommitteeCalculator, share_descriptors
from mlpotential.backends.hdnnp.network import HDNNPModel, NetworkShape


def random_models(count: int, cutoff: float = 4.5) -> list[HDNNPModel]:
    parameters = SymmetryFunctionParameters.default(["Cu"], cutoff=cutoff)
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(HDNNPModel(parameters, NetworkShape((8,))))
    return models


def one_by_one(models, atoms, properties):
    values = {name: [] for name in properties}
    for model in models:
        single = atoms.copy()
        single.calc = HDNNPCalculator(model)
        values["energy"].append(single.get_potential_energy())
        values["forces"].append(single.get_forces())
        if "stress" in properties:
            values["stress"].append(single.get_stress())
    return {name: np.array(items) for name, items in values.items()}


@pytest.mark.parametrize("periodic", [True, False], ids=["crystal", "cluster"])
def test_shared_descriptors_give_the_members_mean_and_sample_std(periodic: bool) -> None:
    models = random_models(4)
    if periodic:
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
        properties = ["energy", "forces", "stress"]
    else:
        atoms = Icosahedron("Cu", noshells=2)
        properties = ["energy", "forces"]
    atoms.rattle(0.05, seed=4)
    reference = one_by_one(models, atoms, properties)
    committee = HDNNPCommitteeCalculator(models)
    committee.calculate(atoms, [*properties, "forces_std"])
    results = committee.results
    assert results["energy"] == pytest.approx(reference["energy"].mean(), rel=1e-12)
    assert results["energy_std"] == pytest.approx(reference["energy"].std(ddof=1), rel=1e-9)
    np.testing.assert_allclose(results["forces"], reference["forces"].mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results["forces_std"], reference["forces"].std(axis=0, ddof=1), rtol=1e-8, atol=1e-12)
    if periodic:
        np.testing.assert_allclose(results["stress"], reference["stress"].mean(axis=0), rtol=1e-9, atol=1e-12)


def test_models_of_different_descriptor_sets_do_not_share() -> None:
    models = random_models(2) + random_models(1, cutoff=5.0)
    assert share_descriptors(models[:2]) and not share_descriptors(models)
    with pytest.raises(ValueError, match="one descriptor set"):
        HDNNPCommitteeCalculator(models)
