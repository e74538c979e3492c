"""Model files before they are loaded: what a file that should be a zip
archive (a PyTorch file, a NumPy ``.npz``) is instead, whether a file is a
TorchScript archive, and the one gate every backend passes before it
unpickles a model file (a warning naming the file, or a refusal in strict
mode)."""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Iterable, Mapping

from mlpotential.errors import KeywordError

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


NO_PICKLE_VARIABLE = "MLPOTENTIAL_NO_PICKLE"
"""Set to 1 (``mlpotential worker --no-pickle`` does) to refuse model files
that must be unpickled: unpickling runs code from the file."""


class UnsafeModelFileWarning(UserWarning):
    """A model file is about to be unpickled, which runs code from it."""


def pickles_refused() -> bool:
    """Whether strict mode (:data:`NO_PICKLE_VARIABLE`) refuses pickled model files."""
    return os.environ.get(NO_PICKLE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def before_unpickling(path: str, keyword: str, alternative: str = "") -> None:
    """Called right before a backend unpickles the model file ``path`` (named by
    the engine keyword ``keyword``): in strict mode a :class:`KeywordError`,
    else an :class:`UnsafeModelFileWarning` naming the file. ``alternative``
    says which pickle-free format the backend also reads, if any."""
    instead = f"; {alternative}" if alternative else ""
    if pickles_refused():
        raise KeywordError(
            keyword,
            f"{keyword} {path!r} is a pickle, which runs code from the file when loaded, and pickled model files "
            f"are refused ({NO_PICKLE_VARIABLE}=1 or mlpotential worker --no-pickle){instead}",
        )
    warnings.warn(
        f"{keyword} {path!r} is loaded with pickle, which runs any code the file holds: load only files you trust "
        f"(refuse them with {NO_PICKLE_VARIABLE}=1 or mlpotential worker --no-pickle){instead}",
        UnsafeModelFileWarning,
        stacklevel=2,
    )


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``): its code
    is TorchScript, not pickled Python objects, so loading runs no Python code
    from the file."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.split("/", 1)[-1].startswith("code/") for name in names) and any(
        name.endswith("/constants.pkl") for name in names
    )
