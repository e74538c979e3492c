"""The HDNNP calculator: forces are minus the finite-difference gradient of
the energy, stress is the strain derivative, energies are invariant under
rigid motions; the backend factory reads model files and reports bad ones
as keyword errors; model files load without unpickling code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc100
from ase.cluster import Icosahedron

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.hdnnp.calculator import HDNNPCalculator
from mlpotential.backends.hdnnp.factory import built_in_model_path
from mlpotential.backends.hdnnp.model_file import ModelFileError, load_model, read_metadata, save_model
from mlpotential.backends.keywords import parse_settings
from mlpotential.errors import KeywordError, UnsupportedSystemError
from tests.backends.calculator_checks import central_difference_forces, central_difference_stress


def structures() -> dict[str, Atoms]:
    cell = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    slab = fcc100("Cu", (2, 2, 3), vacuum=5.0)
    cluster = Icosahedron("Cu", 2)
    for k, atoms in enumerate((cell, slab, cluster)):
        atoms.rattle(0.08, seed=k)
    return {"bulk": cell, "slab": slab, "cluster": cluster}


@pytest.mark.parametrize("name", ["bulk", "slab", "cluster"])
def test_forces_are_minus_the_energy_gradient(small_model: Path, name: str) -> None:
    calculator = HDNNPCalculator.from_file(small_model)
    atoms = structures()[name]
    atoms.calc = calculator
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0.05
    some = np.random.default_rng(0).choice(len(atoms), size=5, replace=False)
    np.testing.assert_allclose(
        forces[some], central_difference_forces(calculator, atoms, 1e-4, some), rtol=0, atol=1e-4
    )
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)


def test_stress_is_the_strain_derivative(small_model: Path) -> None:
    atoms = structures()["bulk"]
    atoms.set_cell(
        atoms.cell.array @ np.array([[1.02, 0.01, 0.0], [0.0, 0.99, 0.02], [0.0, 0.0, 1.01]]), scale_atoms=True
    )
    atoms.calc = HDNNPCalculator.from_file(small_model)
    stress = atoms.get_stress(voigt=False)
    numerical = central_difference_stress(atoms.calc, atoms)
    assert np.abs(stress).max() > 1e-3
    np.testing.assert_allclose(stress, numerical, rtol=0, atol=1e-6)


def test_rigid_motions_change_nothing(small_model: Path) -> None:
    calculator = HDNNPCalculator.from_file(small_model)
    cluster = structures()["cluster"]
    cluster.calc = calculator
    energy, forces = cluster.get_potential_energy(), cluster.get_forces()
    rotation = Atoms(cluster)
    rotation.rotate(37.0, (1.0, 2.0, -0.5), center="COM")
    rotation.translate([3.0, -2.0, 11.0])
    rotation.calc = calculator
    assert rotation.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    matrix = np.linalg.lstsq(
        cluster.positions - cluster.positions.mean(0), rotation.positions - rotation.positions.mean(0), rcond=None
    )[0]
    np.testing.assert_allclose(rotation.get_forces(), forces @ matrix, atol=1e-9)

    crystal = structures()["bulk"]
    crystal.calc = calculator
    shifted = crystal.copy()
    shifted.positions += crystal.cell.array[0] * 2 - crystal.cell.array[2]  # whole lattice vectors
    shifted.calc = calculator
    assert shifted.get_potential_energy() == pytest.approx(crystal.get_potential_energy(), abs=1e-10)


def test_unknown_element_and_stress_of_a_cluster_are_refused(small_model: Path) -> None:
    calculator = HDNNPCalculator.from_file(small_model)
    atoms = bulk("Cu", cubic=True)
    atoms[0].symbol = "Ag"
    atoms.calc = calculator
    with pytest.raises(UnsupportedSystemError, match="Ag"):
        atoms.get_potential_energy()
    cluster = structures()["cluster"]
    cluster.calc = calculator
    with pytest.raises(UnsupportedSystemError, match="periodic"):
        cluster.get_stress()


def test_backend_factory_and_units(small_model: Path) -> None:
    atoms = structures()["slab"]
    atoms.calc = create_calculator(parse_settings({"Backend": "HDNNP", "ParameterFile": str(small_model)}))
    in_ev = atoms.get_potential_energy()
    forces_ev = atoms.get_forces()
    direct = HDNNPCalculator.from_file(small_model)
    assert direct.get_potential_energy(atoms.copy()) == pytest.approx(in_ev, rel=1e-14)
    # the file records eV and Angstrom: units that say so are accepted, others refused
    # (they used to scale the energy silently, by 0.0434 for kcal/mol)
    atoms.calc = create_calculator(
        parse_settings({"Backend": "HDNNP", "ParameterFile": str(small_model), "MLEnergyUnit": "eV"})
    )
    assert atoms.get_potential_energy() == pytest.approx(in_ev, rel=1e-14)
    np.testing.assert_allclose(atoms.get_forces(), forces_ev, rtol=1e-14)
    for keyword, unit in (("MLEnergyUnit", "kcal/mol"), ("MLDistanceUnit", "bohr")):
        with pytest.raises(KeywordError, match="works in eV and angstrom") as error:
            create_calculator(parse_settings({"Backend": "HDNNP", "ParameterFile": str(small_model), keyword: unit}))
        assert error.value.keyword == keyword and str(small_model) in error.value.message


def test_shipped_model_loads_through_the_factory() -> None:
    metadata = read_metadata(built_in_model_path("Cu-EMT"))
    assert metadata["elements"] == ["Cu"]
    calculator = create_calculator(parse_settings({"Model": "Cu-EMT"}))
    assert isinstance(calculator, HDNNPCalculator)


def test_bad_model_files_are_keyword_errors(tmp_path: Path) -> None:
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("hello")
    with pytest.raises(KeywordError, match="ParameterFile") as error:
        create_calculator(parse_settings({"Backend": "HDNNP", "ParameterFile": str(not_a_model)}))
    assert "notes.pt" in error.value.message

    other_tensors = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, other_tensors)
    with pytest.raises(ModelFileError, match="not an HDNNP model"):
        load_model(other_tensors)


class _Payload:
    """Unpickling this would run code: a model file must never do that."""

    def __reduce__(self):
        return (Path("/tmp/mlpotential-hdnnp-pickle-ran").touch, ())


def test_loading_never_unpickles_code(tmp_path: Path) -> None:
    marker = Path("/tmp/mlpotential-hdnnp-pickle-ran")
    marker.unlink(missing_ok=True)
    hostile = tmp_path / "hostile.pt"
    torch.save({"metadata": "{}", "tensors": {}, "extra": _Payload()}, hostile, pickle_module=pickle)
    with pytest.raises(ModelFileError):
        load_model(hostile)
    assert not marker.exists()


def test_save_and_load_reproduce_the_model(small_model: Path, tmp_path: Path) -> None:
    model = load_model(small_model)
    copy = save_model(model, tmp_path / "copy.pt", training={"note": "copy"})
    atoms = structures()["bulk"]
    first = HDNNPCalculator(model).get_potential_energy(atoms.copy())
    second = HDNNPCalculator(load_model(copy)).get_potential_energy(atoms.copy())
    assert first == second
    metadata = read_metadata(copy)
    assert metadata["format"] == "mlpotential-hdnnp" and metadata["units"] == {"energy": "eV", "distance": "angstrom"}
    assert metadata["training"] == {"note": "copy"}


def test_lone_atom_and_empty_system(small_model: Path) -> None:
    calculator = HDNNPCalculator.from_file(small_model)
    lone = Atoms("Cu")
    lone.calc = calculator
    model = load_model(small_model)
    # no neighbours: zero descriptors, the element's network at the origin
    features = torch.zeros((1, model.descriptor.n_features), dtype=torch.float64)
    with torch.no_grad():
        expected = float(model.atomic_energies(features, torch.zeros(1, dtype=torch.long)))
    assert lone.get_potential_energy() == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(lone.get_forces(), np.zeros((1, 3)))
    empty = Atoms()
    empty.calc = calculator
    assert empty.get_potential_energy() == 0.0
    assert empty.get_forces().shape == (0, 3)
