"""What every reader of an input file shares: the file's text, and numbers
within stated ranges.

Each reader (the job input of ``mlpotential run``, the train.in of
``mlpotential gpr``, the YAML config of ``mlpotential train``) names the file,
the line and the key in its own way; these helpers say what is wrong with a
file or a value, so that every reader says it alike.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path


class BadValue(ValueError):
    """A value a key does not allow. ``key`` names the key and ``problem``
    says what is wrong (``str()`` is both), so a reader can name the key as
    its file spells it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Range:
    """The values a numeric key allows: finite, from ``minimum`` to
    ``maximum`` (inclusive; with ``positive``, the minimum 0 excluded)."""

    minimum: float
    maximum: float
    unit: str = ""
    positive: bool = False

    def __contains__(self, value: float) -> bool:
        # NaN fails every comparison, so it is outside every range.
        above = value > self.minimum if self.positive else value >= self.minimum
        return above and value <= self.maximum

    def describe(self) -> str:
        """``positive and at most 100 fs``, ``at least 0 and at most 4294967295``."""
        unit = f" {self.unit}" if self.unit else ""
        low = "positive" if self.positive else f"at least {_format(self.minimum)}"
        return f"{low} and at most {_format(self.maximum)}{unit}"


COORDINATES = Range(-1e6, 1e6, "Angstrom")
"""Atom positions, lattice vectors, points in space: beyond a millimetre a
coordinate is a typing error, and squared distances would lose precision."""


def _format(bound: float) -> str:
    # 1000000, not 1e+06: a bound is read by people
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def number(key: str, value: object, kind: type[int] | type[float], allowed: Range) -> int | float:
    """``value`` (text, or a number a YAML file holds) as an ``int`` or a
    ``float`` within ``allowed``; :class:`BadValue` naming ``key`` otherwise."""
    converted = _convert(value, kind)
    if converted is None:
        kind_name = "an integer" if kind is int else "a number"
        raise BadValue(key, f"{_shown(value)} is not {kind_name} (it must be {allowed.describe()})")
    if converted not in allowed:
        raise BadValue(key, f"must be {allowed.describe()}, not {_shown(value)}")
    return converted


def _convert(value: object, kind: type[int] | type[float]) -> int | float | None:
    # bool is an int to Python, but "true" is no count and no length.
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:  # not a number, or an integer of more than 4300 digits
            return None
    if isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and kind is float):
        try:
            return kind(value)
        except OverflowError:  # an integer beyond any float: outside every range
            return math.inf if value > 0 else -math.inf
    return None


def _shown(value: object) -> str:
    """The value as the user wrote it, cut short (a pasted megabyte is not repeated)."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # Python writes no integer of more than 4300 digits
        return "an integer of more than 4300 digits"
    return text if len(text) <= 40 else text[:37] + "..."


MAX_INPUT_BYTES = 16 * 1024 * 1024
"""Input files are a few kilobytes; a larger one (``/dev/zero``, a data file
given by mistake) is refused before it fills the memory."""


def read_text(path: Path, error: type[Exception]) -> str:
    """The text of an input file; ``error`` (the reader's own error class)
    with one line naming the file and why it cannot be read: missing,
    unreadable, a directory, too large, not UTF-8, or binary (NUL bytes)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise error(f"{path}: larger than {MAX_INPUT_BYTES // 1024**2} MiB; not an input file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}, line {line}: not a UTF-8 text file (byte {data[exc.start]:#04x})") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise error(f"{path}, line {line}: not a text file (it holds NUL bytes)") from None
    return text
