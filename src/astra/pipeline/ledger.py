"""The ledger of a stage output (``X.ledger.jsonl``): one line per finished input, the
latest line per input key deciding its state (see :mod:`astra.pipeline.runner` for the
resume protocol), and reading only the records a ledger accounts for."""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

from astra.errors import InputError
from astra.io import read_records
from astra.llm.usage import Usage
from astra.pipeline.failures import ENDPOINT, ENDPOINT_ERROR_NAMES, ERROR
from astra.pipeline.manifest import StagePaths

M = TypeVar("M", bound=BaseModel)


class _Entry(NamedTuple):
    n_outputs: int
    reasons: tuple[str, ...]
    error_type: str | None
    failure: str | None = None  # "endpoint" / "error" for a failed input

    @property
    def status(self) -> str:
        if self.error_type:
            return "failed"
        if self.n_outputs:
            return "accepted"
        return "rejected" if self.reasons else "empty"


def _entry(obj: dict[str, Any]) -> _Entry:
    err = obj.get("error")
    etype = obj.get("error_type") or (str(err).split(":", 1)[0] if err else None)
    reasons = tuple(str(r.get("reason", "?")) for r in obj.get("rejections") or ())
    kind = None
    if etype:  # ledgers written before the kind was recorded: judge by the exception name
        kind = obj.get("failure") or (ENDPOINT if etype in ENDPOINT_ERROR_NAMES else ERROR)
    return _Entry(int(obj.get("n_outputs", 0)), reasons, etype, kind)


class Ledger:
    """The latest ledger entry per input key, with running totals."""

    def __init__(self) -> None:
        self.latest: dict[str, _Entry] = {}
        self.output_lines = 0  # sum of n_outputs over every line = records in the output
        self.usage = Usage()  # LLM usage over every line
        self.status: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    @classmethod
    def load(cls, path: Path, *, tolerant: bool = False) -> Ledger:
        """Read a ledger. ``tolerant`` ignores an unparsable final line (a torn write)."""
        led = cls()
        if not path.exists():
            return led
        with path.open("rb") as f:
            lines = f.readlines()
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
                if not isinstance(obj, dict) or "key" not in obj:
                    raise ValueError("a ledger line needs a 'key'")
            except (ValueError, RecursionError) as e:
                if tolerant and i == len(lines):
                    break
                raise InputError(f"bad ledger line ({e})", path=str(path), line=i) from None
            led.apply(obj)
        return led

    def apply(self, obj: dict[str, Any]) -> None:
        if obj.get("usage"):
            self.usage.add(Usage.from_dict(obj["usage"]))
        if obj["key"] is None:  # a usage-only line
            return
        key = str(obj["key"])
        new = _entry(obj)
        old = self.latest.get(key)
        if old is not None:
            self._count(old, -1)
        self.latest[key] = new
        self._count(new, 1)
        self.output_lines += new.n_outputs

    def _count(self, e: _Entry, sign: int) -> None:
        self.status[e.status] += sign
        for r in e.reasons:
            self.reasons[r] += sign
        if e.error_type:
            self.errors[e.error_type] += sign
            self.failures[e.failure or ERROR] += sign

    def is_done(self, key: str, skip_failed: bool = False) -> bool:
        """Decided (accepted / rejected / empty), or failed and ``skip_failed``."""
        e = self.latest.get(key)
        return e is not None and (not e.error_type or skip_failed)

    def totals(self) -> dict[str, Any]:
        return {
            "done": len(self.latest),
            "accepted": self.status["accepted"],
            "rejected": self.status["rejected"],
            "empty": self.status["empty"],
            "failed": self.status["failed"],
            "outputs": self.output_lines,
            "rejections": sum(self.reasons.values()),
            "rejections_by_reason": {k: v for k, v in sorted(self.reasons.items()) if v > 0},
            "errors_by_type": {k: v for k, v in sorted(self.errors.items()) if v > 0},
            "failures_by_kind": {k: v for k, v in sorted(self.failures.items()) if v > 0},
        }


def truncate_outputs(paths: StagePaths, expected: int) -> int:
    """Cut the output file to its first ``expected`` lines; returns the lines dropped."""
    if not paths.output.exists():
        if expected:
            raise InputError(f"output file is missing but its ledger accounts for {expected} records; "
                             f"restore it or delete {paths.ledger.name} to start over",
                             path=str(paths.output))
        return 0
    kept = offset = dropped = 0
    with paths.output.open("rb") as f:
        for line in f:
            if kept < expected:
                kept += 1
                offset += len(line)
            else:
                dropped += 1
    if kept < expected:
        raise InputError(f"output has {kept} records but its ledger accounts for {expected}; it was "
                         f"edited or truncated: restore it or delete {paths.ledger.name} to start over",
                         path=str(paths.output))
    if dropped:
        os.truncate(paths.output, offset)  # one syscall: atomic against a kill
    return dropped


def read_outputs(path: str | os.PathLike[str], model: type[M]) -> Iterator[M]:
    """Read a stage's output records, validated as ``model``. With a ledger next to it,
    only the records the ledger accounts for are read (never orphans of a killed run)."""
    paths = StagePaths.of(path)
    if not paths.ledger.exists():
        yield from read_records(paths.output, model)
        return
    expected = Ledger.load(paths.ledger, tolerant=True).output_lines
    if not expected:
        return
    yield from itertools.islice(read_records(paths.output, model), expected)
