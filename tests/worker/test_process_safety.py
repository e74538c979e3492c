"""The worker in a hostile or careless world: what it refuses to open, what it
removes (and what it never touches), one worker per directory, and no worker
outliving its host. Real processes and real FIFOs throughout."""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ase.build import bulk

from mlpotential.ase_bridge import system_message
from mlpotential.host.client import PipeClient
from mlpotential.host.launcher import our_worker_command
from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import UBJSON
from mlpotential.protocol.fifo import CALL_PIPE, REPLY_PIPE, make_pipes, open_host_side
from mlpotential.protocol.framing import FrameReader, encode_frame
from mlpotential.protocol.pipe_directory import (
    OWNER_MARKER,
    WORKER_LOG,
    create_pipe_directory,
    remove_pipe_directory,
)
from mlpotential.protocol.worker_lock import WORKER_LOCK as LOCK

EMT = our_worker_command("--backend", "ASE", "--model", "EMT")
# A worker imports numpy and ASE before it looks at its directory: on a busy
# two-core machine that alone can take seconds.
STARTUP_SECONDS = 30.0
HELLO = encode_frame(UBJSON.dumps(msg.encode_call(msg.Hello(1))))


# ------------------------------------------------------------------ helpers
@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes a test starts; any still running at its end is
    killed, so that a failing test leaves no process behind."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A folder for the test's directories; FIFOs left in it are removed at
    the end (the session checks that no FIFO is left behind)."""
    yield tmp_path
    for path in tmp_path.rglob("*"):
        if stat.S_ISFIFO(path.lstat().st_mode):
            path.unlink()


@pytest.fixture
def job(scratch: Path) -> Path:
    """A folder as an AMS host prepares it: its own, with both FIFOs, no marker."""
    directory = scratch / "job"
    directory.mkdir(mode=0o700)
    make_pipes(directory)
    return directory


@pytest.fixture
def launcher_directory() -> Iterator[Path]:
    """A directory as our launcher makes it: private, marked, with both FIFOs."""
    directory = create_pipe_directory()
    make_pipes(directory)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def start_worker(
    started: list[subprocess.Popen[str]], directory: Path, *options: str, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Our EMT worker serving ``directory`` (its working directory unless
    ``cwd`` is given, as a host starts it)."""
    process = subprocess.Popen(
        [*EMT, *options],
        cwd=cwd or directory,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(process)
    return process


def ended(process: subprocess.Popen[str], timeout: float = STARTUP_SECONDS) -> tuple[int, str]:
    """The exit status and stderr of a worker expected to end by itself."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"the worker was still running after {timeout:g} s")
    return process.returncode, stderr


def assert_refused(process: subprocess.Popen[str], *words: str) -> str:
    """The worker ended at once with a non-zero status and one line on
    stderr naming ``words``; returns that line."""
    code, stderr = ended(process)
    assert code != 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def keep_waiting_for(process: subprocess.Popen[str], timeout: float = STARTUP_SECONDS) -> Callable[[], None]:
    """A ``keep_waiting`` for the host side: give up when the worker ended or
    ``timeout`` passed."""
    deadline = time.monotonic() + timeout

    def keep_waiting() -> None:
        if process.poll() is not None:
            raise AssertionError(f"the worker ended with status {process.returncode}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not open its pipes within {timeout:g} s")

    return keep_waiting


def connect_and_say_hello(directory: Path, process: subprocess.Popen[str]) -> tuple[int, int]:
    """Open the host's ends of the pipes, exchange Hello; returns the fds."""
    call_fd, reply_fd = open_host_side(directory, keep_waiting_for(process))

    def wait() -> None:
        if not select.select([reply_fd], [], [], STARTUP_SECONDS)[0]:
            raise AssertionError("no reply to Hello")

    os.write(call_fd, HELLO)
    reply = msg.decode_reply(UBJSON.loads(FrameReader(reply_fd, wait).read_frame()))
    assert isinstance(reply, msg.Return) and reply.status == 0
    return call_fd, reply_fd


def hang_up(fds: tuple[int, int]) -> None:
    """Close the host's ends without Exit, as a host that dies does."""
    for fd in fds:
        os.close(fd)


def write_call_while_worker_lives(directory: Path, process: subprocess.Popen[str], data: bytes) -> bool:
    """Write ``data`` to call_pipe once the worker reads it; False when the
    worker ended without ever opening call_pipe."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            fd = os.open(directory / CALL_PIPE, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if process.poll() is not None:
                return False
            time.sleep(0.01)
            continue
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return True
    raise AssertionError("the worker neither opened call_pipe nor ended")


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


# ---------------------------------------------- 5: only FIFOs of our own user
def test_a_call_pipe_that_is_a_regular_file_is_refused(job: Path, workers) -> None:
    (job / CALL_PIPE).unlink()
    (job / CALL_PIPE).write_bytes(b"")
    assert_refused(start_worker(workers, job), CALL_PIPE, "FIFO")


def test_a_reply_pipe_symlink_is_refused_and_its_target_keeps_its_bytes(job: Path, scratch: Path, workers) -> None:
    victim = scratch / "precious.dat"
    victim.write_bytes(b"x" * 100)
    (job / REPLY_PIPE).unlink()
    (job / REPLY_PIPE).symlink_to(victim)
    worker = start_worker(workers, job)
    write_call_while_worker_lives(job, worker, HELLO)
    assert_refused(worker, REPLY_PIPE, "symbolic link")
    assert victim.read_bytes() == b"x" * 100


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a FIFO to another user")
def test_a_fifo_of_another_user_is_refused(job: Path, workers) -> None:
    os.chown(job / CALL_PIPE, 65534, 65534)
    assert_refused(start_worker(workers, job), CALL_PIPE, "belongs to user 65534")


def test_a_fifo_other_users_can_write_is_refused(job: Path, workers) -> None:
    os.chmod(job / CALL_PIPE, 0o622)
    assert_refused(start_worker(workers, job), CALL_PIPE, "0622")


def test_missing_pipes_are_one_line_not_a_traceback(scratch: Path, workers) -> None:
    assert_refused(start_worker(workers, scratch), CALL_PIPE, "does not exist")


def test_a_directory_given_as_a_symlink_is_refused(job: Path, scratch: Path, workers) -> None:
    (scratch / "link").symlink_to(job, target_is_directory=True)
    assert_refused(start_worker(workers, job, "--directory", str(scratch / "link")), "symbolic link")


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_a_directory_that_is_not_one_is_refused(scratch: Path, workers, what: str) -> None:
    target = scratch / "elsewhere"
    if what == "a file":
        target.write_text("not a directory\n")
    words = ("no such directory",) if what == "missing" else ("not a directory",)
    assert_refused(start_worker(workers, scratch, "--directory", str(target)), *words)


# ------------------------------- 6: clean-up removes only what the launcher made
def test_a_hang_up_in_a_launcher_directory_keeps_user_files(launcher_directory: Path, workers) -> None:
    (launcher_directory / "notes.txt").write_text("mine\n")
    worker = start_worker(workers, launcher_directory)
    hang_up(connect_and_say_hello(launcher_directory, worker))
    assert ended(worker)[0] == 0
    assert sorted(path.name for path in launcher_directory.iterdir()) == ["notes.txt"]


def test_a_copied_marker_proves_nothing(job: Path, launcher_directory: Path, workers) -> None:
    shutil.copy(launcher_directory / OWNER_MARKER, job / OWNER_MARKER)
    (job / "results.txt").write_text("a week of work\n")
    worker = start_worker(workers, job)
    hang_up(connect_and_say_hello(job, worker))
    assert ended(worker)[0] == 0
    assert sorted(path.name for path in job.iterdir()) == sorted([OWNER_MARKER, CALL_PIPE, REPLY_PIPE, "results.txt"])


def test_remove_pipe_directory_keeps_user_files(launcher_directory: Path) -> None:
    (launcher_directory / WORKER_LOG).write_text("log\n")
    (launcher_directory / "notes.txt").write_text("mine\n")
    remove_pipe_directory(launcher_directory)
    assert sorted(path.name for path in launcher_directory.iterdir()) == ["notes.txt"]


def test_remove_pipe_directory_removes_what_the_launcher_made(launcher_directory: Path) -> None:
    (launcher_directory / WORKER_LOG).write_text("log\n")
    (launcher_directory / LOCK).write_text("")
    (launcher_directory / "mlpotential.txt").write_text("the summary of a worker given no --summary\n")
    remove_pipe_directory(launcher_directory)
    assert not launcher_directory.exists()


def test_a_marker_of_a_directory_others_can_enter_proves_nothing(launcher_directory: Path) -> None:
    launcher_directory.chmod(0o755)
    remove_pipe_directory(launcher_directory)
    assert (launcher_directory / OWNER_MARKER).exists() and (launcher_directory / CALL_PIPE).exists()


def test_remove_pipe_directory_does_not_follow_a_symlink(launcher_directory: Path, scratch: Path) -> None:
    (scratch / "link").symlink_to(launcher_directory, target_is_directory=True)
    remove_pipe_directory(scratch / "link")
    assert (launcher_directory / OWNER_MARKER).exists() and (launcher_directory / CALL_PIPE).exists()


def test_a_marker_in_the_old_format_proves_nothing(launcher_directory: Path) -> None:
    (launcher_directory / OWNER_MARKER).write_text(f"{os.getpid()}\n")
    remove_pipe_directory(launcher_directory)
    assert (launcher_directory / CALL_PIPE).exists()


def test_a_marker_that_is_a_fifo_neither_hangs_the_worker_nor_proves_anything(job: Path, workers) -> None:
    os.mkfifo(job / OWNER_MARKER, 0o600)
    worker = start_worker(workers, job)
    hang_up(connect_and_say_hello(job, worker))
    code, stderr = ended(worker)
    assert code == 0 and OWNER_MARKER in stderr
    assert (job / OWNER_MARKER).exists() and (job / CALL_PIPE).exists()


def test_a_marker_that_is_not_json_proves_nothing(launcher_directory: Path) -> None:
    (launcher_directory / OWNER_MARKER).write_bytes(b"\xff" * 10)
    remove_pipe_directory(launcher_directory)
    assert (launcher_directory / CALL_PIPE).exists()


@pytest.mark.parametrize("pid", [0, -1, 2**40, "12", True])
def test_a_marker_with_an_impossible_pid_proves_nothing(launcher_directory: Path, pid: object) -> None:
    record = json.loads((launcher_directory / OWNER_MARKER).read_text())
    (launcher_directory / OWNER_MARKER).write_text(json.dumps({**record, "pid": pid}))
    remove_pipe_directory(launcher_directory)
    assert (launcher_directory / CALL_PIPE).exists()


def test_a_worker_ignores_a_marker_with_an_impossible_pid(launcher_directory: Path, workers) -> None:
    """os.kill rejects pid 2**40 with OverflowError: trusted, such a marker
    would end the worker in a traceback while it waits for its host."""
    record = json.loads((launcher_directory / OWNER_MARKER).read_text())
    (launcher_directory / OWNER_MARKER).write_text(json.dumps({**record, "pid": 2**40}))
    worker = start_worker(workers, launcher_directory)
    hang_up(connect_and_say_hello(launcher_directory, worker))
    code, stderr = ended(worker)
    assert code == 0 and "Traceback" not in stderr and OWNER_MARKER in stderr
    assert (launcher_directory / CALL_PIPE).exists()


def test_the_marker_records_the_directory_and_the_launcher(launcher_directory: Path) -> None:
    record = json.loads((launcher_directory / OWNER_MARKER).read_text())
    identity = launcher_directory.stat()
    assert record == {"pid": os.getpid(), "device": identity.st_dev, "inode": identity.st_ino}
    assert stat.S_IMODE(identity.st_mode) == 0o700


# ------------------------------------------------ 7: one worker per directory
def test_a_second_worker_in_the_same_directory_is_refused_at_once(workers) -> None:
    with PipeClient(EMT) as client:
        client.hello()
        directory = client.worker.directory
        assert_refused(start_worker(workers, directory), "another worker")
        assert (directory / LOCK).exists()
        # The first worker still serves frames far larger than a pipe's buffer.
        client.set_system(system_message(bulk("Cu", cubic=True).repeat((6, 6, 6))))
        results = client.solve(gradients=True)
        assert results.values["gradients"].shape == (864, 3)
    assert not directory.exists()


def test_the_lock_file_goes_with_the_worker_that_made_it(job: Path, workers) -> None:
    worker = start_worker(workers, job)
    fds = connect_and_say_hello(job, worker)
    assert (job / LOCK).exists()
    hang_up(fds)
    assert ended(worker)[0] == 0
    assert sorted(path.name for path in job.iterdir()) == [CALL_PIPE, REPLY_PIPE]


def test_a_lock_file_that_is_a_symlink_is_refused(job: Path, scratch: Path, workers) -> None:
    (scratch / "elsewhere").write_text("")
    (job / LOCK).symlink_to(scratch / "elsewhere")
    assert_refused(start_worker(workers, job), LOCK, "symbolic link")


# -------------------------------------- 8: no worker outlives its host by 2 s
BUSY_HOST = """
from ase.build import bulk
from mlpotential.ase_bridge import system_message
from mlpotential.host.client import PipeClient
from mlpotential.host.launcher import our_worker_command

client = PipeClient(our_worker_command("--backend", "ASE", "--model", "EMT"))
client.hello()
client.set_system(system_message(bulk("Cu", cubic=True).repeat((14, 14, 14))))
print(client.worker.pid, client.worker.directory, flush=True)
client.solve(gradients=True)
"""

# An AMS-style host: it makes a plain folder with the FIFOs (no marker), is
# the worker's parent, and speaks the protocol itself.
BUSY_AMS_HOST = """
import os, subprocess, sys
from pathlib import Path
from ase.build import bulk
from mlpotential.ase_bridge import system_message
from mlpotential.host.launcher import our_worker_command
from mlpotential.protocol import messages as msg
from mlpotential.protocol.codecs import UBJSON
from mlpotential.protocol.fifo import make_pipes, open_host_side
from mlpotential.protocol.framing import write_frames

directory = Path(sys.argv[1])
make_pipes(directory)
worker = subprocess.Popen(our_worker_command("--backend", "ASE", "--model", "EMT"), cwd=directory)
call_fd, reply_fd = open_host_side(directory, lambda: None)
os.set_blocking(call_fd, True)  # a plain host's write: waits while the worker reads the big frame
big = bulk("Cu", cubic=True).repeat((14, 14, 14))
calls = [system_message(big), msg.Solve(msg.SolveRequest("big", gradients=True))]
write_frames(call_fd, [UBJSON.dumps(msg.encode_call(call)) for call in calls])
print(worker.pid, flush=True)
worker.wait()
"""


def kill_host_during_solve(host: subprocess.Popen[str], worker_pid: int) -> float:
    """SIGKILL ``host`` once its worker is well into the Solve; the seconds
    until the worker is gone."""
    time.sleep(1.5)
    assert not process_gone(worker_pid), "the worker ended before its host was killed"
    host.send_signal(signal.SIGKILL)
    host.wait()
    return wait_until(lambda: process_gone(worker_pid), timeout=10.0)


def test_a_worker_busy_in_a_solve_goes_within_2_s_of_its_host_being_killed() -> None:
    host = subprocess.Popen([sys.executable, "-c", BUSY_HOST], stdout=subprocess.PIPE, text=True)
    try:
        pid_text, directory = host.stdout.readline().split()
        gone_after = kill_host_during_solve(host, int(pid_text))
        wait_until(lambda: not Path(directory).exists(), timeout=1.0)
    finally:
        host.kill()
        host.wait()
        host.stdout.close()
    print(f"worker gone {gone_after:.2f} s after its host was killed")
    assert gone_after < 2.0


def test_a_worker_of_an_ams_style_host_goes_within_2_s_of_its_host_being_killed(job: Path) -> None:
    for name in (CALL_PIPE, REPLY_PIPE):
        (job / name).unlink()
    host = subprocess.Popen([sys.executable, "-c", BUSY_AMS_HOST, str(job)], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(host.stdout.readline())
        gone_after = kill_host_during_solve(host, worker_pid)
    finally:
        host.kill()
        host.wait()
        host.stdout.close()
    print(f"worker gone {gone_after:.2f} s after its host was killed")
    assert gone_after < 2.0
    # Not our directory: the host's FIFOs stay, the worker's lock file goes.
    assert sorted(path.name for path in job.iterdir()) == [CALL_PIPE, REPLY_PIPE]
