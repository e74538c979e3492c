"""The conformance suite: every rule of the pipe protocol as a named case,
run against any worker command, in two tables:

* protocol cases: what the protocol requires of every worker (SCM's
  reference worker, built from ../shared/amspipe, passes every one);
* robustness cases: what our worker promises beyond it (bad input is
  answered, never crashes or hangs the worker; forms of input the protocol
  allows but does not require a worker to read).

Each case starts a fresh worker, so one failure cannot spoil the next, and
every wait is bounded by the timeout (the start and each call): a worker that
hangs fails its case instead of hanging the suite.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlpotential.host.client import PipeClient
from mlpotential.host.launcher import WorkerDiedError, WorkerTimeoutError
from mlpotential.protocol import messages as msg
from mlpotential.protocol.errors import Status
from mlpotential.protocol.framing import MAX_FRAME_SIZE

PROTOCOL = "protocol"
ROBUSTNESS = "robustness"
KINDS = (PROTOCOL, ROBUSTNESS)


class CaseFailed(AssertionError):
    pass


@dataclass
class CaseResult:
    name: str
    passed: bool
    detail: str
    seconds: float
    kind: str = PROTOCOL


@dataclass
class Case:
    """One rule: ``kind`` is :data:`PROTOCOL` (every worker must pass it) or
    :data:`ROBUSTNESS` (our worker's promise beyond the protocol)."""

    name: str
    rule: str
    run: Callable[[Checker], None]
    kind: str = PROTOCOL
    codecs: tuple[str, ...] = ("ubjson", "msgpack")


class Checker:
    """What a case uses: the client, the system, and assertions that say
    what was expected."""

    def __init__(self, client: PipeClient, system: msg.SetSystem) -> None:
        self.client = client
        self.system = system

    @property
    def natoms(self) -> int:
        return len(self.system.atom_symbols)

    def set_system(self) -> None:
        self.client.exchange(msg.encode_call(self.system), expect_reply=False)

    def send(self, message: dict[str, Any]) -> list[msg.Results | msg.Return]:
        return self.client.exchange(message, expect_reply=True)

    def send_set(self, message: dict[str, Any]) -> None:
        self.client.exchange(message, expect_reply=False)

    def solve_message(self, title: str = "check", **flags: Any) -> dict[str, Any]:
        return {"Solve": {"request": {"title": title, **flags}, "keepResults": False}}

    def expect_status(
        self, replies: list[msg.Results | msg.Return], status: Status | tuple[Status, ...], results: int | None = None
    ) -> msg.Return:
        final = replies[-1]
        allowed = status if isinstance(status, tuple) else (status,)
        if final.status not in allowed:
            raise CaseFailed(
                f"expected status {'/'.join(f'{s.value} {s.label}' for s in allowed)}, got "
                f"{final.status.value} {final.status.label}: {final.message!r}"
            )
        if results is not None and len(replies) - 1 != results:
            raise CaseFailed(f"expected {results} results message(s) before the return, got {len(replies) - 1}")
        return final

    def expect_energy(self, replies: list[msg.Results | msg.Return]) -> msg.Results:
        self.expect_status(replies, Status.SUCCESS, results=1)
        results = replies[0]
        if not math.isfinite(results.energy):
            raise CaseFailed(f"energy is not finite: {results.energy}")
        return results

    def expect_alive(self) -> None:
        """The worker still answers: Hello gets success."""
        self.expect_status(self.send({"Hello": {"version": 1}}), Status.SUCCESS)

    def expect_exit(self, nonzero: bool | None = None, within: float = 5.0) -> int:
        deadline = time.monotonic() + within
        while self.client.worker.process.poll() is None:
            if time.monotonic() > deadline:
                raise CaseFailed(f"the worker did not exit within {within:g} s")
            time.sleep(0.02)
        code = self.client.worker.process.returncode
        if nonzero is True and code == 0:
            raise CaseFailed("the worker exited with status 0; a non-zero status was expected")
        if nonzero is False and code != 0:
            raise CaseFailed(f"the worker exited with status {code}; 0 was expected")
        return code

    def write_raw(self, data: bytes) -> None:
        """Bytes that need not be frames, after the held-back Set calls."""
        self.client.send_payloads([], "raw bytes")
        self.client.worker.write(data)


# ----------------------------------------------------------------- the cases
def _hello(c: Checker) -> None:
    c.expect_status(c.send({"Hello": {"version": 1}}), Status.SUCCESS, results=0)


def _hello_version(c: Checker) -> None:
    c.expect_status(c.send({"Hello": {"version": 2}}), Status.UNKNOWN_VERSION)
    c.expect_alive()


def _energy(c: Checker) -> None:
    c.set_system()
    c.expect_energy(c.send(c.solve_message()))


def _gradients(c: Checker) -> None:
    c.set_system()
    results = c.expect_energy(c.send(c.solve_message(gradients=True)))
    gradients = results.values.get("gradients")
    if gradients is None or np.shape(gradients) != (c.natoms, 3):
        raise CaseFailed(f"gradients with dim [3, {c.natoms}] expected, got shape {np.shape(gradients)}")
    if not np.all(np.isfinite(gradients)):
        raise CaseFailed("gradients are not finite")


def _set_coords(c: Checker) -> None:
    c.set_system()
    first = c.expect_energy(c.send(c.solve_message("a"))).energy
    moved = c.system.coords.copy()
    moved[0] += 0.05
    c.send_set(msg.encode_call(msg.SetCoords(moved)))
    second = c.expect_energy(c.send(c.solve_message("b"))).energy
    if first == second:
        raise CaseFailed("moving an atom by 0.05 Bohr did not change the energy: SetCoords was ignored")


def _no_lattice_vectors(c: Checker) -> None:
    message = msg.encode_call(c.system)
    message["SetSystem"].pop("latticeVectors", None)
    message["SetSystem"].pop("latticeVectors_dim_", None)
    c.send_set(message)
    c.expect_energy(c.send(c.solve_message()))


def _plain_arrays(c: Checker) -> None:
    message = msg.encode_call(c.system)
    arguments = message["SetSystem"]
    for key, value in arguments.items():
        if isinstance(value, np.ndarray):
            arguments[key] = value.tolist()
    c.client.send_payloads([_plain_ubjson(message)])
    c.expect_energy(c.send(c.solve_message()))


def _plain_ubjson(value: Any) -> bytes:
    """UBJSON with every container in plain form (no $ or #)."""
    if isinstance(value, dict):
        body = b"".join(b"i" + struct.pack(">b", len(k)) + k.encode() + _plain_ubjson(v) for k, v in value.items())
        return b"{" + body + b"}"
    if isinstance(value, list):
        return b"[" + b"".join(_plain_ubjson(v) for v in value) + b"]"
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return b"l" + struct.pack(">i", value)
    if isinstance(value, float):
        return b"D" + struct.pack(">d", value)
    if isinstance(value, str):
        return b"Si" + struct.pack(">b", len(value)) + value.encode()
    raise TypeError(type(value))


def _unknown_method(c: Checker) -> None:
    c.expect_status(c.send({"Frobnicate": {}}), Status.UNKNOWN_METHOD)
    c.expect_alive()


def _unknown_argument(c: Checker) -> None:
    c.set_system()
    message = c.solve_message()
    message["Solve"]["colour"] = "blue"
    c.expect_status(c.send(message), Status.UNKNOWN_ARGUMENT)
    c.expect_alive()


def _unknown_request_false(c: Checker) -> None:
    c.set_system()
    c.expect_energy(c.send(c.solve_message(someFutureFlag=False)))


def _unknown_request_true(c: Checker) -> None:
    c.set_system()
    c.expect_status(c.send(c.solve_message(someFutureFlag=True)), Status.UNKNOWN_ARGUMENT)
    c.expect_alive()


def _empty_title(c: Checker) -> None:
    c.set_system()
    c.expect_status(c.send(c.solve_message(title="")), Status.INVALID_ARGUMENT)
    c.expect_alive()


def _solve_before_system(c: Checker) -> None:
    c.expect_status(c.send(c.solve_message()), Status.LOGIC_ERROR)
    c.expect_alive()


def _set_error_buffered(c: Checker) -> None:
    message = msg.encode_call(c.system)
    message["SetSystem"]["colour"] = "blue"
    c.send_set(message)  # no reply: buffered
    c.send_set(msg.encode_call(msg.SetCoords(c.system.coords)))  # ignored while an error is buffered
    final = c.expect_status(c.send(c.solve_message("a")), Status.UNKNOWN_ARGUMENT, results=0)
    if final.method and final.method != "SetSystem":
        raise CaseFailed(f"the buffered error should name method SetSystem, not {final.method!r}")
    c.expect_alive()  # buffer cleared


def _set_coords_wrong_count(c: Checker) -> None:
    c.set_system()
    wrong = np.zeros((c.natoms + 1, 3))
    c.send_set(msg.encode_call(msg.SetCoords(wrong)))  # no reply: buffered
    c.send_set(msg.encode_call(msg.SetCoords(c.system.coords)))  # ignored while an error is buffered
    final = c.expect_status(c.send(c.solve_message("a")), Status.INVALID_ARGUMENT, results=0)
    if final.method and final.method != "SetCoords":
        raise CaseFailed(f"the buffered error should name method SetCoords, not {final.method!r}")
    c.expect_energy(c.send(c.solve_message("b")))  # buffer cleared, the old geometry kept


def _set_unknown_buffered(c: Checker) -> None:
    c.set_system()
    c.send_set({"SetFrobnicator": {}})
    c.expect_status(c.send({"Hello": {"version": 1}}), Status.UNKNOWN_METHOD, results=0)
    c.expect_alive()


def _set_before_system(c: Checker) -> None:
    c.send_set(msg.encode_call(msg.SetCoords(c.system.coords)))
    c.expect_status(c.send({"Hello": {"version": 1}}), Status.LOGIC_ERROR)


def _keep_results(c: Checker) -> None:
    c.set_system()
    keep = {"Solve": {"request": {"title": "kept"}, "keepResults": True}}
    c.expect_energy(c.send(keep))
    c.expect_status(c.send(keep), Status.LOGIC_ERROR)
    c.expect_energy(c.send({"Solve": {"request": {"title": "next"}, "prevTitle": "kept"}}))
    c.expect_status(c.send({"Solve": {"request": {"title": "other"}, "prevTitle": "never-kept"}}), Status.LOGIC_ERROR)
    c.expect_status(c.send({"DeleteResults": {"title": "kept"}}), Status.SUCCESS)
    c.expect_status(c.send({"DeleteResults": {"title": "kept"}}), Status.LOGIC_ERROR)
    c.expect_energy(c.send(keep))


def _unservable(c: Checker) -> None:
    c.set_system()
    c.expect_status(c.send(c.solve_message(hessian=True)), (Status.RUNTIME_ERROR, Status.INVALID_ARGUMENT))
    c.expect_alive()


def _wrong_types(c: Checker) -> None:
    c.set_system()
    bad_values = {
        "atomSymbols": 42,
        "coords": "not numbers",
        "coords_dim_": [1.5, 2.5],
        "latticeVectors": ["a"],
        "totalCharge": "zero",
    }
    for argument, value in bad_values.items():
        message = msg.encode_call(c.system)
        message["SetSystem"][argument] = value
        c.send_set(message)
        final = c.expect_status(
            c.send(c.solve_message(argument)), (Status.INVALID_ARGUMENT, Status.LOGIC_ERROR), results=0
        )
        if argument == "coords" and final.argument not in ("coords", ""):
            raise CaseFailed(f"the error should name argument coords, not {final.argument!r}")
    c.expect_alive()


def _nan_coords(c: Checker) -> None:
    c.set_system()
    coords = c.system.coords.copy()
    coords[0, 0] = float("nan")
    c.send_set(msg.encode_call(msg.SetCoords(coords)))
    c.expect_status(c.send(c.solve_message("nan")), Status.INVALID_ARGUMENT, results=0)
    c.expect_energy(c.send(c.solve_message("after")))


def _unknown_element(c: Checker) -> None:
    bad = msg.SetSystem(["Xq"] + c.system.atom_symbols[1:], c.system.coords)
    c.send_set(msg.encode_call(bad))
    c.expect_status(c.send(c.solve_message()), Status.INVALID_ARGUMENT, results=0)
    c.expect_alive()


def _undecodable(c: Checker) -> None:
    rng = np.random.default_rng(7)
    c.expect_alive()  # the codec is settled by the first frame
    c.client.send_payloads([bytes([0x7B, 0xFF]) + rng.bytes(61)])
    reply = c.client.read_reply()
    if not isinstance(reply, msg.Return) or reply.status != Status.DECODE_ERROR:
        raise CaseFailed(f"random bytes should get status 1 decode_error, got {reply}")
    c.expect_alive()


def _exit(c: Checker) -> None:
    c.set_system()
    c.send_set(msg.encode_call(msg.SetCoords(np.zeros((c.natoms + 2, 3)))))  # a buffered error, dropped by Exit
    c.client.send_payloads([c.client.codec.dumps({"Exit": {}})])
    c.expect_exit(nonzero=False)


def _end_of_file(c: Checker) -> None:
    c.expect_alive()
    c.client.worker.close_call_pipe()
    c.expect_exit()


def _end_of_file_clean(c: Checker) -> None:
    c.expect_alive()
    c.client.worker.close_call_pipe()
    c.expect_exit(nonzero=False)


def _frame_too_large(c: Checker) -> None:
    c.expect_alive()
    c.write_raw(struct.pack("=i", MAX_FRAME_SIZE + 1) + b"{}")
    try:
        reply = c.client.read_reply()
    except WorkerDiedError:
        reply = None
    if reply is not None and (not isinstance(reply, msg.Return) or reply.status != Status.DECODE_ERROR):
        raise CaseFailed(f"a frame length above the maximum should get status 1 (or none), got {reply}")
    c.expect_exit(nonzero=True)
    if not c.client.worker.log_text().strip():
        raise CaseFailed("the worker exited without a message on stderr")


def _negative_length(c: Checker) -> None:
    c.expect_alive()
    c.write_raw(struct.pack("=i", -5))
    try:
        c.client.read_reply()
    except WorkerDiedError:
        pass
    c.expect_exit(nonzero=True)


def _short_frame(c: Checker) -> None:
    c.expect_alive()
    c.write_raw(struct.pack("=i", 100) + b"{i\x05Hello")
    c.client.worker.close_call_pipe()
    code = c.expect_exit()
    if not c.client.worker.log_text().strip():
        raise CaseFailed(f"the worker exited (status {code}) without a message on stderr")


CASES: tuple[Case, ...] = (
    Case("hello", "Hello version 1 gets return status 0", _hello),
    Case("hello-unknown-version", "Hello version 2 gets status 4 unknown_version", _hello_version),
    Case("solve-energy", "SetSystem then Solve gives one results (energy) and return 0", _energy),
    Case("solve-gradients", "gradients come with dim [3, nAtoms]", _gradients),
    Case("set-coords", "SetCoords moves the atoms (the energy changes)", _set_coords),
    Case("unknown-method", "an unknown call gets status 5 and the worker goes on", _unknown_method),
    Case("unknown-argument", "an unknown Solve argument gets status 6", _unknown_argument),
    Case("unknown-flag-false", "an unknown request field set to false is ignored", _unknown_request_false),
    Case("unknown-flag-true", "an unknown request field set to true gets status 6", _unknown_request_true),
    Case("empty-title", "an empty request title gets status 7", _empty_title),
    Case(
        "set-error-buffered",
        "a Set error is buffered, later Sets ignored, the next call answered with it",
        _set_error_buffered,
    ),
    Case("set-unknown-buffered", "an unknown Set call is buffered as status 5", _set_unknown_buffered),
    Case("keep-results", "keepResults, prevTitle, title reuse and DeleteResults", _keep_results),
    Case("exit", "Exit ends the worker at once, dropping a buffered error", _exit),
    Case("end-of-file", "end of file on call_pipe ends the worker", _end_of_file),
    Case("no-lattice-vectors", "a SetSystem without latticeVectors is accepted", _no_lattice_vectors, ROBUSTNESS),
    Case("plain-arrays", "UBJSON arrays in plain form ([...]) are accepted", _plain_arrays, ROBUSTNESS, ("ubjson",)),
    Case("solve-before-system", "Solve before SetSystem gets status 2", _solve_before_system, ROBUSTNESS),
    Case(
        "set-coords-wrong-count",
        "SetCoords with another atom count: status 7 buffered, the old geometry kept",
        _set_coords_wrong_count,
        ROBUSTNESS,
    ),
    Case("set-before-system", "SetCoords before SetSystem: status 2 on the next call", _set_before_system, ROBUSTNESS),
    Case(
        "unservable-request",
        "a hessian request gets status 3 (or 7) and the worker goes on",
        _unservable,
        ROBUSTNESS,
    ),
    Case("wrong-types", "wrong types for SetSystem arguments get status 7", _wrong_types, ROBUSTNESS),
    Case("nan-coordinates", "NaN coordinates get status 7; the old geometry stays", _nan_coords, ROBUSTNESS),
    Case("unknown-element", "an unknown element symbol gets status 7", _unknown_element, ROBUSTNESS),
    Case(
        "undecodable-payload",
        "random bytes in a frame get status 1 and the worker goes on",
        _undecodable,
        ROBUSTNESS,
    ),
    Case("end-of-file-clean", "end of file on call_pipe: exit status 0", _end_of_file_clean, ROBUSTNESS),
    Case(
        "frame-too-large",
        "a length above the maximum: status 1 if possible, exit non-zero, a message",
        _frame_too_large,
        ROBUSTNESS,
    ),
    Case("negative-length", "a negative frame length: exit non-zero", _negative_length, ROBUSTNESS),
    Case("short-frame", "a frame cut short by end of file: exit with a message", _short_frame, ROBUSTNESS),
)


def run_case(
    case: Case, command: Sequence[str], system: msg.SetSystem, codec: str, timeout: float = 60.0
) -> CaseResult:
    """Run one case against a fresh worker; never raises, never hangs."""
    start = time.perf_counter()
    client = None
    try:
        client = PipeClient(command, codec, reply_timeout=timeout, start_timeout=timeout)
        case.run(Checker(client, system))
        passed, detail = True, ""
    except CaseFailed as exc:
        passed, detail = False, str(exc)
    except (WorkerDiedError, WorkerTimeoutError) as exc:
        passed, detail = False, str(exc).splitlines()[0]
    except Exception as exc:  # a case must report, whatever the worker did
        passed, detail = False, f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            client.worker.close(timeout=2.0)
    return CaseResult(case.name, passed, detail, time.perf_counter() - start, case.kind)


def run_suite(
    command: Sequence[str],
    system: msg.SetSystem,
    codec: str = "ubjson",
    timeout: float = 60.0,
    kinds: Sequence[str] = KINDS,
) -> list[CaseResult]:
    """Every case of ``kinds`` that applies to ``codec``, in order (protocol cases first)."""
    cases = [case for case in CASES if codec in case.codecs and case.kind in kinds]
    return [run_case(case, command, system, codec, timeout) for case in cases]
