"""Reader for the LevelDB sorted-table format (".ldb"/"SSTable"), which
TensorFlow uses for the ``.index`` file of a checkpoint.

Layout: data blocks, a meta-index block, an index block, and a 48-byte
footer (two block handles, padding, an 8-byte magic number). A block handle
is two varints (offset, size). Every block is followed by a 5-byte trailer:
a compression byte and the masked CRC-32C of block + compression byte. A
block holds prefix-compressed entries (shared key length, unshared key
length, value length as varints, the unshared key bytes, the value) and ends
with a restart-point array (uint32 each) and its length (uint32). Index-block
values are the handles of the data blocks, in key order.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from mlpotential.backends.pinn.crc32c import crc32c, unmask
from mlpotential.backends.pinn.protobuf_wire import WireFormatError, read_varint

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
NO_COMPRESSION = 0
_COMPRESSION_NAMES = {1: "Snappy", 2: "Zstandard"}


class TableFormatError(ValueError):
    """The file is not a readable LevelDB sorted table."""


def read_table(path: Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) entries of the sorted table at ``path``, in key order.

    Raises :class:`TableFormatError` (naming the file) when the footer magic,
    a block checksum or the block structure is wrong, or when a block is
    compressed (TensorFlow writes checkpoint indexes uncompressed).
    """
    data = path.read_bytes()
    try:
        return list(_entries(data, path))
    except WireFormatError as exc:
        raise TableFormatError(f"{path}: malformed block handle ({exc})") from exc


def _entries(data: bytes, path: Path) -> Iterator[tuple[bytes, bytes]]:
    if len(data) < FOOTER_SIZE:
        raise TableFormatError(f"{path}: {len(data)} bytes, too short for a sorted-table footer")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise TableFormatError(f"{path}: not a LevelDB sorted table (footer magic {magic:#018x})")
    _, position = read_varint(footer, 0)  # meta-index offset: unused
    _, position = read_varint(footer, position)  # meta-index size: unused
    index_offset, position = read_varint(footer, position)
    index_size, _ = read_varint(footer, position)
    index_block = _read_block(data, index_offset, index_size, path)
    for _, handle in _block_entries(index_block, path):
        offset, position = read_varint(handle, 0)
        size, _ = read_varint(handle, position)
        yield from _block_entries(_read_block(data, offset, size, path), path)


def _read_block(data: bytes, offset: int, size: int, path: Path) -> bytes:
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise TableFormatError(f"{path}: block at {offset} (+{size}) runs past the end of the file")
    block = data[offset:end]
    compression = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    if unmask(stored) != crc32c(data[offset : end + 1]):
        raise TableFormatError(f"{path}: checksum mismatch in the block at byte {offset} (file damaged?)")
    if compression != NO_COMPRESSION:
        name = _COMPRESSION_NAMES.get(compression, f"type {compression}")
        raise TableFormatError(
            f"{path}: block at byte {offset} is {name}-compressed; only uncompressed tables are read"
        )
    return block


def _block_entries(block: bytes, path: Path) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TableFormatError(f"{path}: block of {len(block)} bytes has no restart array")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    entries_end = len(block) - 4 - 4 * num_restarts
    if entries_end < 0:
        raise TableFormatError(f"{path}: block restart array ({num_restarts}) larger than the block")
    key = b""
    position = 0
    while position < entries_end:
        shared, position = read_varint(block, position)
        unshared, position = read_varint(block, position)
        value_length, position = read_varint(block, position)
        if shared > len(key) or position + unshared + value_length > entries_end:
            raise TableFormatError(f"{path}: corrupt entry at block offset {position}")
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        yield key, block[position : position + value_length]
        position += value_length
