"""Non-finite results are errors (status 3) that name the quantity and the
atoms, never a success: for every backend, since the worker checks them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms

from mlpotential.ase_bridge import system_message
from mlpotential.host.client import EngineError, PipeClient
from mlpotential.host.launcher import our_worker_command
from mlpotential.protocol.errors import Status
from mlpotential.worker.result_checks import non_finite_result


def overlapping_copper() -> Atoms:
    return Atoms("Cu3", positions=[(0, 0, 0), (0, 0, 0), (0, 0, 2.5)])


@pytest.mark.parametrize(("model", "quantity"), [("EMT", "gradients"), ("LennardJones", "energy")])
def test_atoms_on_top_of_each_other_give_status_3_naming_the_quantity_and_the_atoms(model, quantity) -> None:
    with PipeClient(our_worker_command("--backend", "ASE", "--model", model)) as client:
        client.hello()
        client.set_system(system_message(overlapping_copper()))
        with pytest.raises(EngineError) as error:
            client.solve(gradients=True)
        assert error.value.status == Status.RUNTIME_ERROR and error.value.argument == quantity
        assert f"non-finite {quantity}" in error.value.message
        assert "atoms 1 and 2 are 0.000 Angstrom apart" in error.value.message
        if quantity == "gradients":
            assert "atoms 1 (Cu), 2 (Cu)" in error.value.message
        client.hello()  # the worker goes on


def test_every_quantity_is_checked() -> None:
    atoms = Atoms("H3", positions=[(0, 0, 0), (0, 0, 1), (0, 0, 2)])
    finite = {"energy": 1.0, "forces": np.zeros((3, 3)), "stress": np.zeros(6), "energy_std": 0.1}
    everything = ("energy", "forces", "stress", "energy_std", "forces_std")
    assert non_finite_result(finite, atoms, everything) is None
    forces_std = np.zeros((3, 3))
    forces_std[2, 1] = np.nan
    cases = {
        "stressTensor": {**finite, "stress": np.array([0, 0, np.inf, 0, 0, 0])},
        "energyStdDev": {**finite, "energy_std": np.nan},
        "forcesStdDev": {**finite, "forces_std": forces_std},
    }
    for quantity, results in cases.items():
        name, message = non_finite_result(results, atoms, everything)
        assert name == quantity and f"non-finite {quantity}" in message
    assert "atom 3 (H)" in non_finite_result(cases["forcesStdDev"], atoms, everything)[1]
    assert non_finite_result(cases["forcesStdDev"], atoms, ("energy", "forces")) is None


def test_mlpotential_run_fails_instead_of_reporting_success(tmp_path) -> None:
    job = tmp_path / "overlap.in"
    job.write_text(
        "Task SinglePoint\nSystem\n  Atoms\n    Cu 0 0 0\n    Cu 0 0 0\n    Cu 0 0 2.5\n  End\nEnd\n"
        "Engine MLPotential\n  Backend ASE\n  Model EMT\nEndEngine\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mlpotential", "run", str(job), "--results", str(tmp_path / "results")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "non-finite gradients" in done.stderr and "Traceback" not in done.stderr
