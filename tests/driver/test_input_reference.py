"""docs/input-reference.md lists exactly the keys a job may hold, with the
ranges the job reader enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlpotential.backends.keywords import KEYWORDS
from mlpotential.backends.runtime import THREAD_COUNTS
from mlpotential.driver.input_reader import JOB_SCHEMA, BlockSchema
from mlpotential.driver.job import NUMBERS
from mlpotential.inputs import COORDINATES

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "input-reference.md").read_text()
ROWS = [line for line in PAGE.splitlines() if line.startswith("| `")]


def rows_naming(key: str) -> list[str]:
    return [row for row in ROWS if f"`{key}`" in row.split("|")[1]]


def numeric_rows_naming(key: str) -> list[str]:
    """The rows of a numeric key (Properties' Gradients is a Yes/No key)."""
    return [row for row in rows_naming(key) if "`Yes`, `No`" not in row]


def names(schema: BlockSchema) -> set[str]:
    """Every key and block a job may hold (the engine keywords are the README's)."""
    found = set(schema.keys) | set(schema.blocks)
    for name, child in schema.blocks.items():
        if name != "Engine":
            found |= names(child)
        else:  # Engine Pipe's key
            found |= set(child.keys) - set(KEYWORDS)
    return found


@pytest.mark.parametrize("key", NUMBERS)
def test_every_numeric_key_is_listed_with_its_range(key: str) -> None:
    _, allowed = NUMBERS[key]
    assert numeric_rows_naming(key), key
    for row in numeric_rows_naming(key):
        assert allowed.describe() in row, row


def test_num_threads_and_coordinates_are_listed_with_their_ranges() -> None:
    assert THREAD_COUNTS.describe() in rows_naming("NumThreads")[0]
    for key in ("Atoms", "Lattice"):
        assert COORDINATES.describe() in rows_naming(key)[0] or "as in `Atoms`" in rows_naming(key)[0]


def test_the_page_lists_the_keys_that_exist_and_no_other() -> None:
    listed = {name for row in ROWS for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    listed |= set(re.findall(r"^## (\w+)", PAGE, re.MULTILINE))  # the blocks head their sections
    assert names(JOB_SCHEMA) <= listed
    assert listed - names(JOB_SCHEMA) == {"End", "NumThreads"}  # a closing word, an engine keyword
