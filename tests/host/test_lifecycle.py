"""Life and death of workers and hosts: nothing hangs, nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule

from mlpotential.ase_bridge import system_message
from mlpotential.host.client import PipeClient
from mlpotential.host.launcher import WorkerDiedError
from mlpotential.host.pipe_engine import PipeEngine


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def wait_until(condition, timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_close_removes_directory_and_reaps_worker():
    calc = PipeEngine({"Model": "EMT"})
    atoms = molecule("H2O")
    atoms.calc = calc
    atoms.get_potential_energy()
    directory, process = calc.client.worker.directory, calc.client.worker.process
    assert directory.is_dir() and oct(directory.stat().st_mode & 0o777) == "0o700"
    calc.close()
    assert not directory.exists()
    assert process.returncode == 0


def test_worker_killed_during_solve_is_reported_within_a_second(emt_worker):
    big = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((10, 10, 10))  # 4000 atoms: a Solve takes long enough
    with PipeClient(emt_worker) as client:
        client.hello()
        client.set_system(system_message(big))
        killed_at = []

        def kill_soon():
            time.sleep(0.3)
            killed_at.append(time.monotonic())
            os.kill(client.worker.pid, signal.SIGKILL)

        threading.Thread(target=kill_soon).start()
        with pytest.raises(WorkerDiedError) as info:
            client.solve(gradients=True)
        noticed = time.monotonic() - killed_at[0]
    assert noticed < 1.0
    assert "SIGKILL" in str(info.value)


HOST_SCRIPT = """
import sys, time
from ase.build import molecule
from mlpotential.host.pipe_engine import PipeEngine
calc = PipeEngine({"Model": "EMT"})
atoms = molecule("H2O"); atoms.calc = calc
atoms.get_potential_energy()
print(calc.worker_pid, calc.client.worker.directory, flush=True)
time.sleep(600)
"""


def test_host_killed_the_worker_exits_and_cleans_up():
    host = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        pid_text, directory = host.stdout.readline().split()
        worker_pid = int(pid_text)
        assert Path(directory, "call_pipe").exists()
        host.kill()
        host.wait()
        elapsed = wait_until(lambda: process_gone(worker_pid) and not Path(directory).exists(), timeout=2.0)
    finally:
        host.kill()
        host.stdout.close()
    assert elapsed < 2.0


def test_worker_that_dies_at_start_is_reported():
    with pytest.raises(WorkerDiedError) as info:
        PipeClient([sys.executable, "-c", "import sys; print('no model here', file=sys.stderr); sys.exit(3)"])
    assert "status 3" in str(info.value) and "no model here" in str(info.value)


def test_worker_command_not_found():
    with pytest.raises(WorkerDiedError, match="not found|No such file"):
        PipeClient(["mlpotential-no-such-worker"])


def test_worker_whose_host_never_connects_goes_away():
    """A host that makes the directory, starts a worker and dies before it
    opens the pipes: the worker exits and removes the directory."""
    script = (
        "import subprocess\n"
        "from mlpotential.host.launcher import our_worker_command\n"
        "from mlpotential.protocol.pipe_directory import create_pipe_directory\n"
        "from mlpotential.protocol.fifo import make_pipes\n"
        "directory = create_pipe_directory(); make_pipes(directory)\n"
        "proc = subprocess.Popen(our_worker_command('--model', 'EMT'), cwd=directory, start_new_session=True)\n"
        "print(proc.pid, directory, flush=True)\n"
    )
    host = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    pid_text, directory = host.stdout.split()
    wait_until(lambda: process_gone(int(pid_text)) and not Path(directory).exists(), timeout=20.0)


def test_many_engines_leave_nothing():
    atoms = molecule("H2O")
    directories = []
    for codec in ("ubjson", "msgpack") * 2:
        with PipeEngine({"Model": "EMT"}, codec=codec) as calc:
            atoms.calc = calc
            assert np.isfinite(atoms.get_potential_energy())
            directories.append(calc.client.worker.directory)
    assert not any(directory.exists() for directory in directories)
