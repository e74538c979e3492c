"""The TorchANI backend in process: built-in ensembles against torchani
itself, ensemble statistics, elements, periodic systems, stress, the model
cache and Custom model files."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.units import Bohr, Hartree

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.torchani import model_cache as ani_model_cache
from mlpotential.backends.torchani.calculator import SpeciesEncoding, TorchANICalculator
from mlpotential.backends.torchani.factory import locate_model_files
from mlpotential.backends.torchani.neighbors import PERIODIC_CELL_LIST_ATOMS, SizeAdaptiveNeighbors
from mlpotential.errors import BackendUnavailableError, KeywordError, UnsupportedSystemError

MODELS = ("ANI-2x", "ANI-1ccx", "ANI-1x")


@pytest.fixture(scope="module", autouse=True)
def ani_environment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ani_data_dir: Path
) -> Iterator[Path]:
    """torchani's data dir on the shared model zoo, one thread, and a user data
    dir (the model cache) shared by the TorchANI test modules of this run.
    Yields the user data dir."""
    user_data = tmp_path_factory.getbasetemp() / "torchani-user-data"
    if not user_data.exists():
        user_data.mkdir()
        request.config.add_cleanup(lambda: shutil.rmtree(user_data, ignore_errors=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHANI_DATA_DIR", str(ani_data_dir))
        patch.setenv("MLPOTENTIAL_DATA_DIR", str(user_data))
        yield user_data
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def calculators(ani_environment: Path) -> dict[str, TorchANICalculator]:
    """The three built-in ensembles, loaded once for the module."""
    return {name: create_calculator(parse_settings({"Model": name})) for name in MODELS}


def torchani_inputs(atoms: Atoms, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    species = torch.tensor(atoms.numbers, dtype=torch.long).unsqueeze(0)
    return species, torch.tensor(atoms.positions, dtype=dtype).unsqueeze(0)


def water_box(copies: int = 2, spacing: float = 3.1) -> Atoms:
    """``copies``^3 water molecules on a cubic grid, 3D-periodic."""
    water = molecule("H2O")
    box = Atoms(cell=[copies * spacing] * 3, pbc=True)
    rng = np.random.default_rng(7)
    for index in np.ndindex(copies, copies, copies):
        molecule_copy = water.copy()
        molecule_copy.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COM")
        molecule_copy.translate(np.array(index) * spacing + 0.5)
        box += molecule_copy
    return box


def test_ani2x_water_energy(calculators: dict[str, TorchANICalculator]) -> None:
    atoms = molecule("H2O")
    atoms.calc = calculators["ANI-2x"]
    assert atoms.get_potential_energy() / Hartree == pytest.approx(-76.3882, abs=1e-4)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("formula", ["H2O", "CH3CH2OH", "CH3NO2"])
def test_agrees_with_torchani(calculators: dict[str, TorchANICalculator], name: str, formula: str) -> None:
    calculator = calculators[name]
    atoms = molecule(formula)
    atoms.rattle(0.05, seed=3)
    atoms.calc = calculator
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()

    species, coordinates = torchani_inputs(atoms)
    coordinates.requires_grad_(True)
    reference = calculator.model((species, coordinates)).energies
    (gradient,) = torch.autograd.grad(reference.sum(), coordinates)
    # The model's own Hartree number, converted in float64.
    assert energy / Hartree == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(forces, -gradient[0].double().numpy() * Hartree, atol=1e-5)

    # torchani's own ASE calculator: same forces; its energy went through a float32 eV conversion.
    peer = calculator.model.ase()
    np.testing.assert_allclose(forces, peer.get_forces(atoms), atol=1e-5)
    assert energy == pytest.approx(peer.get_potential_energy(atoms), abs=2e-3)


def test_ensemble_statistics(calculators: dict[str, TorchANICalculator]) -> None:
    calculator = calculators["ANI-2x"]
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    calculator.calculate(atoms, ["energy", "forces", "forces_std"])
    results = dict(calculator.results)

    # Members evaluated directly with torchani, in float64 so that the members'
    # totals (about -155 Ha) are not rounded to float32's 1.5e-5 Ha steps.
    model64 = copy.deepcopy(calculator.model).double()
    species, coordinates = torchani_inputs(atoms, torch.float64)
    _, member_energies, member_forces = model64.members_forces((species, coordinates))
    assert member_energies.shape == (8, 1)
    energy_std = np.std(member_energies.detach().numpy()[:, 0], ddof=1) * Hartree
    forces_std = np.std(member_forces.detach().numpy()[:, 0], axis=0, ddof=1) * Hartree
    assert results["energy_std"] == pytest.approx(energy_std, rel=5e-4)
    assert results["forces_std"].shape == (len(atoms), 3)
    np.testing.assert_allclose(results["forces_std"], forces_std, atol=5e-6)
    # ddof=1 and no division by sqrt(8): the population std would be 6.5 % smaller.
    assert results["energy_std"] > 1.05 * np.std(member_energies.detach().numpy()[:, 0]) * Hartree


def test_force_statistics_only_when_asked(calculators: dict[str, TorchANICalculator]) -> None:
    calculator = calculators["ANI-2x"]
    atoms = molecule("CH3CH2OH")
    calculator.calculate(atoms, ["energy", "forces"])
    plain = dict(calculator.results)
    assert "forces_std" not in plain and plain["energy_std"] > 0
    calculator.calculate(atoms, ["energy", "forces", "forces_std"])
    # Asking for statistics does not change the energy by a single bit; the forces are then the
    # members' mean (ensemble_forces.py): autograd's to float32 rounding.
    assert calculator.results["energy"] == plain["energy"]
    assert calculator.results["energy_std"] == plain["energy_std"]
    scale = np.abs(plain["forces"]).max()
    np.testing.assert_allclose(calculator.results["forces"], plain["forces"], rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize(
    ("name", "symbols", "element"),
    [("ANI-2x", "HBr", "Br"), ("ANI-1x", "SH2", "S"), ("ANI-1ccx", "HCl", "Cl"), ("ANI-1x", "CH3Cl", "Cl")],
)
def test_unsupported_element(calculators: dict[str, TorchANICalculator], name: str, symbols: str, element: str) -> None:
    atoms = molecule(symbols) if symbols in ("SH2", "CH3Cl") else Atoms(symbols, positions=[[0, 0, 0], [0, 0, 1.4]])
    atoms.calc = calculators[name]
    with pytest.raises(UnsupportedSystemError) as error:
        atoms.get_potential_energy()
    supported = "H, C, N, O, S, F, Cl" if name == "ANI-2x" else "H, C, N, O"
    assert error.value.message == (
        f"{name} does not cover the element {element} of this system; {name} supports {supported}"
    )
    assert error.value.argument == "atomSymbols"


def test_ani2x_covers_sulfur_and_chlorine(calculators: dict[str, TorchANICalculator]) -> None:
    atoms = molecule("CH3SH") + molecule("CH3Cl")
    atoms.positions[5:] += [5.0, 0, 0]
    atoms.calc = calculators["ANI-2x"]
    assert np.isfinite(atoms.get_potential_energy())


def test_periodic_water_box(calculators: dict[str, TorchANICalculator]) -> None:
    calculator = calculators["ANI-2x"]
    box = water_box()
    box.calc = calculator
    energy, forces = box.get_potential_energy(), box.get_forces()

    species, coordinates = torchani_inputs(box)
    cell = torch.tensor(box.cell.array, dtype=torch.float32)
    pbc = torch.tensor(box.pbc)
    reference = calculator.model((species, coordinates), cell=cell, pbc=pbc).energies
    assert energy / Hartree == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(forces, calculator.model.ase().get_forces(box), atol=1e-5)

    # Periodic images interact: the isolated cluster has another energy.
    cluster = box.copy()
    cluster.pbc = False
    cluster.calc = calculator
    assert abs(cluster.get_potential_energy() - energy) > 0.05
    # Moving atoms by a lattice vector changes nothing.
    shifted = box.copy()
    shifted.positions[::4] += box.cell[0] - box.cell[2]
    shifted.calc = calculator
    assert shifted.get_potential_energy() == pytest.approx(energy, abs=5e-3)


def all_pairs_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The model with torchani's plain all-pairs neighbour search."""
    from torchani.neighbors import AllPairs

    reference = copy.deepcopy(model)
    reference.potentials["nnp"].aev_computer.neighborlist = reference.neighborlist = AllPairs()
    return reference


def test_cell_list_gives_the_all_pairs_result(calculators: dict[str, TorchANICalculator]) -> None:
    calculator = calculators["ANI-2x"]
    reference = TorchANICalculator(all_pairs_copy(calculator.model), model_name="ANI-2x", encoding=SpeciesEncoding())
    box = water_box(copies=4)
    assert len(box) >= PERIODIC_CELL_LIST_ATOMS
    assert SizeAdaptiveNeighbors()._cell_list_fits(5.1, len(box), torch.tensor(box.cell.array), torch.tensor(box.pbc))
    slab = box.copy()
    slab.pbc = (True, True, False)
    for system in (box, slab):
        calculator.calculate(system, ["energy", "forces"])
        reference.calculate(system, ["energy", "forces"])
        assert calculator.results["energy"] == pytest.approx(reference.results["energy"], rel=1e-7)
        np.testing.assert_allclose(calculator.results["forces"], reference.results["forces"], atol=1e-5)


def test_forces_and_stress_match_finite_differences(calculators: dict[str, TorchANICalculator]) -> None:
    # float64 copy of the model: float32 energies are too coarse for finite differences.
    model64 = copy.deepcopy(calculators["ANI-2x"].model).double()
    calculator = TorchANICalculator(model64, model_name="ANI-2x (float64)", encoding=SpeciesEncoding())
    box = water_box()
    box.rattle(0.03, seed=5)
    box.calc = calculator
    calculator.calculate(box, ["energy", "forces", "stress"])
    forces, stress = calculator.results["forces"], calculator.results["stress"]
    atoms_checked = [0, 5, 13, 22]
    numerical = calculate_numerical_forces(box, eps=2e-5, iatoms=atoms_checked)
    np.testing.assert_allclose(forces[atoms_checked], numerical, atol=1e-6)
    np.testing.assert_allclose(stress, calculate_numerical_stress(box, eps=2e-5), atol=1e-7)
    assert np.abs(stress).max() > 1e-3


def test_stress_agrees_with_torchani(calculators: dict[str, TorchANICalculator]) -> None:
    calculator = calculators["ANI-1x"]
    box = water_box()
    box.calc = calculator
    peer_box = box.copy()
    peer_box.calc = calculator.model.ase()
    np.testing.assert_allclose(box.get_stress(), peer_box.get_stress(), atol=1e-6)


def test_stress_needs_a_periodic_system(calculators: dict[str, TorchANICalculator]) -> None:
    atoms = molecule("H2O")
    with pytest.raises(UnsupportedSystemError):
        calculators["ANI-2x"].calculate(atoms, ["energy", "stress"])


def test_cache_is_used_and_matches(calculators: dict[str, TorchANICalculator], ani_environment: Path) -> None:
    files = locate_model_files("ANI-1x")
    entry = (
        ani_environment
        / "cache"
        / "torchani"
        / ani_model_cache.cache_file_name("ANI-1x", ani_model_cache.parameter_digest(files))
    )
    assert entry.is_file()
    loaded = ani_model_cache.load_ani_model(files)
    assert (loaded.source, loaded.cache_file) == (ani_model_cache.SOURCE_CACHE, entry)
    built = calculators["ANI-1x"].model.state_dict()
    cached = loaded.model.state_dict()
    assert built.keys() == cached.keys()
    for key, value in built.items():
        assert torch.equal(value, cached[key]), key
    assert not any(parameter.requires_grad for parameter in loaded.model.parameters())


def test_corrupt_cache_entry_is_rebuilt(
    calculators: dict[str, TorchANICalculator], ani_environment: Path, tmp_path: Path
) -> None:
    files = locate_model_files("ANI-1ccx")
    name = ani_model_cache.cache_file_name("ANI-1ccx", ani_model_cache.parameter_digest(files))
    cache = tmp_path / "cache"
    cache.mkdir()
    # A half-written entry (as after a full disk or a killed writer).
    entry = cache / name
    entry.write_bytes((ani_environment / "cache" / "torchani" / name).read_bytes()[:100_000])
    with pytest.warns(RuntimeWarning, match="unusable"):
        rebuilt = ani_model_cache.load_ani_model(files, cache)
    assert (rebuilt.source, rebuilt.cache_file) == (ani_model_cache.SOURCE_NEUROCHEM, entry)
    again = ani_model_cache.load_ani_model(files, cache)
    assert again.source == ani_model_cache.SOURCE_CACHE
    atoms = molecule("CH4")
    reference = calculators["ANI-1ccx"].model(torchani_inputs(atoms)).energies.item()
    assert rebuilt.model(torchani_inputs(atoms)).energies.item() == reference
    assert again.model(torchani_inputs(atoms)).energies.item() == reference


def test_cache_key_follows_file_contents(shared_dir: Path, tmp_path: Path) -> None:
    zoo = shared_dir / "ani-model-zoo"
    changed = "ani-1x_8x/train5/networks/ANN-O.nnf-l3.bparam"
    copy_root = tmp_path / "zoo"
    for path in zoo.rglob("*"):
        relative = path.relative_to(zoo)
        if path.is_file() and relative.parts[0] in ("ani-1x_8x", "ani-1x_8x.info"):
            (copy_root / relative).parent.mkdir(parents=True, exist_ok=True)
            if relative.as_posix() == changed:
                data = bytearray(path.read_bytes())
                data[0] ^= 1
                (copy_root / relative).write_bytes(bytes(data))
            else:
                (copy_root / relative).symlink_to(path)
    original = ani_model_cache.parameter_digest(locate_model_files("ANI-1x", str(zoo)))
    assert ani_model_cache.parameter_digest(locate_model_files("ANI-1x", str(copy_root))) != original
    (copy_root / changed).unlink()
    (copy_root / changed).symlink_to(zoo / changed)
    assert ani_model_cache.parameter_digest(locate_model_files("ANI-1x", str(copy_root))) == original


def test_units_are_fixed_for_built_in_models(ani_environment: Path) -> None:
    with pytest.raises(KeywordError) as error:
        create_calculator(parse_settings({"Model": "ANI-2x", "MLEnergyUnit": "eV"}))
    assert error.value.keyword == "MLEnergyUnit" and "Hartree" in error.value.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_absent_cuda_is_backend_unavailable(ani_environment: Path) -> None:
    with pytest.raises(BackendUnavailableError) as error:
        create_calculator(parse_settings({"Model": "ANI-2x", "Device": "cuda:0"}))
    assert error.value.keyword == "Device"


def save_custom(path: Path, model: torch.nn.Module) -> str:
    torch.save({"model": model}, path)
    return str(path)


def test_custom_model_file(calculators: dict[str, TorchANICalculator], tmp_path: Path) -> None:
    built_in = calculators["ANI-1x"]
    path = save_custom(tmp_path / "ani1x.pt", built_in.model)
    custom = create_calculator(parse_settings({"Backend": "TorchANI", "Model": "Custom", "ParameterFile": path}))
    atoms = molecule("CH3CH2OH")
    for calculator in (built_in, custom):
        calculator.calculate(atoms, ["energy", "forces", "forces_std"])
    assert custom.results["energy"] == built_in.results["energy"]
    np.testing.assert_array_equal(custom.results["forces"], built_in.results["forces"])
    assert custom.results["energy_std"] == built_in.results["energy_std"]
    with pytest.raises(UnsupportedSystemError, match="supports H, C, N, O"):
        custom.calculate(molecule("SH2"), ["energy"])


def test_custom_model_with_element_indices(calculators: dict[str, TorchANICalculator], tmp_path: Path) -> None:
    # A torchani model that takes its own element indices (0 = H, 1 = C, 2 = N, 3 = O), one network.
    member = calculators["ANI-1x"].model[0]
    member.periodic_table_index = False
    custom = create_calculator(
        parse_settings(
            {
                "Backend": "TorchANI",
                "Model": "Custom",
                "ParameterFile": save_custom(tmp_path / "m.pt", member),
            }
        )
    )
    assert custom.encoding.codes == {1: 0, 6: 1, 7: 2, 8: 3}
    assert "energy_std" not in custom.implemented_properties
    atoms = molecule("CH3NO2")
    atoms.calc = custom
    member.periodic_table_index = True
    reference = member(torchani_inputs(atoms)).energies.item()
    assert atoms.get_potential_energy() / Hartree == pytest.approx(reference, rel=1e-12)
    assert "energy_std" not in custom.results


def test_custom_model_units(calculators: dict[str, TorchANICalculator], tmp_path: Path) -> None:
    model = calculators["ANI-2x"].model
    path = save_custom(tmp_path / "m.pt", model)
    keywords = {"Backend": "TorchANI", "Model": "Custom", "ParameterFile": path}
    custom = create_calculator(parse_settings({**keywords, "MLEnergyUnit": "kcal/mol", "MLDistanceUnit": "bohr"}))
    atoms = molecule("H2O")
    atoms.calc = custom
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()

    # The model now reads Bohr and its outputs count as kcal/mol.
    species, coordinates = torchani_inputs(Atoms(atoms.numbers, positions=atoms.positions / Bohr))
    coordinates.requires_grad_(True)
    reference = model((species, coordinates)).energies
    (gradient,) = torch.autograd.grad(reference.sum(), coordinates)
    kcal_per_mol = 0.0433641043
    assert energy == pytest.approx(reference.item() * kcal_per_mol, rel=1e-6)
    np.testing.assert_allclose(forces, -gradient[0].double().numpy() * kcal_per_mol / Bohr, rtol=1e-6, atol=1e-9)


def test_bad_custom_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 definitely not a model")
    no_model = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, no_model)
    for path, expected in ((garbage, "not a file written by torch.save"), (no_model, "'model' is a torch module")):
        with pytest.raises(KeywordError) as error:
            create_calculator(parse_settings({"Backend": "TorchANI", "Model": "Custom", "ParameterFile": str(path)}))
        assert error.value.keyword == "ParameterFile"
        assert expected in error.value.message and str(path) in error.value.message
