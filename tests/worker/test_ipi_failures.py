"""Our i-PI client against servers that misbehave (a scripted peer sending
exactly the bytes each case needs), addresses nobody listens on and set-ups
that cannot work: every case ends the worker with a one-line message and
its exit status, never a hang and never a traceback."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.units import Bohr, Hartree

from mlpotential.host.launcher import our_worker_command
from tests.worker.ipi_hosts import Finished, ScriptedServer, ipi_worker_command, socket_name, start

EMT_OPTIONS = ("--backend", "ASE", "--model", "EMT")


@pytest.fixture
def copper(tmp_path: Path) -> tuple[Atoms, Path]:
    """32 Cu atoms (a rattled cubic cell) and the structure file that names them."""
    atoms = bulk("Cu", cubic=True, a=3.61).repeat((2, 2, 2))
    atoms.rattle(0.03, seed=2)
    path = tmp_path / "copper.extxyz"
    atoms.write(path)
    return atoms, path


def serve_script(server: ScriptedServer, structure: Path, tmp_path: Path, script, *options: str) -> Finished:
    """Start our worker against ``server``, run ``script(server)`` once it
    connected, close the server's side and return how the worker ended."""
    worker = start(ipi_worker_command(server.address, structure, *EMT_OPTIONS, *options), tmp_path)
    try:
        server.accept()
        script(server)
    finally:
        server.close()
        finished = worker.finish()
    assert "Traceback" not in finished.log, finished.log
    return finished


def handshake(server: ScriptedServer) -> None:
    """STATUS, INIT, STATUS as i-PI starts a client."""
    assert server.status() == "NEEDINIT"
    server.init(b"some parameters")
    assert server.status() == "READY"


def bohr(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    return atoms.cell.array / Bohr, atoms.positions / Bohr


# ------------------------------------------------------------------ a well-behaved exchange, byte by byte
def test_scripted_exchange(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    """The statuses in order, FORCEREADY's layout and values, and EXIT."""
    atoms, structure = copper
    answers = []

    def script(server: ScriptedServer) -> None:
        handshake(server)
        server.send(server.posdata(*bohr(atoms)))
        assert server.status() == "HAVEDATA"
        server.header("GETFORCE")
        assert server.receive(12) == b"FORCEREADY  "
        energy = np.frombuffer(server.receive(8), np.float64)[0]
        (count,) = np.frombuffer(server.receive(4), np.int32)
        forces = np.frombuffer(server.receive(24 * count), np.float64).reshape(count, 3)
        virial = np.frombuffer(server.receive(72), np.float64).reshape(3, 3)
        (extra_length,) = np.frombuffer(server.receive(4), np.int32)
        answers.append((energy, count, forces, virial, json.loads(server.receive(extra_length))))
        assert server.status() == "READY"
        server.header("EXIT")

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 0, finished.log
    assert "the server said EXIT after 1 geometry" in finished.log
    energy, count, forces, virial, extra = answers[0]
    atoms.calc = EMT()
    assert count == len(atoms)
    assert energy * Hartree == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(forces * Hartree / Bohr, atoms.get_forces(), atol=1e-12)
    expected_virial = -atoms.get_stress(voigt=False) * atoms.get_volume() / Hartree
    np.testing.assert_allclose(virial, expected_virial.T, atol=1e-14)
    assert extra == {}


# ------------------------------------------------------------------ servers that break the conversation
def test_server_closes_in_the_middle_of_a_step(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    atoms, structure = copper

    def script(server: ScriptedServer) -> None:
        handshake(server)
        server.send(server.posdata(*bohr(atoms)))
        assert server.status() == "HAVEDATA"

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 2, finished.log
    assert "the server closed the connection in the middle of a step, before GETFORCE" in finished.log


def test_server_closes_in_the_middle_of_a_message(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    atoms, structure = copper

    def script(server: ScriptedServer) -> None:
        handshake(server)
        server.send(server.posdata(*bohr(atoms))[:200])

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 2, finished.log
    assert "the server closed the connection in the middle of POSDATA" in finished.log


def test_posdata_with_another_atom_count(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    atoms, structure = copper

    def script(server: ScriptedServer) -> None:
        handshake(server)
        cell, positions = bohr(atoms[:5])
        server.send(server.posdata(cell, positions))

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 2, finished.log
    assert "the server sent 5 atoms in POSDATA; this worker's structure has 32" in finished.log


def test_garbage_bytes(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    _, structure = copper

    def script(server: ScriptedServer) -> None:
        server.send(b"\x00\xffGET / HTTP/1.1\r\n\r\n")

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 2, finished.log
    assert "malformed header b'\\x00\\xffGET / HTTP' from the server" in finished.log


def test_getforce_before_posdata(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    _, structure = copper

    def script(server: ScriptedServer) -> None:
        handshake(server)
        server.header("GETFORCE")

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 2, finished.log
    assert "GETFORCE before POSDATA" in finished.log


def test_batched_requests_are_refused(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    _, structure = copper

    def script(server: ScriptedServer) -> None:
        assert server.status() == "NEEDINIT"
        server.init(b"batch_size:4")

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 2, finished.log
    assert "batches of 4 structures per POSDATA" in finished.log


def test_a_geometry_the_model_refuses(tmp_path: Path) -> None:
    """EMT has no parameters for uranium: the protocol cannot carry an
    error, so the worker says why and exits 1."""
    atoms = Atoms("U2", positions=[[0, 0, 0], [0, 0, 2.5]])
    structure = tmp_path / "u2.xyz"
    atoms.write(structure)

    def script(server: ScriptedServer) -> None:
        handshake(server)
        server.send(server.posdata(np.eye(3) * 20, atoms.positions / Bohr))

    finished = serve_script(ScriptedServer(), structure, tmp_path, script)
    assert finished.returncode == 1, finished.log
    assert "geometry 1 could not be computed:" in finished.log and "U" in finished.log


# ------------------------------------------------------------------ nobody there
def test_unix_address_nobody_listens_on(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    _, structure = copper
    name = socket_name()
    started = time.monotonic()
    worker = start(ipi_worker_command(f"unix:{name}", structure, *EMT_OPTIONS, "--connect-timeout", "0.5"), tmp_path)
    finished = worker.finish()
    assert finished.returncode == 3, finished.log
    assert f"no i-PI server at unix:{name} (/tmp/ipi_{name}) after 0.5 s: No such file or directory" in finished.log
    assert time.monotonic() - started < 60


def test_tcp_address_nobody_listens_on(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    _, structure = copper
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    worker = start(
        ipi_worker_command(f"localhost:{port}", structure, *EMT_OPTIONS, "--connect-timeout", "0.3"), tmp_path
    )
    finished = worker.finish()
    assert finished.returncode == 3, finished.log
    assert f"no i-PI server at localhost:{port} after 0.3 s: Connection refused" in finished.log


# ------------------------------------------------------------------ set-ups that cannot work
def test_bad_keyword_is_refused_before_connecting(copper: tuple[Atoms, Path], tmp_path: Path) -> None:
    """The same start-up rules as the pipe worker: the keyword is named."""
    _, structure = copper
    worker = start(ipi_worker_command("unix:nobody", structure, "--backend", "ASE", "--model", "NoSuchModel"), tmp_path)
    finished = worker.finish()
    assert finished.returncode == 1, finished.log
    assert "NoSuchModel" in finished.log
    assert "not connecting to the i-PI server: the engine could not be set up" in finished.log


def test_unreadable_structure(tmp_path: Path) -> None:
    missing = tmp_path / "missing.xyz"
    worker = start(ipi_worker_command("unix:nobody", missing, *EMT_OPTIONS), tmp_path)
    finished = worker.finish()
    assert finished.returncode == 1, finished.log
    assert f"cannot read the structure file {missing}" in finished.log


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--ipi", "unix:x"], "--ipi and --structure go together"),
        (["--structure", "x.xyz"], "--ipi and --structure go together"),
        (["--ipi", "nohost", "--structure", "x.xyz"], "is neither unix:NAME nor HOST:PORT"),
        (["--ipi", "unix:", "--structure", "x.xyz"], "names no socket"),
    ],
)
def test_usage_errors(arguments: list[str], message: str, tmp_path: Path) -> None:
    worker = start([*our_worker_command(*EMT_OPTIONS), *arguments], tmp_path)
    finished = worker.finish()
    assert finished.returncode == 2, finished.log
    assert message in finished.log
