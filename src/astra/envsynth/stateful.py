"""Stateful environments from the user's tools and tasks (``astra envs stateful``).

A task whose plan runs on a stateful Python tool class becomes a
:class:`~astra.envs.stateful.StatefulEnvironment` (docs/stateful.md):

1. the server's initial state is snapshotted (two fresh instances must give the same
   snapshot, else ``nondeterministic_initial_state``; a state that cannot be snapshotted is
   rejected ``state_<reason>``: ``state_socket``, ``state_unpicklable``, ... see
   :data:`astra.envs.state.STATE_REASONS`);
2. the gold plan runs **twice** from that state (the second run after a reset): the
   snapshot after the reset must equal the initial one (``reset_leaks``), and the two runs
   must return the same results and leave the same diff (``nondeterministic``);
3. the verifier: a non-empty diff makes a **write** task (the diff is the required change);
   an empty one a **read** task. Either way the final answer must state one fact: the field
   the request asks for, else for a write the created record's id or a changed field's new
   value (the request is then completed with "Tell me the …"), for a read the only value of
   the result (``no_answer_fact``, ``several_facts`` when the request asks for more than one
   field in a way that cannot be narrowed to one, ``fact_in_request`` when the request
   already states it);
4. integrity: the gold plan through the runtime earns 1, doing nothing 0, every exploit of
   :mod:`astra.envs.exploits` plus the state exploits here (:data:`STATE_EXPLOITS`) at most
   0.05 (``gold_below_one``, ``do_nothing_pays``, ``exploitable``), and a reset after an
   episode restores the initial snapshot (``reset_leaks``).

Every rejection is counted by reason in the manifest (:func:`manifest`).
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
