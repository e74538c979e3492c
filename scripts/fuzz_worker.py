"""A longer fuzz run of our worker than the test suite's: random and mutated
frames in both codecs (see mlpotential/host/fuzzing.py), with a table of what
happened to them. Exit status 1 if any frame made the worker hang or broke
the reply stream.

    python scripts/fuzz_worker.py --frames 20000 --seed 7
"""

from __future__ import annotations

import argparse
import sys

from ase.build import molecule

from mlpotential.ase_bridge import system_message
from mlpotential.host.fuzzing import run_fuzz
from mlpotential.host.launcher import our_worker_command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000, help="frames per codec (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="EMT", help="the ASE backend's model to serve (EMT or LennardJones)")
    args = parser.parse_args()
    failed = False
    for codec in ("ubjson", "msgpack"):
        report = run_fuzz(
            our_worker_command("--backend", "ASE", "--model", args.model),
            system_message(molecule("CH3CH2OH")),
            args.frames,
            codec,
            args.seed,
        )
        print(f"\n{codec}\n{report.table()}")
        for label, example in sorted(report.examples.items()):
            print(f"  first {label}: {example[:160]}")
        for problem in report.problems[:20]:
            print(f"  PROBLEM {problem}")
        failed = failed or bool(report.hangs or report.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
