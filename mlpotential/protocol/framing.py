"""Frames on a pipe: a 4-byte signed int32 length in native byte order, then
that many bytes of payload.

:class:`FrameReader` reads frames from a file descriptor through its own
buffer (few system calls); an optional ``wait`` callback runs before each
blocking read, which is where the host watches its worker.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable

MAX_FRAME_SIZE = 256 * 1024 * 1024
"""Largest payload accepted (256 MiB: coordinates of ten million atoms). A
larger length means the stream is corrupt; it cannot be resynchronised."""

_LENGTH = struct.Struct("=i")
_READ_CHUNK = 1 << 16


class FrameError(Exception):
    """The byte stream is broken: the peer cannot be understood any more."""


class FrameTooLarge(FrameError):
    """A length prefix that is negative or above :data:`MAX_FRAME_SIZE`."""


class TruncatedFrame(FrameError):
    """End of file inside a frame."""


def encode_frame(payload: bytes) -> bytes:
    """Length prefix + payload, ready for one write."""
    return _LENGTH.pack(len(payload)) + payload


def write_frames(fd: int, payloads: Iterable[bytes]) -> None:
    """Write several frames with as few system calls as possible (one for
    small messages), so the peer wakes up once."""
    data = memoryview(b"".join(encode_frame(payload) for payload in payloads))
    while data:
        written = os.write(fd, data)
        data = data[written:]


class FrameReader:
    """Reads frames from ``fd``. ``wait()``, when given, is called before
    every read that would block; it may raise to abort the wait."""

    def __init__(self, fd: int, wait: Callable[[], None] | None = None) -> None:
        self.fd = fd
        self.wait = wait
        self.buffer = bytearray()

    def _fill(self, size: int) -> bool:
        """Buffer at least ``size`` bytes; False at end of file."""
        while len(self.buffer) < size:
            if self.wait is not None:
                self.wait()
            chunk = os.read(self.fd, max(_READ_CHUNK, size - len(self.buffer)))
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_frame(self) -> bytes | None:
        """The next payload, or None at a clean end of file (between frames).

        Raises :class:`FrameTooLarge` for a corrupt length and
        :class:`TruncatedFrame` for end of file inside a frame.
        """
        if not self._fill(_LENGTH.size):
            if self.buffer:
                raise TruncatedFrame(f"end of file inside a frame's length ({len(self.buffer)} of 4 bytes)")
            return None
        (size,) = _LENGTH.unpack_from(self.buffer)
        if size < 0 or size > MAX_FRAME_SIZE:
            raise FrameTooLarge(
                f"frame length {size} is outside 0..{MAX_FRAME_SIZE} bytes: the stream cannot be resynchronised"
            )
        end = _LENGTH.size + size
        if not self._fill(end):
            raise TruncatedFrame(
                f"end of file inside a frame: {len(self.buffer) - _LENGTH.size} of {size} payload bytes arrived"
            )
        payload = bytes(self.buffer[_LENGTH.size : end])
        del self.buffer[:end]
        return payload
