"""The Protocol Buffers wire format, as far as a tensor-bundle index needs it:
varints and the four field encodings, decoded into (field number, value)
pairs. No schema: the caller knows what each field number means.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
FIXED32 = 5


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    """Decode the base-128 varint at ``position``; return (value, next position)."""
    value = 0
    shift = 0
    while True:
        if position >= len(buffer):
            raise WireFormatError("truncated varint")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise WireFormatError("varint longer than 10 bytes")


def iter_fields(message: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field of ``message``.

    Varint and fixed-width values come back as unsigned integers,
    length-delimited ones as bytes (a nested message, string or packed array).
    """
    position = 0
    while position < len(message):
        key, position = read_varint(message, position)
        field, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, position = read_varint(message, position)
        elif wire_type == FIXED64:
            if position + 8 > len(message):
                raise WireFormatError("truncated 64-bit field")
            (value,) = struct.unpack_from("<Q", message, position)
            position += 8
        elif wire_type == LENGTH_DELIMITED:
            length, position = read_varint(message, position)
            if position + length > len(message):
                raise WireFormatError("truncated length-delimited field")
            value = bytes(message[position : position + length])
            position += length
        elif wire_type == FIXED32:
            if position + 4 > len(message):
                raise WireFormatError("truncated 32-bit field")
            (value,) = struct.unpack_from("<I", message, position)
            position += 4
        else:
            raise WireFormatError(f"unsupported wire type {wire_type} in field {field}")
        yield field, wire_type, value


def as_signed64(value: int) -> int:
    """Reinterpret an unsigned varint as the int64/int32 it encodes."""
    return value - (1 << 64) if value >= 1 << 63 else value
