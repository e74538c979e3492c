"""CRC-32C (Castagnoli), the checksum LevelDB tables and TensorFlow tensor
bundles store, and LevelDB's "masked" form of it.

Python's standard library only has the IEEE CRC-32 (``zlib.crc32``), and a
compiled package for a few kilobytes of checkpoint is not worth a
dependency: PiNN checkpoints hold thousands of numbers, not millions.
"""

from __future__ import annotations

_POLYNOMIAL_REVERSED = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLYNOMIAL_REVERSED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c(data: bytes | memoryview) -> int:
    """The CRC-32C of ``data`` (an unsigned 32-bit integer)."""
    crc = _U32
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def unmask(masked: int) -> int:
    """Undo LevelDB's CRC masking (rotate right by 15 bits after subtracting a
    constant), which it applies so that a CRC of data holding CRCs is not
    degenerate."""
    rotated = (masked - _MASK_DELTA) & _U32
    return ((rotated >> 17) | (rotated << 15)) & _U32
