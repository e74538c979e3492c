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
