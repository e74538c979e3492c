"""Making SchNetPack 2.1.1 import and load models on torch 2.13.

Two incompatibilities, both measured (see the shared ecosystem notes):

* ``import schnetpack`` reads ``torch.utils.data.dataloader.T_co``, a type
  variable that torch removed; defining it again (covariant, as it was)
  before the first import is enough.
* :func:`torch.load` defaults to ``weights_only=True`` since torch 2.6 and
  refuses the pickled model objects SchNetPack saves; they load with
  ``weights_only=False``, which runs code from the file.

And one side effect undone: importing ``schnetpack.interfaces`` calls
``logging.basicConfig(level=INFO)`` (in its ORCA parser), which would make
every library's INFO messages appear on the worker's stderr.

Applied only when the SchNetPack backend is used (and by tests that train
SchNetPack models).
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TypeVar


def import_schnetpack() -> ModuleType:
    """``import schnetpack`` (and ``schnetpack.interfaces``) with the missing
    ``T_co`` restored first and the root logger left as it was.

    Raises ImportError when schnetpack (or one of its needs) is absent.
    """
    from torch.utils.data import dataloader

    if not hasattr(dataloader, "T_co"):
        dataloader.T_co = TypeVar("T_co", covariant=True)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import schnetpack
        import schnetpack.interfaces  # noqa: F401
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return schnetpack


def load_pickled_model(path: str) -> object:
    """Unpickle a model saved with ``torch.save(model)`` onto the CPU, with
    SchNetPack's own version upgrades (``schnetpack.utils.load_model``).

    This runs code from the file: only for files the user trusts.
    """
    import torch

    schnetpack = import_schnetpack()
    return schnetpack.utils.load_model(path, device=torch.device("cpu"), weights_only=False)
