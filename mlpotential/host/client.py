"""A protocol-level host: calls in, replies out, in atomic units.

:class:`PipeClient` speaks to any AMS-compatible worker through a
:class:`~mlpotential.host.launcher.WorkerProcess`. Set calls (which get no
reply) are held back and written together with the next call that does, so
the worker wakes up once per round trip.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from mlpotential.host.launcher import WorkerDiedError, WorkerProcess
from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import CODECS, Codec
from mlpotential.protocol.errors import ProtocolError, Status
from mlpotential.protocol.framing import FrameReader, FrameTooLarge, TruncatedFrame, write_frames

_SET_CALLS = (msg.SetSystem, msg.SetCoords, msg.SetLattice)


class EngineError(ProtocolError):
    """The worker answered a call with a non-success ``return``."""


class PipeClient:
    """Talks to one worker. Raises :class:`EngineError` for error returns and
    :class:`WorkerDiedError` when the worker is gone."""

    def __init__(
        self,
        command: Sequence[str],
        codec: str = "ubjson",
        env: Mapping[str, str] | None = None,
        reply_timeout: float | None = None,
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
        self.codec: Codec = CODECS[codec]
        self.worker = WorkerProcess(command, env=env, reply_timeout=reply_timeout)
        self.reader = FrameReader(self.worker.reply_fd, wait=self.worker.wait_readable)
        self._pending: list[bytes] = []
        self._titles = itertools.count(1)

    # ------------------------------------------------------------ transport
    def send_payloads(self, payloads: Sequence[bytes]) -> None:
        """Write raw payloads (held-back Set calls first) in one write."""
        frames = [*self._pending, *payloads]
        self._pending.clear()
        try:
            write_frames(self.worker.call_fd, frames)
        except BrokenPipeError:
            raise self.worker.worker_gone() from None

    def read_reply(self) -> msg.Results | msg.Return:
        try:
            payload = self.reader.read_frame()
        except TruncatedFrame:
            raise self.worker.worker_gone() from None
        except FrameTooLarge as exc:
            raise ProtocolError(Status.DECODE_ERROR, f"the worker's reply stream is broken: {exc}") from None
        if payload is None:
            raise self.worker.worker_gone()
        return msg.decode_reply(self.codec.loads(payload))

    def exchange(self, message: dict[str, Any], expect_reply: bool = True) -> list[msg.Results | msg.Return]:
        """Send one message object as it is. Without ``expect_reply`` (Set
        calls, Exit) it is held back until the next call that gets replies;
        otherwise returns every reply up to and including the ``return``."""
        payload = self.codec.dumps(message)
        if not expect_reply:
            self._pending.append(payload)
            return []
        self.send_payloads([payload])
        replies: list[msg.Results | msg.Return] = []
        while not replies or not isinstance(replies[-1], msg.Return):
            replies.append(self.read_reply())
        return replies

    def call(self, call: msg.Call) -> list[msg.Results]:
        """Send one call; returns the ``results`` before its ``return`` and
        raises :class:`EngineError` for a non-success ``return``. Set calls
        are held back and Exit is sent at once; neither gets replies."""
        message = msg.encode_call(call)
        if isinstance(call, msg.Exit):
            self.send_payloads([self.codec.dumps(message)])
            return []
        replies = self.exchange(message, expect_reply=not isinstance(call, _SET_CALLS))
        if not replies:
            return []
        final = replies[-1]
        if final.status != Status.SUCCESS:
            raise EngineError(final.status, final.message, final.method, final.argument)
        return replies[:-1]

    # ------------------------------------------------------------ the calls
    def hello(self) -> None:
        self.call(msg.Hello())

    def set_system(self, system: msg.SetSystem) -> None:
        self.call(system)

    def solve(
        self,
        request: msg.SolveRequest | None = None,
        keep_results: bool = False,
        prev_title: str | None = None,
        **flags: bool,
    ) -> msg.Results:
        """Solve and return the results (Hartree, Hartree/Bohr). ``flags``
        (gradients=True, ...) build a request with a fresh title."""
        if request is None:
            request = msg.SolveRequest(title=f"solve-{next(self._titles)}", **flags)
        results = self.call(msg.Solve(request, keep_results, prev_title))
        if len(results) != 1:
            raise ProtocolError(Status.LOGIC_ERROR, f"Solve answered with {len(results)} results messages, expected 1")
        return results[0]

    def close(self, timeout: float = 10.0) -> int | None:
        """Send Exit (if the worker is alive), close the pipes, wait for the
        worker and remove the pipe directory; returns its exit status."""
        if self.worker.call_fd >= 0 and self.worker.process.poll() is None:
            try:
                self.call(msg.Exit())
            except (WorkerDiedError, OSError):
                pass
        return self.worker.close(timeout)

    def __enter__(self) -> PipeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["EngineError", "PipeClient", "WorkerDiedError"]
