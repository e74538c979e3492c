"""The msgpack codec carries the same message schema; codec detection."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import MSGPACK, UBJSON, detect_codec
from mlpotential.protocol.errors import DecodeError


def test_same_schema_in_both_codecs():
    coords = np.random.default_rng(2).normal(size=(5, 3))
    call = msg.SetSystem(["C", "H", "H", "H", "H"], coords, np.eye(3) * 10.0)
    for codec in (UBJSON, MSGPACK):
        decoded = msg.decode_call(codec.loads(codec.dumps(msg.encode_call(call))))
        np.testing.assert_array_equal(decoded.coords, coords)
        np.testing.assert_array_equal(decoded.lattice, np.eye(3) * 10.0)
        assert decoded.atom_symbols == call.atom_symbols


def test_msgpack_payload_is_plain_msgpack():
    payload = MSGPACK.dumps(msg.encode_call(msg.Hello()))
    assert msgpack.unpackb(payload) == {"Hello": {"version": 1}}
    assert payload[0] == 0x81


@pytest.mark.parametrize(("payload", "codec"), [(b"{i\x05Hello{}}", UBJSON), (b"\x81\xa5Hello\x80", MSGPACK)])
def test_detect_codec_from_first_byte(payload, codec):
    assert detect_codec(payload) is codec


def test_detect_codec_rejects_other_bytes():
    with pytest.raises(DecodeError):
        detect_codec(b"[1,2]")
    with pytest.raises(DecodeError):
        MSGPACK.loads(b"\x81\xa5Hello")
