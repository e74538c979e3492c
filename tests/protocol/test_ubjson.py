"""The UBJSON codec against py-ubjson (an independent implementation), both ways."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import ubjson as py_ubjson

from mlpotential.protocol import ubjson
from mlpotential.protocol.errors import DecodeError, Status

VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    127,
    128,
    255,
    256,
    -129,
    32767,
    32768,
    -(2**31),
    2**31,
    2**62,
    -(2**63),
    0.0,
    -0.5,
    1e300,
    3.141592653589793,
    "",
    "Hello",
    "ÅngstrÖm ✓",
    [],
    {},
    [1, "a", None, True],
    {"a": {"b": [1.5, 2.5]}, "c": "d"},
    [[1, 2], [3, 4]],
    {"nested": [{"x": 1}, {"y": [True, False]}]},
]


def _plain(value):
    """Our decoding, with numpy arrays as lists, for comparison."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_ours_decoded_by_py_ubjson(value):
    assert py_ubjson.loadb(ubjson.dumps(value)) == value


@pytest.mark.parametrize("container_count", [False, True], ids=["plain", "counted"])
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_py_ubjson_plain_and_counted_decoded_by_ours(value, container_count):
    encoded = py_ubjson.dumpb(value, container_count=container_count)
    assert _plain(ubjson.loads(encoded)) == value


def test_float64_array_is_one_typed_array_both_ways():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(1000, 3))
    encoded = ubjson.dumps({"coords": coords})
    # key 'coords', then [$D# + count (int16 'I' 3000) + 24000 big-endian bytes
    header = b"{i\x06coords[$D#I" + struct.pack(">h", 3000)
    assert encoded.startswith(header)
    assert encoded[len(header) : len(header) + 24000] == coords.astype(">f8").tobytes()
    decoded = ubjson.loads(encoded)["coords"]
    assert isinstance(decoded, np.ndarray) and decoded.dtype == np.float64 and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, coords.ravel())
    assert py_ubjson.loadb(encoded)["coords"] == coords.ravel().tolist()


def test_typed_arrays_from_py_ubjson_come_out_as_numpy():
    # py-ubjson writes typed arrays only for bytes; build typed int/float arrays by hand per the spec
    ints = b"[$l#i\x03" + struct.pack(">iii", -1, 70000, 5)
    floats = b"[$d#i\x02" + struct.pack(">ff", 1.5, -2.25)
    np.testing.assert_array_equal(ubjson.loads(ints), [-1, 70000, 5])
    np.testing.assert_array_equal(ubjson.loads(floats), [1.5, -2.25])
    assert py_ubjson.loadb(ints) == [-1, 70000, 5]


def test_typed_string_array_and_object_forms():
    strings = ubjson.dumps(["O", "H", "H"])
    assert strings == b"[$S#i\x03i\x01Oi\x01Hi\x01H"
    assert py_ubjson.loadb(strings) == ["O", "H", "H"]
    typed_object = b"{$D#i\x02i\x01a" + struct.pack(">d", 1.0) + b"i\x01b" + struct.pack(">d", 2.0)
    assert ubjson.loads(typed_object) == {"a": 1.0, "b": 2.0}


def test_small_integers_use_int8_like_scms_reference():
    assert ubjson.dumps([3, 9]) == b"[$i#i\x02\x03\x09"
    assert ubjson.dumps({"version": 1}) == b"{i\x07versioni\x01}"


def test_noop_markers_and_high_precision():
    assert ubjson.loads(b"[NNi\x01Ni\x02]") == [1, 2]
    assert ubjson.loads(b"HU\x0512345") == 12345


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"{i\x05Hel", b"[$D#i\x05" + b"\x00" * 8, b"Q", b"i\x01i\x02", b"Si\x02\xff\xfe", b"[$D]", b"[#i\xff"],
    ids=[
        "empty",
        "open-object",
        "short-key",
        "short-array",
        "unknown-marker",
        "trailing",
        "bad-utf8",
        "type-without-count",
        "negative-count",
    ],
)
def test_invalid_payloads_raise_decode_error(payload):
    with pytest.raises(DecodeError) as info:
        ubjson.loads(payload)
    assert info.value.status == Status.DECODE_ERROR


def test_random_bytes_never_crash_the_decoder():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        data = bytes([0x7B]) + rng.bytes(int(rng.integers(1, 40)))
        try:
            ubjson.loads(data)
        except DecodeError:
            pass


@pytest.mark.parametrize("item_type", [b"Z", b"T", b"F"])
@pytest.mark.parametrize("count", [2**62, 2**28])
def test_typed_arrays_of_items_without_payload_are_bounded(item_type: bytes, count: int) -> None:
    """A 15-byte array header must not make the decoder allocate gigabytes."""
    data = b"[$" + item_type + b"#L" + struct.pack(">q", count)
    with pytest.raises(DecodeError, match="above the limit"):
        ubjson.loads(data)
    assert ubjson.loads(b"[$" + item_type + b"#i\x03") == [py_ubjson.loadb(item_type)] * 3


@pytest.mark.parametrize(
    "header",
    [b"[#L", b"[$S#L", b"{#L", b"{$D#L", b"[$[#L"],
    ids=["counted-array", "typed-strings", "counted-object", "typed-object", "typed-arrays"],
)
def test_counts_beyond_the_bytes_left_are_refused_before_allocating(header: bytes) -> None:
    with pytest.raises(DecodeError, match="bytes are left|bytes needed"):
        ubjson.loads(header + struct.pack(">q", 2**62) + b"i\x01")
