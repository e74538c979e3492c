"""Provenance for summary.json: what the host ran (mlpotential version,
libraries, the job file and its sha256, the worker command) and what the
worker reported at its start (the line of its log that begins with
:data:`PROVENANCE_LINE`: backend, model, model files and their sha256,
device, threads, library versions, where ANI parameters came from)."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from mlpotential.protocol.pipe_directory import PROVENANCE_LINE


def worker_provenance(worker_log: str) -> dict[str, Any] | None:
    """The record our worker logged at its start; None when the worker wrote
    none (another program's worker, or one that failed before it)."""
    for line in worker_log.splitlines():
        if line.startswith(PROVENANCE_LINE):
            try:
                record = json.loads(line[len(PROVENANCE_LINE) :])
            except json.JSONDecodeError:
                return None
            return record if isinstance(record, dict) else None
    return None


def host_provenance(input_file: Path, worker_command: list[str]) -> dict[str, Any]:
    """What the host ran: its versions, the job file (absolute, sha256) and the worker command."""
    return {
        "mlpotential": metadata.version("mlpotential"),
        "python": platform.python_version(),
        "libraries": {name: metadata.version(name) for name in ("numpy", "ase")},
        "input": str(input_file.resolve()),
        "input_sha256": hashlib.sha256(input_file.read_bytes()).hexdigest(),
        "worker_command": worker_command,
    }
