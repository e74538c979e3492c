"""Each criterion selects what it should on constructed trajectories."""

from __future__ import annotations

import pytest

from mlpotential.learning.selection import (
    ACCURATE,
    CANDIDATE,
    FAILED,
    Criteria,
    FrameUncertainty,
    classify_trajectory,
    select_across,
    spread_candidates,
)


def frames(force_stds, energy_stds=None, distances=None):
    energy_stds = energy_stds or [0.0] * len(force_stds)
    distances = distances or [2.5] * len(force_stds)
    return [FrameUncertainty(e, f, d) for f, e, d in zip(force_stds, energy_stds, distances)]


def test_force_deviation_between_the_trust_levels_makes_a_candidate() -> None:
    criteria = Criteria(force_std_lower=0.1, force_std_upper=0.4)
    classes = classify_trajectory(frames([0.05, 0.1, 0.39, 0.02]), criteria)
    assert classes == [ACCURATE, CANDIDATE, CANDIDATE, ACCURATE]


def test_above_the_upper_level_the_rest_of_the_trajectory_is_failed() -> None:
    criteria = Criteria(force_std_lower=0.1, force_std_upper=0.4)
    classes = classify_trajectory(frames([0.2, 0.45, 0.05, 0.2]), criteria)
    assert classes == [CANDIDATE, FAILED, FAILED, FAILED]


def test_energy_std_per_atom_selects_when_forces_are_quiet() -> None:
    criteria = Criteria(force_std_lower=0.1, force_std_upper=0.4, energy_std_per_atom=0.01)
    classes = classify_trajectory(frames([0.01, 0.01], energy_stds=[0.001, 0.02]), criteria)
    assert classes == [ACCURATE, CANDIDATE]
    assert classify_trajectory(frames([0.01], energy_stds=[0.5]), Criteria(0.1, 0.4)) == [ACCURATE]


def test_atoms_too_close_make_a_frame_failed() -> None:
    criteria = Criteria(force_std_lower=0.1, force_std_upper=0.4, min_distance=0.8)
    classes = classify_trajectory(frames([0.01, 0.2], distances=[0.7, 2.0]), criteria)
    assert classes == [FAILED, FAILED]


def test_a_non_finite_deviation_is_failed() -> None:
    assert classify_trajectory(frames([float("nan")]), Criteria()) == [FAILED]


def test_candidates_are_spread_over_the_trajectory_most_uncertain_first() -> None:
    force_stds = [0.2 + 0.001 * i for i in range(100)]  # all candidates, rising
    trajectory = frames(force_stds)
    classes = classify_trajectory(trajectory, Criteria(force_std_lower=0.1, force_std_upper=0.4))
    chosen = spread_candidates(trajectory, classes, 5)
    assert len(chosen) == 5 and chosen[-1] == 99
    assert min(b - a for a, b in zip(chosen, chosen[1:])) >= 10  # not five consecutive frames


def test_no_candidate_no_selection_and_bad_levels_are_refused() -> None:
    trajectory = frames([0.01, 0.02])
    assert spread_candidates(trajectory, classify_trajectory(trajectory, Criteria()), 3) == []
    with pytest.raises(ValueError, match="below force_std_upper"):
        Criteria(force_std_lower=0.5, force_std_upper=0.4)


def test_across_trajectories_the_most_uncertain_spread_candidates_are_kept() -> None:
    criteria = Criteria(force_std_lower=0.1, force_std_upper=0.4, candidates=3)
    quiet = frames([0.01] * 50)
    busy = frames([0.2 + 0.001 * i for i in range(50)])
    failing_at_once = frames([0.45, 0.5])
    trajectories = [(t, classify_trajectory(t, criteria)) for t in (quiet, busy, failing_at_once)]
    chosen = select_across(trajectories, criteria)
    assert (2, 0) in chosen  # a run that failed before any candidate offers its failed frame
    assert all(number != 0 for number, _ in chosen)  # nothing from the accurate run
    assert len(chosen) == 3


def test_a_failed_frame_with_atoms_too_close_is_never_offered() -> None:
    criteria = Criteria(force_std_lower=0.1, force_std_upper=0.4, min_distance=1.0)
    collapsed = frames([0.45], distances=[0.6])
    assert select_across([(collapsed, classify_trajectory(collapsed, criteria))], criteria) == []
