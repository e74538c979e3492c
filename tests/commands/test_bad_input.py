"""Bad input to every subcommand, as an adversary writes it: one line on
stderr naming the file, the line and the key, exit status 2, no traceback,
and no work started. Each case runs the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ase.build import molecule

from mlpotential.host.client import EngineError, PipeClient
from mlpotential.host.launcher import our_worker_command

JOB = """\
Task {task}
System
  Atoms
    Cu 0.0 0.0 0.0
    Cu 2.5 0.1 0.0
  End
End
Engine MLPotential
  Model EMT
EndEngine
"""
TRAIN_IN = "Train_file train/*.xsf\n"
CONFIG = "data: [x.extxyz]\n"


def mlpotential(cwd: Path, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpotential", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2 and exactly one line on stderr holding every fragment."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def job(task: str, extra: str = "") -> bytes:
    return (JOB.format(task=task) + extra).encode()


MD = "MolecularDynamics"
GO = "GeometryOptimization"

RUN_CASES = {
    "not UTF-8": (b"Task SinglePoint \xe9\n", "job.in, line 1: not a UTF-8 text file"),
    "binary": (b"Task SinglePoint\n\x00\x01\x02", "job.in, line 2: not a text file"),
    "empty": (b"", "job.in: no Task given"),
    "negative seed": (
        job(MD, f"{MD}\n  InitialVelocities\n    RandomSeed -5\n  End\nEnd\n"),
        "job.in, line 13: RandomSeed must be at least 0 and at most 4294967295, not '-5'",
    ),
    "seed beyond numpy": (
        job(MD, f"{MD}\n  Thermostat\n    Type Langevin\n    RandomSeed 4294967296\n  End\nEnd\n"),
        "job.in, line 14: RandomSeed must be at least 0",
    ),
    "NaN time step": (
        job(MD, f"{MD}\n  TimeStep nan\nEnd\n"),
        "job.in, line 12: TimeStep must be positive and at most 100 fs",
    ),
    "huge time step": (job(MD, f"{MD}\n  TimeStep 1e9\nEnd\n"), "job.in, line 12: TimeStep must be positive"),
    "infinite temperature": (
        job(MD, f"{MD}\n  Thermostat\n    Type Langevin\n    Temperature inf\n  End\nEnd\n"),
        "job.in, line 14: Temperature must be at least 0 and at most 100000 K, not 'inf'",
    ),
    "negative temperature": (
        job(MD, f"{MD}\n  InitialVelocities\n    Temperature -300\n  End\nEnd\n"),
        "job.in, line 13: Temperature must be at least 0",
    ),
    "NaN gradients": (
        job(GO, f"{GO}\n  Convergence\n    Gradients nan\n  End\nEnd\n"),
        "job.in, line 13: Gradients must be positive and at most 1 Hartree/Angstrom",
    ),
    "huge step count": (job(MD, f"{MD}\n  NSteps 1000000000000\nEnd\n"), "job.in, line 12: NSteps must be at least 1"),
    "zero Tau": (
        job(MD, f"{MD}\n  Thermostat\n    Type Langevin\n    Tau 0\n  End\nEnd\n"),
        "job.in, line 14: Tau must be at least 0.1",
    ),
    "NumThreads 1e20": (
        job("SinglePoint").replace(b"Model EMT", b"Model EMT\n  NumThreads 1e20"),
        "job.in, line 10: NumThreads '1e20' is not an integer (it must be at least 1 and at most 4096)",
    ),
    "NumThreads 10^20": (
        job("SinglePoint").replace(b"Model EMT", b"Model EMT\n  NumThreads 100000000000000000000"),
        "job.in, line 10: NumThreads must be at least 1 and at most 4096",
    ),
    "unknown model": (
        job("SinglePoint").replace(b"Model EMT", b"Model Nope"),
        "job.in, line 9: Model 'Nope' is not a built-in model",
    ),
    "NaN coordinate": (
        job("SinglePoint").replace(b"Cu 2.5 0.1 0.0", b"Cu 2.5 nan 0.0"),
        "job.in, line 5: atom Cu: y must be at least -1000000 and at most 1000000 Angstrom, not 'nan'",
    ),
    "infinite lattice vector": (
        job("SinglePoint").replace(b"  End\nEnd", b"  End\n  Lattice\n    1e999 0 0\n  End\nEnd"),
        "job.in, line 8: lattice vector: x must be at least -1000000",
    ),
    "NaN charge": (
        job("SinglePoint").replace(b"  End\nEnd", b"  End\n  Charge nan\nEnd"),
        "job.in, line 7: Charge must be at least -1000 and at most 1000",
    ),
    "GeometryFile with NaN": (
        b"Task SinglePoint\nSystem\n  GeometryFile nan.xyz\nEnd\nEngine MLPotential\n  Model EMT\nEndEngine\n",
        "job.in, line 3: GeometryFile",
    ),
}


@pytest.mark.parametrize("content, message", RUN_CASES.values(), ids=RUN_CASES)
def test_run_refuses_bad_jobs_in_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "job.in").write_bytes(content)
    (tmp_path / "nan.xyz").write_text("2\n\nCu nan 0 0\nCu 2.5 0 0\n")
    done = mlpotential(tmp_path, "run", "job.in", "--results", "out")
    assert_one_line(done, message)
    assert not (tmp_path / "out").exists()  # no worker started, nothing written


@pytest.mark.parametrize("subcommand", ["run", "gpr", "train", "learn"])
def test_unreadable_files_are_named(tmp_path: Path, subcommand: str) -> None:
    (tmp_path / "folder").mkdir()
    assert_one_line(mlpotential(tmp_path, subcommand, "folder"), "cannot read folder: Is a directory")
    assert_one_line(mlpotential(tmp_path, subcommand, "missing"), "cannot read missing: No such file or directory")
    (tmp_path / "binary").write_bytes(bytes(range(128)))
    assert_one_line(mlpotential(tmp_path, subcommand, "binary"), "binary, line 1: not a text file")
    (tmp_path / "latin1").write_bytes(b"# r\xe9sum\xe9\n")
    assert_one_line(mlpotential(tmp_path, subcommand, "latin1"), "latin1, line 1: not a UTF-8 text file (byte 0xe9)")
    if os.geteuid() != 0:  # root reads every file
        (tmp_path / "secret").write_text("x\n")
        (tmp_path / "secret").chmod(0)
        assert_one_line(mlpotential(tmp_path, subcommand, "secret"), "cannot read secret: Permission denied")


GPR_CASES = {
    "Num_copy 10^20": ("Num_copy 99999999999999999999", "x.in:2: Num_copy must be at least 0 and at most 1000000"),
    "negative Num_copy": ("Num_copy -1", "x.in:2: Num_copy must be at least 0"),
    "infinite scale": ("scale inf", "x.in:2: scale must be positive and at most 1000, not 'inf'"),
    "NaN displacement": ("Disp_length nan", "x.in:2: Disp_length must be at least 0 and at most 1 Angstrom"),
    "NaN filter threshold": ("filter_threshold nan", "x.in:2: filter_threshold must be at least 0"),
    "negative seed": ("random_seed -5", "x.in:2: random_seed must be at least 0 and at most 4294967295"),
    "huge cutoff": ("sf_cutoff 1e300", "x.in:2: sf_cutoff must be positive and at most 30 Angstrom"),
    "infinite SOAP centre": ("soap_centers [[1e999, 0, 0]]", "x.in:2: soap_centers: x must be at least -1000000"),
    "unknown device": ("Device gpu", "x.in:2: Device 'gpu' is not allowed"),
    "no training data": ("", "x.in: neither Train_file nor Test_file"),
}


@pytest.mark.parametrize("line, message", GPR_CASES.values(), ids=GPR_CASES)
def test_gpr_refuses_bad_train_in_in_one_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "x.in").write_text((TRAIN_IN if line else "# nothing\n") + line + "\n")
    assert_one_line(mlpotential(tmp_path, "gpr", "x.in"), message)


TRAIN_CASES = {
    "huge cutoff": (
        "descriptor: {cutoff: 1e300}",
        "x.yaml, line 2: descriptor.cutoff must be positive and at most 30 Angstrom, not '1e300'",
    ),
    "infinite cutoff": ("descriptor:\n  cutoff: .inf", "x.yaml, line 3: descriptor.cutoff must be positive"),
    "NaN G2": ("descriptor:\n  g2: [[.nan, 0.0]]", "x.yaml, line 3: descriptor.g2 must be a list of lists of finite"),
    "zeta below 1": ("descriptor:\n  g4: [[0.1, 0.5, 1]]", "x.yaml, line 3: descriptor.g4 zeta must be at least 1"),
    "negative seed": ("seed: -5", "x.yaml, line 2: seed must be at least 0 and at most 4294967295"),
    "NaN learning rate": (
        "training:\n  stages:\n    - {epochs: 2}\n    - {learning_rate: .nan}",
        "x.yaml, line 5: training.stages[1].learning_rate must be positive and at most 100, not nan",
    ),
    "huge epochs": ("training: {stages: [{epochs: 99999999999999999999}]}", "training.stages[0].epochs must be at"),
    "zero threads": ("training:\n  threads: 0", "x.yaml, line 3: training.threads must be at least 1 and at most 4096"),
    "unknown device": ("training: {device: gpu}", "x.yaml, line 2: training.device must be cpu, cuda or cuda:N"),
    "hidden not a list": ("network: {hidden: 5}", "x.yaml, line 2: network.hidden must be a list"),
    "NaN fraction": ("split: {test_fraction: .nan}", "x.yaml, line 2: split.test_fraction must be at least 0"),
    "string for a bool": ("training: {progress: 'no'}", "training.progress must be true or false"),
    "unknown key": ("netwrk: {}", "x.yaml, line 2: unknown key(s) netwrk"),
    "not YAML": ("data: [", "x.yaml, line 3: not valid YAML"),
    "a list": ("- a", "x.yaml, line 2: not valid YAML"),
}


@pytest.mark.parametrize("text, message", TRAIN_CASES.values(), ids=TRAIN_CASES)
def test_train_refuses_bad_configs_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.yaml").write_text(CONFIG + text + "\n")
    # x.extxyz does not exist: a config error must come before the data are read
    assert_one_line(mlpotential(tmp_path, "train", "x.yaml", timeout=60), message)


@pytest.mark.parametrize(
    "text, message",
    [("[a, b]", "x.yaml: the config must be a mapping"), ("", "x.yaml: the config must be a mapping")],
    ids=["a list", "empty"],
)
def test_train_wants_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.yaml").write_text(text)
    assert_one_line(mlpotential(tmp_path, "train", "x.yaml"), message)


@pytest.mark.parametrize(
    "subcommand, arguments, message",
    [
        ("gpr", ["--threads", "0"], "--threads must be at least 1 and at most 4096, not 0"),
        ("train", ["--threads", "100000"], "--threads must be at least 1 and at most 4096, not 100000"),
        ("train", ["--seed", "-1"], "--seed must be at least 0 and at most 4294967295, not -1"),
        ("train", ["--device", "gpu"], "--device must be cpu, cuda or cuda:N, not 'gpu'"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, subcommand: str, arguments: list[str], message: str) -> None:
    (tmp_path / "x.in").write_text(CONFIG if subcommand == "train" else TRAIN_IN)
    done = mlpotential(tmp_path, subcommand, "x.in", *arguments)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(message), done.stderr


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--worker", "true", "--timeout", "nan"], "--timeout must be positive and at most 86400 s, not nan"),
        (["--worker", "'unclosed"], '--worker "\'unclosed": No closing quotation'),
        (["--worker", ""], "--worker is empty; give the worker's command line"),
    ],
    ids=["NaN timeout", "unclosed quote", "empty worker"],
)
def test_client_refuses_bad_options(tmp_path: Path, arguments: list[str], message: str) -> None:
    (tmp_path / "h2.xyz").write_text("2\n\nH 0 0 0\nH 0.74 0 0\n")
    done = mlpotential(tmp_path, "client", "h2.xyz", *arguments)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(message), done.stderr


def test_train_refuses_integers_python_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(CONFIG + "seed: " + "9" * 5000 + "\n")
    assert_one_line(mlpotential(tmp_path, "train", "x.yaml"), "x.yaml: not valid YAML: Exceeds the limit")


def test_train_data_with_nan_are_named(tmp_path: Path) -> None:
    (tmp_path / "x.extxyz").write_text(
        '2\nProperties=species:S:1:pos:R:3:forces:R:3 energy=nan pbc="F F F"\nCu 0 0 0 0 0 0\nCu 2.5 0 0 0 0 0\n'
    )
    (tmp_path / "x.yaml").write_text(CONFIG)
    assert_one_line(mlpotential(tmp_path, "train", "x.yaml"), "x.extxyz: the energy is NaN or infinite")


def test_run_reports_an_unusable_results_folder(tmp_path: Path) -> None:
    (tmp_path / "job.in").write_bytes(job("SinglePoint"))
    (tmp_path / "taken").write_text("a file, not a folder\n")
    done = mlpotential(tmp_path, "run", "job.in", "--results", "taken")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (
        f"mlpotential run: the results folder {tmp_path / 'taken'} is a file; choose another --results"
    )


def solve_error(*options: str) -> tuple[EngineError, str]:
    """The error a worker started with ``options`` answers Solve with, and its log."""
    with PipeClient(our_worker_command(*options), reply_timeout=60) as client:
        from mlpotential.ase_bridge import system_message

        client.hello()
        client.set_system(system_message(molecule("H2")))
        with pytest.raises(EngineError) as caught:
            client.solve()
        return caught.value, client.worker.log_text()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"Engine MLPotential\n  Model EMT\xff\nEndEngine\n", "line 2: not a UTF-8 text file (byte 0xff)"),
        (b"\x00\x00\x00", "line 1: not a text file (it holds NUL bytes)"),
    ],
    ids=["not UTF-8", "binary"],
)
def test_worker_with_a_bad_input_file_says_so_and_answers_solve(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "engine.in"
    bad.write_bytes(content)
    error, log = solve_error("--input", str(bad))
    assert error.status == 7 and message in error.message
    assert "Traceback" not in log
    assert log.strip() == f"mlpotential worker: {bad}, {message}"


def test_worker_blames_num_threads_and_gives_its_bound() -> None:
    error, log = solve_error("--model", "EMT", "--num-threads", "100000000000000000000")
    assert error.argument == "NumThreads" and error.status == 7
    assert "NumThreads must be at least 1 and at most 4096" in error.message
    assert "Traceback" not in log


def test_worker_without_pipes_says_so(tmp_path: Path) -> None:
    done = mlpotential(tmp_path, "worker", "--model", "EMT", "--directory", "nowhere")
    assert_one_line(done, f"refusing to serve in {tmp_path / 'nowhere'}", "no such directory")
