"""The worker's hold on its pipe directory: opened once (never through a
link), its pipes checked, its marker read, its lock taken; released when
the worker ends."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlpotential.protocol.fifo import check_worker_pipes
from mlpotential.protocol.pipe_directory import OWNER_MARKER, UnprovenMarkerError, launcher_pid
from mlpotential.protocol.safe_paths import open_directory
from mlpotential.protocol.worker_lock import WorkerLock, lock_directory, release_lock
from mlpotential.worker.log import log


@dataclass(frozen=True)
class ClaimedDirectory:
    """A directory this worker serves: its path, its open descriptor, the
    held lock, and the launcher whose marker proves it made the directory
    (None for a directory a host such as AMS made)."""

    path: Path
    dir_fd: int
    lock: WorkerLock
    launcher: int | None

    def release(self) -> None:
        """Remove the lock file if this worker made it, let go of the lock
        and close the directory."""
        release_lock(self.lock)
        os.close(self.dir_fd)


def claim_directory(path: Path) -> ClaimedDirectory:
    """Claim ``path`` for this worker. Raises
    :class:`~mlpotential.protocol.safe_paths.UnusablePathError` for a
    directory or pipe it must not use and
    :class:`~mlpotential.protocol.worker_lock.DirectoryInUseError` when
    another worker serves there; both before anything is created there."""
    dir_fd = open_directory(path)
    try:
        check_worker_pipes(dir_fd)
        launcher = _proven_launcher(dir_fd)
        lock = lock_directory(dir_fd)
    except BaseException:
        os.close(dir_fd)
        raise
    return ClaimedDirectory(path, dir_fd, lock, launcher)


def _proven_launcher(dir_fd: int) -> int | None:
    """The launcher's pid from a marker that proves the directory is its;
    a marker that proves nothing is reported and ignored."""
    try:
        return launcher_pid(dir_fd)
    except UnprovenMarkerError as exc:
        log(f"ignoring {OWNER_MARKER} (the directory will not be removed): {exc}")
        return None
