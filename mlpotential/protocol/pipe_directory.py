"""The private directory that holds a worker's pipes, and who removes it.

The launcher creates it (mode 0700) with a marker file that says "a launcher
made this; whoever outlives the other removes it". The launcher removes it
when the engine closes; a worker whose host vanished (end of file on
call_pipe) removes it when it finds the marker. A directory without the
marker (one an AMS host made) is never removed by the worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

OWNER_MARKER = ".mlpotential-launcher"
WORKER_LOG = "worker.log"


def create_pipe_directory() -> Path:
    """A new private (0700) directory, marked as the launcher's."""
    directory = Path(tempfile.mkdtemp(prefix="mlpotential-"))
    (directory / OWNER_MARKER).write_text(f"{os.getpid()}\n")
    return directory


def is_launcher_directory(directory: str | os.PathLike[str]) -> bool:
    return (Path(directory) / OWNER_MARKER).exists()


def launcher_pid(directory: str | os.PathLike[str]) -> int | None:
    """The PID of the launcher that made ``directory`` (None if not ours)."""
    try:
        return int((Path(directory) / OWNER_MARKER).read_text().strip())
    except (OSError, ValueError):
        return None


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


def remove_pipe_directory(directory: str | os.PathLike[str]) -> None:
    """Remove a launcher's directory with everything in it; a directory
    without the marker is left alone."""
    if is_launcher_directory(directory):
        shutil.rmtree(directory, ignore_errors=True)
