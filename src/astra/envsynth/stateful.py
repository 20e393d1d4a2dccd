"""Stateful environments from the user's tools and tasks (``astra envs stateful``).

Each task whose plan runs on a stateful Python tool class is made into a
:class:`~astra.envs.stateful.StatefulEnvironment` by :func:`make_environment`: the verifier
is derived from two runs of the gold plan and the environment is checked by the integrity
suite, both in :mod:`astra.envs.stateful_verify` (which ``astra envs verify`` re-runs; the
steps and every rejection reason are described there and in docs/stateful.md). This module
orchestrates that over a task file and writes the bundle, the rejected tasks and the counts
per reason (:func:`manifest`).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astra.envs.exploits import EXPLOIT_MAX
from astra.envs.stateful import StatefulEnvironment
from astra.envs.stateful_verify import REASONS, Rejected, check_integrity, derive, narrow_closing
from astra.types import Task, ToolServer


@dataclass
class Outcome:
    """What became of one task."""

    task_id: str
    server: str
    env: StatefulEnvironment | None = None
    reason: str | None = None
    detail: str = ""
    seconds: float = 0.0
    probe: dict[str, Any] = field(default_factory=dict)


async def make_environment(task: Task, server: ToolServer | None, *, probe: bool = True,
                           pool: Any = None) -> Outcome:
    t0 = time.perf_counter()
    out = Outcome(task_id=task.id, server=task.server)
    try:
        if server is None:
            raise Rejected("unknown_server", f"no server named {task.server!r} in the tools")
        env = derive(task, server)
        if probe:
            out.probe = await check_integrity(env, pool=pool)
            env.verification = {"ok": True, "mode": env.mode, "runs": 2, "reset_ok": True,
                                "exploit_max": EXPLOIT_MAX, "probe": out.probe}
        else:
            env.verification = {"ok": False, "mode": env.mode, "runs": 2, "probe": "skipped"}
        out.env = env
    except Rejected as e:
        out.reason, out.detail = e.reason, e.detail
    out.seconds = time.perf_counter() - t0
    return out


def manifest(outcomes: list[Outcome]) -> dict[str, Any]:
    """Counts: kept (by mode and server), rejected by reason (and by server)."""
    kept = [o for o in outcomes if o.env is not None]
    rej = Counter(o.reason for o in outcomes if o.reason)
    by_server: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        row = by_server.setdefault(o.server, {"tasks": 0, "kept": 0, "write": 0, "read": 0, "rejected": {}})
        row["tasks"] += 1
        if o.env is not None:
            row["kept"] += 1
            row[o.env.mode] += 1
        elif o.reason:
            row["rejected"][o.reason] = row["rejected"].get(o.reason, 0) + 1
    return {"tasks": len(outcomes), "kept": len(kept),
            "kept_by_mode": dict(Counter(o.env.mode for o in kept if o.env is not None)),
            "rejected": dict(sorted(rej.items())), "reasons": list(REASONS), "by_server": by_server,
            "examples": {r: next(o.detail for o in outcomes if o.reason == r) for r in rej},
            "seconds": round(sum(o.seconds for o in outcomes), 2)}


async def make_environments(tasks: list[Task], servers: list[ToolServer], *, probe: bool = True,
                            pool: Any = None, on_outcome: Any = None) -> list[Outcome]:
    by_name = {s.name: s for s in servers}
    outs = []
    for t in tasks:
        o = await make_environment(t, by_name.get(t.server), probe=probe, pool=pool)
        if on_outcome is not None:
            on_outcome(o)
        outs.append(o)
    return outs


def write_outcomes(outcomes: list[Outcome], output: Path) -> dict[str, Any]:
    """Write every kept environment, ``index.jsonl``, ``rejected.jsonl`` and ``index.manifest.json``."""
    from astra.envs.bundle import INDEX_NAME, EnvIndexEntry, write_environment
    from astra.io import write_json

    output.mkdir(parents=True, exist_ok=True)
    lines, rejected = [], []
    for o in outcomes:
        if o.env is not None:
            p = write_environment(o.env, output)
            lines.append(EnvIndexEntry.of(o.env, p.name).model_dump_json())
        else:
            rejected.append(json.dumps({"task_id": o.task_id, "server": o.server, "reason": o.reason,
                                        "detail": o.detail}, ensure_ascii=False))
    tmp = output / (INDEX_NAME + ".tmp")
    tmp.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    tmp.replace(output / INDEX_NAME)
    tmp = output / "rejected.jsonl.tmp"
    tmp.write_text("".join(x + "\n" for x in rejected), encoding="utf-8")
    tmp.replace(output / "rejected.jsonl")
    m = manifest(outcomes)
    write_json(output / "index.manifest.json", m)
    return m


__all__ = ["Outcome", "make_environment", "make_environments", "manifest", "narrow_closing", "write_outcomes"]
