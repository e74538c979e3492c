"""The host's side of a worker's life: a private pipe directory, the worker
process started in it, the pipes opened in the order that cannot deadlock, a
watchdog while waiting for replies, and the clean-up (also at interpreter
exit when the owner forgot to close).
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpotential.protocol.fifo import make_pipes, open_host_side
from mlpotential.protocol.pipe_directory import WORKER_LOG, create_pipe_directory, remove_pipe_directory

_POLL_MILLISECONDS = 100
_LOG_TAIL_LINES = 15


class WorkerDiedError(RuntimeError):
    """The worker process ended while the host needed it. The message gives
    its exit status (or the signal that killed it) and the last lines of its
    output."""


class WorkerTimeoutError(TimeoutError):
    """The worker is alive but sent no reply within the reply timeout."""


def our_worker_command(*options: str) -> list[str]:
    """The command line of an mlpotential worker run by this interpreter."""
    return [sys.executable, "-m", "mlpotential", "worker", *options]


def _spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(command, **options)
    except OSError as exc:
        raise WorkerDiedError(
            f"cannot start the worker {shlex.join(command)!r}: {exc.strerror}"
            + (" (is it on PATH?)" if isinstance(exc, FileNotFoundError) else "")
        ) from None


@dataclass
class _Handles:
    """What must be released: kept apart from WorkerProcess so that a
    finalizer can release it without holding the object alive."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    call_fd: int = -1
    reply_fd: int = -1
    timeout: float = 2.0

    def release(self) -> int | None:
        for fd in (self.call_fd, self.reply_fd):
            if fd >= 0:
                os.close(fd)
        self.call_fd = self.reply_fd = -1
        code = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    code = self.process.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    code = self.process.wait()
        remove_pipe_directory(self.directory)
        return code


class WorkerProcess:
    """A worker started in a fresh private directory, with the host's ends of
    its pipes open: ``call_fd`` (blocking writes) and ``reply_fd`` (read
    after :meth:`wait_readable`)."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str] | None = None, reply_timeout: float | None = None
    ) -> None:
        self.command = list(command)
        self.reply_timeout = reply_timeout
        self._handles = _Handles(create_pipe_directory())
        self._finalizer = weakref.finalize(self, self._handles.release)
        try:
            make_pipes(self.directory)
            with open(self.directory / WORKER_LOG, "wb") as log:
                self._handles.process = _spawn(
                    self.command,
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=None if env is None else dict(env),
                    # Terminal signals (Ctrl-C) go to the host, which then closes the pipes.
                    start_new_session=True,
                )
            self._handles.call_fd, self._handles.reply_fd = open_host_side(self.directory, self.check_alive)
        except BaseException:
            self.close(timeout=1.0)
            raise
        self._poller = select.poll()
        self._poller.register(self.reply_fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    @property
    def directory(self) -> Path:
        return self._handles.directory

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self._handles.process

    @property
    def call_fd(self) -> int:
        return self._handles.call_fd

    @property
    def reply_fd(self) -> int:
        return self._handles.reply_fd

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        """Everything the worker wrote to stdout and stderr so far."""
        try:
            return (self.directory / WORKER_LOG).read_text(errors="replace")
        except OSError:
            return ""

    def death_message(self) -> str:
        code = self.process.returncode
        if code is None:
            what = "the worker closed its reply pipe"
        elif code < 0:
            what = f"the worker was killed by signal {signal.Signals(-code).name}"
        else:
            what = f"the worker exited with status {code}"
        tail = self.log_text().strip().splitlines()[-_LOG_TAIL_LINES:]
        output = ("; its last output:\n  " + "\n  ".join(tail)) if tail else "; it printed nothing"
        return f"{what} (command: {' '.join(self.command)}){output}"

    def check_alive(self) -> None:
        """Raise :class:`WorkerDiedError` if the worker has ended."""
        if self.process.poll() is not None:
            raise WorkerDiedError(self.death_message())

    def wait_readable(self) -> None:
        """Block until reply_fd has data or end of file, watching the worker
        (and the reply timeout, when one is set)."""
        deadline = None if self.reply_timeout is None else time.monotonic() + self.reply_timeout
        while not self._poller.poll(_POLL_MILLISECONDS):
            self.check_alive()
            if deadline is not None and time.monotonic() > deadline:
                raise WorkerTimeoutError(
                    f"the worker sent no reply within {self.reply_timeout:g} s (command: {' '.join(self.command)})"
                )

    def worker_gone(self) -> WorkerDiedError:
        """The error for end of file on reply_fd: wait briefly for the exit
        status so the message can name it."""
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        return WorkerDiedError(self.death_message())

    def close_call_pipe(self) -> None:
        """Close the host's end of call_pipe: the worker sees end of file."""
        if self._handles.call_fd >= 0:
            os.close(self._handles.call_fd)
            self._handles.call_fd = -1

    def close(self, timeout: float = 10.0) -> int | None:
        """Close the pipes (end of file tells the worker to exit), wait up to
        ``timeout`` seconds, then terminate or kill it; remove the directory.
        Returns the worker's exit status (None if already closed)."""
        self._handles.timeout = timeout
        return self._finalizer()
