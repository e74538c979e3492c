"""msgpack encoding of the same message schema, ``dumps``/``loads``.

msgpack has no typed-array form, so numpy arrays travel as msgpack arrays of
float64 (or ints) and decode to lists; the message layer turns them back into
numpy arrays.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from mlpotential.protocol.errors import DecodeError


def _to_builtin(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return value.astype(np.float64, copy=False).ravel().tolist()
        return value.ravel().tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} as msgpack")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as msgpack bytes (floats as float64)."""
    return msgpack.packb(value, default=_to_builtin, use_single_float=False)


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Decode one msgpack value filling ``data`` exactly; DecodeError otherwise."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError, MemoryError) as exc:
        # The message only: raising inside this block would chain the library's
        # exception, whose traceback holds this frame (and the payload) in a cycle.
        problem = f"{type(exc).__name__}: {exc}" if isinstance(exc, MemoryError) else str(exc)
    raise DecodeError(f"invalid msgpack payload: {problem}")
