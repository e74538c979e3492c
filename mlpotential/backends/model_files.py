"""What a model file that should be a zip archive (a PyTorch file, a NumPy
``.npz``) is instead, found out before any of it is loaded: the backends
that take such files name the problem in their own words around it."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping

_HEAD_BYTES = 8
"""Enough of the file's start for every signature a backend tells apart."""


def not_a_zip_archive(path: str, signatures: Mapping[bytes, str], otherwise: str) -> str | None:
    """``None`` when ``path`` is a zip archive; else what it is: a truncated
    zip archive (a zip's first bytes without its central directory), the
    problem given for the first of ``signatures`` it starts with, or
    ``otherwise``."""
    with open(path, "rb") as stream:
        head = stream.read(_HEAD_BYTES)
    if zipfile.is_zipfile(path):
        return None
    if head.startswith(b"PK"):
        return "is a truncated or corrupt zip archive (its central directory is missing)"
    for signature, problem in signatures.items():
        if head.startswith(signature):
            return problem
    return otherwise


def corrupt_member(archive: zipfile.ZipFile) -> str | None:
    """``None`` when every member of ``archive`` matches its checksum; else
    the problem, naming the first that does not."""
    damaged = archive.testzip()
    return None if damaged is None else f"is corrupt (the checksum of its member {damaged!r} does not match)"


def pytorch_pickles(names: Iterable[str]) -> list[str]:
    """The members of a zip archive that ``torch.save`` writes its pickle to
    (``<archive name>/data.pkl``): one in a PyTorch file."""
    return [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
