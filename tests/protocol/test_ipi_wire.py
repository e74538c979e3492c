"""The i-PI wire code (mlpotential.protocol.ipi) against ASE's own
implementation of the protocol (ase.calculators.socketio.IPIProtocol) as the
peer, over real socket pairs: addresses, headers, POSDATA, FORCEREADY,
truncated and malformed messages, connecting with retries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.socketio import IPIProtocol
from ase.units import Bohr, Hartree

from mlpotential.protocol import ipi


@pytest.fixture
def pair() -> Iterator[tuple[ipi.ClientConnection, IPIProtocol]]:
    """Our client's connection and ASE's server-side protocol on the two ends of a socket pair."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        yield ipi.ClientConnection(ours, message_timeout=5.0), IPIProtocol(theirs)


# ------------------------------------------------------------------ addresses
@pytest.mark.parametrize(
    ("text", "path", "host", "port"),
    [
        ("unix:driver", "/tmp/ipi_driver", None, None),
        ("unix:/run/user/1/socket", "/run/user/1/socket", None, None),
        ("localhost:31415", None, "localhost", 31415),
        ("10.0.0.7:1", None, "10.0.0.7", 1),
        ("[::1]:65535", None, "::1", 65535),
    ],
)
def test_addresses(text: str, path: str | None, host: str | None, port: int | None) -> None:
    address = ipi.Address.parse(text)
    assert (address.path, address.host, address.port) == (path, host, port)


@pytest.mark.parametrize("text", ["unix:", "localhost", "localhost:", ":31415", "host:0", "host:65536", "host:x1"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="unix:NAME"):
        ipi.Address.parse(text)


# ------------------------------------------------------------------ headers
def test_headers_are_twelve_bytes() -> None:
    assert ipi.encode_header(ipi.FORCEREADY) == b"FORCEREADY  "
    assert ipi.decode_header(b"POSDATA     ") == ipi.POSDATA


def test_unknown_header_shows_its_bytes() -> None:
    with pytest.raises(ipi.MalformedMessage, match=r"malformed header b'READY\\x00\\xff"):
        ipi.decode_header(b"READY\x00\xff     ")


def test_status_answer_reaches_ase(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    ours, ase_server = pair
    ase_server.sendmsg("STATUS")
    assert ours.read_header() == ipi.STATUS
    ours.send_header(ipi.NEEDINIT)
    assert ase_server.recvmsg() == "NEEDINIT"


def test_closed_between_messages_is_none(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    ours, ase_server = pair
    ase_server.socket.close()
    assert ours.read_header() is None


# ------------------------------------------------------------------ INIT
def test_init_from_ase(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    ours, ase_server = pair
    ase_server.sendinit()
    assert ours.read_header() == ipi.INIT
    init = ours.read_init()
    assert (init.bead_index, init.parameters, init.batch_size) == (0, b"\0", 1)


@pytest.mark.parametrize(
    ("parameters", "batch"), [(b"", 1), (b"batch_size:8", 8), (b"seed:3, batch_size: 2", 2), (b"batch_size:x", 1)]
)
def test_batch_size(parameters: bytes, batch: int) -> None:
    assert ipi.Init(0, parameters).batch_size == batch


def test_init_with_a_negative_length(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    ours, ase_server = pair
    ase_server.sendmsg("INIT")
    ase_server.send(np.array([0, -3]), np.int32)
    ours.read_header()
    with pytest.raises(ipi.MalformedMessage, match="INIT announces -3 parameter bytes"):
        ours.read_init()


# ------------------------------------------------------------------ POSDATA
def test_posdata_from_ase_triclinic(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    """ASE sends the cell transposed (i-PI's h has the vectors as columns):
    the rows come back as the lattice vectors, in Bohr."""
    ours, ase_server = pair
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=4)
    ase_server.sendposdata(atoms.cell.array, np.linalg.pinv(atoms.cell.array).T, atoms.positions)
    assert ours.read_header() == ipi.POSDATA
    posdata = ours.read_posdata(len(atoms))
    np.testing.assert_allclose(posdata.cell, atoms.cell.array / Bohr, rtol=1e-15)
    np.testing.assert_allclose(posdata.positions, atoms.positions / Bohr, rtol=1e-15)


def test_wrong_atom_count_is_caught_before_the_positions(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    ours, ase_server = pair
    ase_server.sendposdata(np.eye(3), np.eye(3), np.zeros((4, 3)))
    ours.read_header()
    with pytest.raises(ipi.WrongAtomCount, match="the server sent 4 atoms in POSDATA; this worker's structure has 3"):
        ours.read_posdata(3)


def test_truncated_posdata(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    ours, ase_server = pair
    ase_server.sendmsg("POSDATA")
    ase_server.send(np.eye(3), np.float64)
    ase_server.socket.close()
    ours.read_header()
    with pytest.raises(ipi.ServerGone, match="the server closed the connection in the middle of POSDATA"):
        ours.read_posdata(3)


def test_stalled_posdata_times_out() -> None:
    """A server that stops sending in the middle of a message (alive, but
    silent) ends the wait after the message timeout instead of hanging."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection = ipi.ClientConnection(ours, message_timeout=0.2)
        theirs.sendall(ipi.encode_header(ipi.POSDATA) + b"\0" * 10)
        assert connection.read_header() == ipi.POSDATA
        started = time.monotonic()
        with pytest.raises(ipi.ServerGone, match=r"stopped sending in the middle of POSDATA \(nothing for 0.2 s\)"):
            connection.read_posdata(1)
        assert time.monotonic() - started < 5


# ------------------------------------------------------------------ FORCEREADY
def test_forces_read_by_ase(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    """ASE reads our answer (energy, forces, virial, extra) as we meant it."""
    ours, ase_server = pair
    rng = np.random.default_rng(0)
    forces = rng.normal(size=(5, 3))
    virial = rng.normal(size=(3, 3))
    ours.send_forces(ipi.ForceReady(-1.25, forces, virial, ipi.json_extra({"energy_std": 0.5})))
    energy, received_forces, received_virial, extra = ase_server.sendrecv_force()
    assert energy == pytest.approx(-1.25 * Hartree, rel=1e-15)
    np.testing.assert_allclose(received_forces, forces * Hartree / Bohr, rtol=1e-15)
    np.testing.assert_allclose(received_virial, virial * Hartree, rtol=1e-15)
    assert bytes(extra) == b'{"energy_std":0.5}'
    assert ours.read_header() == ipi.GETFORCE


def test_answer_to_a_closed_server(pair: tuple[ipi.ClientConnection, IPIProtocol]) -> None:
    ours, ase_server = pair
    ase_server.socket.close()
    with pytest.raises(ipi.ServerGone, match="closed the connection before it took the answer"):
        for _ in range(100):  # the first writes may still fit in the socket buffer
            ours.send_forces(ipi.ForceReady(0.0, np.zeros((1000, 3)), np.zeros((3, 3))))


# ------------------------------------------------------------------ connecting
def test_connect_gives_up_after_the_retry_time(tmp_path: Path) -> None:
    address = ipi.Address.parse(f"unix:{tmp_path / 'nobody'}")
    started = time.monotonic()
    with pytest.raises(ipi.ServerUnreachable, match=r"no i-PI server at unix:.*nobody .* after 0.3 s"):
        ipi.connect(address, retry_seconds=0.3, interval=0.05)
    assert 0.3 <= time.monotonic() - started < 5


def test_connect_retries_until_the_server_listens(tmp_path: Path) -> None:
    path = tmp_path / "late"
    address = ipi.Address.parse(f"unix:{path}")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))  # bound, not yet listening: connecting is refused
    with listener:
        timer = threading.Timer(0.3, listener.listen)
        timer.start()
        try:
            connected = ipi.connect(address, retry_seconds=10, interval=0.05)
        finally:
            timer.join()
        connected.close()
