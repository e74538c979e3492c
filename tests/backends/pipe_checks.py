"""Checks of a backend through a real worker process (PipeEngine over named
pipes), shared by the backends' pipe tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlpotential.host.pipe_engine import EngineError, PipeEngine
from tests.backends.emt_trained_models import emt_minimum


def refused_energy(engine: PipeEngine, atoms: Atoms) -> EngineError:
    """The :class:`EngineError` with which the worker behind ``engine`` answers
    a request for the energy of ``atoms``."""
    atoms.calc = engine
    with pytest.raises(EngineError) as error:
        atoms.get_potential_energy()
    return error.value


def assert_pipe_equals_in_process(engine: PipeEngine, in_process: Calculator, atoms: Atoms) -> None:
    """Energy and forces of ``atoms`` through the worker equal those of the
    same calculator in this process (both with the same NumThreads)."""
    local = atoms.copy()
    local.calc = in_process
    atoms.calc = engine
    assert atoms.get_potential_energy() == pytest.approx(local.get_potential_energy(), rel=1e-7)
    np.testing.assert_allclose(atoms.get_forces(), local.get_forces(), rtol=0, atol=1e-5)


def one_by_one(atoms: Atoms, calculators: list[Calculator], with_stress: bool = False):
    """Energies, forces (and stresses) of ``atoms`` from each calculator in
    turn, in this process: the committee's members one by one."""
    energies, forces, stresses = [], [], []
    for calculator in calculators:
        copy = atoms.copy()
        copy.calc = calculator
        energies.append(copy.get_potential_energy())
        forces.append(copy.get_forces())
        if with_stress:
            stresses.append(copy.get_stress())
    return np.array(energies), np.array(forces), np.array(stresses)


def assert_committee(engine_atoms: Atoms, energies, forces, stresses=None) -> None:
    """The committee served by ``engine_atoms.calc`` (a PipeEngine) gives the
    members' mean and their ddof=1 standard deviations (numpy, by hand)."""
    calc = engine_atoms.calc
    assert engine_atoms.get_potential_energy() == pytest.approx(energies.mean(), rel=1e-10)
    np.testing.assert_allclose(engine_atoms.get_forces(), forces.mean(axis=0), rtol=1e-9, atol=1e-12)
    calc.calculate(engine_atoms, ["energy", "forces", "forces_std"])
    assert calc.results["energy_std"] == pytest.approx(energies.std(ddof=1), rel=1e-9)
    np.testing.assert_allclose(calc.results["forces_std"], forces.std(axis=0, ddof=1), rtol=1e-8, atol=1e-12)
    if stresses is not None and len(stresses):
        np.testing.assert_allclose(engine_atoms.get_stress(), stresses.mean(axis=0), rtol=1e-9, atol=1e-12)


def assert_bad_parameter_file_reported(engine_keywords: dict[str, str], path: Path | None, expected: str) -> None:
    """A worker started with ``engine_keywords`` (its ParameterFile ``path``,
    ``None`` when there is none) starts, and answers its first calculation
    with status 7 for ParameterFile, saying ``expected`` and naming the file."""
    with PipeEngine(engine_keywords) as engine:
        error = refused_energy(engine, emt_minimum())
    assert error.status == 7
    assert error.argument == "ParameterFile"
    assert expected in error.message
    if path is not None:
        assert str(path) in error.message


class FileToucher:
    """Pickles as a call of ``open(path, "w")``: whoever unpickles it creates
    ``path``, as a malicious model file would run its own code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def assert_pickle_warned_or_refused(engine_keywords: dict[str, str], path: Path, marker: Path, atoms: Atoms) -> None:
    """A pickled model file that creates ``marker`` when unpickled: served with
    a warning naming the file in the worker's log (AMS compatibility); refused
    with status 7 under ``--no-pickle`` and under MLPOTENTIAL_NO_PICKLE=1,
    without running its code."""
    import os

    with PipeEngine(engine_keywords) as engine:
        atoms.calc = engine
        atoms.get_potential_energy()
        log = engine.worker_log()
    assert marker.exists(), "the pickle's code should have run (AMS compatibility)"
    assert "warning:" in log and "is loaded with pickle" in log and str(path) in log
    marker.unlink()
    strict = [
        {"worker_args": ["--no-pickle"]},
        {"env": {**os.environ, "MLPOTENTIAL_NO_PICKLE": "1"}},
    ]
    for options in strict:
        with PipeEngine(engine_keywords, **options) as engine:
            error = refused_energy(engine, atoms.copy())
        assert (error.status, error.argument) == (7, "ParameterFile")
        assert "pickled model files are refused" in error.message and str(path) in error.message
        assert not marker.exists(), "a refused pickle must not run"
