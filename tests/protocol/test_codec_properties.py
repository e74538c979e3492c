"""Property-based tests of both codecs (hypothesis): every value round-trips,
and arbitrary or mutated bytes never raise anything but the codec's error."""

from __future__ import annotations

import numpy as np
import ubjson as py_ubjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpotential.protocol import msgpack_codec, ubjson
from mlpotential.protocol.errors import DecodeError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)  # py-ubjson writes infinity as null, as UBJSON advises
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)
float_arrays = st.lists(st.floats(allow_nan=False), min_size=1, max_size=30).map(np.array)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def plain(value):
    """The value as plain Python: typed arrays decode to numpy arrays (ours)
    or, for arrays of uint8, to bytes (py-ubjson)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


@PROPERTY_SETTINGS
@given(values)
def test_ubjson_round_trip_and_agreement_with_py_ubjson(value) -> None:
    encoded = ubjson.dumps(value)
    assert plain(ubjson.loads(encoded)) == value
    assert plain(ubjson.loads(py_ubjson.dumpb(value))) == value
    assert plain(py_ubjson.loadb(encoded)) == value


@PROPERTY_SETTINGS
@given(values)
def test_msgpack_round_trip(value) -> None:
    assert msgpack_codec.loads(msgpack_codec.dumps(value)) == value


@PROPERTY_SETTINGS
@given(float_arrays)
def test_float_arrays_round_trip_bit_for_bit(array) -> None:
    np.testing.assert_array_equal(ubjson.loads(ubjson.dumps(array)), array)
    np.testing.assert_array_equal(msgpack_codec.loads(msgpack_codec.dumps(array)), array)


def decodes_or_refuses(loads, data: bytes) -> None:
    try:
        loads(data)
    except DecodeError:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_only_the_codec_error(data: bytes) -> None:
    decodes_or_refuses(ubjson.loads, data)
    decodes_or_refuses(msgpack_codec.loads, data)


@settings(max_examples=1000, deadline=None)
@given(values, st.data())
def test_mutated_encodings_decode_or_raise_only_the_codec_error(value, data) -> None:
    for codec in (ubjson, msgpack_codec):
        encoded = bytearray(codec.dumps(value))
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, max(len(encoded) - 1, 0)))
            if encoded and data.draw(st.booleans()):
                encoded[position] = data.draw(st.integers(0, 255))
            else:
                encoded[position:position] = data.draw(st.binary(min_size=1, max_size=9))
        decodes_or_refuses(codec.loads, bytes(encoded))


def test_infinity_round_trips_in_both_codecs() -> None:
    infinities = [float("inf"), -float("inf")]
    for codec in (ubjson, msgpack_codec):
        assert plain(codec.loads(codec.dumps(infinities))) == infinities
