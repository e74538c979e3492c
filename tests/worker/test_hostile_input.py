"""A live worker against hostile frames: each gets a reply with the right
status, nothing leaves a traceback or memory behind, the worker goes on."""

from __future__ import annotations

import gc
import struct
from pathlib import Path

import msgpack
import numpy as np
import pytest

from mlpotential.host.client import PipeClient
from mlpotential.host.launcher import our_worker_command
from mlpotential.protocol import messages as msg
from mlpotential.protocol.errors import Status

EMT = our_worker_command("--backend", "ASE", "--model", "EMT")
SYSTEM = {"atomSymbols": ["H", "H"], "coords": [0.0, 0.0, 0.0, 0.0, 0.0, 1.4], "coords_dim_": [3, 2]}


def resident_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def answer_to(client: PipeClient, payload: bytes) -> msg.Return:
    client.send_payloads([payload])
    reply = client.read_reply()
    assert isinstance(reply, msg.Return)
    return reply


@pytest.mark.parametrize("item_type", [b"Z", b"T", b"F"])
def test_a_33_byte_frame_of_empty_items_gets_status_1_and_the_worker_goes_on(item_type: bytes) -> None:
    payload = b"{i\x05Hello{i\x07version[$" + item_type + b"#L" + struct.pack(">q", 2**62) + b"}}"
    with PipeClient(EMT) as client:
        client.hello()
        assert answer_to(client, payload).status == Status.DECODE_ERROR
        client.hello()
        assert "Traceback" not in client.worker.log_text()


def test_memory_returns_to_its_baseline_after_a_large_invalid_set_call() -> None:
    """The error of a Set call is kept until the next call: it must not keep
    the decoded message alive once answered. (120 MB: glibc returns blocks
    this large to the system at once, so the resident size can tell.)"""
    values = 120 * 1024 * 1024 // 8 // 3 * 3
    bad = {"SetSystem": {"atomSymbols": ["H"], "coords": np.zeros(values), "coords_dim_": [3, values // 3 + 1]}}
    with PipeClient(EMT) as client:
        client.hello()
        baseline = resident_megabytes(client.worker.pid)
        client.exchange(bad, expect_reply=False)
        (reply,) = client.exchange({"Hello": {"version": 1}})
        assert reply.status == Status.INVALID_ARGUMENT and reply.argument == "coords"
        client.hello()
        assert resident_megabytes(client.worker.pid) < baseline + 20


@pytest.mark.parametrize("codec", ["ubjson", "msgpack"])
@pytest.mark.parametrize(
    "message",
    [
        {"SetSystem": {"atomSymbols": ["H"], "coords": np.zeros(3000), "coords_dim_": [3, 1001]}},
        {"SetCoords": {"coords": np.zeros(3000)}},
        {"DeleteResults": {"title": "x", "junk": np.zeros(3000)}},
        {"Solve": {"request": {"title": "x"}, "keepResults": np.zeros(3000)}},
    ],
    ids=["set-system", "set-before-system", "unknown-argument", "wrong-type"],
)
def test_an_answered_error_leaves_no_reference_cycle(codec: str, message: dict) -> None:
    """Cycles are freed only by a garbage collection, which for objects that
    lived through one (a buffered Set error) may come thousands of calls
    later: a 512 MB frame then stayed in memory. None may be left."""
    from mlpotential.protocol.codecs import CODECS
    from mlpotential.worker.engine import load_engine
    from mlpotential.worker.session import WorkerSession

    session = WorkerSession(load_engine({"Backend": "ASE", "Model": "EMT"}))
    decoded = CODECS[codec].loads(CODECS[codec].dumps(message))
    gc.collect()
    gc.disable()
    try:
        replies = session.handle(decoded) + session.handle({"Hello": {"version": 1}})
        assert replies[0].status != Status.SUCCESS
        del decoded, replies
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_large_undecodable_frame_leaves_no_memory_behind() -> None:
    size = 150 * 1024 * 1024
    payload = b"{i\x05Hello{i\x07versionSl" + struct.pack(">i", size) + b"\xff" * size + b"}}"
    with PipeClient(EMT) as client:
        client.hello()
        baseline = resident_megabytes(client.worker.pid)
        assert answer_to(client, payload).status == Status.DECODE_ERROR
        client.hello()
        assert resident_megabytes(client.worker.pid) < baseline + 20


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({**SYSTEM, "bonds": [1, 2**64 - 1], "bonds_dim_": [2, 1]}, "bonds"),
        ({**SYSTEM, "coords_dim_": [3, 2**64 - 1]}, "coords_dim_"),
    ],
    ids=["bonds-2^64", "uint64-dim"],
)
def test_integers_beyond_64_bits_are_invalid_arguments_without_a_traceback(arguments, argument) -> None:
    with PipeClient(EMT, "msgpack") as client:
        client.hello()
        client.exchange({"SetSystem": arguments}, expect_reply=False)
        (reply,) = client.exchange({"Hello": {"version": 1}})
        assert (reply.status, reply.argument) == (Status.INVALID_ARGUMENT, argument)
        assert "Traceback" not in client.worker.log_text()


def test_a_4000_digit_high_precision_charge_is_an_invalid_argument() -> None:
    digits = b"9" * 4000
    payload = (
        b"{i\x09SetSystem{i\x0batomSymbols[$S#i\x02i\x01Hi\x01Hi\x06coords[$D#i\x06"
        + struct.pack(">6d", 0, 0, 0, 0, 0, 1.4)
        + b"i\x0btotalChargeHI"
        + struct.pack(">h", len(digits))
        + digits
        + b"}}"
    )
    with PipeClient(EMT) as client:
        client.hello()
        client.send_payloads([payload])
        (reply,) = client.exchange({"Hello": {"version": 1}})
        assert (reply.status, reply.argument) == (Status.INVALID_ARGUMENT, "totalCharge")
        assert "Traceback" not in client.worker.log_text()


def test_a_message_name_in_bytes_is_a_decode_error_without_a_traceback() -> None:
    with PipeClient(EMT, "msgpack") as client:
        client.hello()
        assert answer_to(client, msgpack.packb({b"Hello": {"version": 1}})).status == Status.DECODE_ERROR
        client.hello()
        assert "Traceback" not in client.worker.log_text()


@pytest.mark.parametrize(
    ("codec", "payload"),
    [("ubjson", b"{i\x05HelloSi\x02\xff\xfe}"), ("msgpack", b"\x81\xa5Hello\xa2\xff\xfe")],
)
def test_a_payload_that_fails_to_decode_leaves_no_reference_cycle(codec: str, payload: bytes) -> None:
    from mlpotential.protocol.codecs import CODECS
    from mlpotential.protocol.errors import DecodeError

    gc.collect()
    gc.disable()
    try:
        with pytest.raises(DecodeError):
            CODECS[codec].loads(payload)
        assert gc.collect() == 0
    finally:
        gc.enable()
