"""A protocol-level host: calls in, replies out, in atomic units.

:class:`PipeClient` speaks to any AMS-compatible worker through a
:class:`~mlpotential.host.launcher.WorkerProcess`. Set calls (which get no
reply) are held back and written together with the next call that does, so
the worker wakes up once per round trip.

The protocol pairs replies with calls by order alone, so the client never
lets the two streams fall out of step: a call that fails half way (a
timeout, an interrupt, a reply that cannot be read) stops the worker, and so
does a reply that no call asked for. Every later call then raises
:class:`WorkerDiedError` instead of returning an answer meant for another.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from mlpotential.host.launcher import WorkerDiedError, WorkerProcess, WorkerTimeoutError
from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import CODECS, Codec
from mlpotential.protocol.errors import ProtocolError, Status
from mlpotential.protocol.framing import FrameReader, FrameTooLarge, TruncatedFrame, encode_frame

_SET_CALLS = (msg.SetSystem, msg.SetCoords, msg.SetLattice)

MAX_RESULTS_PER_CALL = 16
"""More ``results`` messages than this before a ``return`` is a broken
worker (Solve gets one, other calls none), not a long answer."""


class EngineError(ProtocolError):
    """The worker answered a call with a non-success ``return``."""


class PipeClient:
    """Talks to one worker. Raises :class:`EngineError` for error returns,
    :class:`WorkerDiedError` when the worker is gone (or was stopped), and
    :class:`WorkerTimeoutError` when it misses a timeout.

    ``reply_timeout`` (seconds, None = wait forever) bounds each call from
    its first byte written to its last reply read; ``start_timeout`` bounds
    the worker's start, until it has opened its pipes (after loading its
    model). A worker that misses either is killed, and the client takes no
    more calls.
    """

    def __init__(
        self,
        command: Sequence[str],
        codec: str = "ubjson",
        env: Mapping[str, str] | None = None,
        reply_timeout: float | None = None,
        start_timeout: float | None = None,
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
        self.codec: Codec = CODECS[codec]
        self.worker = WorkerProcess(command, env=env, reply_timeout=reply_timeout, start_timeout=start_timeout)
        self.reader = FrameReader(self.worker.reply_fd, wait=self.worker.wait_readable)
        self._pending: list[tuple[str, bytes]] = []
        self._titles = itertools.count(1)

    # ------------------------------------------------------------ transport
    def send_payloads(self, payloads: Sequence[bytes], call: str = "a call") -> None:
        """Write the held-back Set calls and raw ``payloads`` in one write;
        the clock of ``call`` (its name, for messages) starts here."""
        self.worker.check_usable()
        with self._stop_on_failure(call):
            self._send(payloads, call)

    def read_reply(self) -> msg.Results | msg.Return:
        """Read one reply to the calls sent last."""
        self.worker.check_usable()
        with self._stop_on_failure("reading a reply"):
            return self._read_reply()

    def exchange(self, message: dict[str, Any], expect_reply: bool = True) -> list[msg.Results | msg.Return]:
        """Send one message object as it is. Without ``expect_reply`` (Set
        calls, Exit) it is held back until the next call that gets replies;
        otherwise returns every reply up to and including the ``return``."""
        payload = self.codec.dumps(message)
        name = next(iter(message), "a call")
        if not expect_reply:
            self._pending.append((name, payload))
            return []
        self.worker.check_usable()
        with self._stop_on_failure(name):
            self._send([payload], name)
            return self._read_replies()

    @contextmanager
    def _stop_on_failure(self, call: str) -> Iterator[None]:
        """Stop the worker when ``call`` fails half way: whatever it still
        sends would be read as the answer to the next call. A worker that
        died needs no stopping (and its death says more)."""
        try:
            yield
        except WorkerDiedError:
            raise
        except BaseException as exc:
            first_line = (str(exc).splitlines() or [""])[0]
            self.worker.stop(f"{type(exc).__name__} during {call}" + (f": {first_line}" if first_line else ""))
            raise

    def _send(self, payloads: Sequence[bytes], call: str) -> None:
        self._refuse_unsolicited_replies()
        names = [name for name, _ in self._pending] + [call]
        frames = [payload for _, payload in self._pending] + list(payloads)
        self._pending.clear()
        self.worker.start_call(" + ".join(names))
        self.worker.write(b"".join(encode_frame(frame) for frame in frames))

    def _refuse_unsolicited_replies(self) -> None:
        """Every reply of the last call has been read; anything more would
        be taken for the answer to the next call."""
        if self.reader.buffer or self.worker.reply_waiting():
            raise ProtocolError(
                Status.LOGIC_ERROR,
                "the worker sent a reply that no call asked for: its replies no longer match the calls",
            )

    def _read_reply(self) -> msg.Results | msg.Return:
        try:
            payload = self.reader.read_frame()
        except TruncatedFrame:
            raise self.worker.worker_gone() from None
        except FrameTooLarge as exc:
            raise ProtocolError(Status.DECODE_ERROR, f"the worker's reply stream is broken: {exc}") from None
        if payload is None:
            raise self.worker.worker_gone()
        return msg.decode_reply(self.codec.loads(payload))

    def _read_replies(self) -> list[msg.Results | msg.Return]:
        """The replies up to and including the ``return``."""
        replies: list[msg.Results | msg.Return] = []
        while not replies or not isinstance(replies[-1], msg.Return):
            if len(replies) > MAX_RESULTS_PER_CALL:
                raise ProtocolError(
                    Status.LOGIC_ERROR,
                    f"the worker sent more than {MAX_RESULTS_PER_CALL} results messages without a return",
                )
            replies.append(self._read_reply())
        return replies

    def call(self, call: msg.Call) -> list[msg.Results]:
        """Send one call; returns the ``results`` before its ``return`` and
        raises :class:`EngineError` for a non-success ``return``. Set calls
        are held back and Exit is sent at once; neither gets replies."""
        message = msg.encode_call(call)
        if isinstance(call, msg.Exit):
            self.send_payloads([self.codec.dumps(message)], "Exit")
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
        """Send Exit (if the pipes are open and have room: a worker that
        stopped reading gets end of file instead), close the pipes, wait up
        to ``timeout`` seconds for the worker, end it, and remove the pipe
        directory; returns its exit status (None if already closed)."""
        # Exit drops held-back Set calls anyway; writing them could block.
        self._pending.clear()
        self.worker.write_if_room(encode_frame(self.codec.dumps(msg.encode_call(msg.Exit()))))
        return self.worker.close(timeout)

    def __enter__(self) -> PipeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["EngineError", "PipeClient", "WorkerDiedError", "WorkerTimeoutError"]
