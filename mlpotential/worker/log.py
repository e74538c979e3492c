"""The worker's log: one line per event on stderr, which the launcher
collects in the pipe directory's worker.log."""

from __future__ import annotations

import sys


def log(text: str) -> None:
    """One line for the host's user, prefixed with who wrote it."""
    print(f"mlpotential worker: {text}", file=sys.stderr, flush=True)
