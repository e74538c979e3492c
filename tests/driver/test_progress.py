"""Progress of ``mlpotential run`` when stdout is not a terminal: the first
step at once, then a line per interval, and the last step at the end."""

from __future__ import annotations

import io

from mlpotential.driver.progress import Progress


def test_lines_for_a_redirected_stdout() -> None:
    stream = io.StringIO()
    progress = Progress(100, "MolecularDynamics", stream=stream, interval=3600.0)
    for step in range(0, 41):
        progress.update(step, {"T_K": f"{step:.1f}"})
    assert stream.getvalue() == "MolecularDynamics: step 0/100  T_K 0.0\n"
    progress.close()  # stopped early (a converged optimisation, an error): the last step is said
    assert stream.getvalue().splitlines()[-1] == "MolecularDynamics: step 40/100  T_K 40.0"


def test_every_step_is_a_line_with_no_interval() -> None:
    stream = io.StringIO()
    progress = Progress(3, "GeometryOptimization", stream=stream, interval=0.0)
    for step in range(4):
        progress.update(step, {"energy_Ha": "-1.0"})
    progress.close()
    assert len(stream.getvalue().splitlines()) == 4
