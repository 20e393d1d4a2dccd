"""Rollout throughput (trajectories per minute): the chain-executor teacher and the
embedded agent, through the same ``rollout`` stage the CLI runs.

    .venv/bin/python benchmarks/rollout_throughput.py [--chain-tasks 4] [--agent-tasks 4]
        [--max-turns 2] [--max-tokens 32] [--concurrency 4]

Tasks come from the offline task generator on the bundled Python servers (each one's plan
is dry-run solvable). The chain executor runs them with real tool calls; the embedded agent
(SmolLM2-135M on the CPU, no response cache) gets ``--agent-tasks`` of them with short turns.
Prints one line per agent; the machine's load average is printed too because the numbers
are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from astra.llm import LLMSettings
from astra.pipeline import run_stage
from astra.rollout import RolloutStage
from astra.tasks.generate import OfflineGenerator
from astra.tools.ingest import ingest


def tasks_for(servers, per_server: int, seed: int = 0):
    gen = OfflineGenerator(seed=seed)
    out = []
    for s in servers:
        if s.call.kind == "python":
            out += gen.for_server(s, n=per_server)[0]
    return out


def measure(stage: RolloutStage, tasks, concurrency: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        m = run_stage(stage, tasks, Path(d) / "t.jsonl", concurrency=concurrency, progress=False)
        return m.outputs, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chain-tasks", type=int, default=4, help="tasks per Python server for the chain executor")
    ap.add_argument("--agent-tasks", type=int, default=4, help="tasks for the embedded agent")
    ap.add_argument("--max-turns", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    servers = ingest(["sample"]).servers
    tasks = tasks_for(servers, args.chain_tasks)
    print(f"{platform.processor() or platform.machine()} · {os.cpu_count()} cpus · load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'agent':<16} {'tasks':>5} {'trajectories':>12} {'seconds':>8} {'traj/min':>9}")

    stage = RolloutStage(servers=servers)
    n, dt = measure(stage, tasks, args.concurrency)
    print(f"{'chain-executor':<16} {len(tasks):>5} {n:>12} {dt:>8.2f} {60 * n / dt:>9.1f}")

    agent_tasks = tasks[: args.agent_tasks]
    stage = RolloutStage(agent="embedded", agent_settings=LLMSettings(spec="embedded", cache=False),
                         servers=servers, max_turns=args.max_turns, max_tokens=args.max_tokens)
    stage.setup()
    stage._client.provider.loaded()  # model load is not rollout time
    n, dt = measure(stage, agent_tasks, args.concurrency)
    print(f"{'embedded':<16} {len(agent_tasks):>5} {n:>12} {dt:>8.2f} {60 * n / dt:>9.1f}"
          f"   (max_turns {args.max_turns}, max_tokens {args.max_tokens})")


if __name__ == "__main__":
    main()
