"""Sandboxed tool calls of synthesized environments through the RL runtime.

    .venv/bin/python benchmarks/env_calls.py [--envs 12] [--fresh-calls 20] [--sessions 48] [--pool-size 2]

Environments are synthesized offline (templates from the knowledge worlds, verified in the
sandbox), then their gold calls are replayed through :class:`astra.envs.EnvSession`
(``astep``: JSON arguments parsed, the tool's code run in a fresh sandbox unit, the output
judged by typed matching). Latency is measured per ``astep`` end to end. Rows:

* warm pool, 1 call/step:    one call at a time, units forked from the warm fork server
* fresh process, 1 call/step: a pool without fork server and without pre-started units,
                              so every call starts and locks down a new interpreter
* warm pool, N sessions:     N sessions stepping concurrently, each sending all its gold
                              calls in one step (latency = the whole step): sustained
                              calls/s on this machine's cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time

from astra.envs import EnvSession
from astra.envsynth.compose import compose
from astra.envsynth.synth import synthesize_environment
from astra.sandbox import SandboxPool, parse_call_statement


def gold_calls(env):
    out = []
    for t in env.tools:
        for sid, stmt in t.calls.items():
            c = parse_call_statement(stmt)
            out.append({"id": sid, "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.kwargs)}})
    return out


def stats(lat: list[float], wall: float, n: int) -> tuple[float, float, float]:
    lat = sorted(lat)
    p90 = lat[min(len(lat) - 1, int(round(0.9 * (len(lat) - 1))))]
    return statistics.median(lat) * 1000, p90 * 1000, n / wall


async def one_by_one(envs, pool, limit: int | None = None) -> tuple[list[float], float, int]:
    lat: list[float] = []
    t0 = time.perf_counter()
    n = 0
    for env in envs:
        s = EnvSession(env, pool=pool, max_turns=100)
        s.reset()
        for c in gold_calls(env):
            if limit is not None and n >= limit:
                return lat, time.perf_counter() - t0, n
            t = time.perf_counter()
            await s.astep([c])
            lat.append(time.perf_counter() - t)
            n += 1
        assert len(s.solved) == sum(x.needs_tool for x in env.instance.sub_tasks), env.id
    return lat, time.perf_counter() - t0, n


async def concurrent(envs, pool, sessions: int) -> tuple[list[float], float, int]:
    lat: list[float] = []
    work = [envs[i % len(envs)] for i in range(sessions)]

    async def run(env) -> int:
        s = EnvSession(env, pool=pool, max_turns=100)
        s.reset()
        calls = gold_calls(env)
        t = time.perf_counter()
        await s.astep(calls)
        lat.append(time.perf_counter() - t)
        return len(calls)

    t0 = time.perf_counter()
    n = sum(await asyncio.gather(*(run(e) for e in work)))
    return lat, time.perf_counter() - t0, n


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--envs", type=int, default=12)
    ap.add_argument("--fresh-calls", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=48)
    ap.add_argument("--pool-size", type=int, default=2)
    args = ap.parse_args()

    warm = SandboxPool(size=args.pool_size)
    t = time.perf_counter()
    insts = compose(n=1, seed=0)[: args.envs]
    envs = [await synthesize_environment(i, pool=warm) for i in insts]
    synth_s = time.perf_counter() - t
    n_calls = sum(len(gold_calls(e)) for e in envs)
    print(f"{platform.machine()} {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f}; "
          f"{len(envs)} environments ({n_calls} gold calls) synthesized + verified in {synth_s:.1f} s")
    warm.warm()

    rows = []
    lat, wall, n = await one_by_one(envs, warm)
    rows.append(("warm pool, 1 call/step", n, 1.0, *stats(lat, wall, n)))

    fresh = SandboxPool(size=0, use_zygote=False)
    lat, wall, n = await one_by_one(envs, fresh, limit=args.fresh_calls)
    rows.append(("fresh process, 1 call/step", n, 1.0, *stats(lat, wall, n)))
    fresh.close()

    warm.warm()
    lat, wall, n = await concurrent(envs, warm, args.sessions)
    rows.append((f"warm pool, {args.sessions} concurrent sessions", n, n / len(lat), *stats(lat, wall, n)))
    warm.close()

    print(f"| path (pool size {args.pool_size}) | calls | calls/step | median ms/step | p90 ms/step | calls/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, per, med, p90, rate in rows:
        print(f"| {name} | {n} | {per:.1f} | {med:.1f} | {p90:.1f} | {rate:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
