"""One worker per pipe directory.

Two workers reading one ``call_pipe`` split the host's frames between them,
and both die of the halves. So a worker takes an exclusive ``flock`` on
``.mlpotential-worker.lock`` in its directory before it opens the pipes; a
second worker is refused at once. The lock ends with the process (even a
killed one); the file is removed by the worker that created it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass

from mlpotential.protocol.safe_paths import REGULAR_FILE, open_checked

WORKER_LOCK = ".mlpotential-worker.lock"


class DirectoryInUseError(Exception):
    """Another worker holds the directory's lock."""


@dataclass(frozen=True)
class WorkerLock:
    """A held lock: the directory, the lock file's descriptor, and whether
    this worker created the file (and so removes it)."""

    dir_fd: int
    fd: int
    created: bool


def lock_directory(dir_fd: int) -> WorkerLock:
    """Take the lock of the directory open as ``dir_fd``, or raise
    :class:`DirectoryInUseError` at once."""
    while True:
        fd, created = _open_lock_file(dir_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryInUseError(f"another worker is serving it (it holds {WORKER_LOCK})") from None
        if _still_named(dir_fd, fd):
            return WorkerLock(dir_fd, fd, created)
        # The worker that held it removed the file between our open and our
        # flock: a lock on that unlinked file excludes nobody, so start again.
        os.close(fd)


def release_lock(lock: WorkerLock) -> None:
    """Remove the lock file if this worker created it (and it is still the
    one locked), then let go of the lock."""
    if lock.created and _still_named(lock.dir_fd, lock.fd):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(WORKER_LOCK, dir_fd=lock.dir_fd)
    os.close(lock.fd)


def _open_lock_file(dir_fd: int) -> tuple[int, bool]:
    """The lock file's descriptor and whether it was created now; an
    existing one must be our own regular file (never a link)."""
    try:
        flags = os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(WORKER_LOCK, flags, 0o600, dir_fd=dir_fd), True
    except FileExistsError:
        return open_checked(WORKER_LOCK, os.O_RDONLY, REGULAR_FILE, dir_fd), False


def _still_named(dir_fd: int, fd: int) -> bool:
    """Whether the directory's lock file is still the file open as ``fd``."""
    try:
        named = os.stat(WORKER_LOCK, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
