"""Executors: where the records of a run are processed. ``local`` runs ``stage.process``
in the driver's event loop; ``ray`` on a pool of Ray actors
(:mod:`astra.pipeline.ray_executor`, imported only then). Either has ``start()``,
``run(slot, key, record) -> Outcome`` and ``close()``."""

from __future__ import annotations

from typing import Any, Literal

from astra.llm.usage import stage_scope
from astra.pipeline.outcome import Outcome, process_one
from astra.pipeline.stage import Stage
from astra.types import Record

Executor = Literal["local", "ray"]


class LocalExecutor:
    """Processes records in the driver's event loop (``concurrency`` workers share it)."""

    def __init__(self, stage: Stage, concurrency: int) -> None:
        self.stage = stage

    async def start(self) -> None:
        with stage_scope(self.stage.name):
            self.stage.setup()

    async def run(self, slot: int, key: str, record: Record) -> Outcome:
        return await process_one(self.stage, key, record)

    async def close(self) -> None:
        return None


def make_executor(kind: str, stage: Stage, concurrency: int, *, ray_address: str | None = None,
                  ray_workers: int | None = None, ray_actor_options: dict[str, Any] | None = None) -> Any:
    """The executor ``kind`` (``local`` or ``ray``) for ``stage``."""
    if kind == "ray":
        from astra.pipeline.ray_executor import RayExecutor

        return RayExecutor(stage, concurrency, address=ray_address, workers=ray_workers,
                           actor_options=ray_actor_options)
    return LocalExecutor(stage, concurrency)
