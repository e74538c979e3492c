"""Timeouts and a host that cannot be fooled: a hung worker (stopped with
SIGSTOP, the realistic hang) never blocks the host past its timeout, is
killed, and never answers a later call; nor does a reply no call asked for.

Real workers, real FIFOs. Times are asserted against the timeout plus a
margin no loaded machine comes near; where the code under test could block
forever, a rescue timer kills the worker so that the test fails instead of
hanging.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from mlpotential.ase_bridge import coords_message, system_message
from mlpotential.host.client import PipeClient
from mlpotential.host.launcher import WorkerDiedError, WorkerTimeoutError
from mlpotential.host.pipe_engine import PipeEngine
from mlpotential.protocol.errors import ProtocolError

TIMEOUT = 5.0
"""Seconds: the timeout under test (calls that should succeed take milliseconds)."""
LIMIT = TIMEOUT + 20.0
"""Seconds within which a timeout must have been raised: a generous margin."""
RESCUE_AFTER = LIMIT + 10.0
"""Seconds after which a test that would hang kills its worker instead."""


def process_state(pid: int) -> str:
    """The state letter of ``pid`` in /proc (T stopped, Z zombie), '' if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def running(marker: str) -> list[int]:
    """The live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if process_state(pid) not in ("", "Z")]


def wait_until(condition, seconds: float = LIMIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {seconds} s"
        time.sleep(0.01)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGSTOP the worker and wait until it is stopped."""
    process.send_signal(signal.SIGSTOP)
    wait_until(lambda: process_state(process.pid) == "T")


def big_system():
    """6000 copper atoms: a SetSystem of about 168 kB, well over a FIFO's 64 kB."""
    return system_message(bulk("Cu", "fcc", a=3.6, cubic=True).repeat((10, 10, 15)))


def water_moved(by: float):
    atoms = molecule("H2O")
    atoms.positions[0, 2] += by
    return atoms


def emt_energy(atoms) -> float:
    reference = atoms.copy()
    reference.calc = EMT()
    return reference.get_potential_energy()


@contextmanager
def rescue(process: subprocess.Popen[bytes]) -> Iterator[threading.Event]:
    """Kill ``process`` after RESCUE_AFTER seconds (and set the event): a host
    blocked forever then fails its test instead of hanging the session."""
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        process.send_signal(signal.SIGKILL)  # Popen does nothing once the worker is reaped

    timer = threading.Timer(RESCUE_AFTER, kill)
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


@contextmanager
def interrupted_after(seconds: float) -> Iterator[type[Exception]]:
    """Raise ``Interrupted`` in this thread after ``seconds``, as Ctrl-C would."""

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield Interrupted
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_killed_and_cleaned(client: PipeClient) -> None:
    """The worker was ended by SIGKILL and its pipe directory removed."""
    assert client.worker.process.returncode == -signal.SIGKILL
    assert not client.worker.directory.exists()


# ------------------------------------------------------------------ PipeClient
def test_a_stopped_worker_misses_the_reply_timeout_and_is_killed(emt_worker, water_system):
    with PipeClient(emt_worker, reply_timeout=TIMEOUT) as client:
        client.hello()
        client.set_system(water_system)
        client.solve()
        stop(client.worker.process)
        start = time.monotonic()
        with rescue(client.worker.process), pytest.raises(WorkerTimeoutError) as info:
            client.solve(gradients=True)
        assert time.monotonic() - start < LIMIT
        message = str(info.value)
        assert f"Solve: no reply within {TIMEOUT:g} s" in message
        assert " ".join(emt_worker) in message
        assert_killed_and_cleaned(client)


def test_a_late_reply_never_answers_the_next_call(emt_worker, water_system):
    """The worker resumes after the timeout: its reply to the timed-out Solve
    must not be returned as the answer to the next one."""
    with PipeClient(emt_worker, reply_timeout=TIMEOUT) as client:
        client.hello()
        client.set_system(water_system)
        first = client.solve().energy
        stop(client.worker.process)
        with rescue(client.worker.process), pytest.raises(WorkerTimeoutError):
            client.solve()
        client.worker.process.send_signal(signal.SIGCONT)  # Popen does nothing once the worker is reaped
        client.call(coords_message(water_moved(0.2)))
        with pytest.raises(WorkerDiedError, match="stopped after a timeout") as info:
            energy = client.solve().energy
            pytest.fail(f"the client answered {energy} (the first geometry's energy was {first})")
        assert "Solve: no reply" in str(info.value)
        with pytest.raises(WorkerDiedError, match="stopped after a timeout"):
            client.hello()


def test_a_set_system_larger_than_the_pipe_times_out_while_writing(emt_worker):
    with PipeClient(emt_worker, reply_timeout=TIMEOUT) as client:
        client.hello()
        stop(client.worker.process)
        client.set_system(big_system())  # held back: written with the Solve
        start = time.monotonic()
        with rescue(client.worker.process), pytest.raises(WorkerTimeoutError) as info:
            client.solve()
        assert time.monotonic() - start < LIMIT
        assert f"SetSystem + Solve: the worker did not read the call within {TIMEOUT:g} s" in str(info.value)
        assert_killed_and_cleaned(client)
        with pytest.raises(WorkerDiedError, match="stopped after a timeout"):
            client.hello()


def test_an_interrupted_call_stops_the_worker(emt_worker, water_system):
    """Ctrl-C during a Solve (no timeout): the worker's late reply must not
    answer the next call either."""
    with PipeClient(emt_worker) as client:
        client.hello()
        client.set_system(water_system)
        client.solve()
        stop(client.worker.process)
        with rescue(client.worker.process), interrupted_after(2.0) as interrupted, pytest.raises(interrupted):
            client.solve()
        client.worker.process.send_signal(signal.SIGCONT)
        client.call(coords_message(water_moved(0.2)))
        with pytest.raises(WorkerDiedError, match="stopped after Interrupted during Solve"):
            energy = client.solve().energy
            pytest.fail(f"the client answered {energy}, the interrupted Solve's energy")
        assert_killed_and_cleaned(client)


def test_close_does_not_wait_for_ever_on_a_stopped_worker(emt_worker):
    """A held-back SetSystem larger than the pipe and a stopped worker: close
    must neither write it nor wait for the worker past its timeout."""
    client = PipeClient(emt_worker)
    client.hello()
    client.set_system(big_system())
    stop(client.worker.process)
    start = time.monotonic()
    with rescue(client.worker.process) as fired:
        code = client.close(timeout=TIMEOUT)
    assert not fired.is_set() and time.monotonic() - start < LIMIT
    assert code in (-signal.SIGTERM, -signal.SIGKILL)
    assert not client.worker.directory.exists()


def test_a_worker_that_never_opens_its_pipes_times_out(tmp_path, monkeypatch):
    """A worker that is alive but never connects (here: it sleeps; it ends by
    itself after RESCUE_AFTER so that the old code fails instead of hanging)."""
    pipe_directories = tmp_path / "pipes"
    pipe_directories.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(pipe_directories))
    marker = f"sleeper-{tmp_path.name}"
    sleeper = f"import signal, time; signal.alarm({int(RESCUE_AFTER)}); time.sleep(3600)  # {marker}"
    start = time.monotonic()
    with pytest.raises(WorkerTimeoutError, match=f"did not open its pipes within {TIMEOUT:g} s"):
        PipeClient([sys.executable, "-c", sleeper], start_timeout=TIMEOUT)
    assert time.monotonic() - start < LIMIT
    assert not running(marker)
    assert not any(pipe_directories.iterdir())


def test_timeouts_must_be_positive(emt_worker):
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="reply_timeout"):
            PipeClient(emt_worker, reply_timeout=bad)
        with pytest.raises(ValueError, match="start_timeout"):
            PipeEngine({"Model": "EMT"}, start_timeout=bad)


# ---------------------------------------------------------- misbehaving workers
FAKE_WORKER = """
import os, signal, sys, time
from mlpotential.protocol import ubjson
from mlpotential.protocol.framing import FrameReader, encode_frame, write_frames
signal.alarm({lifetime})  # never outlive a test that went wrong
calls = FrameReader(os.open("call_pipe", os.O_RDONLY))
replies = os.open("reply_pipe", os.O_WRONLY)
solves = 0
while (payload := calls.read_frame()) is not None:
    name = next(iter(ubjson.loads(payload)))
    if name == "Exit":
        break
    if name.startswith("Set"):
        continue
    answer = [{{"return": {{"status": 0}}}}]
{answer}
    write_frames(replies, [ubjson.dumps(message) for message in answer])
"""


def fake_worker(tmp_path: Path, answer: str) -> list[str]:
    """A worker that answers every call with success, after ``answer`` (an
    indented block) has changed ``answer``."""
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER.format(lifetime=int(RESCUE_AFTER), answer=answer))
    return [sys.executable, str(script)]


def test_a_reply_no_call_asked_for_is_refused(tmp_path, water_system):
    """A worker that answers each Solve twice: the second answer must not be
    taken for the next Solve's."""
    command = fake_worker(
        tmp_path,
        "    if name == 'Solve':\n"
        "        solves += 1\n"
        "        answer = [{'results': {'energy': float(solves)}}, {'return': {'status': 0}}] * 2\n",
    )
    with PipeClient(command) as client:
        client.set_system(water_system)
        assert client.solve().energy == 1.0
        with pytest.raises(ProtocolError, match="no call asked for"):
            energy = client.solve().energy
            pytest.fail(f"the client answered {energy}, the first Solve's energy again")
        with pytest.raises(WorkerDiedError, match="stopped after ProtocolError during Solve"):
            client.hello()
        assert_killed_and_cleaned(client)


def test_more_results_than_a_call_can_get_are_refused(tmp_path):
    command = fake_worker(tmp_path, "    answer = [{'results': {'energy': 0.0}}] * 1000 + answer\n")
    with PipeClient(command) as client:
        with pytest.raises(ProtocolError, match="results messages without a return"):
            client.hello()
        with pytest.raises(WorkerDiedError, match="stopped after ProtocolError during Hello"):
            client.hello()
        assert_killed_and_cleaned(client)


def test_a_reply_trickling_in_does_not_stretch_the_timeout(tmp_path):
    """The timeout bounds the whole call, not each read: a worker that sends
    its reply a byte every half second (12 s in all) cannot hold the host."""
    command = fake_worker(
        tmp_path,
        "    for byte in encode_frame(ubjson.dumps(answer.pop())):\n"
        "        os.write(replies, bytes([byte]))\n"
        "        time.sleep(0.5)\n",
    )
    with PipeClient(command, reply_timeout=TIMEOUT) as client:
        start = time.monotonic()
        with pytest.raises(WorkerTimeoutError, match=f"Hello: no reply within {TIMEOUT:g} s"):
            client.hello()
        assert time.monotonic() - start < LIMIT
        assert_killed_and_cleaned(client)


# ------------------------------------------------------------------ PipeEngine
def test_pipe_engine_timeout_kills_the_worker_and_the_next_calculation_starts_a_fresh_one():
    atoms = water_moved(0.0)
    with PipeEngine({"Model": "EMT"}, timeout=TIMEOUT) as calc:
        atoms.calc = calc
        atoms.get_potential_energy()
        worker = calc.client.worker
        stop(worker.process)
        atoms.positions[0, 2] += 0.2  # SetCoords to the stopped worker
        start = time.monotonic()
        with rescue(worker.process), pytest.raises(WorkerTimeoutError, match=f"Solve: no reply within {TIMEOUT:g} s"):
            atoms.get_potential_energy()
        assert time.monotonic() - start < LIMIT
        assert worker.process.returncode == -signal.SIGKILL and not worker.directory.exists()
        # A fresh worker, told the whole system again (SetSystem), not the stale coordinates.
        np.testing.assert_allclose(atoms.get_potential_energy(), emt_energy(atoms), rtol=1e-10)
        assert calc.worker_pid != worker.pid


def test_pipe_engine_after_an_interrupt_gives_the_right_energy():
    atoms = water_moved(0.0)
    with PipeEngine({"Model": "EMT"}) as calc:
        atoms.calc = calc
        atoms.get_potential_energy()
        worker = calc.client.worker
        stop(worker.process)
        atoms.positions[0, 2] += 0.2
        with rescue(worker.process), interrupted_after(2.0) as interrupted, pytest.raises(interrupted):
            atoms.get_potential_energy()
        worker.process.send_signal(signal.SIGCONT)  # its late reply must not be read
        atoms.positions[0, 2] += 0.2
        np.testing.assert_allclose(atoms.get_potential_energy(), emt_energy(atoms), rtol=1e-10)
        assert worker.process.returncode == -signal.SIGKILL and not worker.directory.exists()
