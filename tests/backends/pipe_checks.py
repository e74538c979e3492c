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
