"""Agreement of the task gates with a hand-labelled set of tasks.

``tests/fixtures/gates/labelled_tasks.jsonl``: tasks labelled ``sensible`` true/false with
a reason, read by hand. A gate keeps a task when no gate of :mod:`astra.tasks.gates`
fails and every score passes the default thresholds. Prints accuracy, precision and
recall of "kept" against "sensible", and the reasons of the disagreements.

    python benchmarks/gate_agreement.py                        # offline gates + offline scores
    python benchmarks/gate_agreement.py --llm openai:MODEL --base-url URL   # + the LLM scorer
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from astra.tasks.gates import task_gates
from astra.tasks.score import LLMScorer, Thresholds, offline_scores
from astra.types import Task

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gates" / "labelled_tasks.jsonl"


def report(name: str, rows: list[dict], kept: list[bool | None]) -> None:
    tp = sum(1 for r, k in zip(rows, kept, strict=True) if k and r["sensible"])
    fp = sum(1 for r, k in zip(rows, kept, strict=True) if k and not r["sensible"])
    fn = sum(1 for r, k in zip(rows, kept, strict=True) if k is False and r["sensible"])
    failed = sum(1 for k in kept if k is None)
    agree = sum(1 for r, k in zip(rows, kept, strict=True) if k is not None and k == r["sensible"])
    n = len(rows)
    print(f"| {name} | {n} | {agree / n:.0%} | {tp / (tp + fp) if tp + fp else 0:.0%} | "
          f"{tp / (tp + fn) if tp + fn else 0:.0%} | {failed} |")
    for r, k in zip(rows, kept, strict=True):
        if k is not None and k != r["sensible"]:
            print(f"|   disagrees: {r['task']['id']} | labelled {r['sensible']} ({r['reason']}) | kept {k} | | | |")


async def llm_kept(rows: list[dict], spec: str, base_url: str | None, with_gates: bool) -> list[bool | None]:
    from astra.llm import LLMSettings, make_client
    from astra.llm.errors import LLMError

    client = make_client(LLMSettings(spec=spec, base_url=base_url))
    scorer = LLMScorer(client)

    async def one(r: dict) -> bool | None:
        task = Task.model_validate(r["task"])
        try:
            scores = await scorer.score(task)
        except LLMError:
            return None  # a failed judgement is counted as a failure, never as a pass
        return not Thresholds().failures(scores) and not (with_gates and task_gates(task))

    return list(await asyncio.gather(*(one(r) for r in rows)))  # the client bounds the concurrency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labelled", type=Path, default=LABELLED)
    ap.add_argument("--llm", default=None, help="an LLM spec (openai:MODEL, embedded:PATH) to calibrate its scorer")
    ap.add_argument("--base-url", default=None)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.labelled.read_text().splitlines() if line.strip()]
    print("| gate | tasks | agreement | precision (kept & sensible / kept) | recall (of sensible) | failed |")
    print("|---|---:|---:|---:|---:|---:|")
    tasks = [Task.model_validate(r["task"]) for r in rows]
    report("offline gates only", rows, [not task_gates(t) for t in tasks])
    report("offline scores only", rows, [not Thresholds().failures(offline_scores(t)) for t in tasks])
    report("offline gates + scores", rows,
           [not task_gates(t) and not Thresholds().failures(offline_scores(t)) for t in tasks])
    if args.llm:
        report(f"llm scorer ({args.llm})", rows, asyncio.run(llm_kept(rows, args.llm, args.base_url, False)))
        report(f"llm scorer + gates ({args.llm})", rows, asyncio.run(llm_kept(rows, args.llm, args.base_url, True)))


if __name__ == "__main__":
    main()
