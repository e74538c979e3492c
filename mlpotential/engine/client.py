"""A protocol-level host: calls in, replies out, in atomic units.

:class:`PipeClient` speaks to any AMS-compatible worker through a
:class:`~mlpotential.engine.launcher.WorkerProcess`. Set calls (which get no
reply) are held back and written together with the next call that does, so
the worker wakes up once per round trip.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from mlpotential.engine.launcher import WorkerDiedError, WorkerProcess
from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import CODECS, Codec
from mlpotential.protocol.errors import ProtocolError, Status
from mlpotential.protocol.framing import FrameReader, FrameTooLarge, TruncatedFrame, write_frames


class EngineError(ProtocolError):
    """The worker answered a call with a non-success ``return``."""


class PipeClient:
    """Talks to one worker. Raises :class:`EngineError` for error returns and
    :class:`WorkerDiedError` when the worker is gone."""

    def __init__(self, command: Sequence[str], codec: str = "ubjson", env: Mapping[str, str] | None = None) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
        self.codec: Codec = CODECS[codec]
        self.worker = WorkerProcess(command, env=env)
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

    def call(self, call: msg.Call) -> list[msg.Results]:
        """Send one call. Set calls are held back and return []; Exit returns
        [] at once; every other call waits for its ``return`` and gives the
        ``results`` that came before it."""
        payload = self.codec.dumps(msg.encode_call(call))
        if isinstance(call, (msg.SetSystem, msg.SetCoords, msg.SetLattice)):
            self._pending.append(payload)
            return []
        self.send_payloads([payload])
        if isinstance(call, msg.Exit):
            return []
        results = []
        while True:
            reply = self.read_reply()
            if isinstance(reply, msg.Return):
                if reply.status != 0:
                    raise EngineError(reply.status, reply.message, reply.method, reply.argument)
                return results
            results.append(reply)

    # ------------------------------------------------------------ the calls
    def hello(self) -> None:
        self.call(msg.Hello())

    def set_system(self, system: msg.SetSystem) -> None:
        self.call(system)

    def solve(self, request: msg.SolveRequest | None = None, keep_results: bool = False,
              prev_title: str | None = None, **flags: bool) -> msg.Results:  # fmt: skip
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
