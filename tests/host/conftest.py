"""Fixtures for tests that run real workers."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from mlpotential.ase_bridge import system_message
from mlpotential.host.launcher import our_worker_command


@pytest.fixture
def emt_worker() -> list[str]:
    """The command line of our worker serving ASE's EMT."""
    return our_worker_command("--backend", "ASE", "--model", "EMT")


@pytest.fixture
def water_system():
    """SetSystem of a slightly distorted water molecule (Bohr)."""
    atoms = molecule("H2O")
    atoms.positions += np.random.default_rng(3).normal(scale=0.02, size=atoms.positions.shape)
    return system_message(atoms)
