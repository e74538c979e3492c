"""The private directory that holds a worker's pipes, and who removes what.

The launcher creates it (mode 0700) with a marker file that records the
launcher's pid and the directory's identity (device and inode). The marker
proves that a launcher made the directory only when it names the very
directory that holds it and that directory is ours and closed to everyone
else (0700): a marker copied into a user's folder, or left in a directory
opened to others, proves nothing.

Whoever outlives the other cleans up: the launcher when its engine closes, a
worker whose host vanished. Clean-up removes only the files a launcher and
its worker make there (:data:`LAUNCHER_FILES`, each only if it is still of
the kind they make) and then the directory if that emptied it; a user's file
keeps the directory. A directory whose marker proves nothing (an AMS host's,
a user's folder) is left entirely alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path

from mlpotential.protocol.fifo import CALL_PIPE, REPLY_PIPE
from mlpotential.protocol.safe_paths import (
    FIFO,
    REGULAR_FILE,
    Kind,
    UnusablePathError,
    open_checked,
    open_directory,
)
from mlpotential.protocol.worker_lock import WORKER_LOCK

OWNER_MARKER = ".mlpotential-launcher"
WORKER_LOG = "worker.log"
WORKER_SUMMARY = "mlpotential.txt"
"""The worker's summary file, written to its working directory when the host
names no other place."""
PROVENANCE_LINE = "mlpotential worker: provenance "
"""How the line of the worker's log that records what it runs begins; JSON follows."""
HOST_DIRECTORY_VARIABLE = "MLPOTENTIAL_HOST_DIRECTORY"
"""The environment variable in which a launcher tells its worker the directory
the host runs in: the worker resolves relative model paths against it (it
runs in its private pipe directory itself)."""

LAUNCHER_FILES: dict[str, Kind] = {
    CALL_PIPE: FIFO,
    REPLY_PIPE: FIFO,
    WORKER_LOG: REGULAR_FILE,
    WORKER_LOCK: REGULAR_FILE,
    WORKER_SUMMARY: REGULAR_FILE,
    # Last: a clean-up cut short leaves a directory that still proves whose it is.
    OWNER_MARKER: REGULAR_FILE,
}
"""What a launcher and its worker make in the directory, in removal order."""

_MARKER_MAX_BYTES = 4096
_PID_LIMIT = 2**31  # a pid is a C int: os.kill rejects larger numbers with OverflowError


class UnprovenMarkerError(Exception):
    """A marker that does not prove a launcher made its directory; the
    message says why."""


def create_pipe_directory() -> Path:
    """A new private (0700) directory, marked as this process's."""
    directory = Path(tempfile.mkdtemp(prefix="mlpotential-"))
    identity = os.stat(directory, follow_symlinks=False)
    record = {"pid": os.getpid(), "device": identity.st_dev, "inode": identity.st_ino}
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(directory / OWNER_MARKER, flags, 0o600), "w") as marker:
        marker.write(json.dumps(record) + "\n")
    return directory


def launcher_pid(dir_fd: int) -> int | None:
    """The pid of the launcher that made the directory open as ``dir_fd``;
    None when it has no marker. Raises :class:`UnprovenMarkerError` when a
    marker is there but proves nothing."""
    try:
        os.stat(OWNER_MARKER, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    record = _read_marker(dir_fd)
    _check_directory(os.fstat(dir_fd), record)
    return record["pid"]


def remove_pipe_directory(directory: str | os.PathLike[str]) -> None:
    """Remove what a launcher and its worker made in ``directory``, then the
    directory if that emptied it; only when its marker proves a launcher
    made it (anything else is left alone). Never raises."""
    try:
        dir_fd = open_directory(directory)
    except UnusablePathError:
        return  # gone already (the other side cleaned up), or a link: not ours to follow
    try:
        if _proven(dir_fd):
            _remove_launcher_files(dir_fd)
            _remove_if_empty(directory, dir_fd)
    finally:
        os.close(dir_fd)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _read_marker(dir_fd: int) -> dict[str, int]:
    """The marker's record: a JSON object with the launcher's pid and the
    directory's device and inode numbers."""
    try:
        # O_NONBLOCK: a FIFO swapped in after the look must not hang the reader.
        fd = open_checked(OWNER_MARKER, os.O_RDONLY | os.O_NONBLOCK, REGULAR_FILE, dir_fd)
    except UnusablePathError as exc:
        raise UnprovenMarkerError(str(exc)) from None
    try:
        data = os.read(fd, _MARKER_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        record = json.loads(data) if len(data) <= _MARKER_MAX_BYTES else None
    except ValueError:  # UnicodeDecodeError included
        record = None
    if not _is_marker_record(record):
        raise UnprovenMarkerError(f"{OWNER_MARKER} is not a launcher's record of pid, device and inode")
    return record


def _is_marker_record(record: object) -> bool:
    """Whether ``record`` holds a pid (0 or below would name a process group
    to os.kill) and a device and inode number."""
    if not isinstance(record, dict) or not all(type(record.get(key)) is int for key in ("pid", "device", "inode")):
        return False
    return 0 < record["pid"] < _PID_LIMIT and record["device"] >= 0 and record["inode"] >= 0


def _check_directory(here: os.stat_result, record: dict[str, int]) -> None:
    """Raise :class:`UnprovenMarkerError` unless ``record`` names the
    directory ``here`` and that directory is ours alone."""
    if (record["device"], record["inode"]) != (here.st_dev, here.st_ino):
        raise UnprovenMarkerError(f"{OWNER_MARKER} names another directory (was it copied?)")
    if here.st_uid != os.geteuid() or stat.S_IMODE(here.st_mode) != 0o700:
        raise UnprovenMarkerError(
            f"the directory is not ours alone (owner {here.st_uid}, mode {stat.S_IMODE(here.st_mode):04o})"
        )


def _proven(dir_fd: int) -> bool:
    try:
        return launcher_pid(dir_fd) is not None
    except UnprovenMarkerError:
        return False


def _remove_launcher_files(dir_fd: int) -> None:
    """Unlink each of :data:`LAUNCHER_FILES` that is there, ours and of the
    kind a launcher or worker makes (a user's link of that name stays)."""
    for name, kind in LAUNCHER_FILES.items():
        try:
            status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if kind.test(status.st_mode) and status.st_uid == os.geteuid():
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)


def _remove_if_empty(directory: str | os.PathLike[str], dir_fd: int) -> None:
    """rmdir ``directory`` if it still names the directory open as
    ``dir_fd``; rmdir itself refuses when anything is left in it."""
    try:
        named = os.stat(directory, follow_symlinks=False)
    except FileNotFoundError:
        return
    held = os.fstat(dir_fd)
    if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
