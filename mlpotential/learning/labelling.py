"""Labelling structures with a reference engine, in parallel: on local
processes by default, or on an existing Dask cluster (``--scheduler``;
dask-jobqueue users point it at SLURM or PBS).

The reference is any engine the worker serves (engine keywords: a backend, or
a user's DFT through an ``ASECalculatorFile``) or any AMS-compatible worker
command. Each process keeps one reference worker for all the structures it
labels. A calculation that fails costs that structure, not the loop: its
result carries the error instead of labels.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ase import Atoms


@dataclass(frozen=True)
class Reference:
    """The labelling engine: ``keywords`` (engine keywords, relative paths
    against ``directory``) or ``worker_command`` (any AMS-compatible worker)."""

    keywords: dict[str, Any] = field(default_factory=dict)
    worker_command: tuple[str, ...] = ()
    directory: str = "."

    @property
    def key(self) -> str:
        """The reference as text: which worker of this process serves it."""
        return json.dumps(asdict(self), sort_keys=True, default=str)

    def engine(self):
        from mlpotential.host.pipe_engine import PipeEngine

        if self.worker_command:
            return PipeEngine(worker_command=list(self.worker_command))
        return PipeEngine(dict(self.keywords), base_directory=self.directory)


@dataclass
class Label:
    """A labelled structure: energy (eV), forces (eV/Angstrom), stress
    (eV/Angstrom^3, 3D-periodic structures) or the error that stopped it."""

    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_ENGINES: dict[str, Any] = {}
"""The reference worker of this process, kept between structures."""


def label_structure(reference: Reference, atoms: Atoms) -> Label:
    """The reference's energy, forces (and stress for a 3D-periodic cell) of
    ``atoms``; an error in the calculation becomes :attr:`Label.error`."""
    key = reference.key
    try:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = reference.engine()
        atoms = atoms.copy()
        atoms.calc = engine
        label = Label(energy=float(atoms.get_potential_energy()), forces=np.array(atoms.get_forces()))
        if atoms.pbc.all():
            label.stress = np.array(atoms.get_stress())
        return label
    except Exception as exc:  # one structure's failure must not stop the loop: it is reported instead
        stale = _ENGINES.pop(key, None)
        if stale is not None:  # a worker that failed may be in any state: the next structure gets a fresh one
            stale.close()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Label(error=f"{type(exc).__name__}: {message}")


def _close_engines() -> None:
    for engine in _ENGINES.values():
        engine.close()
    _ENGINES.clear()


def _label_batch(reference: Reference, structures: Sequence[Atoms]) -> list[Label]:
    try:
        return [label_structure(reference, atoms) for atoms in structures]
    finally:
        _close_engines()


class LocalLabeller:
    """Labels on ``processes`` local processes (each with its own worker)."""

    def __init__(self, reference: Reference, processes: int = 0) -> None:
        self.reference = reference
        self.processes = processes or max(1, min(4, os.cpu_count() or 1))

    def label(self, structures: Sequence[Atoms], progress: Callable[[int], None] | None = None) -> list[Label]:
        """Labels in the order of ``structures``."""
        if not structures:
            return []
        batches = [list(structures[i :: self.processes]) for i in range(self.processes)]
        batches = [batch for batch in batches if batch]
        # spawn, not fork: the parent may hold threads (torch) that a fork would copy mid-state
        with ProcessPoolExecutor(max_workers=len(batches), mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_label_batch, [self.reference] * len(batches), batches))
        labels: list[Label] = [Label()] * len(structures)
        for start, batch_labels in enumerate(results):
            labels[start :: len(batches)] = batch_labels
        if progress is not None:
            progress(len(structures))
        return labels


class DaskLabeller:
    """Labels on the workers of an existing Dask cluster at ``address``."""

    def __init__(self, reference: Reference, address: str) -> None:
        self.reference = reference
        self.address = address

    def label(self, structures: Sequence[Atoms], progress: Callable[[int], None] | None = None) -> list[Label]:
        from distributed import Client

        if not structures:
            return []
        with Client(self.address, timeout="60s") as client:
            futures = client.map(_label_batch, [self.reference] * len(structures), [[atoms] for atoms in structures])
            labels = [batch[0] for batch in client.gather(futures)]
        if progress is not None:
            progress(len(structures))
        return labels
