"""What the sample servers share (private: no tools here): a fresh copy of their tables,
and the checks of ids and choices against them."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

from astra.errors import ToolCallError


def keyed(rows: Iterable[dict], key: str) -> dict[str, dict]:
    """A deep copy of ``rows`` by their ``key`` field (each session mutates its own)."""
    return {row[key]: copy.deepcopy(row) for row in rows}


def lookup(table: dict[str, dict], key: object, unknown: str) -> dict:
    """The row of ``table`` under ``key`` (trimmed, upper-cased); a
    :class:`~astra.errors.ToolCallError` saying ``unknown`` when there is none."""
    row = table.get(str(key).strip().upper())
    if row is None:
        raise ToolCallError(unknown)
    return row


def one_of(name: str, value: str, options: Sequence[str]) -> str:
    """``value`` when it is one of ``options``; else a :class:`~astra.errors.ToolCallError`
    (``Unknown <name> 'x'; use 'a', 'b' or 'c'.``)."""
    if value not in options:
        listed = ", ".join(repr(o) for o in options[:-1])
        raise ToolCallError(f"Unknown {name} {value!r}; use {listed} or {options[-1]!r}.")
    return value
