"""The TorchANI backend through a real worker process (PipeEngine over named
pipes), against torchani and the same calculator in process, with the same
NumThreads on both sides."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.units import Bohr, Hartree

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.backends.torchani.calculator import TorchANICalculator
from mlpotential.host.pipe_engine import PipeEngine
from mlpotential.protocol.errors import Status
from tests.backends.pipe_checks import FileToucher, assert_pickle_warned_or_refused, refused_energy

MODELS = ("ANI-2x", "ANI-1ccx", "ANI-1x")
NUM_THREADS = 1


@pytest.fixture(scope="module", autouse=True)
def ani_environment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ani_data_dir: Path
) -> Iterator[Path]:
    """torchani's data dir on the shared model zoo (the workers inherit it),
    NumThreads threads here, and a user data dir (the model cache) shared by
    the TorchANI test modules of this run."""
    user_data = tmp_path_factory.getbasetemp() / "torchani-user-data"
    if not user_data.exists():
        user_data.mkdir()
        request.config.add_cleanup(lambda: shutil.rmtree(user_data, ignore_errors=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(NUM_THREADS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHANI_DATA_DIR", str(ani_data_dir))
        patch.setenv("MLPOTENTIAL_DATA_DIR", str(user_data))
        yield user_data
    torch.set_num_threads(threads)


def keywords(model: str, **extra: str) -> dict[str, str]:
    return {"Model": model, "NumThreads": str(NUM_THREADS), **extra}


def structures() -> list[tuple[str, Atoms]]:
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=11)
    box = Atoms(cell=[6.4] * 3, pbc=True)
    for index in np.ndindex(2, 2, 2):
        water = molecule("H2O")
        water.rotate(37.0 * sum(index), "z", center="COM")
        water.translate(np.array(index) * 3.2 + 0.6)
        box += water
    return [("water", molecule("H2O")), ("ethanol", ethanol), ("nitromethane", molecule("CH3NO2")), ("water box", box)]


def torchani_reference(model: torch.nn.Module, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy (Hartree) and forces (eV/Angstrom) evaluated with torchani directly."""
    species = torch.tensor(atoms.numbers).unsqueeze(0)
    coordinates = torch.tensor(atoms.positions, dtype=torch.float32).unsqueeze(0).requires_grad_(True)
    periodic = {"cell": torch.tensor(atoms.cell.array, dtype=torch.float32), "pbc": torch.tensor(atoms.pbc)}
    energy = model((species, coordinates), **(periodic if atoms.pbc.any() else {})).energies
    (gradient,) = torch.autograd.grad(energy.sum(), coordinates)
    return energy.item(), -gradient[0].double().numpy() * Hartree


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, PipeEngine]]:
    """One worker per built-in model, shared by the tests of this module."""
    started = {model: PipeEngine(keywords(model)) for model in MODELS}
    try:
        yield started
    finally:
        for engine in started.values():
            engine.close()


@pytest.mark.parametrize("model", MODELS)
def test_agrees_with_torchani_in_process(engines: dict[str, PipeEngine], model: str) -> None:
    local_calculator = create_calculator(parse_settings(keywords(model)))
    assert isinstance(local_calculator, TorchANICalculator)
    engine = engines[model]
    for name, atoms in structures():
        through_pipe, local = atoms.copy(), atoms.copy()
        through_pipe.calc, local.calc = engine, local_calculator
        energy, forces = through_pipe.get_potential_energy(), through_pipe.get_forces()

        reference_energy, reference_forces = torchani_reference(local_calculator.model, atoms)
        assert energy / Hartree == pytest.approx(reference_energy, rel=1e-7), name
        np.testing.assert_allclose(forces, reference_forces, atol=1e-5, err_msg=name)
        # The same numbers as in process, up to the wire's unit conversions.
        assert energy == pytest.approx(local.get_potential_energy(), rel=1e-13), name
        np.testing.assert_allclose(forces, local.get_forces(), rtol=1e-12, atol=1e-12, err_msg=name)

        assert engine.results["energy_std"] == pytest.approx(local_calculator.results["energy_std"], rel=1e-12)
        forces_std = engine.get_property("forces_std", through_pipe)
        local_calculator.calculate(local, ["energy", "forces", "forces_std"])
        assert forces_std.shape == (len(atoms), 3)
        np.testing.assert_allclose(forces_std, local_calculator.results["forces_std"], rtol=1e-12, atol=1e-15)
        if atoms.pbc.all():
            np.testing.assert_allclose(through_pipe.get_stress(), local.get_stress(), rtol=1e-10, atol=1e-14)


def test_ani2x_water_through_the_pipe(engines: dict[str, PipeEngine]) -> None:
    atoms = molecule("H2O")
    atoms.calc = engines["ANI-2x"]
    assert atoms.get_potential_energy() / Hartree == pytest.approx(-76.3882, abs=1e-4)


def test_unsupported_element_keeps_the_worker_serving(engines: dict[str, PipeEngine]) -> None:
    engine = engines["ANI-1x"]
    error = refused_energy(engine, molecule("CH3SH"))
    assert error.status == Status.INVALID_ARGUMENT
    assert error.argument == "atomSymbols"
    assert error.message == "ANI-1x does not cover the element S of this system; ANI-1x supports H, C, N, O"
    water = molecule("H2O")
    water.calc = engine
    assert np.isfinite(water.get_potential_energy())


@pytest.mark.parametrize(
    ("extra", "status", "argument", "text"),
    [
        ({"Device": "cuda:0"}, Status.RUNTIME_ERROR, "Device", "Device cuda:0 was asked for"),
        ({"MLEnergyUnit": "eV"}, Status.INVALID_ARGUMENT, "MLEnergyUnit", "works in Hartree"),
    ],
)
def test_start_up_errors(extra: dict[str, str], status: Status, argument: str, text: str) -> None:
    if "Device" in extra and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    atoms = molecule("H2O")
    with PipeEngine(keywords("ANI-2x", **extra)) as engine:
        error = refused_energy(engine, atoms)
    assert (error.status, error.argument) == (status, argument)
    assert text in error.message


def test_incomplete_parameter_dir(tmp_path: Path) -> None:
    (tmp_path / "ani-2x_8x.info").write_text("ani-2x_8x/missing.params\nani-2x_8x/sae_linfit.dat\nani-2x_8x/train\n8\n")
    atoms = molecule("H2O")
    with PipeEngine(keywords("ANI-2x", ParameterDir=str(tmp_path))) as engine:
        error = refused_energy(engine, atoms)
    assert (error.status, error.argument) == (Status.INVALID_ARGUMENT, "ParameterDir")
    assert "ani-2x_8x/sae_linfit.dat" in error.message


def test_custom_model_through_the_pipe(tmp_path: Path) -> None:
    built_in = create_calculator(parse_settings(keywords("ANI-1x")))
    path = tmp_path / "custom.pt"
    torch.save({"model": built_in.model}, path)
    atoms = molecule("CH3CH2OH")
    custom = {"Backend": "TorchANI", "Model": "Custom", "ParameterFile": str(path), "NumThreads": str(NUM_THREADS)}
    with PipeEngine(custom) as engine:
        atoms.calc = engine
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    built_in.calculate(atoms, ["energy", "forces"])
    assert energy == pytest.approx(built_in.results["energy"], rel=1e-13)
    np.testing.assert_allclose(forces, built_in.results["forces"], rtol=1e-12, atol=1e-12)


def test_a_pickled_custom_model_runs_with_a_warning_or_is_refused(tmp_path: Path) -> None:
    built_in = create_calculator(parse_settings(keywords("ANI-1x")))
    path, marker = tmp_path / "custom.pt", tmp_path / "code-ran"
    torch.save({"model": built_in.model, "extra": FileToucher(marker)}, path)
    custom = {"Backend": "TorchANI", "Model": "Custom", "ParameterFile": str(path), "NumThreads": str(NUM_THREADS)}
    assert_pickle_warned_or_refused(custom, path, marker, molecule("CH3CH2OH"))


def test_a_torchscript_custom_model_needs_no_pickle(tmp_path: Path) -> None:
    """TorchANI models script (our neighbour list too): saved with torch.jit.save,
    a Custom model is served in strict mode and equals the model in process."""
    built_in = create_calculator(parse_settings(keywords("ANI-1x")))
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(built_in.model), str(path))
    atoms = molecule("CH3CH2OH")
    custom = {"Backend": "TorchANI", "Model": "Custom", "ParameterFile": str(path), "NumThreads": str(NUM_THREADS)}
    with PipeEngine(custom, worker_args=["--no-pickle"]) as engine:
        atoms.calc = engine
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        assert "pickle" not in engine.worker_log()
    built_in.calculate(atoms, ["energy", "forces"])
    assert energy == pytest.approx(built_in.results["energy"], rel=1e-12)
    np.testing.assert_allclose(forces, built_in.results["forces"], rtol=1e-10, atol=1e-10)


def summary_values(path: Path) -> dict[str, str]:
    """The summary file's lines as {label: value}."""
    lines = path.read_text().splitlines()[1:]
    return {line[:38].strip(): line[38:].strip() for line in lines}


def test_summary_file_holds_the_last_geometry(tmp_path: Path) -> None:
    summary = tmp_path / "mlpotential.txt"
    water, ethanol = molecule("H2O"), molecule("CH3CH2OH")
    with PipeEngine(keywords("ANI-2x"), worker_args=["--summary", str(tmp_path)]) as engine:
        water.calc = ethanol.calc = engine
        water.get_potential_energy()
        ethanol.get_potential_energy()
        energy_std = engine.results["energy_std"]
        forces_std = engine.get_property("forces_std", ethanol) / (Hartree / Bohr)
        energy = ethanol.get_potential_energy()
        assert not summary.exists()  # written once, when the worker ends
    values = summary_values(summary)
    assert (values["Backend"], values["Model"], values["Chemical formula"]) == ("TorchANI", "ANI-2x", "C2H6O")
    assert values["Number of atoms"] == "9"
    assert float(values["Energy (Hartree)"]) == pytest.approx(energy / Hartree, abs=1e-12)
    assert float(values["Energy standard deviation (Hartree)"]) == pytest.approx(energy_std / Hartree, abs=1e-12)
    assert values["Uncertainty"].startswith("ensemble standard deviation (ddof=1 over the model's members)")
    norms = np.linalg.norm(forces_std, axis=1)
    text = summary.read_text()
    assert f"{norms.max():.12f} (atom {int(norms.argmax()) + 1})" in text
    assert f"{norms.mean():.12f}" in text


@pytest.mark.slow
def test_nve_energy_conservation_through_the_pipe(engines: dict[str, PipeEngine]) -> None:
    """Velocity Verlet, 0.5 fs, 1000 steps, 300 K initial velocities from a
    fixed seed: ethanol with ANI-2x conserves the total energy."""
    from ase import units
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = molecule("CH3CH2OH")
    thermalize_momenta(atoms, 300, rng=np.random.default_rng(42))
    atoms.calc = engines["ANI-2x"]
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    totals: list[float] = []
    dynamics.attach(lambda: totals.append(atoms.get_total_energy()), interval=1)
    dynamics.run(1000)
    per_atom = (np.array(totals) - totals[0]) / len(atoms)
    drift = np.polyfit(np.arange(len(per_atom)), per_atom, 1)[0] * (len(per_atom) - 1)
    assert abs(drift) < 0.2e-3  # eV per atom over the run
    assert np.abs(per_atom).max() < 1e-3
