"""Dummy stages for the pipeline tests (importable by subprocesses and Ray workers).

``python -m tests.pipeline_stages IN.jsonl OUT.jsonl [--sleep S] [--concurrency N]`` runs
:class:`DummyStage` (used by the SIGKILL test).
"""

from __future__ import annotations

import asyncio
import sys

from astra.llm.usage import USAGE
from astra.pipeline import Stage, StageResult, run_stage
from astra.types import Record, Rejection


class Item(Record):
    id: str
    n: int

    def record_key(self) -> str:
        return self.id


class Out(Record):
    id: str
    source: str
    value: int

    def record_key(self) -> str:
        return self.id


def make_items(count: int) -> list[Item]:
    return [Item(id=f"item-{i:04d}", n=i) for i in range(count)]


class DummyStage(Stage[Item, Out]):
    """n % 5 == 0: rejected ("too_small"); n % 5 == 1: 3 outputs and one rejected variant
    ("near_duplicate"); n % 7 == 3 (when ``fail``): raises; otherwise 1 output.
    Every record fakes one LLM call of 10 + n tokens."""

    name = "test.dummy"
    input_model = Item
    output_model = Out

    def __init__(self, sleep: float = 0.0, fail: bool = True) -> None:
        self.sleep = sleep
        self.fail = fail
        self._ready = False

    def setup(self) -> None:
        self._ready = True

    def config(self) -> dict:
        return {"sleep": self.sleep, "fail": self.fail}

    async def process(self, record: Item) -> StageResult:
        assert self._ready, "setup() was not called"
        if self.sleep:
            await asyncio.sleep(self.sleep)
        USAGE.record(calls=1, requests=1, prompt_tokens=10, completion_tokens=record.n)
        n = record.n
        if self.fail and n % 7 == 3:
            raise ValueError(f"boom on {record.id}")
        if n % 5 == 0:
            return StageResult.reject(record.id, "too_small", f"n={n}")
        if n % 5 == 1:
            outs = [Out(id=f"{record.id}/{j}", source=record.id, value=n * 10 + j) for j in range(3)]
            return StageResult(outputs=outs, rejections=[
                Rejection(key=f"{record.id}/3", reason="near_duplicate")])
        return StageResult.accept(Out(id=f"{record.id}/0", source=record.id, value=n * 10))


def expected_counts(items: list[Item], fail: bool = True) -> dict:
    acc = rej = failed = outs = 0
    for it in items:
        if fail and it.n % 7 == 3:
            failed += 1
        elif it.n % 5 == 0:
            rej += 1
        elif it.n % 5 == 1:
            acc += 1
            outs += 3
        else:
            acc += 1
            outs += 1
    return {"accepted": acc, "rejected": rej, "failed": failed, "outputs": outs}


def main(argv: list[str]) -> None:
    inp, out = argv[0], argv[1]
    opts = dict(zip(argv[2::2], argv[3::2], strict=True))
    stage = DummyStage(sleep=float(opts.get("--sleep", 0)))
    run_stage(stage, inp, out, concurrency=int(opts.get("--concurrency", 4)), progress=False,
              manifest_interval=0.2)


if __name__ == "__main__":
    main(sys.argv[1:])
