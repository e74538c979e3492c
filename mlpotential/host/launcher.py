"""The host's side of a worker's life: a private pipe directory, the worker
process started in it, the pipes opened in the order that cannot deadlock, a
watchdog and a deadline on every wait (opening the pipes, writing a call,
reading its replies), and the clean-up (also at interpreter exit when the
owner forgot to close).

A worker that misses a deadline is killed at once: a late reply would
otherwise answer the next call.
"""

from __future__ import annotations

import errno
import os
import select
import shlex
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpotential.protocol.fifo import make_pipes, open_host_side
from mlpotential.protocol.pipe_directory import (
    HOST_DIRECTORY_VARIABLE,
    WORKER_LOG,
    create_pipe_directory,
    remove_pipe_directory,
)

_POLL_MILLISECONDS = 100
_LOG_TAIL_LINES = 15
_TERMINATE_SECONDS = 2.0


class WorkerDiedError(RuntimeError):
    """The worker process ended while the host needed it, or the host stopped
    it (after a timeout or a broken reply stream). The message gives its exit
    status (or the signal that killed it) and the last lines of its output,
    or why the host stopped it."""


class WorkerTimeoutError(TimeoutError):
    """The worker is alive but did not open its pipes, read a call or reply
    within its timeout. The host has killed it; the message names what was
    waited for, the seconds and the worker command."""


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


def _worker_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The worker's environment (``env``, or this process's): plus the host's
    directory, against which our worker resolves relative model paths, since
    it runs in its private pipe directory."""
    environment = dict(os.environ if env is None else env)
    environment[HOST_DIRECTORY_VARIABLE] = os.getcwd()
    return environment


def check_timeout(name: str, seconds: float | None) -> None:
    """Raise ValueError unless ``seconds`` is positive or None (wait forever)."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds or None (wait forever), not {seconds!r}")


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Send ``signum`` to the worker's process group (it leads its own
    session), so that whatever it started goes too. Only while the worker is
    unreaped: after that its group id may belong to another process."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass


@dataclass
class _Handles:
    """What must be released: kept apart from WorkerProcess so that a
    finalizer can release it without holding the object alive."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    call_fd: int = -1
    reply_fd: int = -1
    timeout: float = 2.0
    kept_log: str = ""  # the worker's log, read before the directory that holds it goes

    def read_log(self) -> str:
        try:
            return (self.directory / WORKER_LOG).read_text(errors="replace")
        except OSError:
            return self.kept_log

    def release(self) -> int | None:
        """Close the pipes, give the worker ``timeout`` seconds to exit, end
        it, remove the directory; the worker's exit status."""
        for fd in (self.call_fd, self.reply_fd):
            if fd >= 0:
                os.close(fd)
        self.call_fd = self.reply_fd = -1
        code = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                code = self._end_process(self.process)
        self.kept_log = self.read_log()
        remove_pipe_directory(self.directory)
        return code

    @staticmethod
    def _end_process(process: subprocess.Popen[bytes]) -> int:
        """SIGTERM, then SIGKILL after a grace period. SIGCONT follows
        SIGTERM because a stopped worker would hold SIGTERM pending forever."""
        _signal_group(process, signal.SIGTERM)
        _signal_group(process, signal.SIGCONT)
        try:
            return process.wait(timeout=_TERMINATE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            return process.wait()


class WorkerProcess:
    """A worker started in a fresh private directory, with the host's ends of
    its pipes open: ``call_fd`` (written with :meth:`write`) and ``reply_fd``
    (read after :meth:`wait_readable`), both non-blocking.

    ``start_timeout`` bounds the wait for the worker to open its pipes (it
    loads its model first); ``reply_timeout`` bounds each call, from its first
    byte written to its last reply read (see :meth:`start_call`). Seconds;
    None waits forever. A worker that misses either is killed (SIGKILL to
    its process group) and the wait raises :class:`WorkerTimeoutError`.
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        reply_timeout: float | None = None,
        start_timeout: float | None = None,
    ) -> None:
        check_timeout("reply_timeout", reply_timeout)
        check_timeout("start_timeout", start_timeout)
        self.command = list(command)
        self.reply_timeout = reply_timeout
        self.stopped_because: str | None = None
        # The clock of the current call (see start_call); none before the first.
        self._call = "no call"
        self._seconds: float | None = None
        self._deadline: float | None = None
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
                    env=_worker_environment(env),
                    # Terminal signals (Ctrl-C) go to the host, which then closes the pipes.
                    start_new_session=True,
                )
            self._handles.call_fd, self._handles.reply_fd = open_host_side(
                self.directory, self._connection_watch(start_timeout)
            )
        except BaseException as exc:
            self.stop(f"a failed start ({type(exc).__name__})")
            raise
        self._readable = select.poll()
        self._readable.register(self.reply_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._writable = select.poll()
        self._writable.register(self.call_fd, select.POLLOUT | select.POLLERR)

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
        """Everything the worker wrote to stdout and stderr so far (after
        the worker was closed or stopped: all it wrote)."""
        return self._handles.read_log()

    def death_message(self) -> str:
        code = self.process.returncode
        if code is None:
            what = "the worker closed its reply pipe"
        elif code < 0:
            what = f"the worker was killed by signal {signal.Signals(-code).name}"
        else:
            what = f"the worker exited with status {code}"
        return f"{what} (command: {' '.join(self.command)}){self._output_tail()}"

    def _output_tail(self) -> str:
        """The last lines the worker printed, to end a message."""
        tail = self.log_text().strip().splitlines()[-_LOG_TAIL_LINES:]
        return ("; its last output:\n  " + "\n  ".join(tail)) if tail else "; it printed nothing"

    def check_alive(self) -> None:
        """Raise :class:`WorkerDiedError` if the worker has ended."""
        if self.process.poll() is not None:
            raise WorkerDiedError(self.death_message())

    def check_usable(self) -> None:
        """Raise :class:`WorkerDiedError` if the host stopped the worker: its
        pipes are closed, and nothing it said could be trusted any more."""
        if self.stopped_because is not None:
            raise WorkerDiedError(
                f"the worker was stopped after {self.stopped_because}; it takes no more calls "
                f"(command: {' '.join(self.command)})"
            )

    # ------------------------------------------------------------ waiting
    def start_call(self, call: str) -> None:
        """Start the clock of ``call`` (its name, for messages): writing it and
        reading its replies must end within ``reply_timeout`` seconds."""
        self.check_usable()
        self._call = call
        self._seconds = self.reply_timeout
        self._deadline = _deadline_after(self.reply_timeout)

    def _connection_watch(self, seconds: float | None) -> Callable[[], None]:
        """The ``keep_waiting`` of opening the pipes: the worker must stay
        alive and open them within ``seconds``."""
        deadline = _deadline_after(seconds)

        def keep_waiting() -> None:
            self.check_alive()
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timed_out(f"the worker did not open its pipes within {seconds:g} s")

        return keep_waiting

    def _check_deadline(self, what: str) -> None:
        """Past the current call's deadline: kill the worker and raise."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise self._timed_out(f"{what} within {self._seconds:g} s")

    def _timed_out(self, what: str) -> WorkerTimeoutError:
        """Kill the worker that missed a deadline; the error to raise."""
        tail = self._output_tail()  # before stop() removes the log with the directory
        self.stop(f"a timeout ({what})")
        return WorkerTimeoutError(
            f"{what}; the worker was killed with SIGKILL (command: {' '.join(self.command)}){tail}"
        )

    def _wait(self, poller: select.poll, what: str) -> None:
        """Block until ``poller`` reports its pipe ready, watching the worker
        and the deadline of the current call."""
        while not poller.poll(_POLL_MILLISECONDS):
            self.check_alive()
            self._check_deadline(what)

    def wait_readable(self) -> None:
        """Block until reply_fd has data or end of file (the wait of :class:`FrameReader`)."""
        self._wait(self._readable, f"{self._call}: no reply")

    def reply_waiting(self) -> bool:
        """Whether reply_fd holds data now (end of file alone does not count)."""
        return any(events & select.POLLIN for _, events in self._readable.poll(0))

    def write(self, data: bytes) -> None:
        """Write all of ``data`` to call_pipe; while the pipe is full, watch
        the worker and the deadline of the current call."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.call_fd, view) :]
            except BlockingIOError:
                self._wait(self._writable, f"{self._call}: the worker did not read the call")
            except BrokenPipeError:
                raise self.worker_gone() from None

    def write_if_room(self, data: bytes) -> bool:
        """Write ``data`` (at most PIPE_BUF bytes, so all or nothing) if the
        pipe has room now; False if it is full or the worker is gone."""
        if self.call_fd < 0:
            return False
        try:
            os.write(self.call_fd, data)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EPIPE):
                return False
            raise
        return True

    def worker_gone(self) -> WorkerDiedError:
        """The error for end of file on reply_fd: wait briefly for the exit
        status so the message can name it."""
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        return WorkerDiedError(self.death_message())

    # ------------------------------------------------------------ ending
    def stop(self, reason: str) -> None:
        """Kill the worker now (SIGKILL to its process group: a hung or
        stopped worker would not obey anything else), close the pipes and
        remove the directory. Later calls raise :class:`WorkerDiedError`
        naming ``reason`` (the first reason, when stopped twice)."""
        if self.stopped_because is None:
            self.stopped_because = reason
        if self._handles.process is not None:
            _signal_group(self._handles.process, signal.SIGKILL)
        self._finalizer()

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


def _deadline_after(seconds: float | None) -> float | None:
    """The :func:`time.monotonic` time ``seconds`` from now (None: never)."""
    return None if seconds is None else time.monotonic() + seconds
