"""The two named pipes and the order in which the two sides open them.

The worker opens ``call_pipe`` for reading, then ``reply_pipe`` for writing;
the host opens ``call_pipe`` for writing, then ``reply_pipe`` for reading.
A blocking ``open`` on a FIFO waits for the other side forever, so both
sides open without blocking and retry, asking ``keep_waiting`` between tries:
a peer that dies before it connects is noticed instead of hanging.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

CALL_PIPE = "call_pipe"
REPLY_PIPE = "reply_pipe"

_RETRY_SECONDS = 0.002


def make_pipes(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Create ``call_pipe`` and ``reply_pipe`` (mode 0600) in ``directory``."""
    call, reply = Path(directory) / CALL_PIPE, Path(directory) / REPLY_PIPE
    os.mkfifo(call, 0o600)
    os.mkfifo(reply, 0o600)
    return call, reply


def _open_writer(path: Path, keep_waiting: Callable[[], None]) -> int:
    """Open a FIFO for writing once a reader exists (ENXIO until then)."""
    delay = _RETRY_SECONDS / 4
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            keep_waiting()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        os.set_blocking(fd, True)
        return fd


def open_worker_side(directory: str | os.PathLike[str], keep_waiting: Callable[[], None]) -> tuple[int, int]:
    """The worker's (call_fd, reply_fd), both blocking. ``keep_waiting`` is
    called while the host has not connected; it raises to give up."""
    call_fd = os.open(Path(directory) / CALL_PIPE, os.O_RDONLY | os.O_NONBLOCK)
    try:
        reply_fd = _open_writer(Path(directory) / REPLY_PIPE, keep_waiting)
    except BaseException:
        os.close(call_fd)
        raise
    os.set_blocking(call_fd, True)
    return call_fd, reply_fd


def open_host_side(directory: str | os.PathLike[str], keep_waiting: Callable[[], None]) -> tuple[int, int]:
    """The host's (call_fd, reply_fd). call_fd blocks; reply_fd does not:
    the host polls it so that it can watch the worker while it waits."""
    call_fd = _open_writer(Path(directory) / CALL_PIPE, keep_waiting)
    try:
        reply_fd = os.open(Path(directory) / REPLY_PIPE, os.O_RDONLY | os.O_NONBLOCK)
    except BaseException:
        os.close(call_fd)
        raise
    return call_fd, reply_fd
