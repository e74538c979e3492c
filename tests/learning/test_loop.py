"""The loop end to end on a tiny copper system with EMT as the reference:
a real committee worker explores, real EMT workers label, real HDNNP
training. A failing reference costs one structure; a resumed run (after
SIGINT, in a real ``mlpotential learn`` process) ends with the dataset of
an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlpotential.learning.config import load_config
from mlpotential.learning.dataset import read_frames
from mlpotential.learning.loop import ActiveLearning, Paths
from mlpotential.learning.report import write_json
from tests.learning.structures import FAILING_REFERENCE, copper_cells, unreachable, write_structures

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
reference: {{engine: {{Backend: ASE, Model: Custom, ASECalculatorFile: {reference}}}, processes: 1}}
initial: {{structures: [initial.xyz]}}
model:
  committee: 2
  training:
    descriptor: {{cutoff: 4.0, n_radial: 4}}
    network: {{hidden: [4]}}
    split: {{test_fraction: 0.0, validation_fraction: 0.0}}
    training: {{stages: [{{epochs: 15, learning_rate: 0.01, batch_size: 2}}], threads: 1}}
explore: {{temperatures: [600], steps: {steps}, timestep: 4.0}}
criteria: {{force_std_lower: 0.0001, force_std_upper: 50.0, min_distance: 1.0, candidates: 2}}
iterations: {iterations}
"""


def tiny_config(folder: Path, iterations: int = 1, steps: int = 10, broken: bool = False, test: bool = False) -> Path:
    """A config of a 2-member committee on 4-atom cells; with ``broken``,
    one of the initial structures makes the reference fail; with ``test``,
    two more cells are the held-out test set."""
    cells = copper_cells(3)
    if broken:
        cells.append(unreachable(cells[0]))
    write_structures(folder / "initial.xyz", cells)
    text = CONFIG.format(reference=FAILING_REFERENCE, steps=steps, iterations=iterations)
    if test:
        write_structures(folder / "test.xyz", copper_cells(5)[3:])
        text += "test: {structures: [test.xyz]}\n"
    path = folder / "learn.yaml"
    path.write_text(text)
    return path


def test_one_iteration_with_a_failing_reference_structure(tmp_path: Path) -> None:
    config = load_config(tiny_config(tmp_path, broken=True))
    results = tmp_path / "results"
    report = ActiveLearning(config, results, say=lambda line: None).run()

    first, second = report["iterations"]
    assert first["frames_labelled"] == 3 and len(first["failed_labels"]) == 1
    assert "did not converge" in first["failed_labels"][0]
    assert second["candidates"] == 2 and second["frames_labelled"] == 2 and second["dataset_size"] == 5
    assert second["selected_errors"]["frames"] == 2
    exploration = second["explorations"][0]
    assert exploration["completed"] and exploration["steps_run"] == 10 and len(exploration["max_force_std"]) == 11
    assert report["reference_calls"] == 6
    frames = read_frames(results / "dataset.xyz")
    assert [frame.info["iteration"] for frame in frames] == [0, 0, 0, 1, 1]
    assert all("REF_forces" in frame.arrays for frame in frames)
    assert [Path(p).name for p in report["final_committee"]] == ["member_0.pt", "member_1.pt"]
    assert Path(report["final_committee"][0]).parent.name == "iteration_001"
    for plot in ("errors.png", "uncertainty_001.png"):
        assert (results / plot).stat().st_size > 0


@pytest.mark.slow
def test_a_resumed_stage_replaces_its_frames_instead_of_adding_them(tmp_path: Path) -> None:
    config = load_config(tiny_config(tmp_path, test=True))
    results = tmp_path / "results"
    report = ActiveLearning(config, results, say=lambda line: None).run()
    assert len(read_frames(results / "test.xyz")) == 2
    assert report["reference_calls"] == 3 + 2 + 2  # initial, test set, candidates
    for entry in report["iterations"]:
        assert entry["test_errors"]["frames"] == 2 and entry["test_errors"]["force_rmse"] > 0
    # resumed after its labelling stage, the iteration is labelled once, not twice
    write_json(Paths(results).state, {"iteration": 1, "stage": "labelled", "converged": False})
    before = (results / "dataset.xyz").read_text()
    ActiveLearning(config, results, say=lambda line: None).run()
    assert (results / "dataset.xyz").read_text() == before
    # resumed before it, it labels the same candidates again and replaces them
    write_json(Paths(results).state, {"iteration": 1, "stage": "explored", "converged": False})
    ActiveLearning(config, results, say=lambda line: None).run()
    assert (results / "dataset.xyz").read_text() == before


def _learn(config: Path, results: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "mlpotential", "learn", str(config), "--results", str(results)]
    # as a terminal's foreground process has it: a shell's background job inherits SIGINT ignored
    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _dataset(results: Path) -> list[tuple]:
    return [
        (frame.info["iteration"], frame.positions, frame.info["REF_energy"], frame.arrays["REF_forces"])
        for frame in read_frames(results / "dataset.xyz")
    ]


@pytest.mark.slow
def test_resume_after_sigint_gives_the_dataset_of_an_uninterrupted_run(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, iterations=2, steps=20)
    whole = _learn(config, tmp_path / "whole")
    out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err

    interrupted = _learn(config, tmp_path / "interrupted")
    state = tmp_path / "interrupted" / "state.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and interrupted.poll() is None:
        if state.exists() and json.loads(state.read_text()) == {
            "iteration": 1,
            "stage": "explored",
            "converged": False,
        }:
            break
        time.sleep(0.02)
    interrupted.send_signal(signal.SIGINT)  # during iteration 1: labelling or training
    out, err = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, err
    assert "Traceback" not in err and "interrupted; run the same command again" in err
    assert json.loads(state.read_text())["iteration"] == 1

    resumed = _learn(config, tmp_path / "interrupted")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "resuming: iteration 1" in out

    expected, got = _dataset(tmp_path / "whole"), _dataset(tmp_path / "interrupted")
    assert len(got) == len(expected) == 3 + 2 + 2
    for (i, positions, energy, forces), (j, positions2, energy2, forces2) in zip(expected, got):
        assert i == j and energy == energy2
        np.testing.assert_array_equal(positions, positions2)
        np.testing.assert_array_equal(forces, forces2)
