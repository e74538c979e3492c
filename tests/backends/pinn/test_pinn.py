"""Backend PiNN in process: the three genuine PiNN models of
../shared/pinn-reference against PiNN's own stored predictions, forces and
stress against finite differences of our energy, PiNN's periodicity rules,
units, and the start-up errors for broken model directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.units import Hartree, kcal, mol

from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.pinn.calculator import PinnCalculator
from mlpotential.backends.pinn.checkpoint import Checkpoint, latest_checkpoint
from mlpotential.backends.pinn.factory import create_calculator
from mlpotential.backends.pinn.loader import load_potential
from mlpotential.errors import KeywordError, UnsupportedSystemError
from mlpotential.units import BOHR_TO_ANGSTROM
from tests.backends.calculator_checks import central_difference_forces, central_difference_stress
from tests.backends.pinn_reference import (
    ENERGY_TOLERANCE,
    FORCE_TOLERANCE,
    MODELS,
    STRESS_TOLERANCE,
    ReferenceStructure,
    read_reference,
    writable_copy,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module", params=MODELS)
def model(
    request: pytest.FixtureRequest, pinn_reference_root: Path
) -> tuple[str, PinnCalculator, list[ReferenceStructure]]:
    folder = pinn_reference_root / request.param
    settings = parse_settings({"Backend": "PiNN", "ParameterDir": str(folder / "model")})
    return request.param, create_calculator(settings), read_reference(folder)


def by_name(structures: list[ReferenceStructure], name: str) -> ReferenceStructure:
    return next(s for s in structures if s.name == name)


def test_every_structure_matches_pinn(model) -> None:
    name, calc, structures = model
    expected = {"pinet": 23, "bpnn": 22, "pinet_gaussian": 23}[name]
    assert len(structures) == expected
    worst = {"energy": 0.0, "forces": 0.0, "stress": 0.0}
    stresses = 0
    for structure in structures:
        atoms = structure.atoms.copy()
        atoms.calc = calc
        energy_error = abs(atoms.get_potential_energy() - structure.energy)
        force_error = np.abs(atoms.get_forces() - structure.forces).max()
        assert energy_error < ENERGY_TOLERANCE, (structure.name, energy_error)
        assert force_error < FORCE_TOLERANCE, (structure.name, force_error)
        worst["energy"] = max(worst["energy"], energy_error)
        worst["forces"] = max(worst["forces"], force_error)
        if structure.stress is not None:
            stress_error = np.abs(atoms.get_stress() - structure.stress).max()
            assert stress_error < STRESS_TOLERANCE, (structure.name, stress_error)
            worst["stress"] = max(worst["stress"], stress_error)
            stresses += 1
    assert stresses == 8
    print(
        f"{name}: worst |dE| {worst['energy']:.2e} eV, |dF| {worst['forces']:.2e} eV/A, "
        f"|dS| {worst['stress']:.2e} eV/A^3"
    )


@pytest.mark.parametrize(
    "structure_name", ["C2H6_perturbed_nonpbc", "H2O_in_5A_box_interacting_with_images_pbc", "Cu1_primitive_fcc_pbc"]
)
def test_forces_are_minus_the_energy_gradient(model, structure_name: str) -> None:
    _, calc, structures = model
    atoms = by_name(structures, structure_name).atoms.copy()
    atoms.calc = calc
    forces = atoms.get_forces()
    numeric = central_difference_forces(calc, atoms, step=1e-4)
    np.testing.assert_allclose(forces, numeric, atol=1e-6)


@pytest.mark.parametrize(
    "structure_name", ["Cu32_sheared_triclinic_rattled_pbc", "H2O_in_5A_box_interacting_with_images_pbc"]
)
def test_stress_is_the_strain_derivative(model, structure_name: str) -> None:
    _, calc, structures = model
    atoms = by_name(structures, structure_name).atoms.copy()
    atoms.calc = calc
    stress = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(stress, central_difference_stress(calc, atoms), atol=1e-7)


def test_any_periodic_direction_makes_all_three_periodic(model) -> None:
    """PiNN passes the cell whenever pbc.any() and then ignores the flags;
    it returns stress only when all three are periodic."""
    _, calc, structures = model
    reference = by_name(structures, "H2O_in_5A_box_interacting_with_images_pbc")
    partial = reference.atoms.copy()
    partial.pbc = [True, False, False]
    partial.calc = calc
    assert abs(partial.get_potential_energy() - reference.energy) < ENERGY_TOLERANCE
    np.testing.assert_allclose(partial.get_forces(), reference.forces, atol=FORCE_TOLERANCE)
    with pytest.raises(PropertyNotImplementedError):
        partial.get_stress()
    isolated = reference.atoms.copy()
    isolated.pbc = False
    isolated.calc = calc
    assert abs(isolated.get_potential_energy() - reference.energy) > 1e-3  # the images mattered


def test_periodic_structure_needs_three_lattice_vectors(model) -> None:
    _, calc, structures = model
    atoms = by_name(structures, "CH4_perturbed_nonpbc").atoms.copy()
    atoms.set_cell([[15.0, 0, 0], [0, 15.0, 0], [0, 0, 0]])
    atoms.pbc = [True, True, False]
    atoms.calc = calc
    with pytest.raises(UnsupportedSystemError) as error:
        atoms.get_potential_energy()
    assert error.value.argument == "latticeVectors"
    assert "all three" in error.value.message


def test_element_outside_the_model_is_refused(model) -> None:
    _, calc, _ = model
    atoms = Atoms("FeH", positions=[[0, 0, 0], [0, 0, 1.6]])
    atoms.calc = calc
    with pytest.raises(UnsupportedSystemError) as error:
        atoms.get_potential_energy()
    assert error.value.argument == "atomSymbols"
    assert "Fe" in error.value.message and "Cu" in error.value.message


def test_bpnn_isolated_atom_is_the_subnet_of_scaled_zero_features(pinn_reference_root: Path) -> None:
    """PiNN's BPNN fails without neighbour pairs; here the energy is the one
    its formulas define: every feature 0, scaled, through the O subnet."""
    model_dir = pinn_reference_root / "bpnn" / "model"
    params = yaml.safe_load((model_dir / "params.yml").read_text())["network"]["params"]
    checkpoint = Checkpoint(latest_checkpoint(model_dir))
    entries = list(zip(params["sf_spec"], params["fp_range"]))
    ranges = [r for e, r in entries if e["i"] == 8] + [r for e, r in entries if e["i"] == "ALL"]
    x = np.concatenate(
        [2 * (0 - np.array(lo)) / np.maximum(np.array(hi) - np.array(lo), 1e-6) - 1 for lo, hi in ranges]
    )
    assert x.shape == (21,)
    layer = "bpnn/bp_feed_forward/dense_{}"
    x = np.tanh(x @ checkpoint.read(layer.format(9) + "/kernel") + checkpoint.read(layer.format(9) + "/bias"))
    x = np.tanh(x @ checkpoint.read(layer.format(10) + "/kernel") + checkpoint.read(layer.format(10) + "/bias"))
    expected = float((x @ checkpoint.read(layer.format(11) + "/kernel"))[0]) + 0.9483686414434799
    atoms = Atoms("O", positions=[[0.0, 0.0, 0.0]])
    atoms.calc = PinnCalculator(load_potential(model_dir))
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=1e-5)
    np.testing.assert_array_equal(atoms.get_forces(), np.zeros((1, 3)))


def test_float32_evaluation_matches_pinn_too(pinn_reference_root: Path) -> None:
    folder = pinn_reference_root / "pinet"
    calc = PinnCalculator(load_potential(folder / "model", dtype=torch.float32))
    for structure in read_reference(folder):
        atoms = structure.atoms.copy()
        atoms.calc = calc
        assert abs(atoms.get_potential_energy() - structure.energy) < ENERGY_TOLERANCE, structure.name
        np.testing.assert_allclose(atoms.get_forces(), structure.forces, atol=FORCE_TOLERANCE, err_msg=structure.name)


def edit_params(model_dir: Path, edit) -> None:
    path = model_dir / "params.yml"
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document))


def pinet_energy(model_dir: Path, structure: ReferenceStructure, **keywords: str) -> tuple[float, np.ndarray]:
    calc = create_calculator(parse_settings({"Backend": "PiNN", "ParameterDir": str(model_dir), **keywords}))
    atoms = structure.atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


def test_energy_units(pinn_reference_root: Path, tmp_path: Path) -> None:
    """Auto takes PiNN's e_unit (1.0 here: eV); MLEnergyUnit names the
    training labels' unit and replaces e_unit."""
    model_dir = pinn_reference_root / "pinet" / "model"
    structure = by_name(read_reference(pinn_reference_root / "pinet"), "CH3OH_perturbed_nonpbc")
    energy, forces = pinet_energy(model_dir, structure)
    assert energy == pytest.approx(structure.energy, abs=ENERGY_TOLERANCE)
    as_kcal, kcal_forces = pinet_energy(model_dir, structure, MLEnergyUnit="kcal/mol")
    assert as_kcal == pytest.approx(energy * kcal / mol, rel=1e-12)
    np.testing.assert_allclose(kcal_forces, forces * kcal / mol, rtol=1e-10, atol=1e-12)

    hartree_dir = writable_copy(model_dir, tmp_path / "hartree")
    edit_params(hartree_dir, lambda d: d["model"]["params"].update(e_unit=Hartree))
    assert pinet_energy(hartree_dir, structure)[0] == pytest.approx(energy * Hartree, rel=1e-12)
    odd_dir = writable_copy(model_dir, tmp_path / "odd")
    edit_params(odd_dir, lambda d: d["model"]["params"].update(e_unit=2.5))
    assert pinet_energy(odd_dir, structure)[0] == pytest.approx(energy * 2.5, rel=1e-12)
    assert pinet_energy(odd_dir, structure, MLEnergyUnit="eV")[0] == pytest.approx(energy, rel=1e-12)


def test_distance_unit_bohr(pinn_reference_root: Path) -> None:
    """A model that expects Bohr sees positions/Bohr: the same as the
    Angstrom model evaluated on coordinates stretched by 1/Bohr."""
    model_dir = pinn_reference_root / "pinet" / "model"
    structure = by_name(read_reference(pinn_reference_root / "pinet"), "H2O_dimer_nonpbc")
    bohr_energy, bohr_forces = pinet_energy(model_dir, structure, MLDistanceUnit="bohr")
    stretched = ReferenceStructure("stretched", structure.atoms.copy(), 0.0, structure.forces, None)
    stretched.atoms.positions /= BOHR_TO_ANGSTROM
    energy, forces = pinet_energy(model_dir, stretched)
    assert bohr_energy == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(bohr_forces, forces / BOHR_TO_ANGSTROM, atol=1e-10)


@pytest.fixture
def broken_dir(pinn_reference_root: Path, tmp_path: Path):
    """A writable copy of a reference model directory, to break."""

    def make(name: str = "pinet") -> Path:
        return writable_copy(pinn_reference_root / name / "model", tmp_path / name)

    return make


def start_error(model_dir: Path) -> KeywordError:
    with pytest.raises(KeywordError) as error:
        create_calculator(parse_settings({"Backend": "PiNN", "ParameterDir": str(model_dir)}))
    assert error.value.keyword == "ParameterDir"
    return error.value


def test_missing_params_file_is_named(broken_dir) -> None:
    model_dir = broken_dir()
    (model_dir / "params.yml").unlink()
    assert "params.yml is missing" in start_error(model_dir).message


def test_missing_checkpoint_state_file_is_named(broken_dir) -> None:
    model_dir = broken_dir()
    (model_dir / "checkpoint").unlink()
    message = start_error(model_dir).message
    assert "checkpoint is missing" in message and "model.ckpt-20000.index" in message


def test_missing_checkpoint_data_is_named(broken_dir) -> None:
    model_dir = broken_dir()
    (model_dir / "model.ckpt-20000.data-00000-of-00001").unlink()
    assert "model.ckpt-20000.data-00000-of-00001 is missing" in start_error(model_dir).message


@pytest.mark.parametrize(
    ("model_name", "edit", "expected"),
    [
        (
            "pinet",
            lambda d: d["network"].update(name="PiNet2"),
            "network.name 'PiNet2' is not supported; supported: PiNet, BPNN",
        ),
        ("pinet", lambda d: d["model"].update(name="dipole_model"), "model.name 'dipole_model' is not supported"),
        (
            "pinet",
            lambda d: d["network"]["params"].update(basis_type="bessel"),
            "basis_type 'bessel' is not supported; supported: polynomial, gaussian",
        ),
        (
            "pinet",
            lambda d: d["network"]["params"].update(cutoff_type="f3"),
            "cutoff_type 'f3' is not supported; supported: f1, f2, hip",
        ),
        ("pinet", lambda d: d["network"]["params"].update(act="mish"), "act 'mish' is not supported"),
        ("pinet", lambda d: d["network"]["params"].update(out_pool="max"), "out_pool 'max' is not supported"),
        (
            "pinet",
            lambda d: d["network"]["params"].update(weighted=True),
            "setting(s) weighted that PiNet does not take",
        ),
        (
            "pinet",
            lambda d: d["network"]["params"].update(depth=4),
            "expected 1 scope(s) for the PI layer of interaction block 3",
        ),
        ("pinet", lambda d: d["network"]["params"].update(depth=2), "are not part of a PiNet with depth 2"),
        ("pinet", lambda d: d["network"]["params"].update(pp_nodes=[12, 11]), "params.yml (pp_nodes) implies [12, 11]"),
        (
            "bpnn",
            lambda d: d["network"]["params"]["nn_spec"].update({1: [8, 9]}),
            "params.yml (nn_spec[1] and sf_spec) implies [8, 9]",
        ),
        (
            "bpnn",
            lambda d: d["network"]["params"]["sf_spec"][0].update(type="G5"),
            "sf_spec[0].type 'G5' is not supported; supported: G2, G3, G4",
        ),
        (
            "bpnn",
            lambda d: d["network"]["params"].update(fp_range=[]),
            "fp_range must hold one [mins, maxs] pair per sf_spec entry (8)",
        ),
    ],
)
def test_unsupported_or_inconsistent_settings_are_named(broken_dir, model_name: str, edit, expected: str) -> None:
    model_dir = broken_dir(model_name)
    edit_params(model_dir, edit)
    message = start_error(model_dir).message
    assert expected in message
    assert "params.yml" in message or "model.ckpt" in message


def test_pinn_before_1_0_layout_is_refused(broken_dir) -> None:
    model_dir = broken_dir()
    (model_dir / "params.yml").write_text(
        "model_dir: old\nnetwork: PiNet\nnetwork_params: {depth: 3}\nmodel_params: {}\n"
    )
    assert "layout of PiNN before 1.0" in start_error(model_dir).message


def test_params_that_are_not_yaml_are_refused(broken_dir) -> None:
    model_dir = broken_dir()
    (model_dir / "params.yml").write_text("network: [unclosed\n")
    assert "is not plain YAML" in start_error(model_dir).message
