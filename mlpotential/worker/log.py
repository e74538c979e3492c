"""The worker's log: one line per event on stderr, which the launcher
collects in the pipe directory's worker.log."""

from __future__ import annotations

import logging
import sys

LOG_PREFIX = "mlpotential worker: "


def log(text: str) -> None:
    """One line for the host's user, prefixed with who wrote it."""
    print(f"{LOG_PREFIX}{text}", file=sys.stderr, flush=True)


def show_backend_logs() -> None:
    """Backends report what a user should know (which dtype a model runs in,
    where parameters came from) through the ``mlpotential`` logger: in the
    worker those lines go to its log, like the worker's own."""
    logger = logging.getLogger("mlpotential")
    if not any(getattr(handler, "worker_log", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("mlpotential worker: %(message)s"))
        handler.worker_log = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
