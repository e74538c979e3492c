"""Asking before the environment changes: on a terminal the user answers;
without one nothing changes unless ``--yes`` was given."""

from __future__ import annotations

import sys
from typing import TextIO


class NoTerminal(RuntimeError):
    """No terminal to ask on and no ``--yes``: nothing may change."""


def must_ask(yes: bool, stdin: TextIO | None = None) -> bool:
    """Whether a question must be asked before a change: False with ``yes``,
    True when stdin is a terminal. Raises NoTerminal otherwise; call it before
    any slow work, so that a script without ``--yes`` fails at once."""
    if yes:
        return False
    stdin = stdin or sys.stdin
    if stdin is None or not stdin.isatty():
        raise NoTerminal(
            "not asking for confirmation: standard input is not a terminal. "
            "Nothing was changed; run again with --yes to go ahead, or with --dry-run to see the commands."
        )
    return True


def ask(question: str, stdin: TextIO | None = None, out: TextIO | None = None) -> bool:
    """Ask ``question`` on the terminal; True when the answer is y or yes."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    return stdin.readline().strip().lower() in ("y", "yes")
