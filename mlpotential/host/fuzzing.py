"""A fuzzer for a worker: random and mutated frames, each followed by two
synchronising calls (DeleteResults of titles never kept, whose errors our
worker answers naming the title), so that every frame is accounted for:
the worker answered (with a status), or ended (and a fresh one is started).
It never hangs: every wait is bounded by the client's reply timeout, and a
worker that does not answer in time counts as a hang.

Frames are well framed (a correct length prefix) unless a stream mutation is
drawn, which corrupts the length itself (the worker must then exit, since the
stream cannot be resynchronised).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlpotential.host.client import PipeClient
from mlpotential.host.launcher import WorkerDiedError, WorkerTimeoutError
from mlpotential.protocol import messages as msg
from mlpotential.protocol.errors import ProtocolError, Status

_SYNC = "fuzz-sync"


@dataclass
class FuzzReport:
    """What happened to the frames: ``statuses`` counts the statuses of the
    worker's answers to the fuzzed frames, ``exits`` the worker processes that
    ended (each followed by a fresh one), ``hangs`` the frames after which the
    worker did not answer within the timeout (each a failure)."""

    frames: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    exits: int = 0
    hangs: int = 0
    largest_resident_megabytes: float = 0.0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [("frames sent", str(self.frames))]
        rows += [(f"answered: {name}", str(count)) for name, count in sorted(self.statuses.items())]
        rows += [
            ("worker exited (restarted)", str(self.exits)),
            ("hangs", str(self.hangs)),
            ("largest worker memory (MB)", f"{self.largest_resident_megabytes:.0f}"),
            ("seconds", f"{self.seconds:.1f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _seed_messages(system: msg.SetSystem) -> list[dict]:
    """Valid calls to mutate: every kind the protocol has."""
    return [
        msg.encode_call(msg.Hello()),
        msg.encode_call(system),
        msg.encode_call(msg.SetCoords(system.coords + 0.01)),
        msg.encode_call(msg.SetLattice(np.eye(3) * 20.0)),
        msg.encode_call(msg.Solve(msg.SolveRequest("fuzz", gradients=True))),
        msg.encode_call(msg.Solve(msg.SolveRequest("kept", gradients=True, other=True), keep_results=True)),
        msg.encode_call(msg.DeleteResults("kept")),
    ]


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four byte-level mutations: flip, replace, insert, delete, truncate, duplicate a slice."""
    buffer = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        choice = int(rng.integers(6))
        position = int(rng.integers(len(buffer) + 1))
        if choice == 0 and buffer:
            buffer[min(position, len(buffer) - 1)] ^= 1 << int(rng.integers(8))
        elif choice == 1 and buffer:
            buffer[min(position, len(buffer) - 1)] = int(rng.integers(256))
        elif choice == 2:
            buffer[position:position] = rng.bytes(int(rng.integers(1, 9)))
        elif choice == 3 and buffer:
            del buffer[position : position + int(rng.integers(1, 9))]
        elif choice == 4:
            del buffer[position:]
        else:
            end = min(len(buffer), position + int(rng.integers(1, 17)))
            buffer[position:position] = buffer[position:end]
    return bytes(buffer)


def _strange_value(rng: np.random.Generator) -> object:
    """A value of a random kind, often one that no argument expects."""
    choices: list[object] = [
        None,
        True,
        -1,
        2**63 - 1,
        float("nan"),
        float("inf"),
        1e308,
        "",
        "Xx",
        [],
        {},
        [1, "a", None],
        {"nested": {"deeper": [1.5]}},
        np.full(int(rng.integers(0, 50)), rng.normal()),
        np.arange(int(rng.integers(0, 20))),
        [float(v) for v in rng.normal(size=int(rng.integers(0, 10)))],
    ]
    return choices[int(rng.integers(len(choices)))]


def _mutate_message(message: dict, rng: np.random.Generator) -> dict:
    """A message with one argument replaced, removed or added, or its name changed."""
    ((name, arguments),) = message.items()
    arguments = dict(arguments)
    choice = int(rng.integers(4))
    keys = list(arguments)
    if choice == 0 and keys:
        arguments[keys[int(rng.integers(len(keys)))]] = _strange_value(rng)
    elif choice == 1 and keys:
        del arguments[keys[int(rng.integers(len(keys)))]]
    elif choice == 2:
        arguments[str(rng.choice(["colour", "coords_dim_", "request", "title", "version"]))] = _strange_value(rng)
    else:
        name = str(rng.choice(["Set", "SetSystemX", "solve", "Exit ", "Hello", "DeleteResults"]))
    return {name: arguments}


def _resident_megabytes(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _Session:
    """One worker at a time; a fresh one after each exit."""

    def __init__(self, command: Sequence[str], codec: str, timeout: float, system: msg.SetSystem) -> None:
        self.command, self.codec, self.timeout, self.system = command, codec, timeout, system
        self.client: PipeClient | None = None

    def start(self) -> PipeClient:
        if self.client is None:
            self.client = PipeClient(self.command, self.codec, reply_timeout=self.timeout)
            self.client.hello()
            self.client.set_system(self.system)
        return self.client

    def stop(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            client.worker.close(timeout=2.0)


def _answers_until_synced(client: PipeClient, tag: str) -> list[msg.Return]:
    """Every ``return`` that answers the fuzzed frame: those that arrive
    before the answer to the last synchronising call, less the answer to the
    first one (a buffered Set error may take its place)."""
    answers: list[msg.Return] = []
    while True:
        reply = client.read_reply()
        if not isinstance(reply, msg.Return):
            continue
        if f"'{tag}:last'" in reply.message:
            return answers
        if f"'{tag}:first'" not in reply.message:
            answers.append(reply)


def _corrupt_the_stream(client: PipeClient, payload: bytes, rng: np.random.Generator, timeout: float) -> None:
    """A length prefix that lies, then end of file: the worker cannot
    resynchronise (it may wait for the rest of a frame that never comes), so
    it must exit once the host hangs up, within ``timeout`` seconds."""
    length = int(rng.integers(-(2**31), 2**31)).to_bytes(4, "little", signed=True)
    client.send_payloads([])
    try:
        os.write(client.worker.call_fd, length + payload)
    except BrokenPipeError:
        return
    client.worker.close_call_pipe()
    try:
        client.worker.process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise WorkerTimeoutError(f"the worker did not exit within {timeout:g} s of end of file on call_pipe") from None


def run_fuzz(
    command: Sequence[str],
    system: msg.SetSystem,
    frames: int,
    codec: str = "ubjson",
    seed: int = 0,
    timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> FuzzReport:
    """Send ``frames`` random and mutated frames to workers started with
    ``command`` (``system`` is set first), and report what happened."""
    rng = np.random.default_rng(seed)
    report = FuzzReport()
    session = _Session(command, codec, timeout, system)
    seeds = _seed_messages(system)
    started = time.perf_counter()
    try:
        for index in range(frames):
            client = session.start()
            encode = client.codec.dumps
            kind = rng.random()
            seed_message = seeds[int(rng.integers(len(seeds)))]
            if kind < 0.15:
                payload = rng.bytes(int(rng.integers(0, 64)))
            elif kind < 0.55:
                payload = encode(_mutate_message(seed_message, rng))
            else:
                payload = _mutate(encode(seed_message), rng)
            tag = f"{_SYNC}-{index}"
            syncs = [encode({"DeleteResults": {"title": f"{tag}:{which}"}}) for which in ("first", "last")]
            report.frames += 1
            try:
                if kind > 0.99:
                    _corrupt_the_stream(client, payload, rng, timeout)
                    report.exits += 1
                    session.stop()
                else:
                    client.send_payloads([payload, *syncs])
                    for answer in _answers_until_synced(client, tag):
                        label = Status(answer.status).label
                        report.statuses[label] += 1
                        report.examples.setdefault(label, f"{answer.method} {answer.argument}: {answer.message}")
            except WorkerDiedError:
                report.exits += 1
                session.stop()
            except WorkerTimeoutError as exc:
                report.hangs += 1
                report.problems.append(f"frame {index}: {exc}")
                session.stop()
            except (ProtocolError, OSError) as exc:
                report.exits += 1
                report.problems.append(f"frame {index}: the reply stream broke: {exc}")
                session.stop()
            if session.client is not None:
                resident = _resident_megabytes(session.client.worker.pid)
                report.largest_resident_megabytes = max(report.largest_resident_megabytes, resident)
            if progress is not None:
                progress(index)
    finally:
        session.stop()
        report.seconds = time.perf_counter() - started
    return report
