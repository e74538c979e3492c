"""The two payload encodings behind one interface, and how a worker tells
them apart from the first byte of the first frame."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlpotential.protocol import msgpack_codec, ubjson
from mlpotential.protocol.errors import DecodeError


@dataclass(frozen=True)
class Codec:
    """A payload encoding: ``dumps(value) -> bytes``, ``loads(bytes) -> value``."""

    name: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


UBJSON = Codec("ubjson", ubjson.dumps, ubjson.loads)
MSGPACK = Codec("msgpack", msgpack_codec.dumps, msgpack_codec.loads)
CODECS: dict[str, Codec] = {codec.name: codec for codec in (UBJSON, MSGPACK)}


def detect_codec(payload: bytes) -> Codec:
    """The codec of a call from its first byte: ``{`` (0x7B) is a UBJSON
    object, a msgpack map starts with 0x80-0x8F (fixmap), 0xDE or 0xDF."""
    if not payload:
        raise DecodeError("empty payload: cannot tell the encoding")
    first = payload[0]
    if first == 0x7B:
        return UBJSON
    if 0x80 <= first <= 0x8F or first in (0xDE, 0xDF):
        return MSGPACK
    raise DecodeError(f"payload starts with byte 0x{first:02x}: neither a UBJSON object ('{{') nor a msgpack map")
