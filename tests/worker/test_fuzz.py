"""A real worker under fuzzing: 2,000 random and mutated frames in both
codecs, each answered or followed by a clean exit, never a hang, memory
bounded."""

from __future__ import annotations

import pytest
from ase.build import molecule

from mlpotential.ase_bridge import system_message
from mlpotential.host.fuzzing import run_fuzz
from mlpotential.host.launcher import our_worker_command


@pytest.mark.parametrize("codec", ["ubjson", "msgpack"])
def test_every_fuzzed_frame_is_answered_or_ends_the_worker_cleanly(codec: str) -> None:
    report = run_fuzz(
        our_worker_command("--backend", "ASE", "--model", "EMT"),
        system_message(molecule("H2O")),
        frames=1000,
        codec=codec,
        seed=2026,
        timeout=30.0,
    )
    print(f"\n{codec}\n{report.table()}")
    assert report.hangs == 0, report.problems
    assert not report.problems, report.problems[:5]
    assert sum(report.statuses.values()) >= report.frames // 2
    assert {"decode_error", "invalid_argument"} <= set(report.statuses)
    assert report.largest_resident_megabytes < 400
    assert not any("internal error" in example for example in report.examples.values()), report.examples
