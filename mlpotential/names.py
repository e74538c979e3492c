"""Names as AMS input treats them: case-insensitive, kept in one canonical
spelling. Every lookup of a keyword, a block, a backend or a choice goes
through :func:`canonical_name`."""

from __future__ import annotations

from collections.abc import Iterable


def canonical_name(name: str, known: Iterable[str]) -> str | None:
    """The spelling in ``known`` of ``name`` compared case-insensitively, or
    None when it is not there."""
    wanted = name.lower()
    for candidate in known:
        if candidate.lower() == wanted:
            return candidate
    return None
