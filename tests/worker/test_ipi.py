"""Our worker as an i-PI client, driven by real i-PI servers: ASE's
SocketIOCalculator (UNIX socket and TCP) and i-PI itself (NVT, path
integrals, two workers on one server). Energies, forces and stress equal the
same calculator in process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator
from ase.calculators.socketio import SocketIOCalculator
from ase.units import Bohr, Hartree

from mlpotential.backends.factory import create_calculator
from mlpotential.backends.keywords import keyword_options, parse_settings
from mlpotential.protocol.ipi import UNIX_SOCKET_PREFIX
from tests.backends.torch_threads import one_thread  # noqa: F401  (autouse fixture)
from tests.worker.ipi_hosts import (
    ipi_input,
    ipi_worker_command,
    read_potentials,
    run_ipi,
    socket_name,
)

EMT = {"Backend": "ASE", "Model": "EMT"}
HDNNP = {"Backend": "HDNNP", "Model": "Cu-EMT", "NumThreads": "1"}
ENGINES = {"EMT": EMT, "HDNNP Cu-EMT": HDNNP}


def in_process(keywords: dict[str, str]) -> Calculator:
    return create_calculator(parse_settings(keywords))


@pytest.fixture
def unix_name() -> Iterator[str]:
    """A fresh socket name; its /tmp/ipi_NAME file is gone afterwards, whatever the server did."""
    name = socket_name()
    yield name
    path = Path(UNIX_SOCKET_PREFIX + name)
    if path.exists():
        path.unlink()


def copper(rattle_seed: int = 1) -> Atoms:
    """27 Cu atoms in a triclinic (fcc primitive, 3x3x3) cell, displaced from the lattice."""
    atoms = bulk("Cu", "fcc", a=3.62).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=rattle_seed)
    return atoms


def socketio_launcher(
    structure: Path, keywords: dict[str, str], cwd: Path, env: dict[str, str] | None = None
) -> Callable[..., subprocess.Popen[bytes]]:
    """A SocketIOCalculator ``launch_client`` that starts our worker."""

    def launch(atoms: Atoms, properties: object, port: int | None, unixsocket: str | None) -> subprocess.Popen[bytes]:
        address = f"unix:{unixsocket}" if unixsocket is not None else f"localhost:{port}"
        command = ipi_worker_command(address, structure, *keyword_options(keywords), "--connect-timeout", "60")
        return subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL)

    return launch


def geometries(atoms: Atoms) -> Iterator[Atoms]:
    """``atoms`` itself, moved, strained and moved again."""
    rng = np.random.default_rng(5)
    yield atoms
    for strain in (1.0, 1.01, 0.995):
        atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
        atoms.set_cell(atoms.cell * strain, scale_atoms=True)
        yield atoms


def assert_same(actual: np.ndarray | float, expected: np.ndarray | float) -> None:
    """Equal to 1e-10 relative (of the largest component, for arrays)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


# ------------------------------------------------------------------ ASE's SocketIOCalculator
@pytest.mark.parametrize("engine", ENGINES)
def test_socketio_calculator_drives_the_worker(engine: str, tmp_path: Path, unix_name: str) -> None:
    keywords = ENGINES[engine]
    atoms = copper()
    structure = tmp_path / "structure.extxyz"
    atoms.write(structure)
    reference = in_process(keywords)
    with SocketIOCalculator(
        unixsocket=unix_name, launch_client=socketio_launcher(structure, keywords, tmp_path)
    ) as calc:
        atoms.calc = calc
        for geometry in geometries(atoms):
            expected = geometry.copy()
            expected.calc = reference
            assert_same(geometry.get_potential_energy(), expected.get_potential_energy())
            assert_same(geometry.get_forces(), expected.get_forces())
            assert_same(geometry.get_stress(), expected.get_stress())


def test_socketio_over_tcp_without_periodicity(tmp_path: Path) -> None:
    """A molecule (no cell, no stress) over TCP."""
    atoms = molecule("CH3CH2OH")
    structure = tmp_path / "ethanol.xyz"
    atoms.write(structure)
    with socket.socket() as probe:  # a free port
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    reference = in_process(EMT)
    with SocketIOCalculator(port=port, launch_client=socketio_launcher(structure, EMT, tmp_path)) as calc:
        atoms.calc = calc
        for geometry in geometries(atoms):
            geometry.pbc = False
            expected = geometry.copy()
            expected.calc = reference
            assert_same(geometry.get_potential_energy(), expected.get_potential_energy())
            assert_same(geometry.get_forces(), expected.get_forces())


def test_uncertainty_travels_in_the_extra_bytes(tmp_path: Path, ani_data_dir: Path) -> None:
    """ANI-2x's ensemble standard deviations arrive as JSON (Hartree,
    Hartree/Bohr), and the summary file is written as by the pipe worker."""
    keywords = {"Backend": "TorchANI", "Model": "ANI-2x", "NumThreads": "1"}
    env = {**os.environ, "TORCHANI_DATA_DIR": str(ani_data_dir), "MLPOTENTIAL_DATA_DIR": str(tmp_path / "data")}
    atoms = molecule("CH3CH2OH")
    structure = tmp_path / "ethanol.xyz"
    atoms.write(structure)
    name = socket_name()
    launcher = socketio_launcher(structure, keywords, tmp_path, env)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCHANI_DATA_DIR", str(ani_data_dir))
        patch.setenv("MLPOTENTIAL_DATA_DIR", str(tmp_path / "data"))
        reference = in_process(keywords)
    with SocketIOCalculator(unixsocket=name, launch_client=launcher) as calc:
        atoms.calc = calc
        energy = atoms.get_potential_energy()
        extra = json.loads(bytes(calc.results["morebytes"]))
    expected = atoms.copy()
    # One torch thread (one_thread), as in the worker (NumThreads 1): float32 sums in the same order.
    reference.calculate(expected, ["energy", "forces", "forces_std"])
    assert_same(energy, reference.results["energy"])
    assert extra["energy_std"] == pytest.approx(reference.results["energy_std"] / Hartree, rel=1e-10)
    np.testing.assert_allclose(
        np.array(extra["forces_std"]), reference.results["forces_std"] * Bohr / Hartree, rtol=1e-8, atol=1e-12
    )
    summary = (tmp_path / "mlpotential.txt").read_text()
    assert "Energy standard deviation (Hartree)" in summary and "Number of atoms                       9" in summary


# ------------------------------------------------------------------ i-PI itself
def frame_energies(directory: Path, bead: int, keywords: dict[str, str]) -> np.ndarray:
    """In-process energies (eV) of every frame i-PI wrote for ``bead``."""
    calculator = in_process(keywords)
    energies = []
    for frame in ase.io.read(directory / f"sim.pos_{bead}.extxyz", index=":"):
        frame.calc = calculator
        energies.append(frame.get_potential_energy())
    return np.array(energies)


def assert_potentials_match(directory: Path, beads: int, steps: int, keywords: dict[str, str]) -> None:
    """i-PI's per-bead potentials (Hartree, 8 digits) equal in-process
    energies of its frames, and ``potential`` is their mean."""
    potentials = read_potentials(directory)
    assert potentials.shape == (steps + 1, beads + 1)
    for bead in range(beads):
        expected = frame_energies(directory, bead, keywords)
        np.testing.assert_allclose(potentials[:, 1 + bead] * Hartree, expected, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(potentials[:, 0], potentials[:, 1:].mean(axis=1), rtol=1e-7)


def copper_structure(directory: Path) -> Path:
    structure = directory / "copper.extxyz"
    atoms = bulk("Cu", cubic=True, a=3.61).repeat((2, 2, 2))
    atoms.rattle(0.02, seed=3)
    atoms.write(structure)
    return structure


def test_ipi_nvt(tmp_path: Path, unix_name: str) -> None:
    """The worker starts first and keeps trying until i-PI listens (see run_ipi)."""
    structure = copper_structure(tmp_path)
    steps = 20
    server, (client,) = run_ipi(
        ipi_input(unix_name, structure, steps),
        tmp_path,
        [ipi_worker_command(f"unix:{unix_name}", structure, *keyword_options(EMT))],
    )
    assert server.returncode == 0, server.log
    assert client.returncode == 0, client.log
    assert f"the server said EXIT after {steps + 1} geometries" in client.log
    assert_potentials_match(tmp_path, 1, steps, EMT)


def test_ipi_path_integrals_four_beads(tmp_path: Path, unix_name: str) -> None:
    """i-PI asks for four geometries per step, one per bead."""
    structure = copper_structure(tmp_path)
    steps = 8
    server, (client,) = run_ipi(
        ipi_input(unix_name, structure, steps, beads=4),
        tmp_path,
        [ipi_worker_command(f"unix:{unix_name}", structure, *keyword_options(HDNNP))],
    )
    assert server.returncode == 0, server.log
    assert client.returncode == 0, client.log
    assert f"after {4 * (steps + 1)} geometries" in client.log
    assert_potentials_match(tmp_path, 4, steps, HDNNP)


def test_two_workers_serve_one_ipi_server(tmp_path: Path, unix_name: str) -> None:
    structure = copper_structure(tmp_path)
    steps = 10
    command = ipi_worker_command(f"unix:{unix_name}", structure, *keyword_options(EMT))
    server, clients = run_ipi(ipi_input(unix_name, structure, steps, beads=4), tmp_path, [command, command])
    assert server.returncode == 0, server.log
    served = []
    for client in clients:
        assert client.returncode == 0, client.log
        served.append(int(client.log.split("the server said EXIT after ")[1].split()[0]))
    assert min(served) > 0, served
    assert sum(served) == 4 * (steps + 1)
    assert_potentials_match(tmp_path, 4, steps, EMT)


def test_worker_help_names_the_ipi_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlpotential", "worker", "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--ipi ADDRESS", "--structure FILE", "--connect-timeout SECONDS", "--no-forces-std"):
        assert option in result.stdout
