"""Gold demonstrations from environments: an SFT warm start for RL on held-out environments.

Every synthesized environment carries, per tool, the gold call statement of each sub-task
it serves (``EnvTool.calls``). :func:`gold_trajectory` replays them through an
:class:`~astra.envs.runtime.EnvSession` (tools executed in the sandbox, one assistant turn
per hop level, independent calls of a level in one turn), then answers with the
instance's answer, and keeps the conversation only when the session judged every
sub-task solved. :func:`write_demonstrations` writes them as the JSONL that
``astra train sft --data`` reads (``{"id", "messages", "tools"}``).

Used for the CPU demonstration in ``docs/training.md`` (SFT on environments disjoint from
the RL environments, so RL still has to generalize) and the slow SFT -> RL test. The
paper's SFT data comes from trajectory synthesis, not from these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from astra.llm.types import ToolCall


def gold_trajectory(env: Any, *, distractors: list[Any] | None = None, seed: int = 0,
                    pool: Any = None) -> dict[str, Any] | None:
    """The gold conversation of one environment, or None when replaying it fails."""
    from astra.envs.runtime import EnvSession
    from astra.sandbox import parse_call_statement

    subs = env.instance.sub_tasks
    session = EnvSession(env, max_turns=len(subs) + 1, distractors=distractors, pool=pool, seed=seed)
    messages, tools = session.reset()
    stmt_of: dict[str, tuple[str, str]] = {}
    for t in env.tools:
        for sid, stmt in t.calls.items():
            stmt_of[sid] = (t.tool.name, stmt)
    levels = sorted({s.hop_level for s in subs if s.needs_tool})
    n = 0
    for level in levels:
        calls = []
        for s in subs:
            if not s.needs_tool or s.hop_level != level or s.id not in stmt_of:
                continue
            try:
                parsed = parse_call_statement(stmt_of[s.id][1])
            except Exception:
                return None
            if parsed.args:
                return None
            calls.append(ToolCall(id=f"call_{n}", name=parsed.name,
                                  arguments=json.dumps(parsed.kwargs, ensure_ascii=False)))
            n += 1
        if not calls or session.done:
            continue
        results = session.step(calls)
        messages.append({"role": "assistant", "content": None, "tool_calls": [c.openai() for c in calls]})
        messages.extend(results)
    answer = env.instance.answer
    messages.append({"role": "assistant", "content": f"The answer is {answer}."})
    if not session.finished:
        session.finish(messages[-1]["content"])
    info = session.reward()
    if info.recall < 1.0:
        return None
    for m in messages:
        for tc in m.get("tool_calls") or []:
            tc["function"]["arguments"] = str(tc["function"]["arguments"])
    return {"id": f"gold.{env.id}", "messages": messages, "tools": tools, "reward": info.reward}


def write_demonstrations(envs: Sequence[Any], path: str | Path, *, distractor_sampler: Any = None,
                         seed: int = 0) -> dict[str, int]:
    """Write gold demonstrations of ``envs`` as SFT JSONL; returns counts."""
    from astra.io import write_atomic

    kept = dropped = 0
    lines = []
    for env in envs:
        d = distractor_sampler.sample(env) if distractor_sampler is not None else None
        rec = gold_trajectory(env, distractors=d, seed=seed)
        if rec is None:
            dropped += 1
            continue
        rec["tools"] = json.dumps(rec["tools"], ensure_ascii=False)
        lines.append(json.dumps(rec, ensure_ascii=False) + "\n")
        kept += 1
    write_atomic(Path(path), "".join(lines))  # the file appears whole or not at all
    return {"kept": kept, "dropped": dropped}
