"""Threads and devices for the backends that run on PyTorch.

``NumThreads`` and ``Device`` are honoured here, in one place, for every
torch backend.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from mlpotential.errors import BackendUnavailableError
from mlpotential.inputs import Range

if TYPE_CHECKING:
    import torch

THREAD_COUNTS = Range(1, 4096)
"""The thread counts ``NumThreads``, ``--threads`` and ``threads:`` allow (4096:
more cores than any machine has; OpenMP and BLAS refuse far larger counts)."""

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def configure_threads(num_threads: int | None) -> None:
    """Limit the process to ``num_threads`` compute threads.

    Sets the OpenMP/BLAS variables (read by libraries imported later), limits
    the BLAS/OpenMP pools already loaded (threadpoolctl) and, when torch is
    imported, ``torch.set_num_threads``. ``None``
    leaves the defaults alone.
    """
    if num_threads is None:
        return
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = str(num_threads)
    # numpy's BLAS read the variables when numpy was imported: limit its pools now.
    from threadpoolctl import threadpool_limits

    threadpool_limits(num_threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(num_threads)


def torch_device(device: str) -> torch.device:
    """The torch device for the ``Device`` keyword (``""`` means CUDA when
    available, else CPU). A CUDA device that is absent raises
    :class:`BackendUnavailableError` naming ``Device``."""
    import torch

    if device == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no visible CUDA device"
            raise BackendUnavailableError(
                "Device",
                f"Device {device} was asked for, but torch {torch.__version__} reports {build}; "
                "use Device cpu (or install a CUDA torch with: mlpotential install torchani --cuda)",
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise BackendUnavailableError(
                "Device",
                f"Device {device} was asked for, but only {torch.cuda.device_count()} CUDA device(s) exist",
            )
    return torch.device(device)
