"""mlpotential: machine-learned potentials served to simulation programs over
the AMS-compatible pipe protocol.

The public API, importable from the package root:

* :class:`PipeEngine`: an ASE calculator whose results come from a worker
  process (``PipeEngine({"Backend": "ASE", "Model": "EMT"})``);
* :class:`PipeClient`: a protocol-level host for any AMS-compatible worker
  (Hartree and Bohr);
* :class:`EngineError` (the worker answered a call with an error status),
  :class:`WorkerDiedError` (the worker process ended or was stopped) and
  :class:`WorkerTimeoutError` (it missed a timeout).

They are imported on first use, so ``import mlpotential`` (and the
``mlpotential`` command) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "PipeEngine": "mlpotential.host.pipe_engine",
    "PipeClient": "mlpotential.host.client",
    "EngineError": "mlpotential.host.client",
    "WorkerDiedError": "mlpotential.host.launcher",
    "WorkerTimeoutError": "mlpotential.host.launcher",
}

__all__ = ["EngineError", "PipeClient", "PipeEngine", "WorkerDiedError", "WorkerTimeoutError", "__version__"]

if TYPE_CHECKING:
    from mlpotential.host.client import EngineError, PipeClient
    from mlpotential.host.launcher import WorkerDiedError, WorkerTimeoutError
    from mlpotential.host.pipe_engine import PipeEngine


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'mlpotential' has no attribute {name!r}")
