"""Every example input is a valid job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from mlpotential.driver.job import read_job

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.in"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_reads(path):
    job = read_job(path)
    assert len(job.atoms) > 0 and job.engine


def test_water_box_is_periodic_and_dense():
    job = read_job(next(path for path in EXAMPLES if path.name == "water_box.in"))
    assert job.atoms.pbc.all() and len(job.atoms) == 81
    assert job.atoms.get_volume() == pytest.approx(9.3**3)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_each_example_says_first_what_it_shows(path):
    assert path.read_text().startswith("# Shows")


def test_water_box_starts_relaxed_and_holds_300_kelvin():
    """From the grid it was built on, the box heated to 700-800 K under NVE;
    it now starts from a geometry relaxed with ANI-2x, with a canonical
    thermostat at 300 K."""
    job = read_job(next(path for path in EXAMPLES if path.name == "water_box.in"))
    ensemble = job.dynamics.ensemble
    assert ensemble.thermostat.type in ("Bussi", "NHC", "Langevin")
    assert ensemble.thermostat.temperature == ensemble.velocities.temperature == 300
    grid = read(EXAMPLES[0].parent / "water_box.xyz")
    assert job.atoms.get_chemical_symbols() == grid.get_chemical_symbols()
    assert np.abs(job.atoms.positions - grid.positions).max() > 0.01  # moved by the relaxation
