"""GPR surrogate: ``mlpotential gpr`` against aenet-gpr 3.7.9 on the same
data, same machine, one run.

For each example (2_EC-EC: two ethylene carbonates, 20 atoms; 3_Li-EC: a Li
slab with EC, 46 atoms, periodic) both programs run the example's own
train.in (the tutorial training and test sets, Cartesian descriptor) twice:

* with hyperparameter fitting off (so both do the same arithmetic) and
  augmentation on (``Num_copy`` displaced copies of each training
  structure): the train, test and augmentation steps;
* with aenet-gpr's default fitting (``fit_scale``, ``fit_weight``) and
  training only: the train step with fitting.

Each run is a fresh process on one thread. Step times are each program's own
step timers driven by the process's CPU clock (on one thread CPU time is the
wall time of an idle machine, and other load on a shared machine does not
inflate it): aenet-gpr's printed timers, our ``gpr_report.json``, both
through a small wrapper that gives the timers ``time.process_time``. Each
step includes reading and writing its files; the table gives the median of
the repetitions (seconds), the ratio aenet-gpr / ours and the peak resident
memory of each process (GB). With ``--baseline REV`` a third program runs
too: ``mlpotential`` as committed at git revision REV (extracted with git
archive), to show before and after in the same run. The test predictions of
ours and aenet-gpr are compared as a sanity check. Prints a table and writes
benchmarks/results/gpr.json.

    .venv/bin/python benchmarks/gpr.py [--examples 2_EC-EC 3_Li-EC] [--num-copy 5] [--repeats 3] [--threads 1]
                                       [--baseline REV]

With ``--gpr-ann``: the GPR-ANN comparison on 3_Li-EC instead. The native
HDNNP (``mlpotential train``'s Python API) is trained twice with the same
settings and seed: on the DFT training set alone (the 30 tutorial
structures, energies and forces), and on it plus ``--num-copy`` GPR-labelled
displaced copies of each structure as energy-only data (``mlpotential gpr``,
Cartesian descriptor, aenet-gpr's defaults). Both are tested on the 300
structures of the full DFT test set; writes benchmarks/results/gpr_ann.json.

    .venv/bin/python benchmarks/gpr.py --gpr-ann [--num-copy 10] [--epochs 1000] [--batch-size 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLPOTENTIAL_SHARED", REPO.parent / "shared")).resolve()
RESULTS = REPO / "benchmarks" / "results" / "gpr.json"
GPR_ANN_RESULTS = REPO / "benchmarks" / "results" / "gpr_ann.json"
STEPS = ("train", "test", "augmentation")
FIT_STEP = "train (fitting on)"
TARGET_SPEEDUP = 5.0
"""aenet-gpr time / ours asked of test and augmentation."""
TRAIN_SPEEDUP = 1.0
TRAIN_AIM = 2.0
"""Training at least as fast as aenet-gpr (issue 18), aiming for twice as fast."""

# aenet-gpr's printed step timers, grouped into our steps
AENET_TIMERS = {
    "train": ("reading data", "training"),
    "test": ("test evaluation",),
    "augmentation": ("additional generation", "additional evaluation", "writing xsf files"),
}

# Each program's step timers read the process's CPU clock: aenet-gpr's
# io_print and inout_process call time.time(), our workflow time.perf_counter()
# (and time.process_time()); both modules are given a clock namespace before
# the program runs as ``python -m``.
_CPU_CLOCK_RUNNER = """
import importlib, runpy, sys, time, types
package, *modules = sys.argv[1].split(",")
clock = types.SimpleNamespace(time=time.process_time, perf_counter=time.process_time, process_time=time.process_time)
for name in modules:
    importlib.import_module(name).time = clock
sys.argv = [package, *sys.argv[2:]]
runpy.run_module(package, run_name="__main__", alter_sys=True)
"""
AENET_CLOCKED = "aenet_gpr,aenet_gpr.inout.io_print,aenet_gpr.inout.inout_process"
OURS_CLOCKED = "mlpotential,mlpotential.backends.gpr.workflow"


def extract(archive: Path, target: Path) -> Path:
    with zipfile.ZipFile(archive) as handle:
        members = [m for m in handle.namelist() if not m.startswith("__MACOSX/") and not Path(m).name.startswith("._")]
        handle.extractall(target, members)
    return target / archive.stem


def train_in(example: Path, data: Path, num_copy: int) -> str:
    """The example's train.in with absolute data paths, fitting off and
    augmentation on."""
    lines = []
    for line in (example / "train.in").read_text().splitlines():
        words = line.split()
        if words and words[0].lower() in ("train_file", "test_file"):
            pattern = Path(words[1])
            line = f"{words[0]} {data / pattern.parent.name / pattern.name}"
        lines.append(line)
    lines += [
        "fit_scale False",
        "fit_weight False",
        "Additional_write True",
        f"Num_copy {num_copy}",
        "Disp_length 0.05",
    ]
    return "\n".join(lines) + "\n"


def fitting_train_in(predicting: str) -> str:
    """The same training with aenet-gpr's default hyperparameter fitting, and
    nothing else (no test, no augmentation)."""
    kept = [
        line
        for line in predicting.splitlines()
        if not line.split() or line.split()[0].lower() not in ("test_file", "additional_write", "num_copy")
    ]
    kept = [line for line in kept if line.lower() not in ("fit_scale false", "fit_weight false")]
    return "\n".join([*kept, "fit_scale True", "fit_weight True"]) + "\n"


def run_process(
    command: list[str], workdir: Path, threads: int, env: dict[str, str] | None = None
) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak resident memory in GB) of a fresh process."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), **(env or {}))
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    stdout_path, stderr_path = workdir / "stdout.txt", workdir / "stderr.txt"
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=stdout, stderr=stderr)
        # wait4 reaps this child and gives its own resource usage (ru_maxrss in KiB)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    output = stdout_path.read_text()
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed in {workdir}:\n{output[-3000:]}\n{stderr_path.read_text()[-3000:]}"
        )
    return output, wall, usage.ru_maxrss / 1024**2


def run_aenet(workdir: Path, text: str, threads: int) -> dict:
    """aenet-gpr 3.7.9 on ``text``: CPU seconds of our steps from its timers."""
    workdir.mkdir(parents=True)
    (workdir / "train.in").write_text(text)
    command = [sys.executable, "-c", _CPU_CLOCK_RUNNER, AENET_CLOCKED, "train.in"]
    stdout, wall, peak = run_process(command, workdir, threads)
    timers = {name: float(value) for name, value in re.findall(r"Time needed for ([a-z ]+):\s+(\S+) s", stdout)}
    steps = {step: sum(timers[t] for t in names) for step, names in AENET_TIMERS.items() if names[0] in timers}
    return {"steps": steps, "wall": wall, "peak_gb": peak, "dir": workdir}


def run_ours(workdir: Path, text: str, threads: int, source: Path = REPO) -> dict:
    """``mlpotential gpr`` from ``source`` (a source tree) on ``text``: CPU
    seconds of its steps from gpr_report.json."""
    workdir.mkdir(parents=True)
    (workdir / "train.in").write_text(text)
    arguments = ["gpr", "train.in", "--threads", str(threads), "--no-progress"]
    command = [sys.executable, "-c", _CPU_CLOCK_RUNNER, OURS_CLOCKED, *arguments]
    _, wall, peak = run_process(command, workdir, threads, env={"PYTHONPATH": str(source)})
    report = json.loads((workdir / "gpr_report.json").read_text())
    steps = {step: values["seconds"] for step, values in report["steps"].items()}
    return {"steps": steps, "wall": wall, "peak_gb": peak, "dir": workdir}


def run_program(program: str, source: Path | None, workdir: Path, text: str, threads: int) -> dict:
    """aenet-gpr, or mlpotential from the source tree ``source``."""
    if program == "aenet-gpr":
        return run_aenet(workdir, text, threads)
    return run_ours(workdir, text, threads, source)


def extract_revision(revision: str, target: Path) -> Path:
    """The ``mlpotential`` package as committed at git ``revision``, in
    ``target`` (git archive: the repository itself is not touched)."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", revision, "mlpotential"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def agreement(ours: Path, aenet: Path) -> dict[str, float]:
    """Largest relative deviations of our test outputs from aenet-gpr's."""
    result = {}
    for name in ("energy_test_gpr", "force_test_gpr", "unc_e_test_gpr", "unc_f_test_gpr"):
        a, b = np.load(ours / f"{name}.npy"), np.load(aenet / f"{name}.npy")
        result[name] = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    return result


def hdnnp_errors(data: list[dict], test: Path, store: Path, workdir: Path, args) -> dict:
    """Train the HDNNP on ``data`` sources, test on ``test``; its test errors
    (energy per atom in eV, forces in eV/Angstrom) and times."""
    from mlpotential.backends.hdnnp.config import config_from_dict
    from mlpotential.backends.hdnnp.training import train

    workdir.mkdir(parents=True)
    raw = {
        "data": data,
        "test_data": [{"path": str(test / "file_*.xsf")}],
        "seed": args.seed,
        "split": {"validation_fraction": 0.1},
        "network": {"hidden": [10, 10], "activation": "tanh"},
        "training": {
            "stages": [
                {"optimizer": "adam", "epochs": args.epochs, "learning_rate": 0.005, "batch_size": args.batch_size}
            ],
            "threads": args.threads,
            "progress": False,
            "dtype": "float64",
        },
        "output": {
            "model": str(workdir / "model.pt"),
            "parity_plot": str(workdir / "parity.png"),
            "report": str(workdir / "report.json"),
            "descriptor_store": str(store),
        },
    }
    result = train(config_from_dict(raw, base_dir=workdir))
    return {
        "errors": result.errors,
        "seconds": result.report["seconds"],
        "epochs": result.report["epochs"],
        "data": result.report["data"],
    }


def gpr_ann(args) -> int:
    """HDNNP on the DFT set alone versus DFT set plus GPR-augmented data (3_Li-EC)."""
    example = SHARED / "aenet-gpr-examples" / "3_Li-EC"
    with tempfile.TemporaryDirectory(prefix="gpr-ann-") as scratch:
        scratch = Path(scratch)
        train = extract(example / "train_set_tutorial.zip", scratch)
        test = extract(example / "test_set.zip", scratch)
        gpr_dir = scratch / "gpr"
        gpr_dir.mkdir()
        (gpr_dir / "train.in").write_text(
            f"Train_file {train}/file_*.xsf\nDescriptor cart\nAdditional_write True\nNum_copy {args.num_copy}\n"
            f"Disp_length 0.05\nrandom_seed {args.seed}\nTest_file {test}/file_*.xsf\n"
        )
        stdout, gpr_seconds, _ = run_process(
            [sys.executable, "-m", "mlpotential", "gpr", "train.in", "--threads", str(args.threads), "--no-progress"],
            gpr_dir,
            args.threads,
        )
        gpr_report = json.loads((gpr_dir / "gpr_report.json").read_text())
        print(stdout[stdout.index("Summary") :], flush=True)
        store = scratch / "descriptors.sqlite"
        dft = [{"path": str(train / "file_*.xsf")}]
        augmented = {"path": str(gpr_dir / "additional_xsf" / "file_*.xsf"), "energy_only": True}
        runs = {}
        for name, data in (("DFT only", dft), ("DFT + GPR-augmented", [*dft, augmented])):
            runs[name] = hdnnp_errors(data, test, store, scratch / name.replace(" ", "_"), args)
            errors = runs[name]["errors"]["test"]
            print(
                f"{name}: test energy MAE {errors['energy_mae'] * 1000:.2f} meV/atom, "
                f"force MAE {errors['force_mae']:.4f} eV/Angstrom",
                flush=True,
            )

    atoms = 46
    print()
    print(
        f"GPR-ANN on 3_Li-EC: HDNNP (10-10 tanh, Adam {args.epochs} epochs of batches of {args.batch_size}, "
        f"seed {args.seed}), "
        f"tested on {runs['DFT only']['errors']['test']['structures']} DFT structures"
    )
    header = (
        f"{'training data':<22} {'structures':>10} {'E MAE (meV/atom)':>17} {'E MAE (eV)':>11} {'F MAE (eV/A)':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, run in runs.items():
        errors = run["errors"]["test"]
        print(
            f"{name:<22} {run['data']['split']['train']:>10} {errors['energy_mae'] * 1000:17.2f} "
            f"{errors['energy_mae'] * atoms:11.4f} {errors['force_mae']:13.4f}"
        )
    GPR_ANN_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    GPR_ANN_RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "gpr_ann",
                "example": "3_Li-EC",
                "num_copy": args.num_copy,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "seed": args.seed,
                "threads": args.threads,
                "gpr": {"seconds": gpr_seconds, "report": gpr_report},
                "runs": runs,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {GPR_ANN_RESULTS}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", nargs="+", default=["2_EC-EC", "3_Li-EC"])
    parser.add_argument(
        "--num-copy", type=int, default=None, help="displaced copies per training structure (5; 10 with --gpr-ann)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--baseline", metavar="REV", help="also time mlpotential as committed at this git revision (before/after)"
    )
    parser.add_argument("--gpr-ann", action="store_true", help="the GPR-ANN comparison instead of the timings")
    parser.add_argument("--epochs", type=int, default=1000, help="HDNNP epochs (--gpr-ann)")
    # mini-batches of energy-only structures alone make the HDNNP trainer fail
    # (its energy-only predictions run without gradients): large batches keep
    # DFT structures in every batch
    parser.add_argument("--batch-size", type=int, default=64, help="HDNNP mini-batch size (--gpr-ann)")
    parser.add_argument("--seed", type=int, default=0, help="HDNNP and augmentation seed (--gpr-ann)")
    args = parser.parse_args()
    if args.gpr_ann:
        args.num_copy = args.num_copy or 10
        return gpr_ann(args)
    args.num_copy = args.num_copy or 5

    rows = []
    with tempfile.TemporaryDirectory(prefix="gpr-bench-") as scratch:
        scratch = Path(scratch)
        sources = {"aenet-gpr": None, "ours": REPO}
        if args.baseline:
            sources["baseline"] = extract_revision(args.baseline, scratch / "baseline")
        for name in args.examples:
            rows.append(benchmark_example(name, sources, scratch, args))

    programs = list(rows[0]["programs"])
    print()
    print(
        "GPR: aenet-gpr 3.7.9 vs mlpotential gpr"
        + (f" (and as of {args.baseline}: baseline)" if args.baseline else "")
        + f", CPU seconds per step, {args.threads} thread(s), Num_copy {args.num_copy}, median of {args.repeats}"
    )
    print(format_table(rows, programs))
    checks = {
        f"train at least {TRAIN_SPEEDUP:g}x aenet-gpr's speed": all(
            row["speedup"]["ours"][s] >= TRAIN_SPEEDUP for row in rows for s in ("train", FIT_STEP)
        ),
        f"train {TRAIN_AIM:g}x (the aim)": all(
            row["speedup"]["ours"][s] >= TRAIN_AIM for row in rows for s in ("train", FIT_STEP)
        ),
        f"test and augmentation at least {TARGET_SPEEDUP:g}x": all(
            row["speedup"]["ours"][s] >= TARGET_SPEEDUP for row in rows for s in ("test", "augmentation")
        ),
    }
    for check, met in checks.items():
        print(f"{check}: {'met' if met else 'NOT met'}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "gpr",
                "clock": "CPU seconds of each program's own step timers",
                "machine": platform.platform(),
                "processor": platform.processor(),
                "cpus": os.cpu_count(),
                "load_average_at_end": os.getloadavg(),
                "threads": args.threads,
                "num_copy": args.num_copy,
                "repeats": args.repeats,
                "baseline": args.baseline,
                "checks": checks,
                "rows": rows,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


def benchmark_example(name: str, sources: dict[str, Path | None], scratch: Path, args) -> dict:
    """Every program on one example, both configurations, ``args.repeats``
    times (the order of the programs rotating, so that changes of load hit
    them alike): the median CPU seconds of each step, the ratios aenet-gpr /
    program, peak memory and the agreement of the test outputs."""
    example = SHARED / "aenet-gpr-examples" / name
    data = scratch / name
    for archive in sorted(example.glob("*_tutorial.zip")):
        extract(archive, data)
    predicting = train_in(example, data, args.num_copy)
    fitting = fitting_train_in(predicting)
    programs = list(sources)
    runs: dict[str, list[dict]] = {program: [] for program in programs}
    for repeat in range(args.repeats):
        for program in programs[repeat % len(programs) :] + programs[: repeat % len(programs)]:
            workdir = scratch / f"{name}-{program}-{repeat}"
            result = run_program(program, sources[program], workdir, predicting, args.threads)
            fitted = run_program(
                program, sources[program], workdir.with_name(workdir.name + "-fit"), fitting, args.threads
            )
            result["steps"][FIT_STEP] = fitted["steps"]["train"]
            result["peak_gb"] = max(result["peak_gb"], fitted["peak_gb"])
            runs[program].append(result)
            print(
                f"{name} {program} run {repeat + 1}: "
                + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in result["steps"].items()),
                flush=True,
            )
    steps = (*STEPS, FIT_STEP)
    row: dict = {"example": name, "programs": {}, "speedup": {}}
    for program, results in runs.items():
        medians = {step: statistics.median(r["steps"][step] for r in results) for step in steps}
        medians["all steps"] = sum(medians[step] for step in STEPS)
        row["programs"][program] = {
            "steps": medians,
            "repeats": [r["steps"] for r in results],
            "peak_gb": max(r["peak_gb"] for r in results),
        }
    aenet = row["programs"]["aenet-gpr"]["steps"]
    for program in programs[1:]:
        row["speedup"][program] = {step: aenet[step] / row["programs"][program]["steps"][step] for step in aenet}
    row["agreement"] = agreement(runs["ours"][0]["dir"], runs["aenet-gpr"][0]["dir"])
    return row


def format_table(rows: list[dict], programs: list[str]) -> str:
    """The table: per example and step, each program's seconds and the
    speed-up of ours (and the baseline) over aenet-gpr."""
    others = programs[1:]
    header = f"{'example':<9} {'step':<19} {'aenet-gpr (s)':>13}" + "".join(
        f" {program + ' (s)':>14} {'speed-up':>9}" for program in others
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        for step in row["programs"]["aenet-gpr"]["steps"]:
            line = f"{row['example']:<9} {step:<19} {row['programs']['aenet-gpr']['steps'][step]:13.2f}"
            for program in others:
                line += f" {row['programs'][program]['steps'][step]:14.2f} {row['speedup'][program][step]:8.2f}x"
            lines.append(line)
        memory = "".join(f" {row['programs'][program]['peak_gb']:11.2f} GB {'':>9}" for program in others)
        lines.append(
            f"{row['example']:<9} {'peak memory':<19} {row['programs']['aenet-gpr']['peak_gb']:10.2f} GB{memory}"
        )
        worst = max(row["agreement"].values())
        lines.append(
            f"{row['example']:<9} largest relative deviation of our test outputs from aenet-gpr's: {worst:.2e}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
