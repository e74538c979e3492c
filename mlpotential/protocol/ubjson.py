"""UBJSON (ubjson.org, draft 12) encoder and decoder, ``dumps``/``loads``.

Written for the pipe protocol's traffic: float64 arrays go out and come in as
one strongly typed array (``[$D#<count>`` + big-endian bytes) converted by a
single numpy call, never element by element. The decoder accepts every valid
form of a container: strongly typed (``$`` + ``#``), counted (``#``) and plain
(closing marker). Object keys carry no ``S`` marker, as UBJSON specifies.

Python <-> UBJSON:
``None`` Z; ``bool`` T/F; ``int`` the smallest of i U I l L; ``float`` D;
``str`` S; ``dict`` (str keys) object; numpy float arrays ``[$D#``; numpy
integer arrays and lists of ints ``[$<smallest int type>#``; lists of floats
``[$D#``; lists of str ``[$S#``; other lists plain. Typed numeric arrays decode
to numpy arrays (float64 or int64, native byte order), everything else to
Python objects.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from mlpotential.protocol.errors import DecodeError

_INT_TYPES = (  # marker, struct format, numpy big-endian dtype, min, max
    (b"i", ">b", ">i1", -(2**7), 2**7 - 1),
    (b"U", ">B", ">u1", 0, 2**8 - 1),
    (b"I", ">h", ">i2", -(2**15), 2**15 - 1),
    (b"l", ">i", ">i4", -(2**31), 2**31 - 1),
    (b"L", ">q", ">i8", -(2**63), 2**63 - 1),
)
_INT_PACKERS = tuple((marker, struct.Struct(fmt).pack, low, high) for marker, fmt, _, low, high in _INT_TYPES)
_NUMERIC = {ord(marker): (struct.Struct(fmt), np.dtype(dtype)) for marker, fmt, dtype, _, _ in _INT_TYPES} | {
    ord("d"): (struct.Struct(">f"), np.dtype(">f4")),
    ord("D"): (struct.Struct(">d"), np.dtype(">f8")),
}
_PACK_DOUBLE = struct.Struct(">d").pack

MAX_ITEMS_WITHOUT_PAYLOAD = 1 << 20
"""Most items a typed array of T, F or Z (which take no bytes) may hold: every
other item takes at least a byte, so the frame's size bounds their count."""


_KEYS: dict[str, bytes] = {}
_MAX_REMEMBERED_KEYS = 4096


def _remember_key(key: str) -> bytes:
    """The encoded form of an object key (length + UTF-8), cached: messages
    use the same few dozen keys over and over."""
    if not isinstance(key, str):
        raise TypeError(f"UBJSON object keys must be str, not {type(key).__name__}")
    encoder = _Encoder()
    data = key.encode()
    encoder.length(len(data))
    encoded = encoder.chunks[0] + data
    if len(_KEYS) < _MAX_REMEMBERED_KEYS:
        _KEYS[key] = encoded
    return encoded


class _Encoder:
    __slots__ = ("chunks",)

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def length(self, count: int) -> None:
        for marker, pack, low, high in _INT_PACKERS:
            if low <= count <= high:
                self.chunks.append(marker + pack(count))
                return
        raise ValueError(f"integer {count} does not fit in UBJSON int64")

    def key(self, key: str) -> None:
        data = key.encode()
        self.length(len(data))
        self.chunks.append(data)

    def value(self, value: Any) -> None:
        chunks = self.chunks
        if value is None:
            chunks.append(b"Z")
        elif value is True:
            chunks.append(b"T")
        elif value is False:
            chunks.append(b"F")
        elif isinstance(value, float):
            chunks.append(b"D" + _PACK_DOUBLE(value))
        elif isinstance(value, int):
            self.length(value)
        elif isinstance(value, str):
            chunks.append(b"S")
            self.key(value)
        elif isinstance(value, dict):
            chunks.append(b"{")
            for key, item in value.items():
                encoded = _KEYS.get(key)
                if encoded is None:
                    encoded = _remember_key(key)
                chunks.append(encoded)
                self.value(item)
            chunks.append(b"}")
        elif isinstance(value, np.ndarray):
            self.array(value)
        elif isinstance(value, (list, tuple)):
            self.sequence(value)
        elif isinstance(value, np.bool_):
            chunks.append(b"T" if value else b"F")
        elif isinstance(value, np.integer):
            self.length(int(value))
        elif isinstance(value, np.floating):
            chunks.append(b"D" + _PACK_DOUBLE(float(value)))
        else:
            raise TypeError(f"cannot encode {type(value).__name__} as UBJSON")

    def array(self, array: np.ndarray) -> None:
        kind = array.dtype.kind
        if kind == "f":
            self.chunks.append(b"[$D#")
            self.length(array.size)
            self.chunks.append(np.ascontiguousarray(array, dtype=">f8").tobytes())
        elif kind in "iu":
            self.typed_ints(array.ravel())
        elif kind == "b":
            self.sequence(array.ravel().tolist())
        else:
            raise TypeError(f"cannot encode a numpy array of dtype {array.dtype} as UBJSON")

    def typed_ints(self, values: np.ndarray) -> None:
        low = int(values.min()) if values.size else 0
        high = int(values.max()) if values.size else 0
        for marker, _, dtype, minimum, maximum in _INT_TYPES:
            if minimum <= low and high <= maximum:
                self.chunks.append(b"[$" + marker + b"#")
                self.length(values.size)
                self.chunks.append(values.astype(dtype).tobytes())
                return
        raise ValueError("integer array does not fit in UBJSON int64")

    def sequence(self, items: list | tuple) -> None:
        if items and all(type(item) is float for item in items):
            self.array(np.asarray(items, dtype=np.float64))
        elif items and all(type(item) is int for item in items):
            self.typed_ints(np.asarray(items, dtype=np.int64))
        elif items and all(type(item) is str for item in items):
            self.chunks.append(b"[$S#")
            self.length(len(items))
            for item in items:
                self.key(item)
        else:
            self.chunks.append(b"[")
            for item in items:
                self.value(item)
            self.chunks.append(b"]")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as UBJSON bytes."""
    encoder = _Encoder()
    encoder.value(value)
    return b"".join(encoder.chunks)


class _Decoder:
    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def fail(self, what: str) -> DecodeError:
        return DecodeError(f"invalid UBJSON at byte {self.pos}: {what}")

    def marker(self) -> int:
        data, pos = self.data, self.pos
        while pos < self.end and data[pos] == 0x4E:  # N: no-op, allowed between values
            pos += 1
        if pos >= self.end:
            self.pos = pos
            raise self.fail("unexpected end of data")
        self.pos = pos + 1
        return data[pos]

    def take(self, size: int) -> int:
        start = self.pos
        if size < 0 or start + size > self.end:
            raise self.fail(f"{size} bytes needed, {self.end - start} left")
        self.pos = start + size
        return start

    def require_items(self, count: int) -> None:
        """Refuse a count that the bytes left cannot hold (every item that is
        not a T, F or Z takes at least one byte) before anything is allocated."""
        if count > self.end - self.pos:
            raise self.fail(f"a count of {count} items, but only {self.end - self.pos} bytes are left")

    def length(self) -> int:
        marker = self.marker()
        if marker not in _NUMERIC or marker in (0x64, 0x44):
            raise self.fail(f"expected an integer length, found marker {chr(marker)!r}")
        unpacker = _NUMERIC[marker][0]
        count = unpacker.unpack_from(self.data, self.take(unpacker.size))[0]
        if count < 0:
            raise self.fail(f"negative length {count}")
        return count

    def string(self) -> str:
        data, pos = self.data, self.pos
        if pos + 1 < self.end and data[pos] in (0x69, 0x55) and data[pos + 1] < 0x80:
            # the common case: a length below 128 as 'i' or 'U'
            size = data[pos + 1]
            end = pos + 2 + size
            if end <= self.end:
                self.pos = end
                try:
                    return data[pos + 2 : end].decode()
                except UnicodeDecodeError as exc:
                    raise self.fail(f"string is not UTF-8 ({exc.reason})") from None
        size = self.length()
        start = self.take(size)
        try:
            return self.data[start : start + size].decode()
        except UnicodeDecodeError as exc:
            raise self.fail(f"string is not UTF-8 ({exc.reason})") from None

    def value(self, marker: int | None = None) -> Any:
        if marker is None:
            marker = self.marker()
        numeric = _NUMERIC.get(marker)
        if numeric is not None:
            unpacker = numeric[0]
            return unpacker.unpack_from(self.data, self.take(unpacker.size))[0]
        if marker == 0x53:  # S
            return self.string()
        if marker == 0x7B:  # {
            return self.object()
        if marker == 0x5B:  # [
            return self.array()
        if marker == 0x54:  # T
            return True
        if marker == 0x46:  # F
            return False
        if marker == 0x5A:  # Z
            return None
        if marker == 0x43:  # C
            return chr(self.data[self.take(1)])
        if marker == 0x48:  # H: high-precision number, kept as its decimal string
            text = self.string()
            try:
                return int(text)
            except ValueError:
                try:
                    return float(text)
                except ValueError:
                    raise self.fail(f"high-precision number {text!r} is not a number") from None
        raise self.fail(f"unknown marker {chr(marker)!r}")

    def container_header(self) -> tuple[int | None, int | None]:
        """Type marker and count of an optimized container, None where absent."""
        if self.pos < self.end and self.data[self.pos] == 0x24:  # $
            self.pos += 1
            item_type = self.marker()
            if self.marker() != 0x23:  # #
                raise self.fail("a typed container ($) must give its count (#)")
            return item_type, self.length()
        if self.pos < self.end and self.data[self.pos] == 0x23:  # #
            self.pos += 1
            return None, self.length()
        return None, None

    def array(self) -> Any:
        item_type, count = self.container_header()
        if count is None:
            items = []
            while True:
                marker = self.marker()
                if marker == 0x5D:  # ]
                    return items
                items.append(self.value(marker))
        if item_type is None:
            self.require_items(count)
            return [self.value() for _ in range(count)]
        numeric = _NUMERIC.get(item_type)
        if numeric is not None:
            dtype = numeric[1]
            start = self.take(count * dtype.itemsize)
            raw = np.frombuffer(self.data, dtype=dtype, count=count, offset=start)
            return raw.astype(np.float64 if dtype.kind == "f" else np.int64)
        if item_type in (0x54, 0x46, 0x5A):  # T F Z carry no payload
            if count > MAX_ITEMS_WITHOUT_PAYLOAD:
                raise self.fail(
                    f"a typed array of {count} items of type {chr(item_type)} (above the limit of "
                    f"{MAX_ITEMS_WITHOUT_PAYLOAD}: such items take no bytes, so only a limit bounds the memory)"
                )
            return [self.value(item_type)] * count
        self.require_items(count)
        return [self.value(item_type) for _ in range(count)]

    def object(self) -> dict[str, Any]:
        item_type, count = self.container_header()
        result: dict[str, Any] = {}
        if count is None:
            while True:
                data, pos = self.data, self.pos
                while pos < self.end and data[pos] == 0x4E:
                    pos += 1
                self.pos = pos
                if pos < self.end and data[pos] == 0x7D:  # }
                    self.pos += 1
                    return result
                key = self.string()
                result[key] = self.value()
        if item_type in (0x54, 0x46, 0x5A):
            self.require_items(count)  # each entry still has a key of at least one byte
        else:
            self.require_items(2 * count)  # a key and a value, at least one byte each
        for _ in range(count):
            key = self.string()
            result[key] = self.value(item_type)
        return result


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Decode one UBJSON value that fills ``data`` exactly.

    Raises :class:`~mlpotential.protocol.errors.DecodeError` on anything that
    is not valid UBJSON, including trailing bytes.
    """
    decoder = _Decoder(data if isinstance(data, bytes) else bytes(data))
    try:
        value = decoder.value()
    except DecodeError:
        raise
    except (struct.error, ValueError, RecursionError, MemoryError) as exc:
        # The message only: the exception's traceback would keep the decoder
        # (and the whole payload) alive in a reference cycle.
        problem = f"{type(exc).__name__}: {exc}" if isinstance(exc, MemoryError) else str(exc)
    else:
        if decoder.pos != decoder.end:
            raise decoder.fail(f"{decoder.end - decoder.pos} bytes after the end of the value")
        return value
    raise decoder.fail(problem)
