"""Processing one record, the same under every executor: :func:`process_one` runs
``stage.process`` and serializes what it returned, or the failure, as an :class:`Outcome`
for the driver to write."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from astra.llm.usage import Usage, record_scope, stage_scope
from astra.pipeline.failures import failure_kind
from astra.pipeline.stage import Stage, StageResult
from astra.types import Record, Rejection

log = logging.getLogger("astra.pipeline")



@dataclass
class Outcome:
    """The serialized result of one input, ready for the driver to write."""

    key: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    out_keys: list[str | None] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    failure: str | None = None  # the kind of a failure: "endpoint" or "error"
    seconds: float = 0.0
    record_usage: dict[str, Any] | None = None  # the LLM usage of this record's processing
    usage: dict[str, dict[str, Any]] | None = None  # usage deltas from a remote worker

    def ledger_entry(self) -> dict[str, Any]:
        entry = {
            "key": self.key,
            "n_outputs": len(self.outputs),
            "out_keys": self.out_keys,
            "rejections": self.rejections,
            "error": self.error,
            "error_type": self.error_type,
            "seconds": round(self.seconds, 3),
        }
        if self.failure:
            entry["failure"] = self.failure
        if self.record_usage:
            entry["usage"] = self.record_usage
        return entry


def failure(key: str, exc: BaseException, seconds: float = 0.0) -> Outcome:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return Outcome(key=key, error=f"{name}: {msg}" if msg else name, error_type=name,
                   failure=failure_kind(exc), seconds=seconds)


def usage_dict(u: Usage, *, exact_seconds: bool = False) -> dict[str, Any] | None:
    """The non-zero fields of ``u`` (None when all are zero); ``exact_seconds`` keeps the
    seconds unrounded (per-record lines, so that their sum matches the stage's)."""
    d = u.to_dict() | ({"seconds": u.seconds} if exact_seconds else {})
    d = {k: v for k, v in d.items() if v}
    return d or None


def usage_minus(a: Usage, b: Usage) -> Usage:
    out = Usage(**{k: getattr(a, k) - getattr(b, k) for k in Usage.__dataclass_fields__})
    out.seconds = round(out.seconds, 6)
    return out


def _out_key(rec: Record) -> str | None:
    try:
        return rec.record_key()
    except Exception:  # a model without a key is still a valid output
        return None


async def process_one(stage: Stage, key: str, record: Record) -> Outcome:
    """Run ``stage.process`` on one record under ``stage_scope`` and a per-record
    ``record_scope`` (its usage goes with the outcome) and serialize the result.
    Exceptions become a failed :class:`Outcome`; cancellation propagates."""
    t0 = time.perf_counter()
    with stage_scope(stage.name), record_scope() as used:
        out = await _process(stage, key, record, t0)
    out.record_usage = usage_dict(used, exact_seconds=True)
    return out


async def _process(stage: Stage, key: str, record: Record, t0: float) -> Outcome:
    try:
        result = await stage.process(record)
        if not isinstance(result, StageResult):
            raise TypeError(f"{type(stage).__name__}.process returned {type(result).__name__}, "
                            "expected StageResult")
        outputs, out_keys = [], []
        for o in result.outputs:
            if not isinstance(o, stage.output_model):
                raise TypeError(f"{type(stage).__name__} produced a {type(o).__name__}, "
                                f"expected {stage.output_model.__name__}")
            outputs.append(o.model_dump(mode="json"))
            out_keys.append(_out_key(o))
        rejections = [
            (r if isinstance(r, Rejection) else Rejection.model_validate(r)).model_dump(mode="json")
            for r in result.rejections
        ]
    except Exception as e:  # recorded in the ledger, the run goes on
        log.warning("%s: input %r failed: %s: %s", stage.name, key, type(e).__name__, e)
        log.debug("traceback", exc_info=True)
        return failure(key, e, time.perf_counter() - t0)
    return Outcome(key=key, outputs=outputs, out_keys=out_keys, rejections=rejections,
                   seconds=time.perf_counter() - t0)


