"""LLM usage accounting per stage: calls, tokens, cache hits, retries, failures.

Every LLM request is counted against the stage active in the current context
(:func:`stage_scope`), so a stage's manifest can record exactly what it cost, and also
against the record being processed (:func:`record_scope`), so a ledger line carries its
own record's usage even when many records are in flight at once. Counters from other
processes (Ray workers) are merged with :meth:`UsageBook.merge`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

_current_stage: contextvars.ContextVar[str] = contextvars.ContextVar("astra_stage", default="-")
#: The usage of the record being processed (set by :func:`record_scope`): (stage, Usage).
_current_record: contextvars.ContextVar[tuple[str, Usage] | None] = contextvars.ContextVar(
    "astra_record_usage", default=None)


@dataclass
class Usage:
    calls: int = 0  # requests that reached a provider (cache misses), retries included
    requests: int = 0  # requests asked of the client (cache hits included)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0  # requests that ended in an error after all retries
    repairs: int = 0  # structured-output repair rounds
    seconds: float = 0.0  # provider wall time

    def add(self, other: Usage) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(d["seconds"], 3)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Usage:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class UsageBook:
    """Thread-safe usage counters keyed by stage name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_stage: dict[str, Usage] = {}

    def record(self, stage: str | None = None, **delta: float) -> None:
        stage = stage or _current_stage.get()
        scope = _current_record.get()
        with self._lock:
            u = self._by_stage.setdefault(stage, Usage())
            for k, v in delta.items():
                setattr(u, k, getattr(u, k) + v)
            if scope is not None and scope[0] == stage:
                for k, v in delta.items():
                    setattr(scope[1], k, getattr(scope[1], k) + v)

    def get(self, stage: str) -> Usage:
        with self._lock:
            u = Usage()
            u.add(self._by_stage.get(stage, Usage()))
            return u

    def snapshot(self) -> dict[str, Usage]:
        with self._lock:
            out = {}
            for k, v in self._by_stage.items():
                u = Usage()
                u.add(v)
                out[k] = u
            return out

    def merge(self, other: Mapping[str, dict[str, Any] | Usage]) -> None:
        with self._lock:
            for stage, u in other.items():
                if isinstance(u, dict):
                    u = Usage.from_dict(u)
                self._by_stage.setdefault(stage, Usage()).add(u)

    def total(self) -> Usage:
        t = Usage()
        for u in self.snapshot().values():
            t.add(u)
        return t

    def reset(self) -> None:
        with self._lock:
            self._by_stage.clear()


#: The process-wide book every LLM client records into.
USAGE = UsageBook()


def current_stage() -> str:
    return _current_stage.get()


@contextlib.contextmanager
def stage_scope(name: str) -> Iterator[None]:
    """Attribute LLM usage inside the block (and tasks it spawns) to stage ``name``."""
    token = _current_stage.set(name)
    try:
        yield
    finally:
        _current_stage.reset(token)


@contextlib.contextmanager
def record_scope() -> Iterator[Usage]:
    """Also count the current stage's usage inside the block (and the tasks it spawns)
    into the yielded :class:`Usage`: the usage of one record, exact under concurrency."""
    acc = Usage()
    token = _current_record.set((_current_stage.get(), acc))
    try:
        yield acc
    finally:
        _current_record.reset(token)


def usage_delta(before: dict[str, Usage], after: dict[str, Usage]) -> dict[str, Usage]:
    """Per-stage difference between two snapshots (stages with no change omitted)."""
    out: dict[str, Usage] = {}
    for stage, a in after.items():
        b = before.get(stage, Usage())
        d = Usage(**{f.name: getattr(a, f.name) - getattr(b, f.name) for f in fields(Usage)})
        if any(getattr(d, f.name) for f in fields(Usage)):
            out[stage] = d
    return out
