"""The results folder of ``mlpotential run``: made (or emptied) before a job
starts, marked as ours, its files replaced atomically.

A folder that holds anything is refused unless ``--overwrite`` is given;
``--overwrite`` empties only a folder this driver made (it holds
:data:`RESULTS_MARKER`) and never one that holds the job file, the current
directory or the home directory, so a typing slip cannot delete a user's work.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ase import Atoms
from ase.io import write

RESULTS_MARKER = ".mlpotential-run"
"""The file that marks a folder as a results folder of ``mlpotential run``."""

CONVERGED = "converged"
NOT_CONVERGED = "not converged"
COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"
STATUSES = (CONVERGED, NOT_CONVERGED, COMPLETED, FAILED, INTERRUPTED)
"""The values of ``status`` in summary.json."""


class ResultsFolderError(Exception):
    """The results folder cannot be used; the message says why in one line."""


def prepare_results_folder(folder: Path, input_file: Path, overwrite: bool) -> Path:
    """Make ``folder`` ready for a job read from ``input_file``: create it,
    or empty it when ``overwrite`` allows; returns its absolute path."""
    folder = folder.expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise ResultsFolderError(f"the results folder {folder} is a file; choose another --results")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ResultsFolderError(
                f"the results folder {folder} is not empty (a previous job's?); use --overwrite to replace "
                "its contents or --results to choose another folder"
            )
        _check_replaceable(folder, input_file)
        _empty(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / RESULTS_MARKER, json.dumps({"made by": "mlpotential run", "input": str(input_file)}))
    return folder


def _check_replaceable(folder: Path, input_file: Path) -> None:
    """Refuse to empty a folder that is not plainly a results folder of ours."""
    real = folder.resolve()
    protected = {
        "the job file": input_file.resolve().parent,
        "the current directory": Path.cwd().resolve(),
        "your home directory": Path.home().resolve(),
    }
    for what, path in protected.items():
        if path == real or real in path.parents:
            raise ResultsFolderError(f"--overwrite will not empty {folder}: it holds {what}")
    if folder.is_symlink() or not (folder / RESULTS_MARKER).is_file():
        raise ResultsFolderError(
            f"--overwrite empties only folders made by mlpotential run, and {folder} has no {RESULTS_MARKER} "
            "file; remove or rename it yourself, or choose another --results"
        )


def _empty(folder: Path) -> None:
    """Remove everything in ``folder`` (links themselves, never their targets)."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def replace_atomically(path: Path, write_to: Callable[[Path], None]) -> None:
    """Write ``path`` so that a reader sees the old file or the new, never
    half of one: ``write_to`` writes a temporary file beside it, which then
    replaces it (:func:`os.replace`)."""
    temporary = _temporary(path)
    write_to(temporary)
    os.replace(temporary, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write the text file ``path`` atomically."""
    replace_atomically(path, lambda temporary: temporary.write_text(text))


def write_atoms_atomic(path: Path, atoms: Atoms) -> None:
    """Write ``atoms`` (extxyz, with the energy and forces it carries) atomically."""
    replace_atomically(path, lambda temporary: write(temporary, atoms, format="extxyz"))
