"""``mlpotential worker``: serve one engine over call_pipe/reply_pipe in the
working directory (or ``--directory``)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from mlpotential.engine.input_reader import InputError, engine_keywords, read_input

KEYWORD_OPTIONS = {
    "backend": "Backend",
    "model": "Model",
    "parameter_file": "ParameterFile",
    "parameter_dir": "ParameterDir",
    "ml_energy_unit": "MLEnergyUnit",
    "ml_distance_unit": "MLDistanceUnit",
    "device": "Device",
    "num_threads": "NumThreads",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential worker",
        description="Serve an ML potential over the AMS-compatible pipe protocol. The host creates call_pipe and "
        "reply_pipe in the worker's directory; the worker answers until Exit or end of file.",
    )
    for option, keyword in KEYWORD_OPTIONS.items():
        parser.add_argument("--" + option.replace("_", "-"), dest=option, metavar=keyword.upper(),
                            help=f"engine keyword {keyword}")  # fmt: skip
    parser.add_argument("--input", type=Path, help="a file with an 'Engine MLPotential ... EndEngine' block "
                        "(options given on the command line override it)")  # fmt: skip
    parser.add_argument("--directory", type=Path, default=Path("."), help="where the pipes are (default: here)")
    parser.add_argument("--summary", type=Path, help="where to write mlpotential.txt, the statistics of the last "
                        "geometry, when the worker ends (a file or a directory; default: the working directory)")  # fmt: skip
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # The host owns interrupts: it closes the pipes and the worker exits on end of file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from mlpotential.engine.worker import WorkerSession, failed_engine, load_engine, serve

    keywords: dict[str, str] = {}
    try:
        if args.input is not None:
            keywords.update(engine_keywords(read_input(args.input)))
    except InputError as exc:
        engine = failed_engine(str(exc), "input")
    else:
        for option, keyword in KEYWORD_OPTIONS.items():
            if getattr(args, option) is not None:
                keywords[keyword] = getattr(args, option)
        engine = load_engine(keywords)
    summary = args.summary if args.summary is not None else args.directory
    return serve(args.directory.resolve(), WorkerSession(engine, summary.resolve()))
