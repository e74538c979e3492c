"""The two named pipes and the order in which the two sides open them.

The worker opens ``call_pipe`` for reading, then ``reply_pipe`` for writing;
the host opens ``call_pipe`` for writing, then ``reply_pipe`` for reading.
A blocking ``open`` on a FIFO waits for the other side forever, so both
sides open without blocking and retry, asking ``keep_waiting`` between tries:
a peer that dies before it connects is noticed instead of hanging.

The worker opens only FIFOs of its own user that nobody else can write, and
never through a symbolic link (checked after opening, see :mod:`safe_paths`):
a ``reply_pipe`` linked to a file would otherwise get the replies written
over that file's first bytes.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

from mlpotential.protocol.safe_paths import FIFO, look_at, open_checked

CALL_PIPE = "call_pipe"
REPLY_PIPE = "reply_pipe"

_RETRY_SECONDS = 0.002


def make_pipes(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Create ``call_pipe`` and ``reply_pipe`` (mode 0600) in ``directory``."""
    call, reply = Path(directory) / CALL_PIPE, Path(directory) / REPLY_PIPE
    os.mkfifo(call, 0o600)
    os.mkfifo(reply, 0o600)
    return call, reply


def _open_writer(open_once: Callable[[], int], keep_waiting: Callable[[], None]) -> int:
    """Open a FIFO for writing (``open_once`` opens it without blocking) once
    a reader exists (ENXIO until then)."""
    delay = _RETRY_SECONDS / 4
    while True:
        try:
            fd = open_once()
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            keep_waiting()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        return fd


def check_worker_pipes(dir_fd: int) -> None:
    """Raise :class:`~mlpotential.protocol.safe_paths.UnusablePathError`
    unless both pipes of the directory open as ``dir_fd`` are FIFOs the
    worker may use (a look before anything is opened or created there)."""
    for name in (CALL_PIPE, REPLY_PIPE):
        look_at(name, FIFO, dir_fd)


def open_worker_side(dir_fd: int, keep_waiting: Callable[[], None]) -> tuple[int, int]:
    """The worker's (call_fd, reply_fd), both blocking, in the directory open
    as ``dir_fd``; each checked after opening. ``keep_waiting`` is called
    while the host has not connected; it raises to give up."""
    call_fd = open_checked(CALL_PIPE, os.O_RDONLY | os.O_NONBLOCK, FIFO, dir_fd)
    try:
        reply_fd = _open_writer(
            lambda: open_checked(REPLY_PIPE, os.O_WRONLY | os.O_NONBLOCK, FIFO, dir_fd), keep_waiting
        )
    except BaseException:
        os.close(call_fd)
        raise
    os.set_blocking(call_fd, True)
    os.set_blocking(reply_fd, True)
    return call_fd, reply_fd


def open_host_side(directory: str | os.PathLike[str], keep_waiting: Callable[[], None]) -> tuple[int, int]:
    """The host's (call_fd, reply_fd), both non-blocking: the host polls
    them so that it can watch the worker (and its deadlines) while it waits;
    a blocking write would hang on a worker that stopped reading."""
    call_path = Path(directory) / CALL_PIPE
    call_fd = _open_writer(lambda: os.open(call_path, os.O_WRONLY | os.O_NONBLOCK), keep_waiting)
    try:
        reply_fd = os.open(Path(directory) / REPLY_PIPE, os.O_RDONLY | os.O_NONBLOCK)
    except BaseException:
        os.close(call_fd)
        raise
    return call_fd, reply_fd
