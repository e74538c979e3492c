"""Opening the pipe directory and its entries without being fooled.

An entry is looked at (``lstat``) before it is opened, so that a file of the
wrong kind (a device, say) is never opened at all; it is opened with
``O_NOFOLLOW``, so that a symbolic link is never followed; and the open
descriptor is checked again with ``fstat``, so that what was checked is what
is used: replacing the entry between the look and the open gains nothing.
An entry must belong to the process's own user and must not be writable by
anyone else (other users could otherwise inject calls into ``call_pipe``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass


class UnusablePathError(Exception):
    """A path the worker will not use; the message says why, in one line."""


@dataclass(frozen=True)
class Kind:
    """What an entry must be: a description for messages and its mode test."""

    description: str
    test: Callable[[int], bool]


FIFO = Kind("a FIFO", stat.S_ISFIFO)
REGULAR_FILE = Kind("a regular file", stat.S_ISREG)

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def describe_mode(mode: int) -> str:
    """What kind of file ``mode`` is, for a message ("a directory", ...)."""
    kinds = {
        stat.S_ISLNK: "a symbolic link",
        stat.S_ISDIR: "a directory",
        stat.S_ISREG: "a regular file",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((text for test, text in kinds.items() if test(mode)), "an unknown kind of file")


def check_status(status: os.stat_result, name: str, kind: Kind) -> None:
    """Raise :class:`UnusablePathError` unless ``status`` is ``kind``, ours,
    and not writable by other users."""
    if not kind.test(status.st_mode):
        raise UnusablePathError(f"{name} is {describe_mode(status.st_mode)}, not {kind.description}")
    if status.st_uid != os.geteuid():
        raise UnusablePathError(f"{name} belongs to user {status.st_uid}, not to this process's user {os.geteuid()}")
    if status.st_mode & _OTHERS_WRITE:
        raise UnusablePathError(
            f"{name} can be written by other users (mode {stat.S_IMODE(status.st_mode):04o}); make it 0600"
        )


def look_at(name: str, kind: Kind, dir_fd: int) -> os.stat_result:
    """The checked ``lstat`` of entry ``name`` of the directory open as ``dir_fd``."""
    try:
        status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise UnusablePathError(f"{name} does not exist") from None
    check_status(status, name, kind)
    return status


def open_checked(name: str, flags: int, kind: Kind, dir_fd: int) -> int:
    """Entry ``name`` opened with ``flags`` (never through a link), checked
    before and after opening. ENXIO (a FIFO without a reader yet) is raised
    as it is, for the caller to retry."""
    look_at(name, kind, dir_fd)
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnusablePathError(f"{name} is a symbolic link, not {kind.description}") from None
        if exc.errno == errno.ENOENT:
            raise UnusablePathError(f"{name} does not exist") from None
        raise
    try:
        check_status(os.fstat(fd), name, kind)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_directory(path: str | os.PathLike[str]) -> int:
    """``path`` open as a directory, refused when it is missing, not a
    directory, or a symbolic link (``O_NOFOLLOW``: give the directory itself)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise UnusablePathError(_why_not_a_directory(path, exc)) from None


def _why_not_a_directory(path: str | os.PathLike[str], exc: OSError) -> str:
    """The one-line reason ``path`` could not be opened as a directory (the
    caller names the path)."""
    if os.path.islink(path):
        return "it is a symbolic link; give the directory it points to"
    if exc.errno == errno.ENOENT:
        return "no such directory"
    if exc.errno == errno.ENOTDIR:
        return "it is not a directory"
    return exc.strerror or str(exc)
