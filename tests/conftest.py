"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLPOTENTIAL_SHARED", REPO.parent / "shared")).resolve()

# Every pipe directory of this session lives under one fresh temporary root
# (workers inherit TMPDIR), so the session can prove it left nothing behind.
SESSION_TMP = Path(tempfile.mkdtemp(prefix="mlpotential-tests-"))
os.environ["TMPDIR"] = str(SESSION_TMP)
tempfile.tempdir = None


def processes_under(root: Path) -> list[str]:
    """Processes whose working directory lies under ``root`` (deleted or not)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(str(root)) and state != "Z":
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command}")
    return found


def fifos_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if stat.S_ISFIFO(path.lstat().st_mode)]


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """After the whole session: no worker process and no FIFO remains."""
    yield
    deadline = time.monotonic() + 5.0
    lingering = processes_under(SESSION_TMP)
    while processes_under(SESSION_TMP) and time.monotonic() < deadline:
        time.sleep(0.1)
    if lingering:
        print(f"\nnothing_left_behind: waited for {lingering}", file=sys.__stderr__)
    leftovers = processes_under(SESSION_TMP)
    fifos = fifos_under(SESSION_TMP)
    try:
        assert not leftovers, f"worker processes left behind: {leftovers}"
        assert not fifos, f"FIFOs left behind: {fifos}"
    finally:
        shutil.rmtree(SESSION_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (override with $MLPOTENTIAL_SHARED)."""
    if not SHARED.is_dir():
        pytest.fail(f"the shared data folder {SHARED} is missing (set MLPOTENTIAL_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def ani_data_dir(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """A TORCHANI_DATA_DIR whose Neurochem/ links to ../shared/ani-model-zoo."""
    root = tmp_path_factory.mktemp("torchani-data")
    (root / "Neurochem").symlink_to(shared_dir / "ani-model-zoo", target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def scm_worker(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The path of SCM's demo_cpp worker, built from ../shared/amspipe."""
    missing = [tool for tool in ("cmake", "g++") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"building SCM's reference worker needs {' and '.join(missing)} (.ci/run installs them)")
    build = tmp_path_factory.mktemp("amspipe-build")
    source = shared_dir / "amspipe"
    for command in (
        ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(build), "--target", "demo_cpp", "-j", "2"],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return str(build / "demo_cpp")
