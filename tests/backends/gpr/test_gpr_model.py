"""The GPR model: its predictions against a dense NumPy implementation of
the same formulas, the closed-form Cartesian predictor against the direct
one, forces as energy gradients, composition splitting, hyperparameter
fitting and filtering against aenet-gpr 3.7.9."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule
from gpr_helpers import write_emt_cu8

from mlpotential.atomistic.structures import DataError, Structure, read_structures
from mlpotential.backends.gpr.closed_form import inverse_transposed_factor, invert_by_blocks
from mlpotential.backends.gpr.dataset import split_by_composition
from mlpotential.backends.gpr.descriptors import (
    CartesianDescriptor,
    SoapDescriptor,
    SoapSettings,
    SymmetryFunctionDescriptor,
    SymmetryFunctionSettings,
    descriptor_from_settings,
)
from mlpotential.backends.gpr.fitting import filter_near_duplicates, fit_hyperparameters, fit_scale, fit_weight
from mlpotential.backends.gpr.gp import GaussianProcess, Hyperparameters
from mlpotential.backends.gpr.kernel import assemble, cartesian_blocks


def dense_reference(gp: GaussianProcess, x_test: np.ndarray):
    """Mean and variances with NumPy's dense solver on the full matrices."""
    x_train = gp.train_positions.reshape(gp.num_train, -1)
    scale, weight = gp.hyper.scale, gp.hyper.weight
    train = torch.from_numpy(x_train)
    matrix = assemble(cartesian_blocks(train, train, scale, weight)).numpy() + np.diag(gp._noise_diagonal().numpy())
    targets = np.concatenate([gp.train_energies, gp.train_forces.reshape(-1)])
    unit = np.zeros_like(targets)
    unit[: gp.num_train] = 1
    prior = unit @ np.linalg.solve(matrix, targets) / (unit @ np.linalg.solve(matrix, unit))
    alpha = np.linalg.solve(matrix, targets - prior * unit)
    cross = assemble(cartesian_blocks(torch.from_numpy(x_test), train, scale, weight)).numpy()
    count = x_test.shape[0]
    mean = cross @ alpha
    mean[:count] += prior
    prior_var = np.concatenate([np.full(count, weight**2), np.full(cross.shape[0] - count, weight**2 / scale**2)])
    variance = prior_var - np.einsum("ij,ji->i", cross, np.linalg.solve(matrix, cross.T))
    return prior, mean, variance


def test_li_ec_predictions_match_a_dense_implementation(li_ec_model, examples: Path) -> None:
    gp = li_ec_model.gp
    (test,) = split_by_composition(
        read_structures(sorted((examples / "3_Li-EC" / "test_set_tutorial").glob("*.xsf"))[:5])
    )
    closed = gp.closed_form_predictor()
    assert (
        closed is not None
        and not closed.predict(torch.from_numpy(test.positions.reshape(len(test), -1)), True)[4].any()
    ), "this covariance is well conditioned: the closed forms apply"
    prediction = gp.predict(test.positions, test.cells)
    prior, mean, variance = dense_reference(gp, test.positions.reshape(len(test), -1))
    count = len(test)
    assert gp.prior_constant == pytest.approx(prior, rel=1e-10)
    np.testing.assert_allclose(prediction.energies, mean[:count], rtol=1e-10, atol=0)
    np.testing.assert_allclose(prediction.forces.reshape(count, -1), mean[count:].reshape(count, -1), rtol=0, atol=1e-8)
    np.testing.assert_allclose(prediction.energy_std, np.sqrt(variance[:count]), rtol=1e-8)
    np.testing.assert_allclose(prediction.forces_std.reshape(-1), np.sqrt(variance[count:]), rtol=1e-8)


def test_closed_form_and_direct_predictions_agree(li_ec_model, examples: Path) -> None:
    gp = li_ec_model.gp
    (test,) = split_by_composition(
        read_structures(sorted((examples / "3_Li-EC" / "test_set_tutorial").glob("*.xsf"))[5:9])
    )
    closed = gp.predict(test.positions, test.cells)
    direct = GaussianProcess(CartesianDescriptor(), gp.symbols, gp.hyper, batch_size=5)
    direct.set_training_data(gp.train_positions, gp.train_cells, gp.train_energies, gp.train_forces)
    direct.fit()
    features = direct._structure_features(test.positions, test.cells)
    energy, force, energy_std, force_std = direct._predict_direct(features, variance=True)
    np.testing.assert_allclose(closed.energies, energy.numpy(), rtol=1e-12)
    np.testing.assert_allclose(closed.forces.reshape(len(test), -1), force.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(closed.energy_std, energy_std.numpy(), rtol=1e-9)
    np.testing.assert_allclose(closed.forces_std.reshape(len(test), -1), force_std.numpy(), rtol=1e-9)
    energy_only = gp.predict(test.positions, test.cells, force_variance=False)
    assert energy_only.forces_std is None
    np.testing.assert_allclose(energy_only.energy_std, closed.energy_std, rtol=1e-12)


def test_ill_conditioned_h2_predictions_come_from_the_direct_formulas(h2_model) -> None:
    """The H2 covariance (noise 1e-6, seven nearly collinear structures) has a
    condition number near 1e13: weights of 1e9 eV and variances 1e-13 of the
    prior one. The closed forms flag every structure, and the direct formulas
    give the results."""
    gp = h2_model.gp
    positions = h2_model.subset.positions[:3] * 1.01
    closed = gp.closed_form_predictor()
    assert closed is None or bool(closed.predict(gp.descriptor.coordinates(positions), True)[4].all())
    prediction = gp.predict(positions)
    energy, force, energy_std, force_std = gp._predict_direct(gp._structure_features(positions, None), True)
    np.testing.assert_array_equal(prediction.energies, energy.numpy())
    np.testing.assert_array_equal(prediction.forces.reshape(3, -1), force.numpy())
    np.testing.assert_array_equal(prediction.energy_std, energy_std.numpy())
    np.testing.assert_array_equal(prediction.forces_std.reshape(3, -1), force_std.numpy())
    energy_only = gp.predict(positions, force_variance=False)
    assert energy_only.forces_std is None
    np.testing.assert_array_equal(energy_only.energies, prediction.energies)
    # a variance of ~1e-13 eV^2 next to a prior variance of 1 eV^2 is known to
    # about machine epsilon / 1e-13: a different (smaller) solve differs by ~1e-3
    np.testing.assert_allclose(energy_only.energy_std, prediction.energy_std, rtol=3e-3)
    assert np.all(prediction.energy_std < 1e-5)


@pytest.mark.parametrize("model_name", ["li_ec_model", "h2_model"])
def test_forces_are_minus_the_gradient_of_the_predicted_energy(model_name: str, request) -> None:
    """The posterior mean force is the derivative of the posterior mean
    energy, whatever path computes them (central differences, 1e-3 A)."""
    model = request.getfixturevalue(model_name)
    gp = model.gp
    rng = np.random.default_rng(3)
    start = model.subset.positions[1] + rng.normal(0, 0.03, model.subset.positions[1].shape)
    forces = gp.predict(
        start[None], None if model.subset.cells is None else model.subset.cells[:1], variance=False
    ).forces[0]
    step = 1e-3
    for atom, axis in [(0, 0), (1, 2), (gp.num_atoms - 1, 1)]:
        displaced = np.stack([start, start])
        displaced[0, atom, axis] += step
        displaced[1, atom, axis] -= step
        cells = None if model.subset.cells is None else model.subset.cells[:1].repeat(2, 0)
        energies = gp.predict(displaced, cells, variance=False).energies
        assert -(energies[0] - energies[1]) / (2 * step) == pytest.approx(forces[atom, axis], rel=1e-4, abs=1e-4)


def test_a_mixed_set_is_split_into_one_model_per_composition() -> None:
    water, ammonia = molecule("H2O"), molecule("NH3")
    rng = np.random.default_rng(0)
    structures = []
    for index in range(6):
        base = water if index % 2 == 0 else ammonia
        positions = base.positions + rng.normal(0, 0.05, base.positions.shape)
        structures.append(
            Structure(
                tuple(base.get_chemical_symbols()),
                positions,
                energy=float(index),
                forces=np.zeros_like(positions),
                source=f"s{index}",
            )
        )
    subsets = split_by_composition(structures)
    assert [s.symbols for s in subsets] == [("O", "H", "H"), ("N", "H", "H", "H")]
    assert [list(s.indices) for s in subsets] == [[0, 2, 4], [1, 3, 5]]
    np.testing.assert_array_equal(subsets[1].energies, [1.0, 3.0, 5.0])

    reordered = Structure(
        ("H", "O", "H"), water.positions[[1, 0, 2]], energy=0.0, forces=np.zeros((3, 3)), source="odd.xsf"
    )
    with pytest.raises(DataError, match="odd.xsf: same composition as s0 but the atoms are listed in another order"):
        split_by_composition([*structures, reordered])


def test_log_marginal_likelihood_matches_a_dense_computation(li_ec_model) -> None:
    gp = li_ec_model.gp
    train = torch.from_numpy(gp.train_positions.reshape(gp.num_train, -1))
    matrix = assemble(cartesian_blocks(train, train, gp.hyper.scale, gp.hyper.weight)).numpy()
    matrix += np.diag(gp._noise_diagonal().numpy())
    residual = np.concatenate([gp.train_energies - gp.prior_constant, gp.train_forces.reshape(-1)])
    sign, log_det = np.linalg.slogdet(matrix)
    expected = (
        -0.5 * residual @ np.linalg.solve(matrix, residual)
        - 0.5 * log_det
        - 0.5 * len(residual) * math.log(2 * math.pi)
    )
    fresh = GaussianProcess(CartesianDescriptor(), gp.symbols, Hyperparameters(scale=gp.hyper.scale), batch_size=5)
    fresh.set_training_data(gp.train_positions, gp.train_cells, gp.train_energies, gp.train_forces)
    fresh.fit()
    assert sign > 0
    assert fresh.log_marginal_likelihood() == pytest.approx(expected, rel=1e-9)


def test_hyperparameter_fitting_follows_aenet_gpr(examples: Path) -> None:
    """fit_weight equals aenet-gpr's fit_weight_only; fit_scale picks the
    candidate with the highest log likelihood plus aenet-gpr's log-normal
    prior (aenet-gpr's own candidates are float32 tensors, whose rounded
    powers make its kernel indefinite, so it is not run for that)."""
    from aenet_gpr.util import ReferenceData

    files = sorted((examples / "3_Li-EC" / "train_set_tutorial").glob("*.xsf"))[:6]
    (subset,) = split_by_composition(read_structures(files))
    gp = GaussianProcess(CartesianDescriptor(), subset.symbols, Hyperparameters(scale=3.0), batch_size=5)
    gp.set_training_data(subset.positions, subset.cells, subset.energies, subset.forces)
    gp.fit()
    ours = fit_weight(gp, log=lambda _: None)

    reference = ReferenceData(
        structure_files=[str(f) for f in files], file_format="xsf", descriptor="cartesian coordinates"
    )
    reference.config_calculator(
        scale=3.0, weight=1.0, train_batch_size=5, eval_batch_size=5, fit_weight=True, fit_scale=False
    )
    assert ours == pytest.approx(float(reference.calculator.weight), rel=1e-8)
    assert gp.prior_constant == pytest.approx(float(reference.calculator.prior.constant), rel=1e-10)

    scores = {}
    for scale in (1.5, 3.0, 6.0):
        gp.hyper.scale = scale
        gp.fit()
        scores[scale] = (
            gp.log_marginal_likelihood() - 0.5 * ((math.log(scale) - math.log(0.4)) / 0.5) ** 2 - math.log(scale)
        )
    gp.hyper.scale = 3.0
    assert fit_scale(gp, log=lambda _: None) == max(scores, key=scores.get)


def test_filter_removes_the_structures_aenet_gpr_removes(examples: Path) -> None:
    from aenet_gpr.util import ReferenceData

    files = (
        sorted((examples / "1_H2" / "train_set").glob("*.xsf"))
        + sorted((examples / "1_H2" / "test_set").glob("*.xsf"))[:40]
    )
    (subset,) = split_by_composition(read_structures(files))
    kept, removed = filter_near_duplicates(subset, 0.1)
    reference = ReferenceData(
        structure_files=[str(f) for f in files], file_format="xsf", descriptor="cartesian coordinates"
    )
    reference.filter_similar_data(threshold=0.1)
    assert 0 < len(removed) < len(files)
    np.testing.assert_array_equal(kept.positions, np.array([image.positions for image in reference.images]))


def test_symmetry_function_descriptor_jacobian_is_the_derivative_of_its_features() -> None:
    atoms = molecule("CH3OH")
    descriptor = SymmetryFunctionDescriptor.for_elements(
        tuple(atoms.get_chemical_symbols()), SymmetryFunctionSettings(cutoff=4.0, n_radial=4)
    )
    symbols = tuple(atoms.get_chemical_symbols())
    features, jacobian = descriptor.features(symbols, atoms.positions[None], None)
    step = 1e-5
    for atom, axis in [(0, 0), (2, 1), (5, 2)]:
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        numeric = (
            descriptor.features(symbols, plus[None], None)[0] - descriptor.features(symbols, minus[None], None)[0]
        ) / (2 * step)
        torch.testing.assert_close(jacobian[0, :, 3 * atom + axis, :], numeric[0], rtol=1e-6, atol=1e-8)
    assert features.shape == (1, len(atoms), descriptor.parameters.n_features)


def test_symmetry_function_gpr_forces_are_minus_the_energy_gradient() -> None:
    """The general-descriptor path with G2/G4 functions compared element by
    element: a GPR on distorted methanols (arbitrary smooth labels)."""
    rng = np.random.default_rng(5)
    base = molecule("CH3OH")
    symbols = tuple(base.get_chemical_symbols())
    positions = np.stack([base.positions + rng.normal(0, 0.05, base.positions.shape) for _ in range(5)])
    centre = positions.mean(axis=1, keepdims=True)
    energies = ((positions - centre) ** 2).sum(axis=(1, 2))
    forces = -2 * (positions - centre)
    descriptor = SymmetryFunctionDescriptor.for_elements(symbols, SymmetryFunctionSettings(cutoff=4.0, n_radial=4))
    gp = GaussianProcess(descriptor, symbols, Hyperparameters(scale=2.0, noise=1e-3), batch_size=3)
    gp.set_training_data(positions, None, energies, forces)
    gp.fit()
    start = positions[0] + rng.normal(0, 0.02, positions[0].shape)
    predicted = gp.predict(start[None])
    assert predicted.energy_std[0] > 0 and np.all(predicted.forces_std[0] > 0)
    step = 1e-4
    for atom, axis in [(0, 0), (3, 1), (5, 2)]:
        shifted = np.stack([start, start])
        shifted[0, atom, axis] += step
        shifted[1, atom, axis] -= step
        energies_shifted = gp.predict(shifted, variance=False).energies
        assert -(energies_shifted[0] - energies_shifted[1]) / (2 * step) == pytest.approx(
            predicted.forces[0, atom, axis], rel=1e-5, abs=1e-6
        )


def force_gradient_mismatch(gp: GaussianProcess, positions: np.ndarray, cell: np.ndarray, step: float = 1e-4) -> float:
    """Largest |F - (-dE/dx)| (eV/Angstrom) of the predicted force against
    central differences of the predicted energy, for a few coordinates of
    one structure (N, 3) Angstrom in ``cell``."""
    forces = gp.predict(positions[None], cell[None], variance=False).forces[0]
    worst = 0.0
    for atom, axis in [(0, 0), (3, 1), (6, 2)]:
        displaced = np.stack([positions, positions])
        displaced[0, atom, axis] += step
        displaced[1, atom, axis] -= step
        energies = gp.predict(displaced, np.stack([cell, cell]), variance=False).energies
        worst = max(worst, abs(-(energies[0] - energies[1]) / (2 * step) - forces[atom, axis]))
    return worst


def test_soap_gpr_forces_are_minus_the_gradient_of_the_predicted_energy(tmp_path: Path) -> None:
    """SOAP at the atoms (aenet-gpr's default) on periodic Cu8 cells: the
    centres move with their atoms in the Jacobians, so the predicted force
    is minus the gradient of the predicted energy (MD and optimisation with
    Backend GPR conserve energy). With the centres held still, as aenet-gpr
    3.7.9 holds them (``attach=False``), it is off by 0.1 eV/Angstrom here."""
    (train,) = split_by_composition(read_structures(sorted(write_emt_cu8(tmp_path / "train", 6, 11, 0.08).glob("*"))))
    (start,) = split_by_composition(read_structures(sorted(write_emt_cu8(tmp_path / "start", 1, 12, 0.08).glob("*"))))

    def fitted(settings: SoapSettings) -> GaussianProcess:
        descriptor = SoapDescriptor(settings, train.symbols, periodic=True)
        gp = GaussianProcess(descriptor, train.symbols, Hyperparameters(scale=0.4), batch_size=3)
        gp.set_training_data(train.positions, train.cells, train.energies, train.forces)
        gp.fit()
        return gp

    assert force_gradient_mismatch(fitted(SoapSettings()), start.positions[0], start.cells[0]) < 1e-5
    assert force_gradient_mismatch(fitted(SoapSettings(attach=False)), start.positions[0], start.cells[0]) > 1e-2


def test_soap_attach_is_kept_in_model_files_and_absent_means_held_still() -> None:
    """The switch travels in the descriptor settings of a model file; a
    file written before it existed held the centres still."""
    for attach in (True, False):
        settings = SoapDescriptor(SoapSettings(attach=attach), ("Cu",) * 2, periodic=True).settings()
        assert descriptor_from_settings(settings).soap_settings.attach is attach
    del settings["attach"]
    assert descriptor_from_settings(settings).soap_settings.attach is False


def test_fitting_scale_and_weight_together_makes_the_same_choices_with_four_factorisations(
    examples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fit_hyperparameters (what mlpotential gpr runs) against aenet-gpr's
    sequence (fit, fit_scale, fit_weight: six factorisations): the same
    hyperparameters and the same model, bit for bit."""
    files = sorted((examples / "3_Li-EC" / "train_set_tutorial").glob("*.xsf"))[:5]
    (subset,) = split_by_composition(read_structures(files))

    def fresh() -> GaussianProcess:
        gp = GaussianProcess(CartesianDescriptor(), subset.symbols, Hyperparameters(scale=3.0), batch_size=2)
        gp.set_training_data(subset.positions, subset.cells, subset.energies, subset.forces)
        return gp

    sequential = fresh()
    sequential.fit()
    fit_scale(sequential, log=lambda _: None)
    fit_weight(sequential, log=lambda _: None)

    together = fresh()
    factorisations = []
    original = GaussianProcess._factorize
    monkeypatch.setattr(GaussianProcess, "_factorize", lambda gp: factorisations.append(1) or original(gp))
    fit_hyperparameters(together, scale=True, weight=True, log=lambda _: None)
    assert len(factorisations) == 4
    assert together.hyper == sequential.hyper and together.hyper.weight != 1.0
    assert together.prior_constant == sequential.prior_constant
    assert torch.equal(together._alpha, sequential._alpha)


def test_the_inverse_factor_by_blocks_equals_lapacks() -> None:
    """W = L^-T by triangular solves (the path of GPUs) against LAPACK's
    dtrtri (the CPU's), in the storage of a column-major factor."""
    generator = torch.Generator().manual_seed(0)
    size = 700  # more than one block of columns
    matrix = torch.randn((size, size), dtype=torch.float64, generator=generator)
    matrix = matrix @ matrix.T / size + torch.eye(size, dtype=torch.float64)
    factor = torch.linalg.cholesky(matrix).mT.contiguous().mT
    by_blocks, lapack = factor.clone().mT.contiguous().mT, factor.clone().mT.contiguous().mT
    invert_by_blocks(by_blocks)
    inverse = inverse_transposed_factor(lapack)
    expected = torch.linalg.inv(factor).T
    torch.testing.assert_close(inverse, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(by_blocks.mT, expected, rtol=0, atol=1e-12)
    assert inverse.is_contiguous()
