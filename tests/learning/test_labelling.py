"""Labelling: real reference workers on local processes and on a local
Dask cluster; a failing calculation costs its structure only."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.emt import EMT

from mlpotential.learning.labelling import DaskLabeller, LocalLabeller, Reference
from tests.learning.structures import FAILING_REFERENCE, copper_cells, unreachable

EMT_REFERENCE = Reference(keywords={"Backend": "ASE", "Model": "EMT"})


def emt_labels(structures):
    labels = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = EMT()
        labels.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()))
    return labels


def test_local_processes_label_as_emt_does_in_order() -> None:
    structures = copper_cells(3)
    labels = LocalLabeller(EMT_REFERENCE, processes=2).label(structures)
    for label, (energy, forces, stress) in zip(labels, emt_labels(structures)):
        assert label.ok
        assert label.energy == pytest.approx(energy, abs=1e-8)
        np.testing.assert_allclose(label.forces, forces, atol=1e-8)
        np.testing.assert_allclose(label.stress, stress, atol=1e-8)


def test_a_failing_calculation_costs_one_structure() -> None:
    reference = Reference(keywords={"Backend": "ASE", "Model": "Custom", "ASECalculatorFile": str(FAILING_REFERENCE)})
    cells = copper_cells(3)
    structures = [cells[0], unreachable(cells[1]), cells[2]]
    labels = LocalLabeller(reference, processes=1).label(structures)
    assert [label.ok for label in labels] == [True, False, True]
    assert "did not converge" in labels[1].error and "\n" not in labels[1].error
    expected = emt_labels([cells[0], cells[2]])
    assert labels[0].energy == pytest.approx(expected[0][0], abs=1e-8)
    assert labels[2].energy == pytest.approx(expected[1][0], abs=1e-8)


def test_a_local_dask_cluster_labels_the_same_frames_as_local_processes() -> None:
    distributed = pytest.importorskip("distributed")
    structures = copper_cells(4)
    local = LocalLabeller(EMT_REFERENCE, processes=2).label(structures)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = DaskLabeller(EMT_REFERENCE, cluster.scheduler_address).label(structures)
    assert len(remote) == len(local) == 4
    for a, b in zip(local, remote):
        assert a.ok and b.ok
        assert a.energy == b.energy
        np.testing.assert_array_equal(a.forces, b.forces)
        np.testing.assert_array_equal(a.stress, b.stress)
