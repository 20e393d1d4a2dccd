"""Ray executor: the same stage object, processed by a pool of Ray actors.

The driver starts ``workers`` async actors, each created with the stage object (Ray
pickles it with cloudpickle); each calls ``stage.setup()`` once, then runs
``stage.process`` on the records it is sent, up to ``max_concurrency`` at a time in its
own persistent event loop (so clients built in ``setup`` stay bound to one loop). Every
reply carries the worker's LLM usage recorded since its previous reply; the driver merges
it into :data:`astra.llm.usage.USAGE`, and does all file writes itself. This module is
imported only when ``executor="ray"``.
"""

from __future__ import annotations

import math
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from astra.errors import ConfigError
from astra.llm.usage import USAGE, stage_scope, usage_delta
from astra.pipeline.outcome import Outcome, failure, process_one
from astra.pipeline.stage import Stage
from astra.types import Record


class StageWorker:
    """One Ray actor: a set-up stage and the usage it has not reported yet."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self._reported = USAGE.snapshot()
        with stage_scope(stage.name):
            stage.setup()

    def ready(self) -> bool:
        return True

    def _take_usage(self) -> dict[str, dict[str, Any]]:
        now = USAGE.snapshot()
        delta = usage_delta(self._reported, now)
        self._reported = now
        return {k: v.to_dict() | {"seconds": v.seconds} for k, v in delta.items()}

    async def run(self, key: str, record: Record) -> Outcome:
        out = await process_one(self.stage, key, record)
        out.usage = self._take_usage()  # no await in between: each delta is reported once
        return out

    async def flush_usage(self) -> dict[str, dict[str, Any]]:
        return self._take_usage()


class RayExecutor:
    def __init__(self, stage: Stage, concurrency: int, *, address: str | None = None,
                 workers: int | None = None, actor_options: dict[str, Any] | None = None) -> None:
        self.stage = stage
        self.concurrency = concurrency
        self.address = address
        self.workers = workers
        self.actor_options = {"num_cpus": 1, "max_restarts": 2, **(actor_options or {})}
        self.actors: list[Any] = []

    async def start(self) -> None:
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True)
        n = self.workers
        if n is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            n = max(1, min(self.concurrency, cpus))
        n = max(1, min(n, self.concurrency))
        per_actor = math.ceil(self.concurrency / n)
        cls = ray.remote(StageWorker)
        # the stage goes by value with each actor's creation task, so a restarted actor can
        # rebuild it (a ray.put reference could be gone by then)
        self.actors = [cls.options(max_concurrency=per_actor, **self.actor_options).remote(self.stage)
                       for _ in range(n)]
        try:
            for a in self.actors:
                await a.ready.remote()
        except RayError as e:
            await self.close()
            raise ConfigError(f"Ray workers could not start stage {self.stage.name!r} "
                              f"(is its module importable on the workers?): {e}") from e

    async def run(self, slot: int, key: str, record: Record) -> Outcome:
        actor = self.actors[slot % len(self.actors)]
        try:
            out: Outcome = await actor.run.remote(key, record)
        except RayActorError as e:  # the worker died on this record: count it failed
            return failure(key, e)
        if out.usage:
            USAGE.merge(out.usage)
            out.usage = None
        return out

    async def close(self) -> None:
        for a in self.actors:
            try:
                USAGE.merge(await a.flush_usage.remote())
            except RayError:
                pass
            ray.kill(a)
        self.actors = []
