"""The i-PI examples (examples/ipi) run as shipped, made short: fewer
steps, and a socket name of the test's own so that parallel runs do not
meet on /tmp/ipi_NAME."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlpotential.protocol.ipi import UNIX_SOCKET_PREFIX
from tests.worker.ipi_hosts import socket_name

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ipi"
SHIPPED_SOCKETS = ("mlpotential-nvt", "mlpotential-pimd", "mlpotential-ase")
FILES = ("copper.extxyz", "nvt.xml", "pimd.xml", "run_nvt.sh", "run_pimd.sh", "socketio.py")


@pytest.fixture
def example(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A copy of examples/ipi whose socket names are replaced by a fresh one."""
    name = socket_name()
    copy = tmp_path / "ipi"
    copy.mkdir()
    for file in FILES:
        text = (EXAMPLES / file).read_text()
        for shipped in SHIPPED_SOCKETS:
            text = text.replace(shipped, name)
        (copy / file).write_text(text)
    yield copy, name
    socket = Path(UNIX_SOCKET_PREFIX + name)
    if socket.exists():
        socket.unlink()


def shorten(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}: update the test with the example"
    path.write_text(text.replace(old, new))


def run(command: list[str], directory: Path) -> str:
    """Run an example with this environment's commands (i-pi, mlpotential) first on PATH."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_nvt_example(example: tuple[Path, str]) -> None:
    directory, _ = example
    shorten(directory / "nvt.xml", "<total_steps>200</total_steps>", "<total_steps>20</total_steps>")
    output = run(["bash", "run_nvt.sh"], directory)
    assert "the server said EXIT after 21 geometries" in output
    assert np.loadtxt(directory / "nvt.out").shape == (3, 5)


def test_pimd_example_with_two_workers(example: tuple[Path, str]) -> None:
    directory, _ = example
    shorten(directory / "pimd.xml", "<total_steps>100</total_steps>", "<total_steps>10</total_steps>")
    output = run(["bash", "run_pimd.sh"], directory)
    served = [int(line.split("after ")[1].split()[0]) for line in output.splitlines() if "said EXIT after" in line]
    assert len(served) == 2 and sum(served) == 4 * 11, output
    assert np.loadtxt(directory / "pimd.out").shape == (2, 9)


def test_socketio_example(example: tuple[Path, str]) -> None:
    directory, _ = example
    shorten(directory / "socketio.py", "dynamics.run(50)", "dynamics.run(10)")
    output = run([sys.executable, "socketio.py"], directory)
    assert "step   10  E_pot" in output and "relaxed: E_pot" in output
