"""The i-PI hosts the tests drive our worker with: i-PI itself (its
``i-pi`` command on an input file) and a scripted server of the test's own
for the bad cases (a peer that sends what the test says, byte for byte).
Every process and socket file they make is gone when they are done."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpotential.host.launcher import our_worker_command
from mlpotential.protocol.ipi import UNIX_SOCKET_PREFIX, encode_header

WORKER_SECONDS = 120.0
"""Longest a worker may take to finish (its start on a busy two-core machine takes seconds)."""
I_PI = str(Path(sys.executable).with_name("i-pi"))
_NAMES = itertools.count()


def socket_name() -> str:
    """A UNIX socket name (``unix:NAME``) no other test or test run uses."""
    return f"mlp-test-{os.getpid()}-{next(_NAMES)}"


def ipi_worker_command(address: str, structure: Path, *options: str) -> list[str]:
    """Our worker as an i-PI client of ``address`` for ``structure``."""
    return our_worker_command("--ipi", address, "--structure", str(structure), *options)


@dataclass
class Process:
    """A process the tests started, its output going to ``log_path``."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = WORKER_SECONDS) -> None:
        """Until ``text`` appears in the output (AssertionError if the process ends or time runs out first)."""
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; the output:\n{self.log}")
            time.sleep(0.05)

    def finish(self, timeout: float = WORKER_SECONDS) -> Finished:
        """Wait for the process; kill it (and fail) when it does not end in time."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"the process did not end within {timeout:g} s; its output:\n{self.log}") from None
        return Finished(self.popen.returncode, self.log)


@dataclass
class Finished:
    """A process's exit status and everything it wrote."""

    returncode: int
    log: str


_LOGS = itertools.count()


def start(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Process:
    """Start ``command`` in ``cwd``, stdout and stderr to a log file there."""
    log_path = cwd / f"process-{next(_LOGS)}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return Process(popen, log_path)


@contextmanager
def stopped_at_end() -> Iterator[list[Process]]:
    """Processes appended to the yielded list are killed if still running at the end of the block."""
    processes: list[Process] = []
    try:
        yield processes
    finally:
        for process in processes:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait()


# ------------------------------------------------------------------ i-PI
def run_ipi(
    input_xml: str, directory: Path, clients: Sequence[Sequence[str]], timeout: float = 240.0
) -> tuple[Finished, list[Finished]]:
    """Start the ``clients`` (commands) in ``directory``, wait until each is
    about to connect, run ``i-pi`` on ``input_xml`` there; returns how i-PI
    and each client finished. (Clients first: a client that connected late
    would find the run over.)"""
    (directory / "input.xml").write_text(input_xml)
    with stopped_at_end() as processes:
        processes += [start(client, directory) for client in clients]
        for process in processes:
            process.wait_for("connecting to")
        server = start([I_PI, "input.xml"], directory)
        processes.append(server)
        return server.finish(timeout), [process.finish() for process in processes[:-1]]


def ipi_input(
    address: str,
    structure: Path,
    steps: int,
    beads: int = 1,
    ensemble: str = "nvt",
    seed: int = 31415,
) -> str:
    """An i-PI input: ``beads`` replicas of ``structure`` (extended XYZ,
    Angstrom) at 300 K, ``steps`` steps of 1 fs with a Langevin (one bead)
    or PILE-L (path integrals) thermostat, the force field at ``address``.
    Writes each step's potential and per-bead potentials (Hartree) to
    sim.out and each bead's positions (ASE units) to sim.pos_<bead>.extxyz."""
    thermostat = "langevin" if beads == 1 else "pile_l"
    return f"""<simulation verbosity='low' safe_stride='1000'>
  <output prefix='sim'>
    <properties stride='1' filename='out'> [ step, potential, bead_potentials ] </properties>
    <trajectory filename='pos' stride='1' format='ase'> positions </trajectory>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>{seed}</seed></prng>
  <ffsocket name='mlpotential' mode='unix'><address>{address}</address></ffsocket>
  <system>
    <initialize nbeads='{beads}'>
      <file mode='ase'>{structure}</file>
      <velocities mode='thermal' units='kelvin'>300</velocities>
    </initialize>
    <forces><force forcefield='mlpotential'/></forces>
    <motion mode='dynamics'>
      <dynamics mode='{ensemble}'>
        <timestep units='femtosecond'>1</timestep>
        <thermostat mode='{thermostat}'><tau units='femtosecond'>50</tau></thermostat>
      </dynamics>
    </motion>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
  </system>
</simulation>
"""


def read_potentials(directory: Path) -> np.ndarray:
    """sim.out's potential and per-bead potentials (Hartree), one row per step."""
    rows = np.atleast_2d(np.loadtxt(directory / "sim.out"))
    return rows[:, 1:]


# ------------------------------------------------------------------ a scripted server
class ScriptedServer:
    """A UNIX-socket server at ``unix:NAME`` that says what the test tells
    it to: one client, blocking calls with a time limit."""

    def __init__(self) -> None:
        self.name = socket_name()
        self.path = UNIX_SOCKET_PREFIX + self.name
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.listener.settimeout(WORKER_SECONDS)
        self.connection: socket.socket | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.name}"

    def accept(self) -> None:
        self.connection, _ = self.listener.accept()
        self.connection.settimeout(WORKER_SECONDS)

    def send(self, data: bytes) -> None:
        self.connection.sendall(data)

    def header(self, name: str) -> None:
        self.send(encode_header(name))

    def receive(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.connection.recv(count - len(data))
            if not chunk:
                raise AssertionError(f"the client closed the connection after {len(data)} of {count} bytes")
            data += chunk
        return data

    def status(self) -> str:
        """Ask STATUS; the client's answer."""
        self.header("STATUS")
        return self.receive(12).decode().strip()

    def init(self, parameters: bytes = b"", bead: int = 0) -> None:
        self.header("INIT")
        self.send(np.array([bead, len(parameters)], np.int32).tobytes() + parameters)

    def posdata(self, cell: np.ndarray, positions: np.ndarray, count: int | None = None) -> bytes:
        """The bytes of POSDATA (cell rows and positions in Bohr); ``count`` overrides the atom count."""
        h = np.asarray(cell, dtype=np.float64).T
        atoms = len(positions) if count is None else count
        return (
            encode_header("POSDATA")
            + h.tobytes()
            + np.linalg.inv(h).tobytes()
            + np.array([atoms], np.int32).tobytes()
            + np.asarray(positions, dtype=np.float64).tobytes()
        )

    def close(self) -> None:
        for sock in (self.connection, self.listener):
            if sock is not None:
                sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
