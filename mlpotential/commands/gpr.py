"""``mlpotential gpr train.in``: aenet-gpr's train, test and augmentation
steps with our GPR (see docs/gpr.md)."""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from mlpotential.atomistic.structures import DataError
from mlpotential.backends.gpr.gp import IllConditionedError
from mlpotential.backends.gpr.model_file import ModelFileError
from mlpotential.backends.gpr.train_input import TrainInputError, TrainInputWarning, read_train_input
from mlpotential.backends.runtime import THREAD_COUNTS
from mlpotential.inputs import BadValue, number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential gpr",
        description=(
            "Train a Gaussian-process surrogate on energies and forces, predict a test set and write "
            "GPR-labelled displaced structures for ANN training, from an aenet-gpr train.in."
        ),
    )
    parser.add_argument("train_in", nargs="?", default="train.in", help="the aenet-gpr input file (default: train.in)")
    parser.add_argument(
        "-o", "--output-dir", default=".", help="where outputs go (default: the current directory, as aenet-gpr)"
    )
    parser.add_argument(
        "--base-dir",
        default=None,
        help="directory that Train_file/Test_file patterns are relative to "
        "(default: the current directory, as aenet-gpr)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"compute threads, {THREAD_COUNTS.describe()} (default: torch's choice)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        try:
            number("--threads", args.threads, int, THREAD_COUNTS)
        except BadValue as exc:
            parser.error(str(exc))
    with warnings.catch_warnings():
        warnings.simplefilter("always", TrainInputWarning)
        warnings.showwarning = _show_warning
        try:
            settings = read_train_input(args.train_in)
        except TrainInputError as exc:
            print(f"mlpotential gpr: {exc}", file=sys.stderr)
            return 2

    from mlpotential.backends.gpr.workflow import format_report, run
    from mlpotential.backends.runtime import configure_threads, torch_device
    from mlpotential.errors import EngineSetupError

    if args.threads is not None:
        # torch is imported (gp.py) already, so this sets its thread count too
        configure_threads(args.threads)
    try:
        settings = replace(settings, device=str(torch_device(settings.device)))
    except EngineSetupError as exc:
        print(f"mlpotential gpr: {settings.source}: {exc.message}", file=sys.stderr)
        return 2
    base_dir = Path(args.base_dir) if args.base_dir else Path.cwd()
    print(f"mlpotential gpr: {args.train_in}", flush=True)
    try:
        report = run(
            settings,
            base_dir,
            Path(args.output_dir),
            log=lambda text: print(text, flush=True),
            show_progress=not args.no_progress,
        )
    except (DataError, IllConditionedError, ModelFileError) as exc:
        print(f"mlpotential gpr: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the output folder cannot be made or written
        print(
            f"mlpotential gpr: cannot write {exc.filename or args.output_dir}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    print(format_report(report))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"mlpotential gpr: warning: {message}", file=sys.stderr)
