"""``mlpotential learn CONFIG``: grow a committee where it is uncertain
(active learning; the config's format: docs/active-learning.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpotential learn",
        description="Active learning: explore with the current committee, label the frames it is unsure of "
        "with the reference engine, retrain, and repeat. Interrupted runs resume where they stopped when "
        "started again with the same results folder. See docs/active-learning.md.",
    )
    parser.add_argument("config", help="active-learning config file (YAML)")
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="label on the Dask cluster of this scheduler (tcp://host:8786)"
    )
    parser.add_argument("--results", metavar="DIR", help="results folder (default: the config's results key)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return _learn(args)
    except KeyboardInterrupt:  # Ctrl-C anywhere, even while importing: one line, the usual status
        print("mlpotential learn: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _learn(args: argparse.Namespace) -> int:
    from mlpotential.learning.config import LearnConfigError, load_config

    try:
        config = load_config(args.config)
    except LearnConfigError as exc:
        print(f"mlpotential learn: error: {exc}", file=sys.stderr)
        return 2
    # after the config's checks: these import the host, ASE's MD and matplotlib
    from mlpotential.host.client import EngineError
    from mlpotential.learning.loop import ActiveLearning

    folder = Path(args.results) if args.results else config.base_dir / config.results
    try:
        ActiveLearning(config, folder, scheduler=args.scheduler, say=_say).run()
    except (EngineError, RuntimeError, ValueError, OSError) as exc:  # bad data, models or engines: one line
        print(f"mlpotential learn: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _say(line: str) -> None:
    print(line, flush=True)
