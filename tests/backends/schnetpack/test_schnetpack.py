"""Backend SchNetPack in process: a SchNet model trained with SchNetPack on
EMT data (tests/backends/emt_trained_models.py), checked against EMT, against
SchNetPack's stock SpkCalculator and against its own energy gradient; units;
and bad files, each refused naming the file and what was expected."""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms, units

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.schnetpack.compat import import_schnetpack
from mlpotential.backends.schnetpack.factory import top_level_class
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
    truncated_copy,
)

CUTOFF = 4.0  # Angstrom, the cutoff the test model was trained with
KCAL_PER_MOL_EV = units.kcal / units.mol


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    torch.set_num_threads(1)


def schnetpack_calculator(path: Path, **keywords: str):
    return create_calculator(parse_settings({"Backend": "SchNetPack", "ParameterFile": str(path), **keywords}))


@pytest.fixture(scope="module")
def calculator_ev(schnetpack_model_ev: Path):
    return schnetpack_calculator(schnetpack_model_ev)


def test_learned_emt_better_than_a_constant(calculator_ev, emt_training_samples: list[Atoms]) -> None:
    held_out = emt_samples(20, seed=7)
    predicted = [evaluate(calculator_ev, atoms) for atoms in held_out]
    true_energies = np.array([atoms.get_potential_energy() for atoms in held_out])
    true_forces = np.array([atoms.get_forces() for atoms in held_out])
    energy_error = np.array([energy for energy, _ in predicted]) - true_energies
    force_error = np.array([forces for _, forces in predicted]) - true_forces
    # a few epochs of a 16-feature SchNet: far from exact, far better than
    # predicting the training mean energy and zero forces
    mean_energy = np.mean([atoms.get_potential_energy() for atoms in emt_training_samples])
    assert np.sqrt(np.mean(energy_error**2)) < 0.5 * np.sqrt(np.mean((true_energies - mean_energy) ** 2))
    assert np.sqrt(np.mean(force_error**2)) < 0.5 * np.sqrt(np.mean(true_forces**2))


def test_equals_stock_spk_calculator_with_ase_neighbour_list(
    calculator_ev, schnetpack_model_ev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SchNetPack's own calculator, with ASE's neighbour list (ours is
    matscipy's) and the model's cutoff given by hand; torch's documented
    switch lets its unchanged loader unpickle the model."""
    import_schnetpack()
    from schnetpack.interfaces import SpkCalculator
    from schnetpack.transform import ASENeighborList

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    stock = SpkCalculator(
        str(schnetpack_model_ev),
        neighbor_list=ASENeighborList(cutoff=CUTOFF),
        energy_unit="eV",
        position_unit="Ang",
        dtype=torch.float64,
    )
    for seed in (11, 12):
        atoms = displaced(emt_minimum(), np.random.default_rng(seed), scale=0.3)
        ours = evaluate(calculator_ev, atoms)
        stock.calculate(atoms, ["energy", "forces"])
        assert ours[0] == pytest.approx(stock.results["energy"], rel=1e-12)
        np.testing.assert_allclose(ours[1], stock.results["forces"], rtol=0, atol=1e-10)


def test_neighbour_list_uses_the_model_cutoff(calculator_ev) -> None:
    spk = import_schnetpack()
    assert calculator_ev.outline.cutoff == pytest.approx(CUTOFF)
    atoms = emt_minimum()
    atoms.positions[4] += [0.0, 0.0, 3.0]  # an Ag 4.8 Angstrom from the centre: some pairs beyond the cutoff
    inputs = calculator_ev.converter(atoms)
    pairs = len(inputs[spk.properties.idx_i])
    distances = atoms.get_all_distances()
    assert pairs == np.count_nonzero((distances < CUTOFF) & (distances > 0)) < len(atoms) * (len(atoms) - 1)


def test_forces_are_the_negative_energy_gradient(calculator_ev) -> None:
    atoms = displaced(emt_minimum(), np.random.default_rng(3))
    _, forces = evaluate(calculator_ev, atoms)
    numeric = central_difference_forces(calculator_ev, atoms, step=1e-4)
    np.testing.assert_allclose(forces, numeric, rtol=0, atol=1e-6)


def test_auto_is_ev_and_other_energy_units_scale_exactly(schnetpack_model_ev: Path, calculator_ev) -> None:
    reference = emt_labelled(displaced(emt_minimum(), np.random.default_rng(5)))
    energy_ev, forces_ev = evaluate(calculator_ev, reference)
    explicit = evaluate(schnetpack_calculator(schnetpack_model_ev, MLEnergyUnit="eV"), reference)
    assert explicit[0] == energy_ev
    # the eV model read as kcal/mol: 23.06 times too small
    energy_kcal, forces_kcal = evaluate(schnetpack_calculator(schnetpack_model_ev, MLEnergyUnit="kcal/mol"), reference)
    assert energy_ev / energy_kcal == pytest.approx(1 / KCAL_PER_MOL_EV, rel=1e-12)
    np.testing.assert_allclose(forces_kcal, forces_ev * KCAL_PER_MOL_EV, rtol=1e-12)
    assert abs(energy_ev - reference.get_potential_energy()) < 0.3
    assert abs(energy_kcal - reference.get_potential_energy()) > 3.0


def test_distance_unit_bohr_feeds_the_model_bohr(schnetpack_model_ev: Path, calculator_ev) -> None:
    """E_bohr(x) = E(x / a0) and F_bohr(x) = F(x / a0) / a0: SpkCalculator
    alone would hand the model Angstrom positions."""
    bohr_model = schnetpack_calculator(schnetpack_model_ev, MLDistanceUnit="bohr")
    atoms = displaced(emt_minimum(), np.random.default_rng(8))
    assert_bohr_model_sees_positions_in_bohr(bohr_model, calculator_ev, atoms)


def test_element_beyond_the_embedding_is_refused(calculator_ev) -> None:
    atoms = emt_minimum()
    atoms.numbers[0] = 100  # fermium; SchNet's embedding has rows for Z < 100
    with pytest.raises(UnsupportedSystemError, match="atomic numbers up to 99; this system has Fm") as error:
        evaluate(calculator_ev, atoms)
    assert error.value.argument == "atomSymbols"


def test_top_level_class_is_read_without_unpickling() -> None:
    for protocol in (2, 4):
        assert (
            top_level_class(pickle.dumps(collections.OrderedDict(a=1), protocol=protocol)) == "collections.OrderedDict"
        )
        assert top_level_class(pickle.dumps({"a": 1}, protocol=protocol)) == "builtins.dict"
        assert top_level_class(pickle.dumps(Path("x"), protocol=protocol)) == "pathlib.PosixPath"
        assert top_level_class(pickle.dumps(3, protocol=protocol)) is None


# ----------------------------------------------------------------- bad files


def assert_bad_file(path: Path, *fragments: str) -> None:
    expected = "Backend SchNetPack expects a SchNetPack model saved with torch.save(model)"
    assert_model_file_refused(schnetpack_calculator, path, expected, *fragments)


def test_sgdml_model_is_refused(sgdml_model_ev: Path) -> None:
    assert_bad_file(sgdml_model_ev, "is a NumPy .npz archive (the format of sGDML models)")


def test_ani_parameter_file_is_refused(shared_dir: Path) -> None:
    assert_bad_file(next((shared_dir / "ani-model-zoo" / "ani-1x_8x").glob("*.params")), "is not a PyTorch file")


def test_state_dict_is_refused(tmp_path: Path, calculator_ev) -> None:
    torch.save(calculator_ev.model.state_dict(), tmp_path / "weights.pt")
    assert_bad_file(tmp_path / "weights.pt", "holds a state_dict (the parameters only), not a whole model")


def test_lightning_checkpoint_is_refused(schnetpack_model_ev: Path) -> None:
    checkpoint = next((schnetpack_model_ev.parent / "checkpoints").glob("*.ckpt"))
    assert_bad_file(checkpoint, "is a PyTorch Lightning training checkpoint, not a model")


def test_hdnnp_model_file_is_refused(tmp_path: Path) -> None:
    """The layout of the HDNNP backend's files (tensors plus JSON metadata
    naming their format), written here with torch.save."""
    metadata = '{"format": "mlpotential-hdnnp", "version": 1}'
    torch.save({"metadata": metadata, "tensors": {"w": torch.zeros(2)}}, tmp_path / "hdnnp.pt")
    assert_bad_file(tmp_path / "hdnnp.pt", "is a model file of format 'mlpotential-hdnnp', not a SchNetPack model")


def test_other_torch_module_is_refused_before_it_is_unpickled(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(3, 1), tmp_path / "linear.pt")
    assert_bad_file(tmp_path / "linear.pt", "holds a torch.nn.modules.linear.Linear object, not a SchNetPack model")


def test_schnetpack_object_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    spk = import_schnetpack()
    torch.save(spk.nn.CosineCutoff(CUTOFF), tmp_path / "cutoff.pt")
    with pytest.raises(KeywordError, match="holds a schnetpack.nn.cutoff.CosineCutoff, not a SchNetPack model"):
        schnetpack_calculator(tmp_path / "cutoff.pt")


def test_model_without_forces_is_refused(tmp_path: Path) -> None:
    spk = import_schnetpack()
    representation = spk.representation.SchNet(
        n_atom_basis=8,
        n_interactions=1,
        radial_basis=spk.nn.GaussianRBF(6, CUTOFF),
        cutoff_fn=spk.nn.CosineCutoff(CUTOFF),
    )
    model = spk.model.NeuralNetworkPotential(
        representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=8, output_key="energy")],
    )
    torch.save(model, tmp_path / "energy_only.pt")
    with pytest.raises(KeywordError, match=r"predicts no forces \(its outputs: energy\)"):
        schnetpack_calculator(tmp_path / "energy_only.pt")


def test_truncated_model_is_refused(tmp_path: Path, schnetpack_model_ev: Path) -> None:
    assert_bad_file(
        truncated_copy(schnetpack_model_ev, tmp_path / "truncated_model"), "truncated or corrupt zip archive"
    )


def test_corrupt_model_is_refused(tmp_path: Path, schnetpack_model_ev: Path) -> None:
    assert_bad_file(
        damaged_copy(schnetpack_model_ev, tmp_path / "corrupt_model"), "is corrupt (the checksum of its member"
    )


def test_zip_without_pickle_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    assert_bad_file(tmp_path / "other.zip", "is a zip archive but not a PyTorch file")


def test_directory_and_missing_file_are_refused_by_keyword_validation(tmp_path: Path) -> None:
    with pytest.raises(KeywordError, match="is a directory; a file is expected"):
        schnetpack_calculator(tmp_path)
    with pytest.raises(KeywordError, match="needs ParameterFile"):
        create_calculator(parse_settings({"Backend": "SchNetPack"}))
