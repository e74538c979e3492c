"""The worker's transport loop: frames in from call_pipe, decoded, handed to
the session, replies encoded and written to reply_pipe, until Exit or end of
file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import UBJSON, Codec, detect_codec
from mlpotential.protocol.errors import DecodeError, Status
from mlpotential.protocol.fifo import open_worker_side
from mlpotential.protocol.framing import FrameError, FrameReader, FrameTooLarge, write_frames
from mlpotential.protocol.pipe_directory import launcher_pid, process_alive, remove_pipe_directory
from mlpotential.worker.log import log
from mlpotential.worker.session import ExitRequested, Reply, WorkerSession, error_return


class HostGone(Exception):
    """The host process ended before it connected to the pipes."""


def host_watch(directory: Path) -> Callable[[], None]:
    """A ``keep_waiting`` callback that raises once the host is gone: the
    launcher recorded in the directory's marker, else the parent process."""
    host = launcher_pid(directory)
    parent = os.getppid()

    def keep_waiting() -> None:
        if not (process_alive(host) if host is not None else os.getppid() == parent):
            raise HostGone

    return keep_waiting


def serve(directory: Path, session: WorkerSession) -> int:
    """Serve ``session`` over the FIFOs in ``directory`` until Exit or end
    of file; returns the process exit status (non-zero when the stream broke)."""
    try:
        call_fd, reply_fd = open_worker_side(directory, host_watch(directory))
    except HostGone:
        log("the host went away before it opened the pipes")
        remove_pipe_directory(directory)
        return 1
    reader = FrameReader(call_fd)
    codec: Codec | None = None
    # The host hung up without Exit (it may have been killed): a launcher's
    # directory is then the worker's to remove.
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
                return 2
            except FrameError as exc:
                log(f"{exc}; exiting")
                return 2
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
        session.finish()
        os.close(call_fd)
        os.close(reply_fd)
        if hung_up:
            remove_pipe_directory(directory)


def _encode_reply(reply: Reply) -> dict[str, Any]:
    return msg.encode_results(reply) if isinstance(reply, msg.Results) else msg.encode_return(reply)
