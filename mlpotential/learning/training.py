"""Training the committee of one iteration: each member an HDNNP model of
its own seed (its own initial weights, its own train/validation split),
warm-started from the same member of the previous iteration.

Members differ only by their seeds and, after the first iteration, by
their own histories: that difference on data they never saw is the
committee's uncertainty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from mlpotential.atomistic.structures import Structure
from mlpotential.learning.config import ModelSettings


@dataclasses.dataclass(frozen=True)
class MemberResult:
    """One trained member: its model file and its errors per set (eV/atom,
    eV/Angstrom; see :class:`~mlpotential.backends.hdnnp.training.TrainingResult`)."""

    path: Path
    errors: dict[str, dict[str, float]]
    epochs: int


def member_path(folder: Path, member: int) -> Path:
    """The model file of committee member ``member`` in ``folder``."""
    return folder / f"member_{member}.pt"


def train_committee(
    structures: Sequence[Structure],
    settings: ModelSettings,
    folder: Path,
    previous: Sequence[Path] = (),
    descriptor_store: Path | None = None,
) -> list[MemberResult]:
    """Train ``settings.committee`` members on ``structures`` into
    ``folder``; ``previous`` (one model file per member) warm-starts them.
    ``descriptor_store`` keeps the descriptors between iterations."""
    from mlpotential.backends.hdnnp.training import train

    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for member in range(settings.committee):
        config = dataclasses.replace(
            settings.training,
            seed=settings.seed + member,
            model_path=member_path(folder, member),
            parity_plot=folder / f"parity_{member}.png" if member == 0 else None,
            report=folder / f"member_{member}.json",
            descriptor_store=descriptor_store,
            progress=False,
        )
        start = previous[member] if settings.warm_start and member < len(previous) else None
        result = train(config, structures, initial_model=start)
        results.append(MemberResult(result.model_path, result.errors, int(result.report["epochs"])))
    return results
