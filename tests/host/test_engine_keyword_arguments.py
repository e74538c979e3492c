"""Engine keywords as PipeEngine's keyword arguments; relative model paths of
a worker started by any host resolve against the host's directory; a worker
started by hand says what it is for."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.io import write

from mlpotential import PipeEngine
from mlpotential.units import HARTREE_TO_EV

LJ_CALCULATOR = textwrap.dedent(
    """
    import json
    from ase.calculators.lj import LennardJones

    def get_calculator(parameter_file=None):
        return LennardJones(rc=6.0, **json.load(open(parameter_file)))
    """
)
LJ_PARAMETERS = {"sigma": 1.1, "epsilon": 0.3}


def test_backend_and_model_given_as_arguments_choose_the_engine() -> None:
    water = molecule("H2O")
    expected = EMT().get_potential_energy(water)
    with PipeEngine(Backend="ASE", model="emt") as engine:  # any case, as in AMS input
        water.calc = engine
        assert water.get_potential_energy() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"Bakend": "ASE"}, "unknown keyword argument 'Bakend'; engine keywords: Backend, Model"),
        ({"model": "EMT", "MODEL": "LennardJones"}, "engine keyword Model twice"),
    ],
)
def test_unknown_or_repeated_keyword_arguments_are_refused(arguments: dict[str, str], fragment: str) -> None:
    with pytest.raises(TypeError, match=fragment):
        PipeEngine(**arguments)


def test_a_keyword_in_the_dictionary_and_as_an_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="engine keyword Model twice"):
        PipeEngine({"Model": "EMT"}, model="EMT")


def test_relative_model_paths_of_a_client_s_worker_are_the_host_s(tmp_path: Path) -> None:
    (tmp_path / "my_lj.py").write_text(LJ_CALCULATOR)
    (tmp_path / "lj.json").write_text(json.dumps(LJ_PARAMETERS))
    water = molecule("H2O")
    write(tmp_path / "water.xyz", water)
    worker = (
        f"{sys.executable} -m mlpotential worker --backend ASE --model Custom "
        "--ase-calculator-file my_lj.py --parameter-file lj.json"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mlpotential", "client", "--worker", worker, "water.xyz", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    expected = LennardJones(rc=6.0, **LJ_PARAMETERS).get_potential_energy(water) / HARTREE_TO_EV
    assert json.loads(done.stdout)["energy"] == pytest.approx(expected, rel=1e-9)


def test_a_worker_started_by_hand_says_what_it_is_for(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlpotential", "worker", "--model", "EMT"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "a worker serves a host" in lines[0] and "mlpotential run" in lines[0] and "--ipi" in lines[0]
    assert list(tmp_path.iterdir()) == []  # it made nothing there
