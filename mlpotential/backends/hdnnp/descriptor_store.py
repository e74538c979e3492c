"""A persistent store of computed descriptors (the AMP idea of fingerprint
caching, in one SQLite file instead of thousands of pickles).

Each row is keyed by a SHA-256 hash of the structure (atomic numbers,
positions, cell, periodicity, bit for bit) and of the symmetry-function
parameters, so a second training run on the same data and descriptor skips
the descriptor computation, and any change to either makes a new key. Rows
hold the descriptors (float64: a few kB a structure) and, for structures
trained on forces, the derivatives training reads: one Jacobian per pair of
a centre and another atom, summed over that atom's periodic images
(``training_descriptors.merge_images``), in float32 (ample for force
training, which runs in float32 by default), compressed without loss (the
four bytes of the floats regrouped, so that the exponents sit together, then
zlib), with the pair list (structure-local atom indices, int32). 200 Cu32
cells with the default descriptor take 28 MB (113.8 MB with a Jacobian per
neighbour image, uncompressed).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from mlpotential.atomistic.symmetry_function_parameters import SymmetryFunctionParameters

STORE_VERSION = "2"
"""Version 2: Jacobians per atom pair, compressed (version 1: per neighbour image)."""


@dataclass
class StructureDescriptors:
    """Descriptors of one structure: ``features`` (N, F), pairs ``center``
    and ``neighbor`` (P,), and ``jacobian`` (P, F, 3, 1/Angstrom) or None:
    ``jacobian[p] = dG[center[p]] / dr[neighbor[p]]``, the derivative with
    respect to the centre itself being minus the sum over its pairs."""

    features: np.ndarray
    center: np.ndarray
    neighbor: np.ndarray
    jacobian: np.ndarray | None


def structure_key(atoms: Atoms, parameters: SymmetryFunctionParameters) -> str:
    """The store key of ``atoms`` under ``parameters``."""
    digest = hashlib.sha256()
    digest.update(json.dumps(parameters.to_dict(), sort_keys=True).encode())
    digest.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=np.bool_).tobytes())
    return digest.hexdigest()


class DescriptorStore:
    """Descriptors on disk (``path``), or in memory when ``path`` is None.
    A store written by another version is emptied, not misread."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path) if self.path else ":memory:")
            self._prepare()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"descriptor store {self.path}: not a usable SQLite file ({exc}); delete it") from exc
        self.hits = 0
        self.misses = 0

    def _prepare(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        row = db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        if row is None or row[0] != STORE_VERSION:
            db.execute("DROP TABLE IF EXISTS descriptors")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (STORE_VERSION,))
            db.commit()
            db.execute("VACUUM")  # give the old rows' pages back
        db.execute(
            "CREATE TABLE IF NOT EXISTS descriptors ("
            "key TEXT PRIMARY KEY, n_atoms INTEGER, n_pairs INTEGER, n_features INTEGER, "
            "features BLOB, center BLOB, neighbor BLOB, jacobian BLOB)"
        )
        db.commit()

    def get(self, key: str, need_jacobian: bool) -> StructureDescriptors | None:
        """The stored descriptors, or None when absent (or stored without the
        Jacobian that is needed now)."""
        row = self._db.execute(
            "SELECT n_atoms, n_pairs, n_features, features, center, neighbor, jacobian FROM descriptors WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None or (need_jacobian and row[6] is None):
            self.misses += 1
            return None
        self.hits += 1
        n_atoms, n_pairs, n_features = row[:3]
        jacobian = None
        if row[6] is not None:
            jacobian = _unpack_float32(row[6]).reshape(n_pairs, n_features, 3)
        return StructureDescriptors(
            features=np.frombuffer(row[3], dtype=np.float64).reshape(n_atoms, n_features),
            center=np.frombuffer(row[4], dtype=np.int32),
            neighbor=np.frombuffer(row[5], dtype=np.int32),
            jacobian=jacobian,
        )

    def put(self, key: str, value: StructureDescriptors) -> None:
        jacobian = None
        if value.jacobian is not None:
            jacobian = _pack_float32(value.jacobian)
        self._db.execute(
            "INSERT OR REPLACE INTO descriptors VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                value.features.shape[0],
                value.center.shape[0],
                value.features.shape[1],
                np.ascontiguousarray(value.features, dtype=np.float64).tobytes(),
                np.ascontiguousarray(value.center, dtype=np.int32).tobytes(),
                np.ascontiguousarray(value.neighbor, dtype=np.int32).tobytes(),
                jacobian,
            ),
        )

    @property
    def size_bytes(self) -> int:
        """The file's size (bytes; 0 in memory)."""
        self._db.commit()
        return self.path.stat().st_size if self.path is not None and self.path.exists() else 0

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def __enter__(self) -> DescriptorStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _pack_float32(values: np.ndarray) -> bytes:
    """``values`` as float32, byte planes one after the other, zlib-compressed:
    the planes of signs and exponents compress well, the float32 bytes
    themselves hardly at all."""
    planes = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).reshape(-1, 4).T
    return zlib.compress(np.ascontiguousarray(planes).tobytes(), 6)


def _unpack_float32(packed: bytes) -> np.ndarray:
    """The flat float32 array :func:`_pack_float32` packed."""
    planes = np.frombuffer(zlib.decompress(packed), dtype=np.uint8).reshape(4, -1)
    return np.ascontiguousarray(planes.T).view("<f4").reshape(-1)
