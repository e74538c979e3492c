"""The wizard for real, in a throwaway virtual environment: install sgdml,
see it import and evaluate there, uninstall it; a dry run changes nothing;
--list agrees with importlib.metadata; a failing pip leaves the environment
as it was. One venv for the module (creating it costs about 1.5 minutes)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from throwaway_venv import Venv, build_wheel, create_venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    root = tmp_path_factory.mktemp("wizard-venv")
    try:
        yield create_venv(root / "venv", root / "data")
    finally:
        shutil.rmtree(root, ignore_errors=True)  # about 1 GB: not left for pytest's retention


def _torch_line(freeze: list[str]) -> str:
    return next(line for line in freeze if line.startswith("torch=="))


def test_dry_run_for_schnetpack_prints_the_no_dependencies_strategy_and_changes_nothing(venv: Venv) -> None:
    before = venv.freeze()
    result = venv.wizard("schnetpack", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    commands = [line for line in lines if line.startswith("$ ")]
    assert len(commands) == 2
    python = str(venv.python)
    assert all(command.startswith(f"$ {python} -m pip install -c ") for command in commands)
    assert "hydra-core" in commands[0] and "pytorch-lightning" in commands[0] and "--no-deps" not in commands[0]
    assert commands[1].endswith("--no-deps schnetpack==2.1.1")
    assert "  torch==2.13.0" in lines and "  numpy>=2,<2.4" in lines
    assert "Dry run: nothing was changed." in lines
    assert venv.freeze() == before


def test_no_terminal_and_no_yes_changes_nothing_and_exits_2(venv: Venv) -> None:
    before = venv.freeze()
    result = venv.wizard("sgdml")
    assert result.returncode == 2
    assert "standard input is not a terminal" in result.stderr and "--yes" in result.stderr
    assert venv.freeze() == before


def test_declining_on_a_terminal_changes_nothing(venv: Venv) -> None:
    before = venv.freeze()
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(venv.python), "-m", "mlpotential", "install", "sgdml"],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=venv.environment(),
            cwd=venv.root,
        )
        os.close(terminal)
        transcript = _answer(controller, "[y/N]", "n\n", process)
    finally:
        os.close(controller)
    assert process.returncode == 1, transcript
    assert "Run these commands? [y/N]" in transcript and "Nothing was changed." in transcript
    assert venv.freeze() == before


def _answer(controller: int, prompt: str, answer: str, process: subprocess.Popen, timeout_s: float = 300) -> str:
    """Read the terminal until ``prompt``, type ``answer``, read to the end."""
    transcript, answered, deadline = b"", False, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            transcript += chunk
            if not answered and prompt.encode() in transcript:
                os.write(controller, answer.encode())
                answered = True
        elif process.poll() is not None:
            break
    process.wait(timeout=60)
    return transcript.decode(errors="replace")


def test_failing_pip_gives_a_clear_message_and_changes_nothing(venv: Venv, tmp_path: Path) -> None:
    """An offline index that lacks the package: pip's dry run fails first,
    before any change."""
    before = venv.freeze()
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    result = venv.wizard("sgdml", "--yes", PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty_index))
    assert result.returncode == 1
    assert "pip cannot do this" in result.stderr and "sgdml==1.0.3" in result.stderr
    assert "No matching distribution" in result.stderr
    assert venv.freeze() == before


def test_a_command_failing_midway_is_undone(venv: Venv, tmp_path: Path) -> None:
    """A plan whose first command installs and whose second names a package
    that does not exist in the (offline) index: the first is undone."""
    wheel = build_wheel(tmp_path, "mlpotential_probe_package", "1.0")
    script = (
        "import sys\n"
        "from mlpotential.installer.pip_runner import PipError, PipRunner, apply_plan\n"
        "from mlpotential.installer.plans import PipCommand, Plan\n"
        "plan = Plan('test', (PipCommand(('install', sys.argv[1]), 'a real package'),\n"
        "                     PipCommand(('install', 'mlpotential-no-such-package-0123'), 'no such package')))\n"
        "try:\n"
        "    apply_plan(plan, PipRunner())\n"
        "except PipError as exc:\n"
        "    print('PIPERROR', exc)\n"
        "    sys.exit(1)\n"
    )
    before = venv.freeze()
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    result = venv.run("-c", script, str(wheel), PIP_NO_INDEX="1", PIP_FIND_LINKS=str(empty_index))
    assert result.returncode == 1, result.stderr
    assert (
        "Successfully installed mlpotential-probe-package-1.0" in result.stdout
        or "mlpotential_probe_package" in result.stdout
    )
    assert "PIPERROR pip failed (exit status 1) on:" in result.stdout
    assert "mlpotential-no-such-package-0123" in result.stdout
    assert "The environment is as it was before" in result.stdout
    assert venv.freeze() == before


def test_install_sgdml_evaluate_and_uninstall(venv: Venv, tmp_path: Path) -> None:
    torch_before = _torch_line(venv.freeze())
    assert venv.versions("sgdml")["sgdml"] is None

    installed = venv.wizard("sgdml", "--yes")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert f"$ {venv.python} -m pip install -c " in installed.stdout
    assert "sgdml==1.0.3" in installed.stdout
    assert _torch_line(venv.freeze()) == torch_before, "the wizard must not replace torch"
    versions = venv.versions("sgdml", "numpy", "scipy", "torch")
    assert versions["sgdml"] == "1.0.3"
    major, minor = (int(part) for part in versions["numpy"].split(".")[:2])
    assert (2, 0) <= (major, minor) < (2, 4)

    # It imports and evaluates there: --list trains a tiny sGDML model with
    # sgdml and evaluates it through our backend, in this venv's interpreter.
    listed = venv.wizard("--list", "sgdml", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["backends"]
    assert row["installed"] is True and row["works"] is True, row
    assert "training forces reproduced" in row["detail"]
    model = tmp_path / "water.npz"
    trained = venv.run("-c", _TRAIN_TINY_SGDML, str(model))
    assert trained.returncode == 0, trained.stderr
    assert row["versions"] == {name: versions[name] for name in row["versions"]}

    removed = venv.wizard("--uninstall", "sgdml", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert f"$ {venv.python} -m pip uninstall -y sgdml" in removed.stdout
    assert venv.versions("sgdml")["sgdml"] is None
    assert venv.run("-c", "import sgdml").returncode != 0
    assert _torch_line(venv.freeze()) == torch_before

    # A worker asked for Backend sGDML now answers with the command that brings it back.
    failed = venv.run("-c", _SOLVE_THROUGH_A_WORKER, str(model))
    assert failed.returncode == 3, failed.stdout + failed.stderr
    status, argument, message = failed.stdout.strip().split(" ", 2)
    assert (status, argument) == ("3", "Backend")
    assert "Install it with: mlpotential install sgdml" in message


_TRAIN_TINY_SGDML = """
import sys
import numpy as np
from sgdml.train import GDMLTrain
from ase.build import molecule
from ase.calculators.emt import EMT
rng = np.random.default_rng(1)
R, E, F = [], [], []
for _ in range(3):
    atoms = molecule("H2O")
    atoms.positions += rng.normal(scale=0.05, size=(3, 3))
    atoms.calc = EMT()
    R.append(atoms.positions.copy()); E.append(atoms.get_potential_energy()); F.append(atoms.get_forces())
data = dict(type="d", name=np.array("w"), theory=np.array("EMT"), R=np.array(R), z=molecule("H2O").numbers,
            E=np.array(E), F=np.array(F))
trainer = GDMLTrain(max_processes=1)
model = trainer.train(trainer.create_task(data, 3, data, 0, sig=2, use_sym=False))
np.savez_compressed(sys.argv[1], **model)
"""

_SOLVE_THROUGH_A_WORKER = """
import sys
from ase.build import molecule
from mlpotential.host.client import EngineError
from mlpotential.host.pipe_engine import PipeEngine
atoms = molecule("H2O")
with PipeEngine({"Backend": "sGDML", "ParameterFile": sys.argv[1], "NumThreads": "1"}) as calc:
    atoms.calc = calc
    try:
        atoms.get_potential_energy()
    except EngineError as exc:
        print(int(exc.status), exc.argument, exc.message)
        sys.exit(3)
"""


@pytest.mark.slow
def test_list_of_every_backend_agrees_with_importlib_metadata(venv: Venv) -> None:
    """Slow: a check per installed backend, each importing torch afresh (the
    sgdml row is compared in the default run, by the install test)."""
    result = venv.wizard("--list", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    names = sorted({name for row in listing["backends"] for name in row["versions"]})
    truth = venv.versions(*names)
    from mlpotential.backends.registry import BACKENDS

    assert [row["backend"] for row in listing["backends"]] == list(BACKENDS)
    for row in listing["backends"]:
        assert row["versions"] == {name: truth[name] for name in row["versions"]}, row["backend"]
        assert row["installed"] == all(truth[name] is not None for name in row["versions"])
        if not row["installed"]:
            assert row["works"] is None
    rows = {row["backend"]: row for row in listing["backends"]}
    assert rows["ASE"]["installed"] and rows["ASE"]["works"], rows["ASE"]
    assert not rows["TorchANI"]["installed"] and "mlpotential install torchani" in rows["TorchANI"]["detail"]
    assert listing["torch"]["ok"] and listing["torch"]["version"] == truth["torch"]
    assert listing["torch"]["cuda_build"] is None and listing["torch"]["cuda_available"] is False
