"""``mlpotential client``: drive any AMS-compatible worker command through
Hello, SetSystem and Solve, or run the conformance suite against it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from mlpotential.host.client import EngineError, PipeClient
from mlpotential.host.conformance import KINDS, PROTOCOL, ROBUSTNESS, CaseResult
from mlpotential.host.launcher import WorkerDiedError, WorkerTimeoutError
from mlpotential.inputs import BadValue, Range, number
from mlpotential.protocol.codecs import CODECS
from mlpotential.protocol.errors import ProtocolError

REPLY_TIMEOUTS = Range(0, 86_400, "s", positive=True)
"""``--timeout``: a day is longer than any single Solve should take."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential client",
        description="Drive an AMS-compatible worker over call_pipe/reply_pipe: print its energy (Hartree) and "
        "gradients (Hartree/Bohr) for a geometry, or check it against the protocol with --check.",
    )
    parser.add_argument(
        "--worker",
        required=True,
        metavar="COMMAND",
        help='the worker command line, e.g. "mlpotential worker --model EMT"',
    )
    parser.add_argument("geometry", type=Path, help="a geometry file ase.io can read (Angstrom)")
    parser.add_argument("--gradients", action="store_true", help="also ask for gradients")
    parser.add_argument("--codec", choices=list(CODECS), default="ubjson", help="payload encoding (default ubjson)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--check", action="store_true", help="run the conformance suite; non-zero exit on any FAIL")
    parser.add_argument(
        "--only",
        choices=KINDS,
        help="with --check: only the protocol cases (what every worker must do) or only the robustness cases",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds the worker may take to start (until it opens its pipes) and to take each call and answer it; "
        f"a worker that misses it is killed (default 60; {REPLY_TIMEOUTS.describe()})",
    )
    return parser


def _print_tables(results: list[CaseResult]) -> None:
    """One table per kind of case: what the protocol requires, then what our
    worker promises beyond it."""
    width = max(len(result.name) for result in results)
    for kind, title in (
        (PROTOCOL, "Protocol cases (what every worker must do)"),
        (ROBUSTNESS, "Robustness cases (beyond the protocol)"),
    ):
        rows = [result for result in results if result.kind == kind]
        if not rows:
            continue
        print(f"{title}\n")
        for result in rows:
            verdict = "PASS" if result.passed else "FAIL"
            line = f"{verdict}  {result.name:<{width}}  {result.seconds:6.2f} s"
            print(line + (f"  {result.detail}" if result.detail else ""))
        failed = sum(not result.passed for result in rows)
        print(f"\n{kind}: {len(rows) - failed} passed, {failed} failed\n")


def _worker_command(parser: argparse.ArgumentParser, text: str) -> list[str]:
    try:
        command = shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        parser.error(f"--worker {text!r}: {exc}")
    if not command:
        parser.error("--worker is empty; give the worker's command line")
    return command


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        number("--timeout", args.timeout, float, REPLY_TIMEOUTS)
    except BadValue as exc:
        parser.error(str(exc))
    import ase.io

    from mlpotential.ase_bridge import system_message

    command = _worker_command(parser, args.worker)
    try:
        system = system_message(ase.io.read(args.geometry))
    except Exception as exc:
        print(f"mlpotential client: cannot read geometry {args.geometry}: {exc}", file=sys.stderr)
        return 2

    if args.check:
        from mlpotential.host.conformance import run_suite

        results = run_suite(command, system, args.codec, args.timeout, (args.only,) if args.only else KINDS)
        _print_tables(results)
        return 0 if all(result.passed for result in results) else 1

    try:
        with PipeClient(command, args.codec, reply_timeout=args.timeout, start_timeout=args.timeout) as client:
            client.hello()
            client.set_system(system)
            results = client.solve(gradients=args.gradients)
    except EngineError as exc:
        if args.json:
            print(
                json.dumps(
                    {"status": int(exc.status), "method": exc.method, "argument": exc.argument, "message": exc.message}
                )
            )
        else:
            print(f"mlpotential client: the worker answered {exc}", file=sys.stderr)
        return 1
    except (WorkerDiedError, WorkerTimeoutError, ProtocolError, OSError) as exc:
        print(f"mlpotential client: {exc}", file=sys.stderr)
        return 1
    gradients = results.values.get("gradients")
    if args.json:
        report = {
            "energy": results.energy,
            **({"gradients": gradients.tolist()} if gradients is not None else {}),
            "status": 0,
        }
        print(json.dumps(report))
        return 0
    print(f"Energy (Hartree): {results.energy:.12f}")
    if gradients is not None:
        print("Gradients (Hartree/Bohr):")
        for symbol, row in zip(system.atom_symbols, gradients):
            print(f"  {symbol:<3}" + "".join(f"{value:18.10f}" for value in row))
    return 0
