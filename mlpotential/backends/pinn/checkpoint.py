"""TensorFlow checkpoints (the "tensor bundle" format V2) read without
TensorFlow: the ``checkpoint`` state file, the ``<prefix>.index`` sorted
table and the ``<prefix>.data-SSSSS-of-NNNNN`` shards.

The index maps each variable name to a ``BundleEntryProto`` (dtype, shape,
shard, offset, size, masked CRC-32C); the empty key holds the
``BundleHeaderProto`` (number of shards, byte order). A tensor is the raw
array bytes at that offset of that shard. Only numeric tensors stored whole
are read; string tensors and partitioned (sliced) variables are refused with
a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpotential.backends.pinn.crc32c import crc32c, unmask
from mlpotential.backends.pinn.protobuf_wire import LENGTH_DELIMITED, WireFormatError, as_signed64, iter_fields
from mlpotential.backends.pinn.sorted_table import TableFormatError, read_table

STATE_FILE = "checkpoint"

# TensorFlow's DataType enum (types.proto) for the numeric types numpy has.
_DTYPES: dict[int, str] = {
    1: "f4",  # DT_FLOAT
    2: "f8",  # DT_DOUBLE
    3: "i4",  # DT_INT32
    4: "u1",  # DT_UINT8
    5: "i2",  # DT_INT16
    6: "i1",  # DT_INT8
    9: "i8",  # DT_INT64
    10: "?",  # DT_BOOL
    17: "u2",  # DT_UINT16
    19: "f2",  # DT_HALF
    22: "u4",  # DT_UINT32
    23: "u8",  # DT_UINT64
}
_DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}
_BIG_ENDIAN = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged or holds something this reader does
    not support. The message names the file."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable lives in the data shards."""

    name: str
    dtype_code: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    masked_crc32c: int | None
    sliced: bool


class Checkpoint:
    """An opened checkpoint: variable names, shapes, and their values on demand."""

    def __init__(self, prefix: Path) -> None:
        """Read the index ``<prefix>.index``; raise :class:`CheckpointError`
        when it is missing or malformed."""
        self.prefix = prefix
        index_path = Path(f"{prefix}.index")
        if not index_path.is_file():
            raise CheckpointError(f"checkpoint index {index_path} is missing")
        try:
            table = read_table(index_path)
        except TableFormatError as exc:
            raise CheckpointError(str(exc)) from exc
        if not table or table[0][0] != b"":
            raise CheckpointError(f"{index_path}: no bundle header (not a TensorFlow V2 checkpoint index)")
        try:
            self._num_shards, self._big_endian = _parse_header(table[0][1])
            self.entries: dict[str, TensorEntry] = {
                key.decode("utf-8"): _parse_entry(key.decode("utf-8"), value) for key, value in table[1:]
            }
        except (WireFormatError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{index_path}: malformed entry ({exc})") from exc

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of variable ``name`` (KeyError when absent)."""
        return self.entries[name].shape

    def read(self, name: str) -> np.ndarray:
        """The value of variable ``name`` as a numpy array (native byte order)."""
        return self.read_many([name])[name]

    def read_many(self, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Values of several variables, each shard opened once; every
        tensor's checksum is verified."""
        wanted = [self.entries[name] for name in names]
        values: dict[str, np.ndarray] = {}
        for shard in sorted({entry.shard for entry in wanted}):
            path = self._shard_path(shard)
            if not path.is_file():
                raise CheckpointError(f"checkpoint data file {path} is missing")
            with path.open("rb") as stream:
                for entry in (e for e in wanted if e.shard == shard):
                    stream.seek(entry.offset)
                    values[entry.name] = self._decode(entry, stream.read(entry.size), path)
        return values

    def _shard_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self._num_shards:05d}")

    def _decode(self, entry: TensorEntry, raw: bytes, path: Path) -> np.ndarray:
        if entry.sliced:
            raise CheckpointError(f"{path}: variable {entry.name} is partitioned into slices; not supported")
        code = _DTYPES.get(entry.dtype_code)
        if code is None:
            kind = _DTYPE_NAMES.get(entry.dtype_code, f"type code {entry.dtype_code}")
            raise CheckpointError(f"{path}: variable {entry.name} holds {kind} data; only numeric tensors are read")
        if len(raw) != entry.size:
            raise CheckpointError(f"{path}: variable {entry.name} is truncated ({len(raw)} of {entry.size} bytes)")
        if entry.masked_crc32c is not None and unmask(entry.masked_crc32c) != crc32c(raw):
            raise CheckpointError(f"{path}: checksum mismatch for variable {entry.name} (file damaged?)")
        dtype = np.dtype(code).newbyteorder(">" if self._big_endian else "<")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise CheckpointError(
                f"{path}: variable {entry.name} has {entry.size} bytes, its shape {list(entry.shape)} needs "
                f"{count * dtype.itemsize}"
            )
        return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(entry.shape)


def _parse_header(message: bytes) -> tuple[int, bool]:
    num_shards, big_endian = 1, False
    for field, _, value in iter_fields(message):
        if field == 1:
            num_shards = int(value)
        elif field == 2:
            big_endian = value == _BIG_ENDIAN
    return num_shards, big_endian


def _parse_entry(name: str, message: bytes) -> TensorEntry:
    dtype_code, shape, shard, offset, size, checksum, sliced = 0, (), 0, 0, 0, None, False
    for field, wire_type, value in iter_fields(message):
        if field == 1:
            dtype_code = int(value)
        elif field == 2 and wire_type == LENGTH_DELIMITED:
            shape = _parse_shape(value)
        elif field == 3:
            shard = int(value)
        elif field == 4:
            offset = as_signed64(int(value))
        elif field == 5:
            size = as_signed64(int(value))
        elif field == 6:
            checksum = int(value)
        elif field == 7:
            sliced = True
    return TensorEntry(name, dtype_code, shape, shard, offset, size, checksum, sliced)


def _parse_shape(message: bytes) -> tuple[int, ...]:
    dims = []
    for field, wire_type, value in iter_fields(message):
        if field == 2 and wire_type == LENGTH_DELIMITED:
            size = 0
            for dim_field, _, dim_value in iter_fields(value):
                if dim_field == 1:
                    size = as_signed64(int(dim_value))
            dims.append(size)
        elif field == 3 and value:
            raise WireFormatError("tensor of unknown rank")
    return tuple(dims)


_STATE_PATTERN = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def latest_checkpoint(model_dir: Path) -> Path:
    """The checkpoint prefix that ``model_dir/checkpoint`` names (its
    ``model_checkpoint_path``), as ``tf.train.latest_checkpoint`` reads it.

    A relative path is relative to ``model_dir``. An absolute path that no
    longer exists (the directory was moved after training) falls back to the
    same file name inside ``model_dir``.
    """
    state_path = model_dir / STATE_FILE
    if not state_path.is_file():
        indexes = sorted(p.name for p in model_dir.glob("*.index"))
        found = f" (it holds {', '.join(indexes)})" if indexes else ""
        raise CheckpointError(
            f"{state_path} is missing: the model directory has no '{STATE_FILE}' file naming the "
            f"trained checkpoint{found}"
        )
    match = _STATE_PATTERN.search(state_path.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        raise CheckpointError(f"{state_path}: no model_checkpoint_path entry")
    prefix = Path(_unescape(match.group(1)))
    if not prefix.is_absolute():
        return model_dir / prefix
    if Path(f"{prefix}.index").exists():
        return prefix
    return model_dir / prefix.name


def _unescape(text: str) -> str:
    """Undo protobuf text-format string escapes (\\", \\\\, octal bytes)."""
    raw = text.encode("utf-8").decode("unicode_escape").encode("latin-1")
    return raw.decode("utf-8", errors="replace")
