"""PipeEngine against ASE in process: same numbers, geometry optimisation,
start-up errors surfaced on the first calculation."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.optimize import BFGS

from mlpotential.host.client import EngineError
from mlpotential.host.pipe_engine import PipeEngine, absolute_keywords
from mlpotential.protocol.errors import Status


def assert_close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def structures() -> list[Atoms]:
    rng = np.random.default_rng(11)
    cluster = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    cluster.center(vacuum=4.0)
    cluster.pbc = False
    periodic = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=5.0)
    slab.pbc = (True, True, False)
    alloy = bulk("Cu", "fcc", a=3.7).repeat((3, 1, 1))
    alloy.symbols[1] = "Au"
    found = [molecule("H2O"), molecule("CH3CH2OH"), cluster, periodic, slab, alloy]
    for atoms in found:
        atoms.rattle(0.05, rng=rng)
    return found


@pytest.mark.parametrize("codec", ["ubjson", "msgpack"])
def test_emt_through_the_pipe_equals_in_process(codec):
    with PipeEngine({"Backend": "ASE", "Model": "EMT"}, codec=codec) as calc:
        for atoms in structures():
            reference = atoms.copy()
            reference.calc = EMT()
            atoms.calc = calc
            assert_close(atoms.get_potential_energy(), reference.get_potential_energy())
            assert_close(atoms.get_forces(), reference.get_forces())
            if atoms.pbc.all():
                assert_close(atoms.get_stress(), reference.get_stress())
            # a second geometry of the same system goes as SetCoords (and SetLattice)
            for moved in (atoms, reference):
                moved.positions[0] += 0.03
                if moved.pbc.any():
                    moved.set_cell(moved.cell * 1.01, scale_atoms=True)
            assert_close(atoms.get_potential_energy(), reference.get_potential_energy())
            assert_close(atoms.get_forces(), reference.get_forces())


def test_lennard_jones_model():
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [1.1, 0, 0], [0.5, 0.9, 0.1]])
    reference = atoms.copy()
    reference.calc = LennardJones()
    with PipeEngine({"Model": "LennardJones"}) as calc:
        atoms.calc = calc
        assert_close(atoms.get_forces(), reference.get_forces())


def test_geometry_optimisation_through_the_pipe():
    atoms = molecule("CH4")
    atoms.rattle(0.1, rng=np.random.default_rng(5))
    reference = atoms.copy()
    reference.calc = EMT()
    BFGS(reference, logfile=None).run(fmax=0.01)
    with PipeEngine({"Model": "EMT"}) as calc:
        atoms.calc = calc
        optimizer = BFGS(atoms, logfile=None)
        assert optimizer.run(fmax=0.01, steps=200)
        assert np.abs(atoms.get_forces()).max() < 0.01
        assert abs(atoms.get_potential_energy() - reference.get_potential_energy()) < 1e-6


def test_startup_error_surfaces_on_first_calculation(tmp_path):
    missing = tmp_path / "model.npz"
    calc = PipeEngine({"Backend": "sGDML", "ParameterFile": str(missing)})
    with calc:  # Hello succeeds: the worker is alive and serving
        atoms = molecule("H2O")
        atoms.calc = calc
        with pytest.raises(EngineError) as info:
            atoms.get_potential_energy()
        assert info.value.status == Status.INVALID_ARGUMENT
        assert info.value.argument == "ParameterFile"
        assert str(missing) in info.value.message
        with pytest.raises(EngineError):  # and again: every Solve
            atoms.get_forces()


@pytest.mark.parametrize(
    ("keywords", "argument"),
    [
        ({"Backend": "Frobnicator"}, "Backend"),
        ({"Model": "EMT", "NumThreads": "0"}, "NumThreads"),
        ({"Model": "EMT", "MLEnergyUnit": "Rydberg"}, "MLEnergyUnit"),
        ({"Model": "ANI-7"}, "Model"),
    ],
)
def test_bad_keywords_name_the_keyword(keywords, argument):
    with PipeEngine(keywords) as calc:
        atoms = molecule("H2O")
        atoms.calc = calc
        with pytest.raises(EngineError) as info:
            atoms.get_potential_energy()
    assert info.value.status == Status.INVALID_ARGUMENT
    assert info.value.argument == argument
    assert argument in info.value.message


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keywords = absolute_keywords({"Backend": "sGDML", "ParameterFile": "models/m.npz"})
    assert keywords["ParameterFile"] == str(tmp_path / "models" / "m.npz")
    assert absolute_keywords({"ParameterDir": "d"}, base=tmp_path / "job")["ParameterDir"] == str(
        tmp_path / "job" / "d"
    )


def test_engine_input_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = tmp_path / "engine.in"
    job.write_text("Engine MLPotential\n  Backend ASE\n  Model LennardJones\nEndEngine\n")
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [1.2, 0, 0]])
    reference = atoms.copy()
    reference.calc = LennardJones()
    with PipeEngine(input_file="engine.in") as calc:  # relative to the host's directory
        atoms.calc = calc
        assert_close(atoms.get_potential_energy(), reference.get_potential_energy())
    job.write_text("Engine MLPotential\n  Backend ASE\n  Modle EMT\nEndEngine\n")
    with PipeEngine(input_file=job) as calc:
        atoms.calc = calc
        with pytest.raises(EngineError) as info:
            atoms.get_potential_energy()
    assert "line 3" in info.value.message and "Modle" in info.value.message


def test_stress_needs_a_3d_periodic_system():
    with PipeEngine({"Model": "EMT"}) as calc:
        slab = fcc111("Cu", size=(2, 2, 2), vacuum=4.0)
        slab.pbc = (True, True, False)
        slab.calc = calc
        with pytest.raises(EngineError) as info:
            slab.get_stress()
        assert info.value.status == Status.RUNTIME_ERROR and info.value.argument == "stressTensor"
        assert np.isfinite(slab.get_potential_energy())  # the worker goes on


def test_unsendable_periodicity_is_refused_clearly():
    atoms = bulk("Cu", cubic=True)
    atoms.pbc = (False, True, False)
    with PipeEngine({"Model": "EMT"}) as calc:
        atoms.calc = calc
        with pytest.raises(EngineError, match="first 1, 2 or 3"):
            atoms.get_potential_energy()
