"""Backend HDNNP through a real worker process (PipeEngine over named
pipes): the shipped Cu-EMT model and a Custom model file give the in-process
calculator's energies, forces and stress (same NumThreads); bad files and
unknown elements come back as statuses while the worker keeps serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111
from ase.cluster import Icosahedron
from ase.optimize import BFGS

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.host.pipe_engine import EngineError, PipeEngine

NUM_THREADS = "1"


def copper_structures() -> list[Atoms]:
    cell = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 2, 2))
    slab = fcc111("Cu", (3, 3, 3), vacuum=6.0)
    cluster = Icosahedron("Cu", 2)
    for k, atoms in enumerate((cell, slab, cluster)):
        atoms.rattle(0.07, seed=10 + k)
    return [cell, slab, cluster]


def assert_same(atoms: Atoms, engine: PipeEngine, in_process, stress: bool) -> None:
    local = atoms.copy()
    local.calc = in_process
    atoms.calc = engine
    assert atoms.get_potential_energy() == pytest.approx(local.get_potential_energy(), rel=1e-7)
    np.testing.assert_allclose(atoms.get_forces(), local.get_forces(), rtol=0, atol=1e-5)
    if stress:
        np.testing.assert_allclose(atoms.get_stress(), local.get_stress(), rtol=0, atol=1e-7)


def test_shipped_model_through_the_pipe_equals_in_process() -> None:
    keywords = {"Backend": "HDNNP", "Model": "Cu-EMT", "NumThreads": NUM_THREADS}
    in_process = create_calculator(parse_settings(keywords))
    with PipeEngine(keywords) as engine:
        for atoms in copper_structures():
            assert_same(atoms, engine, in_process, stress=bool(atoms.pbc.all()))
        # a relaxation through the pipe ends where the in-process one ends
        cluster = copper_structures()[2]
        cluster.calc = engine
        assert BFGS(cluster, logfile=None).run(fmax=0.02, steps=200)
        local = copper_structures()[2]
        local.calc = in_process
        assert BFGS(local, logfile=None).run(fmax=0.02, steps=200)
        assert cluster.get_potential_energy() == pytest.approx(local.get_potential_energy(), abs=1e-6)


def test_custom_model_file_through_the_pipe(small_model: Path) -> None:
    keywords = {"Backend": "HDNNP", "ParameterFile": str(small_model), "NumThreads": NUM_THREADS}
    in_process = create_calculator(parse_settings(keywords))
    with PipeEngine(keywords) as engine:
        for atoms in copper_structures()[:2]:
            assert_same(atoms, engine, in_process, stress=False)
        # an element the model does not know: status 7, and the worker keeps serving
        silver = copper_structures()[0]
        silver[0].symbol = "Ag"
        silver.calc = engine
        with pytest.raises(EngineError) as error:
            silver.get_potential_energy()
        assert "Ag" in error.value.message
        assert_same(copper_structures()[2], engine, in_process, stress=False)


def test_bad_parameter_file_is_reported_on_first_calculation(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    with PipeEngine({"Backend": "HDNNP", "ParameterFile": str(broken), "NumThreads": NUM_THREADS}) as engine:
        atoms = copper_structures()[2]
        atoms.calc = engine
        with pytest.raises(EngineError) as error:
            atoms.get_potential_energy()
    assert error.value.status == 7
    assert error.value.argument == "ParameterFile"
    assert "broken.pt" in error.value.message
