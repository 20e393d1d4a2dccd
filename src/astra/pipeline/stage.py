"""The stage contract: a mapping from input records to output records, 0..n each.

A stage is a small picklable object (Ray ships it to workers with cloudpickle): keep only
settings on it in ``__init__`` and build anything heavy (LLM clients, models, sandboxes)
in :meth:`Stage.setup`, which the runner calls once per process before processing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from astra.choices import comma_items
from astra.errors import ConfigError
from astra.types import Record, Rejection

In = TypeVar("In", bound=Record)
Out = TypeVar("Out", bound=Record)
T = TypeVar("T")


class StageResult(BaseModel):
    """What one input became: its outputs (0..n) and why anything was not kept."""

    outputs: list[Record] = Field(default_factory=list)
    rejections: list[Rejection] = Field(default_factory=list)

    @classmethod
    def accept(cls, *outputs: Record) -> StageResult:
        return cls(outputs=list(outputs))

    @classmethod
    def reject(cls, key: str, reason: str, detail: str = "") -> StageResult:
        return cls(rejections=[Rejection(key=key, reason=reason, detail=detail)])


class Stage(ABC, Generic[In, Out]):
    """One step of the data pipeline.

    Subclasses set ``name`` (e.g. ``"tasks.generate"``), ``input_model`` and
    ``output_model``, and implement :meth:`process`. Record keys must be stable across
    runs: resume skips inputs whose key the ledger already holds.
    """

    name: str = ""
    input_model: type[Record]
    output_model: type[Record]

    def key(self, record: In) -> str:
        """The stable key of an input record (default: ``record.record_key()``)."""
        return record.record_key()

    @abstractmethod
    async def process(self, record: In) -> StageResult:
        """Map one input to its outputs and rejections. Raising marks the input failed."""

    def setup(self) -> None:  # optional hook
        """Build heavy resources; called once per process (and per Ray worker) before
        processing. Runs inside ``stage_scope(self.name)``, so LLM usage counts."""

    def config(self) -> dict[str, Any]:
        """Settings recorded in the manifest (model, temperature, thresholds …)."""
        return {}

    def from_setup(self, value: T | None, detail: str = "") -> T:
        """``value``, something :meth:`setup` builds; while it is None, a
        :class:`~astra.errors.ConfigError` ``<name>: setup() was not called`` (+ ``detail``)."""
        if value is None:
            raise ConfigError(f"{self.name}: setup() was not called{detail}")
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def parse_selection(spec: str | Sequence[str], allowed: Sequence[str], what: str) -> list[str]:
    """The items of ``spec`` (a comma list, or a sequence) among ``allowed``, in the order of
    ``allowed``; a :class:`~astra.errors.ConfigError` naming ``what`` for an unknown one or none."""
    items = comma_items(spec)
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise ConfigError(f"unknown {what}(s) {bad or spec!r}; use a comma list of {', '.join(allowed)}")
    return [s for s in allowed if s in items]
