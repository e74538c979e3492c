"""Symmetry functions: values equal DScribe's ACSF (an independent C++
implementation) for the same parameters; the polynomial cutoff, which
DScribe lacks, equals a direct loop over neighbours and triples written here;
the closed-form Jacobian equals autograd; chunking changes nothing."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from ase.build import bulk
from dscribe.descriptors import ACSF

from mlpotential.atomistic.neighbors import pair_vectors
from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters
from mlpotential.atomistic.symmetry_functions import SymmetryFunctionSet
from mlpotential.errors import UnsupportedSystemError
from tests.random_structures import random_crystal, random_molecule

G2 = [(0.05, 0.0), (0.4, 0.0), (1.5, 1.2), (0.8, 2.5)]
G4 = [(0.005, 1.0, 1.0), (0.005, 1.0, -1.0), (0.02, 2.0, 1.0), (0.02, 4.0, -1.0), (0.1, 16.0, 1.0)]
G5 = [(0.01, 1.0, 1.0), (0.03, 2.0, -1.0), (0.03, 3.0, 1.0)]


def dscribe_columns(parameters: SymmetryFunctionParameters) -> list[int]:
    """Where our features sit in DScribe's layout (which adds a G1 column per element)."""
    n_g2 = len(parameters.g2)
    columns = [e * (1 + n_g2) + 1 + k for e in range(parameters.n_elements) for k in range(n_g2)]
    start = parameters.n_elements * (1 + n_g2)
    return columns + list(range(start, start + parameters.n_element_pairs * parameters.n_angular_per_pair))


def dscribe_values(atoms, parameters: SymmetryFunctionParameters) -> np.ndarray:
    acsf = ACSF(
        r_cut=parameters.cutoff,
        g2_params=[list(p) for p in parameters.g2] or None,
        g4_params=[list(p) for p in parameters.g4] or None,
        g5_params=[list(p) for p in parameters.g5] or None,
        species=list(parameters.elements),
        periodic=bool(atoms.pbc.any()),
    )
    return acsf.create(atoms)[:, dscribe_columns(parameters)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_molecular_values_equal_dscribe(seed: int) -> None:
    atoms = random_molecule("CCCHHHHHHON", seed=seed, box=4.5)
    parameters = SymmetryFunctionParameters(elements=("H", "C", "N", "O"), cutoff=4.0, g2=G2, g4=G4, g5=G5)
    ours = SymmetryFunctionSet(parameters)(atoms).numpy()
    reference = dscribe_values(atoms, parameters)
    assert np.abs(reference).max() > 0.1
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_periodic_values_equal_dscribe(seed: int) -> None:
    # Cells of 4-6 Angstrom with a 6.5 Angstrom cutoff: atoms see several
    # images of themselves and of each other.
    atoms = random_crystal("NaNaNaClClClCl", seed=seed)
    parameters = SymmetryFunctionParameters(elements=("Na", "Cl"), cutoff=6.5, g2=G2, g4=G4, g5=G5)
    ours = SymmetryFunctionSet(parameters)(atoms).numpy()
    reference = dscribe_values(atoms, parameters)
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-12)


def test_default_set_equals_dscribe_on_a_copper_cell() -> None:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=3)
    parameters = SymmetryFunctionParameters.default(["Cu"])
    ours = SymmetryFunctionSet(parameters)(atoms).numpy()
    np.testing.assert_allclose(ours, dscribe_values(atoms, parameters), rtol=1e-6, atol=1e-12)


def looped_reference(atoms, parameters: SymmetryFunctionParameters, cutoff_function) -> np.ndarray:
    """Behler's definitions, atom by atom (finite systems only)."""
    rc = parameters.cutoff
    index = {e: k for k, e in enumerate(parameters.elements)}
    pairs = [(a, b) for a in range(len(index)) for b in range(a + 1)]
    n_g2, n_ang = len(parameters.g2), len(parameters.g4) + len(parameters.g5)
    out = np.zeros((len(atoms), parameters.n_features))
    positions, symbols = atoms.positions, atoms.get_chemical_symbols()
    for i in range(len(atoms)):
        neighbours = [j for j in range(len(atoms)) if j != i and np.linalg.norm(positions[j] - positions[i]) < rc]
        for j in neighbours:
            r = np.linalg.norm(positions[j] - positions[i])
            for k, (eta, rs) in enumerate(parameters.g2):
                out[i, index[symbols[j]] * n_g2 + k] += math.exp(-eta * (r - rs) ** 2) * cutoff_function(r, rc)
        for j, k in itertools.combinations(neighbours, 2):
            d_ij, d_ik = positions[j] - positions[i], positions[k] - positions[i]
            r_ij, r_ik, r_jk = np.linalg.norm(d_ij), np.linalg.norm(d_ik), np.linalg.norm(positions[k] - positions[j])
            cos = d_ij @ d_ik / (r_ij * r_ik)
            a, b = sorted((index[symbols[j]], index[symbols[k]]), reverse=True)
            base = len(index) * n_g2 + pairs.index((a, b)) * n_ang
            fc = cutoff_function(r_ij, rc) * cutoff_function(r_ik, rc)
            for f, (eta, zeta, lam) in enumerate(parameters.g4):
                if r_jk < rc:
                    out[i, base + f] += (
                        2 ** (1 - zeta)
                        * (1 + lam * cos) ** zeta
                        * math.exp(-eta * (r_ij**2 + r_ik**2 + r_jk**2))
                        * fc
                        * cutoff_function(r_jk, rc)
                    )
            for f, (eta, zeta, lam) in enumerate(parameters.g5):
                out[i, base + len(parameters.g4) + f] += (
                    2 ** (1 - zeta) * (1 + lam * cos) ** zeta * math.exp(-eta * (r_ij**2 + r_ik**2)) * fc
                )
    return out


def polynomial(r: float, rc: float) -> float:
    x = r / rc
    return 1 - 10 * x**3 + 15 * x**4 - 6 * x**5 if x < 1 else 0.0


def test_polynomial_cutoff_equals_a_direct_loop() -> None:
    atoms = random_molecule("CCHHHHO", seed=8, box=3.5)
    parameters = SymmetryFunctionParameters(
        elements=("H", "C", "O"), cutoff=3.2, g2=G2, g4=G4, g5=G5, cutoff_function="polynomial"
    )
    ours = SymmetryFunctionSet(parameters)(atoms).numpy()
    np.testing.assert_allclose(ours, looped_reference(atoms, parameters, polynomial), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cutoff_function", ["cosine", "polynomial"])
def test_closed_form_jacobian_equals_autograd(cutoff_function: str) -> None:
    atoms = random_crystal("NaNaClClCl", seed=11)
    parameters = SymmetryFunctionParameters(
        elements=("Na", "Cl"), cutoff=5.0, g2=G2, g4=G4, g5=G5, cutoff_function=cutoff_function
    )
    sfs = SymmetryFunctionSet(parameters)
    positions = torch.tensor(atoms.positions)
    cell = torch.tensor(atoms.cell.array)
    species = sfs.species(atoms.get_chemical_symbols())
    neighbors = sfs.neighbor_list(positions, cell, atoms.pbc)
    vectors = pair_vectors(positions, cell, neighbors)
    features, jacobian = sfs.with_pair_jacobian(vectors, neighbors, species)

    weights = torch.randn(features.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tracked = vectors.clone().requires_grad_(True)
    reference = sfs.from_pair_vectors(tracked, neighbors, species)
    (reference * weights).sum().backward()
    contracted = torch.einsum("pf,pfc->pc", weights[neighbors.center], jacobian)
    torch.testing.assert_close(features, reference.detach(), rtol=0, atol=1e-13)
    torch.testing.assert_close(contracted, tracked.grad, rtol=1e-10, atol=1e-11)


def test_chunking_does_not_change_values_or_gradients() -> None:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=2)
    parameters = SymmetryFunctionParameters(elements=("Cu",), cutoff=5.0, g2=G2, g4=G4, g5=G5)
    results = []
    for chunk in (10**7, 500):
        positions = torch.tensor(atoms.positions, requires_grad=True)
        values = SymmetryFunctionSet(parameters, triples_per_chunk=chunk)(atoms, positions=positions)
        (gradient,) = torch.autograd.grad((values**2).sum(), positions)
        results.append((values.detach(), gradient))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


def test_second_derivatives_exist() -> None:
    """Checkpointed chunks still allow double backward (e.g. force training through descriptors)."""
    atoms = random_molecule("CHHHH", seed=3, box=2.5)
    parameters = SymmetryFunctionParameters(elements=("H", "C"), cutoff=3.0, g2=G2, g4=G4)
    sfs = SymmetryFunctionSet(parameters)
    positions = torch.tensor(atoms.positions, requires_grad=True)

    def energy(p: torch.Tensor) -> torch.Tensor:
        return (sfs(atoms, positions=p) ** 2).sum()

    assert torch.autograd.gradcheck(energy, (positions,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(energy, (positions,), eps=1e-6, atol=1e-5)


def test_float32_agrees_with_float64() -> None:
    atoms = random_crystal("NaNaClCl", seed=3)
    sfs = SymmetryFunctionSet(SymmetryFunctionParameters(elements=("Na", "Cl"), cutoff=5.0, g2=G2, g4=G4))
    single = sfs(atoms, dtype=torch.float32)
    double = sfs(atoms)
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=2e-5, atol=1e-6)


def test_unknown_element_is_named() -> None:
    sfs = SymmetryFunctionSet(SymmetryFunctionParameters.default(["Cu"]))
    with pytest.raises(UnsupportedSystemError, match="Au"):
        sfs(bulk("Au"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"elements": ("Cu",), "g4": [(0.1, 0.5, 1.0)]}, "zeta"),
        ({"elements": ("Cu",), "g4": [(0.1, 1.0, 0.5)]}, "lambda"),
        ({"elements": ("Cu",), "g2": [(-1.0, 0.0)]}, "eta"),
        ({"elements": ("Cu",)}, "at least one"),
        ({"elements": ("Cu",), "g2": [(1.0, 0.0)], "cutoff": -1.0}, "cutoff"),
        ({"elements": ("Cu",), "g2": [(1.0, 0.0)], "cutoff_function": "gaussian"}, "cutoff function"),
    ],
)
def test_bad_parameters_are_explained(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SymmetryFunctionParameters(**settings)


def test_parameters_round_trip_through_json_form() -> None:
    parameters = SymmetryFunctionParameters(elements=("O", "H"), cutoff=5.0, g2=G2, g4=G4, g5=G5)
    assert parameters.elements == ("H", "O")
    assert SymmetryFunctionParameters.from_dict(parameters.to_dict()) == parameters
    assert len(parameters.feature_labels()) == parameters.n_features == 2 * 4 + 3 * 8
    with pytest.raises(ValueError, match="unknown"):
        SymmetryFunctionParameters.from_dict({**parameters.to_dict(), "g3": []})


def test_dense_jacobian_equals_dscribe_numerical_derivatives() -> None:
    from mlpotential.atomistic.symmetry_functions import position_jacobian

    atoms = random_molecule("CCHHHHHO", seed=12, box=3.5)
    parameters = SymmetryFunctionParameters(elements=("H", "C", "O"), cutoff=3.5, g2=G2[:2], g4=G4[:3])
    sfs = SymmetryFunctionSet(parameters)
    positions, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
    neighbors = sfs.neighbor_list(positions, cell, atoms.pbc)
    _, jacobian = sfs.with_pair_jacobian(
        pair_vectors(positions, cell, neighbors), neighbors, sfs.species(atoms.get_chemical_symbols())
    )
    ours = position_jacobian(neighbors, jacobian).numpy()
    acsf = ACSF(
        r_cut=3.5,
        g2_params=[list(p) for p in parameters.g2],
        g4_params=[list(p) for p in parameters.g4],
        species=list(parameters.elements),
    )
    theirs = acsf.derivatives(atoms, method="numerical", attach=True, return_descriptor=False)
    assert np.abs(ours).max() > 0.1
    np.testing.assert_allclose(ours, theirs[..., dscribe_columns(parameters)], rtol=0, atol=1e-6)
