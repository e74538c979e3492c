"""The JSON report of the TorchANI benchmarks: what machine they ran on, and
writing the report."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine(**versions: str) -> dict[str, object]:
    """CPUs, platform, Python and ``versions`` (e.g. torch's); the load average
    is read now, so call this when the measurements are done."""
    return {
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **versions,
    }


def write_report(path: Path, report: dict[str, object]) -> None:
    """Write ``report`` as indented JSON to ``path`` and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {path}")
