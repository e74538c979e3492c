"""``mlpotential worker``: serve one engine over call_pipe/reply_pipe in the
working directory (or ``--directory``), or as an i-PI client (``--ipi``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from mlpotential.backends.keywords import KEYWORDS, PATH_KEYWORDS, REPEATABLE_KEYWORDS, option_name
from mlpotential.backends.model_files import NO_PICKLE_VARIABLE
from mlpotential.driver.input_reader import InputError, engine_keywords, read_input
from mlpotential.protocol.fifo import CALL_PIPE
from mlpotential.protocol.ipi import Address
from mlpotential.protocol.pipe_directory import HOST_DIRECTORY_VARIABLE

NOT_STARTED_BY_A_HOST = (
    "mlpotential worker: {call_pipe} does not exist in {directory}: a worker serves a host, which creates the pipes "
    "and starts it (mlpotential run JOB.in; mlpotential client --worker 'mlpotential worker ...' FILE; "
    "PipeEngine in Python; AMS's Engine Pipe). To serve an i-PI server instead: mlpotential worker "
    "--ipi ADDRESS --structure FILE. See mlpotential worker --help."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential worker",
        description="Serve an ML potential over the AMS-compatible pipe protocol. The host creates call_pipe and "
        "reply_pipe in the worker's directory; the worker answers until Exit or end of file.",
    )
    for keyword in KEYWORDS:
        repeatable = keyword in REPEATABLE_KEYWORDS
        parser.add_argument(
            option_name(keyword),
            dest=keyword,
            metavar=keyword.upper(),
            action="append" if repeatable else "store",
            help=f"engine keyword {keyword}" + (" (repeat it for a committee)" if repeatable else ""),
        )
    parser.add_argument(
        "--input",
        type=Path,
        help="a file with an 'Engine MLPotential ... EndEngine' block (options given on the command line override it)",
    )
    parser.add_argument(
        "--directory",
        type=Path,
        default=Path("."),
        help="where the pipes are (default: here): a directory, not a symbolic link to one, whose call_pipe and "
        "reply_pipe are FIFOs of your own that nobody else can write",
    )
    parser.add_argument(
        "--no-pickle",
        action="store_true",
        help=f"refuse model files that must be unpickled (which runs code from the file); "
        f"the same as {NO_PICKLE_VARIABLE}=1",
    )
    parser.add_argument(
        "--summary",
        type=Path,
        help="where to write mlpotential.txt, the statistics of the last "
        "geometry, when the worker ends (a file or a directory; default: the working directory)",
    )
    _add_ipi_options(parser)
    return parser


def _add_ipi_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "i-PI client mode", "connect to an i-PI server (i-PI, ASE's SocketIOCalculator) instead of serving pipes"
    )
    group.add_argument(
        "--ipi",
        metavar="ADDRESS",
        type=_ipi_address,
        help="the server: unix:NAME (the UNIX socket /tmp/ipi_NAME, as in i-PI), unix:/PATH or HOST:PORT (TCP)",
    )
    group.add_argument(
        "--structure",
        type=Path,
        metavar="FILE",
        help="with --ipi: the elements, their order and the periodic directions (any file ase.io reads; "
        "its first frame)",
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --ipi: how long to keep trying while the server starts (default: 60)",
    )
    group.add_argument(
        "--no-forces-std",
        action="store_true",
        help="with --ipi: leave per-atom force standard deviations out of the extra bytes (they can cost as much "
        "as the forces); the energy's stays",
    )


def _ipi_address(text: str) -> Address:
    try:
        return Address.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _resolve_paths(keywords: dict[str, str | list[str]], base: Path) -> dict[str, str | list[str]]:
    """The path keywords made absolute against ``base`` (an absolute path stays)."""
    resolved: dict[str, str | list[str]] = {}
    for keyword, value in keywords.items():
        if keyword in PATH_KEYWORDS:
            items = [str(base / item) if item else item for item in (value if isinstance(value, list) else [value])]
            value = items if isinstance(value, list) else items[0]
        resolved[keyword] = value
    return resolved


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.ipi is None) != (args.structure is None):
        parser.error("--ipi and --structure go together (the i-PI protocol sends no elements and no periodicity)")
    if args.ipi is None and args.directory.is_dir() and not os.path.lexists(args.directory / CALL_PIPE):
        print(NOT_STARTED_BY_A_HOST.format(call_pipe=CALL_PIPE, directory=args.directory.absolute()), file=sys.stderr)
        return 2
    # Relative paths on the command line are the host's: a launcher runs the
    # worker in its private pipe directory and names its own directory here.
    host_directory = Path(os.environ.get(HOST_DIRECTORY_VARIABLE) or ".")
    if args.input is not None:
        args.input = host_directory / args.input
    if args.summary is not None:
        args.summary = host_directory / args.summary
    if args.ipi is None:
        # The host owns interrupts: it closes the pipes and the worker exits on end of file.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    from mlpotential.worker.engine import failed_engine, load_engine
    from mlpotential.worker.serve import serve
    from mlpotential.worker.session import WorkerSession

    if args.no_pickle:
        os.environ[NO_PICKLE_VARIABLE] = "1"
    keywords: dict[str, str | list[str]] = {}
    try:
        if args.input is not None:
            # paths in an input file are relative to its folder, as in mlpotential run
            keywords.update(_resolve_paths(engine_keywords(read_input(args.input)), args.input.absolute().parent))
    except InputError as exc:
        engine = failed_engine(str(exc), "input")
    else:
        given = {keyword: getattr(args, keyword) for keyword in KEYWORDS if getattr(args, keyword) is not None}
        keywords.update(_resolve_paths(given, host_directory))
        engine = load_engine(keywords)
    summary = args.summary if args.summary is not None else args.directory
    session = WorkerSession(engine, summary.resolve())
    if args.ipi is not None:
        from mlpotential.worker.ipi_client import IPIOptions, serve_ipi

        return serve_ipi(args.structure, session, IPIOptions(args.ipi, args.connect_timeout, not args.no_forces_std))
    # absolute(), not resolve(): the worker must see (and refuse) a directory given as a symbolic link.
    return serve(args.directory.absolute(), session)
