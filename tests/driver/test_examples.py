"""Every example input is a valid job."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_water_box_thermalises_its_unequilibrated_box():
    """Started on a grid, the box heated to 700-800 K under NVE; a canonical
    thermostat at 300 K carries the released energy away."""
    ensemble = read_job(next(path for path in EXAMPLES if path.name == "water_box.in")).dynamics.ensemble
    assert ensemble.thermostat.type in ("Bussi", "NHC", "Langevin")
    assert ensemble.thermostat.temperature == ensemble.velocities.temperature == 300
