"""The worker's transport loop: frames in from call_pipe, decoded, handed to
the session, replies encoded and written to reply_pipe, until Exit or end of
file.

Before it serves, the worker claims its directory (see
:mod:`mlpotential.worker.directory`) and refuses one whose pipes it must not
use or where another worker serves. While it serves, a watchdog ends it
within a moment of its host's death, even in the middle of a Solve.

Exit statuses: 0 after Exit or when the host hung up, 1 when the host died,
2 when the byte stream broke, 3 when the worker refused its directory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import UBJSON, Codec, detect_codec
from mlpotential.protocol.errors import DecodeError, Status
from mlpotential.protocol.fifo import open_worker_side
from mlpotential.protocol.framing import FrameError, FrameReader, FrameTooLarge, write_frames
from mlpotential.protocol.pipe_directory import remove_pipe_directory
from mlpotential.protocol.safe_paths import UnusablePathError
from mlpotential.protocol.worker_lock import DirectoryInUseError
from mlpotential.worker.directory import ClaimedDirectory, claim_directory
from mlpotential.worker.log import log
from mlpotential.worker.session import ExitRequested, Reply, WorkerSession, error_return
from mlpotential.worker.watchdog import host_alive_check, start_watchdog

EXIT_HOST_DIED = 1
EXIT_BROKEN_STREAM = 2
EXIT_REFUSED = 2

# What the worker refuses to serve in, reported in one line each.
_REFUSALS = (UnusablePathError, DirectoryInUseError, OSError)


class HostGone(Exception):
    """The host process ended before it connected to the pipes."""


def keep_waiting_while(host_alive: Callable[[], bool]) -> Callable[[], None]:
    """A ``keep_waiting`` callback that raises :class:`HostGone` once
    ``host_alive()`` turns false."""

    def keep_waiting() -> None:
        if not host_alive():
            raise HostGone

    return keep_waiting


def serve(directory: Path, session: WorkerSession) -> int:
    """Serve ``session`` over the FIFOs in ``directory`` until Exit or end
    of file; returns the process exit status."""
    try:
        place = claim_directory(directory)
    except _REFUSALS as exc:
        return _refuse(directory, exc)
    try:
        return _serve_claimed(place, session)
    finally:
        place.release()


def _refuse(directory: Path, exc: Exception) -> int:
    """Say in one line why the worker will not serve in ``directory``."""
    log(f"refusing to serve in {directory}: {_reason(exc)}")
    return EXIT_REFUSED


def _reason(exc: Exception) -> str:
    """``exc`` in one line: an OSError as its file and the system's words."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _serve_claimed(place: ClaimedDirectory, session: WorkerSession) -> int:
    """Connect to the host through the claimed directory's pipes, start the
    watchdog and serve."""
    session.engine.announce()
    host_alive = host_alive_check(place.launcher)
    try:
        call_fd, reply_fd = open_worker_side(place.dir_fd, keep_waiting_while(host_alive))
    except HostGone:
        log("the host went away before it opened the pipes")
        remove_pipe_directory(place.path)
        return EXIT_HOST_DIED
    except _REFUSALS as exc:
        return _refuse(place.path, exc)
    # Whoever takes this first ends the session: the loop (Exit, end of
    # file) or the watchdog (the host died); the other one then stands back.
    ending = threading.Lock()
    start_watchdog(host_alive, lambda: _abandon(place, session, ending))
    return _serve_pipes(place, session, call_fd, reply_fd, ending)


def _abandon(place: ClaimedDirectory, session: WorkerSession, ending: threading.Lock) -> None:
    """The host died while the worker served, perhaps inside a long Solve:
    end as a hang-up would, without waiting for the calculation (os._exit
    does not wait for the main thread)."""
    if not ending.acquire(blocking=False):
        return
    log("the host died; exiting without finishing the calculation in progress")
    session.finish()
    place.release()
    remove_pipe_directory(place.path)
    os._exit(EXIT_HOST_DIED)


def _serve_pipes(
    place: ClaimedDirectory, session: WorkerSession, call_fd: int, reply_fd: int, ending: threading.Lock
) -> int:
    """The loop: frames in, replies out, until Exit or end of file."""
    reader = FrameReader(call_fd)
    codec: Codec | None = None
    # The host hung up without Exit (it may have been killed): a launcher's
    # directory is then the worker's to clean up.
    hung_up = False

    def send(replies: list[Reply]) -> None:
        encode = (codec or UBJSON).dumps
        write_frames(reply_fd, [encode(_encode_reply(reply)) for reply in replies])

    try:
        while True:
            try:
                payload = reader.read_frame()
            except FrameTooLarge as exc:
                log(f"{exc}; exiting")
                send([msg.Return(Status.DECODE_ERROR, message=str(exc))])
                return EXIT_BROKEN_STREAM
            except FrameError as exc:
                log(f"{exc}; exiting")
                return EXIT_BROKEN_STREAM
            if payload is None:
                hung_up = True
                return 0
            try:
                if codec is None:
                    codec = detect_codec(payload)
                message = codec.loads(payload)
            except DecodeError as exc:
                send([error_return(exc)])
                continue
            replies = session.handle(message)
            if replies:
                send(replies)
    except ExitRequested:
        return 0
    except BrokenPipeError:
        log("the host closed reply_pipe; exiting")
        hung_up = True
        return 0
    finally:
        # Blocks for good if the watchdog got here first: it ends the process.
        ending.acquire()
        session.finish()
        os.close(call_fd)
        os.close(reply_fd)
        if hung_up:
            remove_pipe_directory(place.path)


def _encode_reply(reply: Reply) -> dict[str, Any]:
    return msg.encode_results(reply) if isinstance(reply, msg.Results) else msg.encode_return(reply)
