"""``mlpotential client``: the standalone harness as a user runs it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.io import read, write

from mlpotential.host.launcher import our_worker_command
from mlpotential.units import HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, HARTREE_TO_EV


def run_client(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpotential", "client", *arguments], capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def geometry(tmp_path):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.02, rng=np.random.default_rng(4))
    path = tmp_path / "ethanol.xyz"
    write(path, atoms)
    return path, read(path)  # the geometry as the file holds it


@pytest.mark.parametrize("codec", ["ubjson", "msgpack"])
def test_json_output_matches_emt(geometry, codec):
    path, atoms = geometry
    worker = shlex.join(our_worker_command("--model", "EMT"))
    done = run_client("--worker", worker, str(path), "--gradients", "--json", "--codec", codec)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    atoms.calc = EMT()
    assert report["status"] == 0
    np.testing.assert_allclose(report["energy"] * HARTREE_TO_EV, atoms.get_potential_energy(), rtol=1e-10)
    np.testing.assert_allclose(
        np.array(report["gradients"]) * -HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM, atoms.get_forces(), rtol=1e-10, atol=1e-12
    )


def test_text_output_and_error_status(geometry):
    path, _ = geometry
    done = run_client("--worker", shlex.join(our_worker_command("--model", "EMT")), str(path))
    assert done.returncode == 0 and done.stdout.startswith("Energy (Hartree):")
    bad = run_client("--worker", shlex.join(our_worker_command("--backend", "SchNetPack")), str(path), "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["status"] == 7 and report["argument"] == "ParameterFile"


def test_check_prints_a_table_and_fails_a_broken_worker(geometry, tmp_path):
    path, _ = geometry
    good = run_client("--worker", shlex.join(our_worker_command("--model", "EMT")), str(path), "--check")
    assert good.returncode == 0, good.stdout
    assert "PASS  set-error-buffered" in good.stdout and " 0 failed" in good.stdout
    # A worker that answers every call with success breaks several rules.
    script = tmp_path / "yes_worker.py"
    script.write_text(
        "import os, struct\n"
        "from mlpotential.protocol import ubjson\n"
        "from mlpotential.protocol.framing import FrameReader, write_frames\n"
        "r = os.open('call_pipe', os.O_RDONLY); w = os.open('reply_pipe', os.O_WRONLY)\n"
        "reader = FrameReader(r)\n"
        "while (payload := reader.read_frame()) is not None:\n"
        "    name = next(iter(ubjson.loads(payload)))\n"
        "    if name == 'Exit': break\n"
        "    if name.startswith('Set'): continue\n"
        "    replies = [{'results': {'energy': 1.0}}] if name == 'Solve' else []\n"
        "    write_frames(w, [ubjson.dumps(m) for m in replies + [{'return': {'status': 0}}]])\n"
    )
    bad = run_client(
        "--worker", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}", str(path), "--check", "--timeout", "5"
    )
    assert bad.returncode == 1
    assert "FAIL  hello-unknown-version" in bad.stdout and "FAIL  keep-results" in bad.stdout


def test_timeout_covers_writing_the_call(tmp_path):
    """A worker that answers Hello and then stops reading: a SetSystem larger
    than the pipe must not block the client past --timeout. (The worker ends
    by itself after a minute, so that the old code fails instead of hanging.)"""
    big = tmp_path / "copper.xyz"
    write(big, bulk("Cu", "fcc", a=3.6, cubic=True).repeat((10, 10, 15)))  # SetSystem: about 168 kB
    script = tmp_path / "deaf_worker.py"
    script.write_text(
        "import os, signal, time\n"
        "from mlpotential.protocol import ubjson\n"
        "from mlpotential.protocol.framing import FrameReader, write_frames\n"
        "signal.alarm(60)\n"
        "r = os.open('call_pipe', os.O_RDONLY); w = os.open('reply_pipe', os.O_WRONLY)\n"
        "FrameReader(r).read_frame()\n"
        "write_frames(w, [ubjson.dumps({'return': {'status': 0}})])\n"
        "time.sleep(3600)\n"
    )
    worker = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    done = run_client("--worker", worker, str(big), "--timeout", "10")
    assert done.returncode == 1
    assert "SetSystem + Solve: the worker did not read the call within 10 s" in done.stderr
