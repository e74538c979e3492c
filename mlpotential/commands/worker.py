"""``mlpotential worker``: serve one engine over call_pipe/reply_pipe in the
working directory (or ``--directory``)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from mlpotential.backends.keywords import KEYWORDS, option_name
from mlpotential.driver.input_reader import InputError, engine_keywords, read_input


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential worker",
        description="Serve an ML potential over the AMS-compatible pipe protocol. The host creates call_pipe and "
        "reply_pipe in the worker's directory; the worker answers until Exit or end of file.",
    )
    for keyword in KEYWORDS:
        parser.add_argument(
            option_name(keyword), dest=keyword, metavar=keyword.upper(), help=f"engine keyword {keyword}"
        )
    parser.add_argument(
        "--input",
        type=Path,
        help="a file with an 'Engine MLPotential ... EndEngine' block (options given on the command line override it)",
    )
    parser.add_argument("--directory", type=Path, default=Path("."), help="where the pipes are (default: here)")
    parser.add_argument(
        "--summary",
        type=Path,
        help="where to write mlpotential.txt, the statistics of the last "
        "geometry, when the worker ends (a file or a directory; default: the working directory)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # The host owns interrupts: it closes the pipes and the worker exits on end of file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from mlpotential.worker.engine import failed_engine, load_engine
    from mlpotential.worker.serve import serve
    from mlpotential.worker.session import WorkerSession

    keywords: dict[str, str] = {}
    try:
        if args.input is not None:
            keywords.update(engine_keywords(read_input(args.input)))
    except InputError as exc:
        engine = failed_engine(str(exc), "input")
    else:
        for keyword in KEYWORDS:
            if getattr(args, keyword) is not None:
                keywords[keyword] = getattr(args, keyword)
        engine = load_engine(keywords)
    summary = args.summary if args.summary is not None else args.directory
    try:
        return serve(args.directory.resolve(), WorkerSession(engine, summary.resolve()))
    except OSError as exc:  # no pipes there: the host makes them before it starts the worker
        print(
            f"mlpotential worker: cannot open {exc.filename or args.directory}: {exc.strerror or exc} "
            "(the host creates call_pipe and reply_pipe before it starts the worker)",
            file=sys.stderr,
        )
        return 2
