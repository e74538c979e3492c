"""Per-call cost of the pipe: SetCoords + Solve(gradients), 3 and 1000 atoms.

Every path uses the same cheap calculator (a harmonic tether, a few numpy
operations), so the transport dominates:

* in process: the calculator attached to the atoms;
* protocol level: PipeClient (the harness's client) against our worker's
  serve loop, UBJSON and msgpack;
* PipeEngine: the ASE calculator path to the same worker;
* SocketIOCalculator: ASE's i-PI client/server over a UNIX socket, the peer
  doing the same job through the same ASE calculator path;
* FIFO floor: a bare ping-pong of the same numbers of bytes between two
  Python processes over two FIFOs, the floor no pipe protocol can beat;
  and the same ping-pong with the host computing for 1 ms before each round
  trip (not counted), so the echo process sleeps between calls as a worker
  does and every round trip pays two wake-ups.

The worker side runs our real ``serve``/``WorkerSession`` with the tether
calculator (``python benchmarks/pipe_overhead.py --serve-worker``), because
ASE's EMT costs milliseconds and would hide the pipe.

Prints a table (median over repetitions) and writes
benchmarks/results/pipe_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

HERE = Path(__file__).resolve().parent
IDLE_GAP = 1e-3
"""Seconds the host computes before each round trip of the second FIFO row:
long enough for the echo process to fall asleep, so that row shows what a
wake-up costs (the tight ping-pong keeps both processes awake)."""


class Tether(Calculator):
    """E = 1/2 sum |r|^2 (eV, Angstrom): as cheap as a calculator gets."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        positions = self.atoms.positions
        energy = 0.5 * float(np.einsum("ij,ij->", positions, positions))
        self.results = {"energy": energy, "free_energy": energy, "forces": -positions, "stress": np.zeros(6)}


def serve_worker() -> int:
    from mlpotential.backends.keywords import parse_settings
    from mlpotential.worker.engine import Engine
    from mlpotential.worker.serve import serve
    from mlpotential.worker.session import WorkerSession

    settings = parse_settings({"Backend": "ASE", "Model": "EMT"})
    return serve(Path.cwd(), WorkerSession(Engine(settings, Tether())))


def socket_client(unixsocket: str, natoms: int) -> int:
    from ase.calculators.socketio import SocketClient

    atoms = make_atoms(natoms)
    atoms.calc = Tether()
    SocketClient(unixsocket=unixsocket).run(atoms)
    return 0


def fifo_echo(directory: str, request_bytes: int, reply_bytes: int) -> int:
    call = os.open(os.path.join(directory, "call_pipe"), os.O_RDONLY)
    reply = os.open(os.path.join(directory, "reply_pipe"), os.O_WRONLY)
    answer = b"r" * reply_bytes
    while True:
        received = 0
        while received < request_bytes:
            chunk = os.read(call, request_bytes - received)
            if not chunk:
                return 0
            received += len(chunk)
        os.write(reply, answer)


def make_atoms(natoms: int) -> Atoms:
    rng = np.random.default_rng(natoms)
    symbols = ["O", "H", "H"] if natoms == 3 else ["Cu"] * natoms
    return Atoms(symbols, positions=rng.normal(scale=3.0, size=(natoms, 3)))


def time_calls(step, calls: int, repetitions: int) -> tuple[float, list[float]]:
    """Median microseconds per call over repetitions of ``calls`` calls."""
    for _ in range(max(5, calls // 10)):
        step()
    per_call = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        per_call.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(per_call), per_call


def moving(atoms: Atoms):
    counter = [0]

    def move() -> None:
        counter[0] += 1
        atoms.positions[0, 0] += 1e-7 if counter[0] % 2 else -1e-7

    return move


def measure_in_process(natoms, calls, repetitions):
    atoms = make_atoms(natoms)
    atoms.calc = Tether()
    move = moving(atoms)

    def step():
        move()
        atoms.get_forces()

    return time_calls(step, calls, repetitions)


def worker_command() -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve-worker"]


def measure_protocol(natoms, calls, repetitions, codec):
    from mlpotential.ase_bridge import system_message
    from mlpotential.host.client import PipeClient
    from mlpotential.protocol import messages as msg

    atoms = make_atoms(natoms)
    move = moving(atoms)
    with PipeClient(worker_command(), codec) as client:
        client.hello()
        client.set_system(system_message(atoms))
        request = msg.SolveRequest("bench", gradients=True)

        def step():
            move()
            client.call(msg.SetCoords(atoms.positions / 0.52917721067))
            client.call(msg.Solve(request))

        return time_calls(step, calls, repetitions)


def measure_pipe_engine(natoms, calls, repetitions):
    from mlpotential.host.pipe_engine import PipeEngine

    atoms = make_atoms(natoms)
    move = moving(atoms)
    with PipeEngine(worker_command=worker_command()) as calc:
        atoms.calc = calc

        def step():
            move()
            atoms.get_forces()

        return time_calls(step, calls, repetitions)


def measure_socketio(natoms, calls, repetitions):
    from ase.calculators.socketio import SocketIOCalculator

    atoms = make_atoms(natoms)
    move = moving(atoms)
    name = f"mlpotential-bench-{os.getpid()}-{natoms}"

    def launch(atoms, properties, port, unixsocket):
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--socket-client", unixsocket, str(natoms)]
        )

    with SocketIOCalculator(unixsocket=name, launch_client=launch) as calc:
        atoms.calc = calc

        def step():
            move()
            atoms.get_forces()

        return time_calls(step, calls, repetitions)


def message_sizes(natoms: int) -> tuple[int, int]:
    """Bytes of SetCoords + Solve frames and of results + return frames."""
    from mlpotential.protocol import messages as msg
    from mlpotential.protocol.codecs import UBJSON

    coords = np.zeros((natoms, 3))
    request = [msg.SetCoords(coords), msg.Solve(msg.SolveRequest("bench", gradients=True))]
    replies = [msg.encode_results(msg.Results(0.0, {"gradients": coords})), msg.encode_return(msg.Return())]
    sent = sum(4 + len(UBJSON.dumps(msg.encode_call(call))) for call in request)
    received = sum(4 + len(UBJSON.dumps(reply)) for reply in replies)
    return sent, received


def busy(seconds: float) -> None:
    """Keep this CPU busy for ``seconds`` (as a host computing between calls)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measure_fifo_floor(natoms, calls, repetitions, gap: float = 0.0):
    """Round trips of bare bytes; with ``gap`` > 0 the host first computes for
    ``gap`` seconds (not counted), so the echo process has gone to sleep and
    each round trip pays for waking it, as real calls do."""
    from mlpotential.protocol.fifo import make_pipes

    sent, received = message_sizes(natoms)
    payload = b"c" * sent
    with tempfile.TemporaryDirectory() as directory:
        make_pipes(directory)
        echo = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--fifo-echo", directory, str(sent), str(received)]
        )
        call = os.open(os.path.join(directory, "call_pipe"), os.O_WRONLY)
        reply = os.open(os.path.join(directory, "reply_pipe"), os.O_RDONLY)

        def step():
            if gap:
                busy(gap)
            os.write(call, payload)
            got = 0
            while got < received:
                got += len(os.read(reply, received - got))

        try:
            median, samples = time_calls(step, calls, repetitions)
            return median - gap * 1e6, [sample - gap * 1e6 for sample in samples]
        finally:
            os.close(call)
            os.close(reply)
            echo.wait()


def run(sizes: list[int], repetitions: int, output: Path) -> dict:
    rows = []
    for natoms in sizes:
        calls = 400 if natoms < 100 else 100
        measured = {
            "in process": measure_in_process(natoms, calls, repetitions),
            "protocol, ubjson": measure_protocol(natoms, calls, repetitions, "ubjson"),
            "protocol, msgpack": measure_protocol(natoms, calls, repetitions, "msgpack"),
            "PipeEngine (ubjson)": measure_pipe_engine(natoms, calls, repetitions),
            "SocketIOCalculator (i-PI, UNIX socket)": measure_socketio(natoms, calls, repetitions),
            "FIFO floor (bare ping-pong)": measure_fifo_floor(natoms, calls, repetitions),
            f"FIFO ping-pong after {IDLE_GAP * 1e3:g} ms host work": measure_fifo_floor(
                natoms, calls, repetitions, IDLE_GAP
            ),
        }
        in_process = measured["in process"][0]
        floor = measured["FIFO floor (bare ping-pong)"][0]
        socket = measured["SocketIOCalculator (i-PI, UNIX socket)"][0]
        for path, (median, samples) in measured.items():
            rows.append(
                {
                    "atoms": natoms,
                    "path": path,
                    "us_per_call": median,
                    "samples_us": samples,
                    "overhead_us": median - in_process,
                    "ratio_to_floor": median / floor,
                    "ratio_to_socketio": median / socket,
                }
            )
    sent, received = message_sizes(3)
    report = {
        "benchmark": "pipe_overhead",
        "repetitions": repetitions,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "bytes_3_atoms": [sent, received],
        "rows": rows,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    header = f"{'atoms':>5}  {'path':<40} {'us/call':>9} {'overhead us':>12} {'x floor':>8} {'x socketio':>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['atoms']:>5}  {row['path']:<40} {row['us_per_call']:>9.1f} {row['overhead_us']:>12.1f} "
            f"{row['ratio_to_floor']:>8.2f} {row['ratio_to_socketio']:>10.2f}"
        )
    print(f"\n(median of {repetitions} repetitions; load average {os.getloadavg()[0]:.2f}; JSON: {output})")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 1000])
    parser.add_argument("--output", type=Path, default=HERE / "results" / "pipe_overhead.json")
    parser.add_argument("--serve-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--socket-client", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--fifo-echo", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_worker:
        return serve_worker()
    if args.socket_client:
        return socket_client(args.socket_client[0], int(args.socket_client[1]))
    if args.fifo_echo:
        return fifo_echo(args.fifo_echo[0], int(args.fifo_echo[1]), int(args.fifo_echo[2]))
    run(args.sizes, args.repetitions, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
