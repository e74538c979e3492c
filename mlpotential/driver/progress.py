"""What ``mlpotential run`` shows while it runs: a bar on a terminal, else
a progress line every few seconds, flushed at once so that a redirected log
(a batch job's) shows how far the job got."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

PROGRESS_INTERVAL_S = 5.0
"""Seconds between progress lines when stdout is not a terminal."""


class Progress:
    """Steps done out of ``total``: a tqdm bar when ``stream`` is a terminal,
    else one line per ``interval`` seconds, the first step's and, at
    :meth:`close`, the last step's (a converged optimisation stops early)."""

    def __init__(
        self, total: int, description: str, stream: TextIO | None = None, interval: float = PROGRESS_INTERVAL_S
    ) -> None:
        self.total = total
        self.description = description
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self._last_line = -float("inf")
        self._bar = tqdm(total=total, desc=description, unit="step", file=self.stream) if self.stream.isatty() else None
        self._done = 0
        self._unprinted: str | None = None

    def update(self, step: int, values: dict[str, str]) -> None:
        """Step ``step`` is done; ``values`` (name: formatted value) describe it."""
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)
            self._bar.update(step - self._done)
            self._done = step
            return
        shown = "  ".join(f"{name} {value}" for name, value in values.items())
        self._unprinted = f"{self.description}: step {step}/{self.total}  {shown}"
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._print()

    def _print(self) -> None:
        print(self._unprinted, file=self.stream, flush=True)
        self._unprinted = None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._unprinted is not None:
            self._print()
