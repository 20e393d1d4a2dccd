"""Comma lists of named choices, as flags and stage options give them (``"args,vote"``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def comma_items(spec: str | Iterable[str]) -> list[str]:
    """The non-empty, stripped items of a comma list (or of an iterable of strings)."""
    return [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]


def check_choice(value: str, choices: Sequence[str], what: str, error: type[Exception] = ValueError) -> str:
    """``value``, which must be one of ``choices``: otherwise ``error("unknown <what> 'value' (use a, b)")``."""
    if value not in choices:
        raise error(f"unknown {what} {value!r} (use {', '.join(choices)})")
    return value


def parse_choices(spec: str | Iterable[str], choices: Sequence[str], what: str) -> list[str]:
    """The items of ``spec``, each one of ``choices``, in the order of ``choices`` and without
    repeats; any other item raises ``ValueError("unknown <what>(s) [...]; choose from ...")``."""
    items = comma_items(spec)
    bad = [s for s in items if s not in choices]
    if bad:
        raise ValueError(f"unknown {what}(s) {bad}; choose from {', '.join(choices)}")
    return [c for c in choices if c in items]
