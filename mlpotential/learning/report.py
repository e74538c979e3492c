"""The results folder's report: ``report.json`` (one entry per iteration)
and its plots, ``uncertainty_NNN.png`` (the largest per-atom force
deviation, eV/Angstrom, along each exploration of iteration NNN, with the
trust levels) and ``errors.png`` (errors against the reference per
iteration).

Each iteration's facts are in its folder's ``summary.json``, written stage
by stage; the report gathers them, so it can be rebuilt after a restart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

from mlpotential.learning.selection import Criteria  # noqa: E402


def write_json(path: Path, content: Mapping[str, Any]) -> None:
    """Write ``content`` as JSON atomically (a reader, or a restart after an
    interruption, sees the old file or the new one, never half of one)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content, indent=2, default=float) + "\n")
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file written by :func:`write_json`; empty if there is none."""
    return json.loads(path.read_text()) if path.exists() else {}


def plot_uncertainty(explorations: Sequence[Mapping[str, Any]], criteria: Criteria, path: Path, title: str) -> None:
    """The largest per-atom force deviation along each exploration."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for run in explorations:
        axes.plot(run["max_force_std"], linewidth=0.8, label=run["name"])
    for level, name in ((criteria.force_std_lower, "lower"), (criteria.force_std_upper, "upper")):
        axes.axhline(level, color="grey", linestyle="--", linewidth=0.8)
        axes.annotate(f"{name} trust level", (0, level), fontsize=7, color="grey", va="bottom")
    axes.set_yscale("log")
    axes.set_xlabel("MD step")
    axes.set_ylabel("largest per-atom force std (eV/Å)")
    axes.set_title(title)
    if explorations:
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_errors(iterations: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Force RMSE (eV/Angstrom) per iteration: the committee's on the frames
    it selected (before it was trained on them), on the held-out test set,
    and the members' training error; the dataset size beside them."""
    figure, axes = plt.subplots(figsize=(7, 4))
    numbers = [entry["iteration"] for entry in iterations]
    series = {
        "selected frames (before training on them)": [
            (entry.get("selected_errors") or {}).get("force_rmse") for entry in iterations
        ],
        "held-out test set": [(entry.get("test_errors") or {}).get("force_rmse") for entry in iterations],
        "training set (members' mean)": [(entry.get("training") or {}).get("train_force_rmse") for entry in iterations],
    }
    for label, values in series.items():
        points = [(n, v) for n, v in zip(numbers, values) if v is not None]
        if points:
            axes.plot(*zip(*points), marker="o", label=label)
    axes.set_xlabel("iteration")
    axes.set_ylabel("force RMSE (eV/Å)")
    axes.set_yscale("log")
    axes.legend(fontsize=7, loc="upper left")
    sizes = axes.twinx()
    sizes.plot(numbers, [entry.get("dataset_size", 0) for entry in iterations], color="grey", linestyle=":")
    sizes.set_ylabel("dataset size (frames, dotted)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
