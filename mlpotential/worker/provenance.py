"""What the worker runs, recorded at its start (the first line of its log
that begins with :data:`PROVENANCE_LINE`): backend and model as resolved,
absolute model paths with their sha256, device, threads, library versions,
where ANI parameters came from, whether the model reads a total charge."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ase.calculators.calculator import Calculator

from mlpotential.backends.keywords import EngineSettings
from mlpotential.protocol.pipe_directory import PROVENANCE_LINE

_CORE_LIBRARIES = ("numpy", "ase")
_CHUNK_BYTES = 1 << 20


def sha256_of(path: Path) -> str:
    """The sha256 of a file, or of a directory's files (their relative paths
    and contents, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    for item in files:
        if path.is_dir():
            digest.update(str(item.relative_to(path)).encode() + b"\0")
        with open(item, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def _library_versions(settings: EngineSettings) -> dict[str, str]:
    names = list(_CORE_LIBRARIES) + (["torch"] if settings.spec.needs_torch else []) + list(settings.spec.removable)
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _threads() -> int | str:
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    return os.environ.get("OMP_NUM_THREADS", f"library default ({os.cpu_count()} cores)")


def _default_device(settings: EngineSettings) -> str:
    if settings.spec.devices == ("cpu",) or not settings.spec.needs_torch:
        return "cpu"
    return "the backend's default (not reported by it)"


def _model_paths(settings: EngineSettings, calculator: Calculator) -> list[str]:
    own = getattr(calculator, "provenance", {}).get("model_paths")
    if own:
        return list(own)
    given = [*settings.parameter_files, *settings.parameter_dirs]
    if settings.calculator_file:
        given.append(settings.calculator_file)
    return [str(Path(path).resolve()) for path in given]


def engine_provenance(settings: EngineSettings, calculator: Calculator) -> dict[str, Any]:
    """The record of what this worker serves (JSON-ready)."""
    device = getattr(calculator, "device", None)
    record: dict[str, Any] = {
        "mlpotential": metadata.version("mlpotential"),
        "python": platform.python_version(),
        "backend": settings.backend,
        "model": settings.model,
        "model_files": [{"path": path, "sha256": sha256_of(Path(path))} for path in _model_paths(settings, calculator)],
        "device": str(device) if device is not None else settings.device or _default_device(settings),
        "threads": _threads(),
        "libraries": _library_versions(settings),
        "uses_total_charge": settings.spec.uses_total_charge,
    }
    record.update({key: value for key, value in getattr(calculator, "provenance", {}).items() if key != "model_paths"})
    return record


def provenance_line(record: dict[str, Any]) -> str:
    """The log line that carries ``record`` (without the trailing newline)."""
    return PROVENANCE_LINE + json.dumps(record, sort_keys=False)
