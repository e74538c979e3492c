"""Which explored frames to label: the committee's uncertainty against two
trust levels (as DP-GEN selects by the largest per-atom force deviation,
and AMS's Simple Active Learning by energy and gradient uncertainties), and
a minimum interatomic distance below which a frame is unphysical.

A frame is *accurate* when every measure is below its lower level, a
*candidate* when one is at or above it but none reaches an upper level, and
*failed* (not trusted, not labelled, and the end of what an exploration may
start from) when the force deviation reaches the upper level or two atoms
come closer than the minimum distance. Candidates are spread over the
trajectory rather than taken consecutively: neighbouring frames of an MD
run teach the model almost the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ACCURATE, CANDIDATE, FAILED = "accurate", "candidate", "failed"


@dataclass(frozen=True)
class FrameUncertainty:
    """One explored frame: the committee's energy standard deviation per
    atom (eV/atom), the largest per-atom force deviation (eV/Angstrom, the
    norm of the per-atom standard deviations, DP-GEN's max force deviation)
    and the smallest interatomic distance (Angstrom)."""

    energy_std_per_atom: float
    max_force_std: float
    min_distance: float


@dataclass(frozen=True)
class Criteria:
    """Trust levels: ``energy_std_per_atom`` (eV/atom; None: not used),
    ``force_std_lower`` and ``force_std_upper`` (eV/Angstrom),
    ``min_distance`` (Angstrom), and at most ``candidates`` frames labelled
    per iteration."""

    force_std_lower: float = 0.05
    force_std_upper: float = 0.5
    energy_std_per_atom: float | None = None
    min_distance: float = 0.5
    candidates: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.force_std_lower < self.force_std_upper:
            raise ValueError(
                f"force_std_lower ({self.force_std_lower}) must be positive and below "
                f"force_std_upper ({self.force_std_upper})"
            )
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, not {self.candidates}")

    def classify(self, frame: FrameUncertainty) -> str:
        """:data:`ACCURATE`, :data:`CANDIDATE` or :data:`FAILED` for one frame."""
        if not np.isfinite(frame.max_force_std) or frame.max_force_std >= self.force_std_upper:
            return FAILED
        if frame.min_distance < self.min_distance:
            return FAILED
        energy_uncertain = (
            self.energy_std_per_atom is not None and frame.energy_std_per_atom >= self.energy_std_per_atom
        )
        if frame.max_force_std >= self.force_std_lower or energy_uncertain:
            return CANDIDATE
        return ACCURATE


def classify_trajectory(frames: Sequence[FrameUncertainty], criteria: Criteria) -> list[str]:
    """The class of each frame; every frame after the first failed one is
    failed too (the dynamics left the region where the model can be trusted)."""
    classes: list[str] = []
    for frame in frames:
        if classes and classes[-1] == FAILED:
            classes.append(FAILED)
        else:
            classes.append(criteria.classify(frame))
    return classes


def spread_candidates(frames: Sequence[FrameUncertainty], classes: Sequence[str], count: int) -> list[int]:
    """Up to ``count`` candidate frame indices, most uncertain first, no two
    closer in time than the candidates' span divided by ``2 * count``."""
    candidates = [index for index, kind in enumerate(classes) if kind == CANDIDATE]
    if not candidates:
        return []
    gap = max(1, (candidates[-1] - candidates[0] + 1) // (2 * count))
    chosen: list[int] = []
    for index in sorted(candidates, key=lambda i: -frames[i].max_force_std):
        if all(abs(index - other) >= gap for other in chosen):
            chosen.append(index)
        if len(chosen) == count:
            break
    return sorted(chosen)


def select_across(
    trajectories: Sequence[tuple[Sequence[FrameUncertainty], Sequence[str]]], criteria: Criteria
) -> list[tuple[int, int]]:
    """Up to ``criteria.candidates`` frames of several trajectories, as
    (trajectory, frame) pairs: each trajectory's spread candidates, the most
    uncertain of all kept. A trajectory that failed before any candidate
    offers its first failed frame instead when its atoms are not too close:
    the committee knows nothing there yet, and without it the loop would
    never learn the way out."""
    offered: list[tuple[float, int, int]] = []
    for number, (frames, classes) in enumerate(trajectories):
        chosen = spread_candidates(frames, classes, criteria.candidates)
        if not chosen and FAILED in classes:
            first = classes.index(FAILED)
            if frames[first].min_distance >= criteria.min_distance and np.isfinite(frames[first].max_force_std):
                chosen = [first]
        offered += [(frames[index].max_force_std, number, index) for index in chosen]
    best = sorted(offered, key=lambda item: -item[0])[: criteria.candidates]
    return sorted((number, index) for _, number, index in best)
