"""The worker's watch on its host, so that no worker outlives its host by
more than a moment, busy or not.

End of file on call_pipe tells an idle worker that its host is gone; a
worker inside a long Solve reads nothing until the Solve ends. A daemon
thread therefore polls the host and ends the process itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from mlpotential.protocol.pipe_directory import process_alive

POLL_SECONDS = 0.2


def host_alive_check(launcher: int | None) -> Callable[[], bool]:
    """Whether the host still lives: the launcher whose marker proved the
    directory, else the parent (an AMS host makes the directory itself and
    starts the worker); a worker given a new parent has lost its host."""
    if launcher is not None:

        def launcher_alive() -> bool:
            return process_alive(launcher)

        return launcher_alive
    parent = os.getppid()

    def parent_alive() -> bool:
        return os.getppid() == parent

    return parent_alive


def start_watchdog(host_alive: Callable[[], bool], on_host_gone: Callable[[], None]) -> None:
    """A daemon thread that calls ``host_alive`` every :data:`POLL_SECONDS`
    and ``on_host_gone`` once it turns false.

    It runs between bytecodes of the main thread, which Python interrupts
    every 5 ms, and whenever the calculator's C code releases the GIL (numpy
    and torch do for large arrays); C code holding the GIL delays it (ASE's
    EMT neighbour list holds it inside scipy for up to 0.35 s at 11 000
    atoms, the longest delay measured).
    """

    def watch() -> None:
        while host_alive():
            time.sleep(POLL_SECONDS)
        on_host_gone()

    threading.Thread(target=watch, name="host-watchdog", daemon=True).start()
