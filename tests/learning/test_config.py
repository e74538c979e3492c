"""The learn config: defaults, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpotential.learning.config import LearnConfigError, load_config

MINIMAL = "reference: {engine: {Backend: ASE, Model: EMT}}\ninitial: {structures: [initial.xyz]}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "learn.yaml"
    path.write_text(text)
    return path


def test_a_minimal_config_takes_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.reference.reference.keywords == {"Backend": "ASE", "Model": "EMT"}
    assert config.reference.processes == 0 and config.reference.scheduler is None
    assert config.initial.sources[0].path == "initial.xyz" and not config.initial.relabel
    assert config.model.committee == 4 and config.model.seed == 0 and config.model.warm_start
    assert config.explore.temperatures == (300.0,) and config.explore.steps == 1000
    assert config.explore.thermostat == "langevin" and config.explore.timestep == 2.0 and config.explore.threads == 1
    assert (config.criteria.force_std_lower, config.criteria.force_std_upper) == (0.05, 0.5)
    assert config.criteria.energy_std_per_atom is None and config.criteria.candidates == 10
    assert config.iterations == 5 and config.stop_when_converged and config.results == Path("results")
    assert config.base_dir == tmp_path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("explore: {steps: many}\n", "explore.steps 'many' is not an integer"),
        ("explore: {thermostat: nose}\n", "explore.thermostat must be one of langevin, bussi"),
        ("explore: {temperatures: [300, -5]}\n", "explore.temperatures must be positive"),
        ("criteria: {force_std_lower: 0.6}\n", "criteria.force_std_lower (0.6) must be below criteria.force_std_upper"),
        ("criteria: {candidates: 0}\n", "criteria.candidates must be at least 1"),
        ("model: {committee: 1}\n", "model.committee must be at least 2"),
        ("model: {backend: mace}\n", "model.backend must be hdnnp"),
        ("model: {training: {data: [x.xyz]}}\n", "model.training.data is not a key here"),
        ("model: {training: {network: {hidden: [0]}}}\n", "model.training"),
        ("model: {training: {training: {stages: [{epochs: -1}]}}}\n", "training.stages[0].epochs must be at least 1"),
        ("iterations: 1.5\n", "iterations 1.5 is not an integer"),
        ("stop_when_converged: maybe\n", "stop_when_converged must be true or false"),
        ("explorer: {}\n", "explorer is not a key here"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(LearnConfigError) as caught:
        load_config(write(tmp_path, MINIMAL + extra))
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "learn.yaml"))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("initial: {structures: [a.xyz]}\n", "reference is required"),
        ("reference: {engine: {Backend: ASE}, worker_command: [w]}\ninitial: {structures: a.xyz}\n", "exactly one"),
        ("reference: {worker_command: 5}\ninitial: {structures: a.xyz}\n", "reference.worker_command must be"),
        ("reference: {engine: {Backend: ASE}}\ninitial: {}\n", "initial.structures is required"),
        ("reference: {engine: {Backend: ASE}}\ninitial: {structures: [a.xyz], labels: maybe}\n", "initial.labels"),
        ("reference: [\n", "not valid YAML"),
        ("- a\n", "config must be a mapping"),
    ],
)
def test_structural_errors_name_the_section(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LearnConfigError, match=None) as caught:
        load_config(write(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(LearnConfigError, match="learn.yaml"):
        load_config(tmp_path / "learn.yaml")


def test_the_command_refuses_a_bad_config_in_one_line_and_starts_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    write(tmp_path, MINIMAL + "criteria: {candidates: none}\n")
    done = subprocess.run(
        [sys.executable, "-m", "mlpotential", "learn", "learn.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "mlpotential learn: error: learn.yaml: criteria.candidates 'none' is not an integer "
        "(it must be at least 1 and at most 1000000)"
    ]
    assert not (tmp_path / "results").exists()
