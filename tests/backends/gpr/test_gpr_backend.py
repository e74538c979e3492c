"""Backend GPR: a model file saved by ``mlpotential gpr`` served through the
registry in process and through a real worker (PipeEngine), with its energy
uncertainty as energy_std / energyStdDev; bad files and foreign systems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.units import Hartree

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.errors import KeywordError, UnsupportedSystemError
from mlpotential.host.pipe_engine import EngineError, PipeEngine

NUM_THREADS = "1"


def keywords(path: Path, **extra: str) -> dict[str, str]:
    return {"Backend": "GPR", "ParameterFile": str(path), "NumThreads": NUM_THREADS, **extra}


def structures(model, count: int, seed: int) -> list[Atoms]:
    """Training structures of ``model`` displaced by 0.02 Angstrom."""
    rng = np.random.default_rng(seed)
    subset = model.subset
    return [
        Atoms(
            subset.symbols,
            positions=subset.positions[i] + rng.normal(0, 0.02, subset.positions[i].shape),
            cell=None if subset.cells is None else subset.cells[i],
            pbc=subset.periodic,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("model_name", ["li_ec_model", "h2_model"])
def test_in_process_values_are_the_models_predictions(model_name: str, request) -> None:
    model = request.getfixturevalue(model_name)
    calculator = create_calculator(parse_settings(keywords(model.path)))
    atoms = structures(model, 1, seed=1)[0]
    atoms.calc = calculator
    prediction = model.gp.predict(atoms.positions[None], None if not model.subset.periodic else atoms.cell.array[None])
    assert atoms.get_potential_energy() == pytest.approx(prediction.energies[0], rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), prediction.forces[0], rtol=1e-9, atol=1e-9)
    assert calculator.results["energy_std"] == pytest.approx(prediction.energy_std[0], rel=1e-3)
    assert "forces_std" not in calculator.results
    forces_std = calculator.get_property("forces_std", atoms)
    np.testing.assert_allclose(forces_std, prediction.forces_std[0], rtol=1e-3, atol=1e-12)


def test_model_units_scale_the_results(li_ec_model) -> None:
    """A model trained in eV read as if it were in Hartree: energies,
    forces and uncertainties grow by eV/Hartree."""
    atoms = structures(li_ec_model, 1, seed=2)[0]
    plain = create_calculator(parse_settings(keywords(li_ec_model.path)))
    hartree = create_calculator(parse_settings(keywords(li_ec_model.path, MLEnergyUnit="Hartree")))
    plain.calculate(atoms, ["energy", "forces"])
    hartree.calculate(atoms, ["energy", "forces"])
    assert hartree.results["energy"] == pytest.approx(plain.results["energy"] * Hartree, rel=1e-12)
    np.testing.assert_allclose(hartree.results["forces"], plain.results["forces"] * Hartree, rtol=1e-12)
    assert hartree.results["energy_std"] == pytest.approx(plain.results["energy_std"] * Hartree, rel=1e-12)


def test_a_system_of_another_composition_is_refused(li_ec_model) -> None:
    calculator = create_calculator(parse_settings(keywords(li_ec_model.path)))
    atoms = structures(li_ec_model, 1, seed=3)[0][:-1]
    with pytest.raises(
        UnsupportedSystemError,
        match=r"no GPR model for this system .*45 atoms.*Models: C3H4Li36O3 \(46 atoms, periodic\)",
    ):
        calculator.calculate(atoms, ["energy"])


def test_files_that_are_not_gpr_models_are_keyword_errors(tmp_path: Path, li_ec_model) -> None:
    not_safetensors = tmp_path / "model.txt"
    not_safetensors.write_text("hello")
    foreign = tmp_path / "foreign.safetensors"
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(foreign))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(li_ec_model.path.read_bytes()[:200])
    for path, message in (
        (not_safetensors, "cannot read GPR model file"),
        (foreign, "is not a GPR model written by mlpotential gpr"),
        (truncated, "cannot read GPR model file"),
    ):
        with pytest.raises(KeywordError, match=message) as caught:
            create_calculator(parse_settings(keywords(path)))
        assert caught.value.keyword == "ParameterFile" and str(path) in caught.value.message


def test_through_the_pipe_equals_in_process(li_ec_model) -> None:
    in_process = create_calculator(parse_settings(keywords(li_ec_model.path)))
    with PipeEngine(keywords(li_ec_model.path)) as engine:
        for atoms in structures(li_ec_model, 3, seed=4):
            local = atoms.copy()
            local.calc = in_process
            atoms.calc = engine
            assert atoms.get_potential_energy() == pytest.approx(local.get_potential_energy(), rel=1e-12)
            np.testing.assert_allclose(atoms.get_forces(), local.get_forces(), rtol=1e-10, atol=1e-10)
            assert engine.results["energy_std"] == pytest.approx(in_process.results["energy_std"], rel=1e-10)
            assert engine.results["energy_std"] > 0
        forces_std = engine.get_property("forces_std", atoms)
        np.testing.assert_allclose(forces_std, in_process.get_property("forces_std", local), rtol=1e-10, atol=1e-14)

        foreign = atoms[:-1]
        foreign.calc = engine
        with pytest.raises(EngineError, match="no GPR model for this system") as caught:
            foreign.get_potential_energy()
        assert caught.value.status == 7


def test_a_bad_model_file_through_the_pipe_is_status_7(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    with PipeEngine(keywords(path)) as engine:
        atoms.calc = engine
        with pytest.raises(EngineError) as caught:
            atoms.get_potential_energy()
    assert caught.value.status == 7 and "ParameterFile" in caught.value.message
