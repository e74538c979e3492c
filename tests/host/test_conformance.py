"""Every protocol rule, as the conformance suite checks it, against our
worker (real processes, real FIFOs), in both codecs."""

from __future__ import annotations

import pytest

from mlpotential.host.conformance import CASES, run_case


@pytest.mark.parametrize(
    ("case", "codec"),
    [pytest.param(case, codec, id=f"{case.name}-{codec}") for case in CASES for codec in case.codecs],
)
def test_rule(case, codec, emt_worker, water_system):
    result = run_case(case, emt_worker, water_system, codec, timeout=60.0)
    assert result.passed, f"{case.rule}: {result.detail}"


def test_a_failing_worker_fails_cases_instead_of_hanging(water_system, tmp_path):
    """A 'worker' that connects and then never answers: cases FAIL on the reply
    timeout, nothing hangs."""
    import sys

    script = tmp_path / "silent_worker.py"
    script.write_text(
        "import os, time\n"
        "r = os.open('call_pipe', os.O_RDONLY); w = os.open('reply_pipe', os.O_WRONLY)\n"
        "while os.read(r, 65536): pass\n"
    )
    result = run_case(CASES[0], [sys.executable, str(script)], water_system, "ubjson", timeout=1.0)
    assert not result.passed and "no reply within 1 s" in result.detail
