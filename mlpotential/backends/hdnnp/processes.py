"""Running training tasks in child processes on this machine: the ranks of
``mlpotential train --nproc N`` and the members of ``--committee K``.

Children are started with ``spawn`` (a fresh interpreter: no copied torch
threads or CUDA state). The first child that fails ends the others, and its
error comes back as one line naming it (:class:`ProcessFailed`), never as a
hang: a rank left waiting in a collective for a dead peer is terminated,
and a child whose parent has gone ends itself.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from mlpotential.errors import EngineSetupError

PARENT_POLL_S = 1.0
"""How often a child checks that its parent is still there (seconds)."""
TERMINATE_GRACE_S = 5.0
"""How long a child may take to end after SIGTERM before it is killed (seconds)."""


class ProcessFailed(RuntimeError):
    """A child task failed; the message names it and says why in one line."""


@dataclass(frozen=True)
class Task:
    """``function(*arguments)`` in a child process with ``environment``
    added to its variables; ``name`` says which in errors ("rank 1")."""

    name: str
    function: Callable[..., Any]
    arguments: tuple[Any, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)


def run_tasks(tasks: Sequence[Task], at_once: int) -> list[Any]:
    """Each task's return value, in task order, running at most ``at_once``
    at a time. Raises :class:`ProcessFailed` for the first task that fails,
    once every child has ended."""
    context = multiprocessing.get_context("spawn")
    waiting = list(enumerate(tasks))
    running: dict[int, tuple[multiprocessing.process.BaseProcess, Connection]] = {}
    results: dict[int, Any] = {}
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                index, task = waiting.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(
                    target=_child, args=(task, sender, os.getpid()), name=f"mlpotential train {task.name}"
                )
                process.start()
                sender.close()
                running[index] = (process, receiver)
            _collect(running, results, tasks)
    finally:
        _end(running)
    return [results[index] for index in range(len(tasks))]


def _collect(
    running: dict[int, tuple[multiprocessing.process.BaseProcess, Connection]],
    results: dict[int, Any],
    tasks: Sequence[Task],
) -> None:
    """Wait until running children report or end; take their results, or
    raise a failure: the cause rather than a consequence where several fail
    at once (a rank whose peer died fails too, with a message about the lost
    connection)."""
    ready = wait([receiver for _, receiver in running.values()] + [p.sentinel for p, _ in running.values()])
    failures: list[tuple[bool, str]] = []
    for index, (process, receiver) in list(running.items()):
        if receiver not in ready and process.sentinel not in ready:
            continue
        try:
            outcome = pickle.loads(receiver.recv_bytes())
        except EOFError:
            process.join()
            outcome = ("error", f"ended without a result ({_exit_reason(process.exitcode)})", True)
        process.join()
        receiver.close()
        del running[index]
        if outcome[0] == "result":
            results[index] = outcome[1]
        else:
            failures.append((not outcome[2], f"{tasks[index].name} failed: {outcome[1]}"))
    if failures:
        raise ProcessFailed(min(failures)[1])


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _end(running: dict[int, tuple[multiprocessing.process.BaseProcess, Connection]]) -> None:
    """Terminate the children still running (SIGTERM, then SIGKILL) and reap them."""
    for process, _ in running.values():
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE_S
    for process, receiver in running.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
        receiver.close()
    running.clear()


def _child(task: Task, sender: Connection, parent: int) -> None:
    """A child's life: follow the parent, run the task, send back
    ("result", value) or ("error", one line)."""
    os.environ.update(task.environment)
    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()
    try:
        value = task.function(*task.arguments)
    except BaseException as error:  # noqa: BLE001 - every failure goes back as one line
        sender.send_bytes(pickle.dumps(("error", _one_line(error), _is_expected(error))))
        sender.close()
        sys.exit(1)
    # Plain pickle: tensors travel by value (torch's own reduction would
    # share memory that ends with this process).
    sender.send_bytes(pickle.dumps(("result", value)))
    sender.close()


def _end_with_parent(parent: int) -> None:
    """End this process when its parent has gone (it was killed): no
    training left running with nobody to read its result."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _is_expected(error: BaseException) -> bool:
    """Bad input and the user's own limits: their message says it all."""
    return isinstance(error, (ValueError, OSError, EngineSetupError, FloatingPointError, KeyboardInterrupt))


def _one_line(error: BaseException) -> str:
    """The error's message; for an unexpected one (a bug, a lost peer) its
    type and where it was raised as well."""
    message = error.message if isinstance(error, EngineSetupError) else str(error)
    message = " ".join(message.split()) or type(error).__name__
    if _is_expected(error):
        return message
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f" (raised at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(error).__name__}: {message}{where}"
