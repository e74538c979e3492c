"""Backend sGDML in process: a model trained with GDMLTrain on EMT data
(tests/backends/emt_trained_models.py), its units, atom order, and bad files."""

from __future__ import annotations

import multiprocessing
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.sgdml.factory import read_model_file
from mlpotential.errors import KeywordError, UnsupportedSystemError
from tests.backends.calculator_checks import (
    assert_bohr_model_sees_positions_in_bohr,
    assert_model_file_refused,
    central_difference_forces,
    evaluate,
)
from tests.backends.emt_trained_models import (
    damaged_copy,
    displaced,
    emt_labelled,
    emt_minimum,
    emt_samples,
    sgdml_dataset,
    train_sgdml,
    truncated_copy,
)

KCAL_PER_MOL_EV = units.kcal / units.mol


def sgdml_calculator(path: Path, **keywords: str):
    return create_calculator(parse_settings({"Backend": "sGDML", "ParameterFile": str(path), **keywords}))


@pytest.fixture(scope="module")
def held_out() -> list[Atoms]:
    """EMT-labelled clusters the model was not trained on (another seed)."""
    return emt_samples(20, seed=7)


@pytest.fixture(scope="module")
def calculator_ev(sgdml_model_ev: Path):
    return sgdml_calculator(sgdml_model_ev, MLEnergyUnit="eV")


def test_reproduces_emt_on_held_out_geometries(calculator_ev, held_out: list[Atoms]) -> None:
    energy_errors, force_errors = [], []
    for reference in held_out:
        energy, forces = evaluate(calculator_ev, reference)
        energy_errors.append(energy - reference.get_potential_energy())
        force_errors.append(forces - reference.get_forces())
    # sGDML fits this 6-atom cluster closely; the EMT energies span ~1.7 eV
    assert np.mean(np.abs(energy_errors)) < 0.005
    assert np.sqrt(np.mean(np.square(force_errors))) < 0.02


def test_forces_are_the_negative_energy_gradient(calculator_ev) -> None:
    atoms = displaced(emt_minimum(), np.random.default_rng(3))
    _, forces = evaluate(calculator_ev, atoms)
    # 3e-4 Angstrom: truncation and round-off errors both below 1e-6 eV/Angstrom here
    numeric = central_difference_forces(calculator_ev, atoms, step=3e-4)
    np.testing.assert_allclose(forces, numeric, rtol=0, atol=3e-6)


def test_matches_sgdml_prediction_from_the_pickled_file(calculator_ev, sgdml_model_ev: Path) -> None:
    """The backend reads only the plain arrays (allow_pickle=False); sGDML's own
    GDMLPredict on the whole file (allow_pickle=True) predicts the same."""
    from sgdml.predict import GDMLPredict

    atoms = displaced(emt_minimum(), np.random.default_rng(4))
    with np.load(sgdml_model_ev, allow_pickle=True) as archive:
        predictor = GDMLPredict(dict(archive), max_processes=1)
    energy, forces = predictor.predict(atoms.positions.reshape(1, -1))
    ours = evaluate(calculator_ev, atoms)
    assert ours[0] == pytest.approx(float(energy[0]), rel=1e-12)
    np.testing.assert_allclose(ours[1], forces.reshape(-1, 3), rtol=0, atol=1e-12)


def test_auto_means_kcal_per_mol_so_an_ev_model_is_off_by_23(sgdml_model_ev: Path, calculator_ev) -> None:
    reference = emt_labelled(displaced(emt_minimum(), np.random.default_rng(5)))
    with pytest.warns(UserWarning, match=r"records training units eV and angstrom.*MLEnergyUnit 'kcal/mol' \(Auto\)"):
        auto = sgdml_calculator(sgdml_model_ev)
    energy_auto, forces_auto = evaluate(auto, reference)
    energy_ev, forces_ev = evaluate(calculator_ev, reference)
    # Auto reads the eV numbers as kcal/mol: 23.06 times too small
    assert energy_ev / energy_auto == pytest.approx(1 / KCAL_PER_MOL_EV, rel=1e-12)
    assert 1 / KCAL_PER_MOL_EV == pytest.approx(23.06, abs=0.01)
    np.testing.assert_allclose(forces_auto, forces_ev * KCAL_PER_MOL_EV, rtol=1e-12)
    # and MLEnergyUnit eV is the one that agrees with the EMT truth
    assert energy_ev == pytest.approx(reference.get_potential_energy(), abs=0.01)
    assert abs(energy_auto - reference.get_potential_energy()) > 1.0


def test_model_trained_in_kcal_per_mol_is_right_with_auto(tmp_path: Path, emt_training_samples: list[Atoms]) -> None:
    model = train_sgdml(
        tmp_path / "kcal.npz",
        emt_training_samples[:60],
        n_train=40,
        n_valid=20,
        energy_factor=1 / KCAL_PER_MOL_EV,
        energy_unit="kcal/mol",
    )
    reference = emt_labelled(displaced(emt_minimum(), np.random.default_rng(6)))
    energy, forces = evaluate(sgdml_calculator(model.path), reference)
    assert energy == pytest.approx(reference.get_potential_energy(), abs=0.02)
    np.testing.assert_allclose(forces, reference.get_forces(), atol=0.1)


def test_distance_unit_bohr_feeds_the_model_bohr(sgdml_model_ev: Path, calculator_ev) -> None:
    """A model in eV/bohr sees the positions divided by the Bohr radius and its
    forces are converted per Angstrom: E_bohr(x) = E(x / a0), F_bohr(x) = F(x / a0) / a0."""
    with pytest.warns(UserWarning, match="records training units eV and angstrom.*MLDistanceUnit 'bohr'"):
        bohr_model = sgdml_calculator(sgdml_model_ev, MLEnergyUnit="eV", MLDistanceUnit="bohr")
    atoms = displaced(emt_minimum(), np.random.default_rng(8))
    assert_bohr_model_sees_positions_in_bohr(bohr_model, calculator_ev, atoms)


def test_predicts_in_this_process_alone(sgdml_model_ev: Path) -> None:
    """No forked helpers (they would outlive a terminated worker), whatever NumThreads says."""
    calculator = sgdml_calculator(sgdml_model_ev, MLEnergyUnit="eV", NumThreads="2")
    evaluate(calculator, emt_minimum())
    assert calculator.gdml_predict.num_workers == 0
    assert multiprocessing.active_children() == []


def test_atoms_in_another_order_are_refused_with_the_expected_order(calculator_ev) -> None:
    atoms = emt_minimum()
    swapped = atoms[[4, 1, 2, 3, 0, 5]]  # an Ag first
    with pytest.raises(
        UnsupportedSystemError, match="in this order: Cu Cu Cu Cu Ag Ag; this system .* Ag Cu Cu Cu Cu Ag"
    ) as error:
        evaluate(calculator_ev, swapped)
    assert error.value.argument == "atomSymbols"


def test_another_atom_count_is_refused(calculator_ev) -> None:
    atoms = emt_minimum()
    with pytest.raises(UnsupportedSystemError, match="trained on 6 atoms .* this system has 5 atoms"):
        evaluate(calculator_ev, atoms[:5])


def test_periodic_system_is_refused_by_a_molecular_model(calculator_ev) -> None:
    atoms = emt_minimum()
    atoms.set_cell([12.0, 12.0, 12.0])
    atoms.pbc = True
    with pytest.raises(UnsupportedSystemError, match="without periodic boundary conditions") as error:
        evaluate(calculator_ev, atoms)
    assert error.value.argument == "latticeVectors"


def test_model_file_records_its_units_and_no_warning_when_they_are_used(sgdml_model_ev: Path, recwarn) -> None:
    sgdml_calculator(sgdml_model_ev, MLEnergyUnit="eV", MLDistanceUnit="angstrom")
    assert not [w for w in recwarn if "records training units" in str(w.message)]


# ----------------------------------------------------------------- bad files


def assert_bad_file(path: Path, *fragments: str) -> None:
    create = partial(sgdml_calculator, MLEnergyUnit="eV")
    assert_model_file_refused(create, path, "Backend sGDML expects a trained sGDML model", *fragments)


def test_schnetpack_model_is_refused(schnetpack_model_ev: Path) -> None:
    assert_bad_file(schnetpack_model_ev, "is a PyTorch file")


def test_hdnnp_model_file_is_refused(tmp_path: Path) -> None:
    """The layout of the HDNNP backend's files: torch.save of tensors plus JSON metadata."""
    import torch

    torch.save({"metadata": '{"format": "mlpotential-hdnnp"}', "tensors": {"w": torch.zeros(2)}}, tmp_path / "hdnnp.pt")
    assert_bad_file(tmp_path / "hdnnp.pt", "is a PyTorch file")


def test_ani_parameter_file_is_refused(shared_dir: Path) -> None:
    assert_bad_file(next((shared_dir / "ani-model-zoo" / "ani-1x_8x").glob("*.params")), "is not a NumPy .npz archive")


def test_sgdml_dataset_is_refused(tmp_path: Path, emt_training_samples: list[Atoms]) -> None:
    path = tmp_path / "dataset.npz"
    np.savez_compressed(path, **sgdml_dataset(emt_training_samples[:5]))
    assert_bad_file(path, "is an sGDML dataset, not a trained model")


def test_plain_npz_and_npy_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
    assert_bad_file(tmp_path / "arrays.npz", "without sGDML's 'type' entry")
    np.save(tmp_path / "array.npy", np.zeros(3))
    assert_bad_file(tmp_path / "array.npy", "single NumPy array (.npy)")


def test_truncated_model_is_refused(tmp_path: Path, sgdml_model_ev: Path) -> None:
    assert_bad_file(truncated_copy(sgdml_model_ev, tmp_path / "truncated.npz"), "truncated or corrupt zip archive")


def test_corrupt_model_is_refused(tmp_path: Path, sgdml_model_ev: Path) -> None:
    assert_bad_file(damaged_copy(sgdml_model_ev, tmp_path / "corrupt.npz"), "is corrupt (the checksum of its member")


def test_model_missing_entries_is_refused(tmp_path: Path, sgdml_model_ev: Path) -> None:
    model = read_model_file(str(sgdml_model_ev))
    del model["R_d_desc_alpha"]
    np.savez_compressed(tmp_path / "partial.npz", **model)
    assert_bad_file(tmp_path / "partial.npz", "lacks the model entries R_d_desc_alpha")


def test_inconsistent_model_is_refused(tmp_path: Path, sgdml_model_ev: Path) -> None:
    model = read_model_file(str(sgdml_model_ev))
    model["z"] = model["z"][:5]
    np.savez_compressed(tmp_path / "inconsistent.npz", **model)
    assert_bad_file(tmp_path / "inconsistent.npz", "is inconsistent: 5 atoms")


def test_directory_and_missing_file_are_refused_by_keyword_validation(tmp_path: Path) -> None:
    with pytest.raises(KeywordError, match="is a directory; a file is expected"):
        sgdml_calculator(tmp_path)
    with pytest.raises(KeywordError, match="needs ParameterFile"):
        create_calculator(parse_settings({"Backend": "sGDML"}))


def test_gpu_device_is_refused(sgdml_model_ev: Path) -> None:
    with pytest.raises(KeywordError, match="runs on the CPU") as error:
        sgdml_calculator(sgdml_model_ev, Device="cuda")
    assert error.value.keyword == "Device"
