"""The results folder of ``mlpotential run``: refused when not empty unless
``--overwrite`` (ours only), a status in summary.json, Ctrl-C that keeps what
was computed, the provenance of what ran, a charge never silently ignored."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ase.io import read

from mlpotential.driver.results import RESULTS_MARKER, ResultsFolderError, prepare_results_folder
from mlpotential.protocol.pipe_directory import PROVENANCE_LINE

CLUSTER = """\
System
  Atoms
    Cu 0.0 0.0 0.0
    Cu 2.5 0.1 0.0
    Cu 1.2 2.2 0.1
    Cu 1.3 0.8 2.1
  End{charge}
End
Engine MLPotential
  Model EMT
EndEngine
"""
SINGLE_POINT = "Task SinglePoint\n" + CLUSTER.format(charge="")
LONG_MD = (
    "Task MolecularDynamics\n" + CLUSTER.format(charge="") + "MolecularDynamics\n  NSteps 100000000\n"
    "  TimeStep 1.0\n  InitialVelocities\n    Temperature 300\n    RandomSeed 1\n  End\nEnd\n"
)


def run(job: Path, results: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlpotential", "run", str(job), "--results", str(results), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def summary_of(results: Path) -> dict:
    return json.loads((results / "summary.json").read_text())


def processes_naming(text: str) -> list[str]:
    """Live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in command and state != "Z":
            found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.in"
    path.write_text(SINGLE_POINT)
    return path


def test_a_used_results_folder_is_refused_and_overwrite_empties_it(tmp_path: Path, job: Path) -> None:
    results = tmp_path / "out"
    assert run(job, results).returncode == 0
    (results / "old-trajectory.xyz").write_text("from the job before\n")
    refused = run(job, results)
    assert refused.returncode == 1
    assert "is not empty" in refused.stderr and "--overwrite" in refused.stderr
    assert (results / "old-trajectory.xyz").exists()
    done = run(job, results, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert not (results / "old-trajectory.xyz").exists()
    assert summary_of(results)["status"] == "completed"
    assert not [path for path in results.iterdir() if path.name.endswith(".partial")]  # atomic writes finished


def test_overwrite_leaves_a_folder_it_did_not_make_alone(tmp_path: Path, job: Path) -> None:
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("precious\n")
    done = run(job, folder, "--overwrite")
    assert done.returncode == 1
    assert RESULTS_MARKER in done.stderr and "Traceback" not in done.stderr
    assert (folder / "chapter1.tex").read_text() == "precious\n"


def test_overwrite_never_empties_the_job_files_folder(tmp_path: Path, job: Path) -> None:
    (tmp_path / RESULTS_MARKER).write_text("{}")  # even one that looks like ours
    done = run(job, tmp_path, "--overwrite")
    assert done.returncode == 1
    assert "holds the job file" in done.stderr
    assert job.read_text() == SINGLE_POINT


@pytest.mark.parametrize("protected", ["the current directory", "your home directory"])
def test_overwrite_never_empties_the_current_or_home_directory(
    tmp_path: Path, job: Path, monkeypatch: pytest.MonkeyPatch, protected: str
) -> None:
    folder = tmp_path / "folder"
    (folder / "inside").mkdir(parents=True)
    (folder / RESULTS_MARKER).write_text("{}")
    if protected == "the current directory":
        monkeypatch.chdir(folder / "inside")
    else:
        monkeypatch.setenv("HOME", str(folder))
    with pytest.raises(ResultsFolderError, match=f"it holds {protected}"):
        prepare_results_folder(folder, job, overwrite=True)
    assert (folder / "inside").is_dir() and (folder / RESULTS_MARKER).exists()


def test_summary_and_worker_log_record_the_provenance(tmp_path: Path, job: Path) -> None:
    results = tmp_path / "out"
    done = run(job, results)
    assert done.returncode == 0, done.stderr
    provenance = summary_of(results)["provenance"]
    worker = provenance["worker"]
    assert (worker["backend"], worker["model"], worker["device"]) == ("ASE", "EMT", "cpu")
    assert set(worker["libraries"]) >= {"numpy", "ase"} and worker["mlpotential"]
    assert worker["uses_total_charge"] is False
    host = provenance["host"]
    assert host["input"] == str(job.resolve())
    assert host["input_sha256"] == hashlib.sha256(job.read_bytes()).hexdigest()
    assert (results / "worker.log").read_text().startswith(PROVENANCE_LINE)


def test_model_files_are_recorded_with_absolute_paths_and_checksums(tmp_path: Path) -> None:
    calculator = tmp_path / "models" / "my_emt.py"
    calculator.parent.mkdir()
    calculator.write_text("from ase.calculators.emt import EMT\n\ndef get_calculator():\n    return EMT()\n")
    job = tmp_path / "job.in"
    job.write_text(
        SINGLE_POINT.replace("Model EMT", "Backend ASE\n  Model Custom\n  ASECalculatorFile models/my_emt.py")
    )
    done = run(job, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    files = summary_of(tmp_path / "out")["provenance"]["worker"]["model_files"]
    assert files == [{"path": str(calculator.resolve()), "sha256": hashlib.sha256(calculator.read_bytes()).hexdigest()}]


def test_a_charge_the_model_cannot_use_fails_the_job_and_says_so(tmp_path: Path) -> None:
    job = tmp_path / "cation.in"
    job.write_text("Task SinglePoint\n" + CLUSTER.format(charge="\n  Charge 1"))
    results = tmp_path / "out"
    done = run(job, results)
    assert done.returncode == 1
    assert "totalCharge" in done.stderr and "neutral" in done.stderr and "Traceback" not in done.stderr
    summary = summary_of(results)
    assert summary["status"] == "failed" and summary["charge"] == 1.0
    assert "totalCharge" in summary["error"] and summary["energy_hartree"] is None
    assert "does not use a total charge" in (results / "worker.log").read_text()


def test_ctrl_c_stops_cleanly_and_keeps_what_was_computed(tmp_path: Path) -> None:
    job = tmp_path / "md.in"
    job.write_text(LONG_MD)
    results = tmp_path / "md.results"
    command = [sys.executable, "-m", "mlpotential", "run", str(job), "--results", str(results)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        energies = results / "energies.csv"
        deadline = time.monotonic() + 300
        while not (energies.exists() and len(energies.read_text().splitlines()) > 20):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the MD did not start"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    summary = summary_of(results)
    assert summary["status"] == "interrupted"
    assert summary["last_step"] >= 20 and summary["energy_hartree"] is not None
    final = read(results / "final.xyz")
    assert len(final) == 4 and final.get_potential_energy() == pytest.approx(summary["energy_ev"])
    assert summary["provenance"]["worker"]["backend"] == "ASE"
    # the MD statistics of the steps done, and their plot, as after a completed run
    assert summary["temperature_mean_k"] > 0 and summary["thermostat"] == "None"
    assert (results / "md.png").read_bytes().startswith(b"\x89PNG") and not list(results.glob(".*.partial"))
    assert not processes_naming(str(results)), "the worker outlived the interrupted job"
