"""Stateful environment throughput: resets per second, steps per second with a state
snapshot after every step, and the reset time of a 1,000-row state (goal: <= 5 ms).

``--counts SETS`` instead makes stateful environments from the tasks the offline generator
writes for each tool set (``sample``: the bundled Python servers; ``tau2``: tau2-bench's
retail and airline toolkits; ``bfcl-classes``: BFCL's multi-turn classes with their first
scenario, see benchmarks/foreign_toolsets.py; ``sample-domains``: the sample's doc-only
servers made into SQLite domains by ``astra envs domains``) and prints the kept counts and the rejection
reasons per set.

The 1,000-row state is the ``Ledger`` class below: 1,000 account records of eight fields
each; a step is one write (``deposit``) followed by a canonical snapshot of the whole state
(what :meth:`StatefulSession.reward` does once per episode); a reset restores the initial
state in place. The same figures are printed for the bundled shop server (25 rows).

    PYTHONPATH=src:. python benchmarks/stateful_envs.py [--rows 1000] [--repeat 200]
    PYTHONPATH=src:. python benchmarks/stateful_envs.py --counts sample,tau2,bfcl-classes [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

ROWS = 1000


class Ledger:
    """Accounts of a bank (a benchmark fixture with ``ROWS`` records)."""

    def __init__(self) -> None:
        self._accounts = [{"account_id": f"A-{i:05d}", "owner": f"Owner {i}", "kind": "checking" if i % 2 else "savings",
                           "balance": round(100.0 + i * 1.25, 2), "currency": "USD", "open": True,
                           "opened_on": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}", "limit": 500 + i % 7 * 100}
                          for i in range(ROWS)]
        self._next_tx = 1

    def deposit(self, account_id: str, amount: float) -> dict:
        """Deposit money.

        Args:
            account_id: The account, like A-00001.
            amount: How much.
        """
        for a in self._accounts:
            if a["account_id"] == account_id:
                a["balance"] = round(a["balance"] + amount, 2)
                self._next_tx += 1
                return {"account_id": account_id, "balance": a["balance"]}
        raise ValueError(f"no account {account_id!r}")


def _env(target: str, tool: str, args: dict[str, Any]) -> Any:
    from astra.envs.stateful import StatefulEnvironment, backend_for
    from astra.tools.pyfunc import server_from_target
    from astra.types import CallInfo, EnvTool, QAInstance, SubTask

    server = server_from_target(target)
    b = backend_for(CallInfo(kind="python", target=target))
    inst = QAInstance(id="bench", domain="bench", scenario="single_hop", question="q", answer="x",
                      sub_tasks=[SubTask(id="s1", sub_question="q", sub_answer="x")])
    return StatefulEnvironment(id="bench", instance=inst, tools=[EnvTool(tool=t, code="") for t in server.tools],
                               server=server.name, backend=server.call, initial_digest=b.initial.digest,
                               initial_rows=b.initial.rows,
                               verifier={"mode": "write", "answer": "x",
                                         "required": [{"op": "set", "path": ["_next_tx"], "old": 1, "new": 2}]})


def measure(target: str, tool: str, args: dict[str, Any], repeat: int) -> dict[str, Any]:
    from astra.envs.runtime import EnvSession

    env = _env(target, tool, args)
    s = EnvSession(env, max_turns=10**6, system_prompt="")
    s.reset()
    call = [{"id": "c", "function": {"name": tool, "arguments": json.dumps(args)}}]
    resets, steps, snaps = [], [], []
    for _ in range(repeat):
        asyncio.run(s.astep(call))  # make the state dirty
        t0 = time.perf_counter()
        s.reset()
        resets.append(time.perf_counter() - t0)
    loop = asyncio.new_event_loop()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            loop.run_until_complete(s.astep(call))
            t1 = time.perf_counter()
            s.snapshot()
            t2 = time.perf_counter()
            steps.append(t2 - t0)
            snaps.append(t2 - t1)
    finally:
        loop.close()
    t0 = time.perf_counter()
    s.finish("x")
    info = s.reward()
    reward_s = time.perf_counter() - t0
    return {"target": target, "rows": env.initial_rows, "reset_ms_median": round(statistics.median(resets) * 1e3, 3),
            "reset_ms_p90": round(sorted(resets)[int(0.9 * len(resets))] * 1e3, 3),
            "resets_per_s": round(1 / statistics.mean(resets), 1),
            "steps_per_s_with_snapshot": round(1 / statistics.mean(steps), 1),
            "snapshot_ms_median": round(statistics.median(snaps) * 1e3, 3),
            "reward_ms": round(reward_s * 1e3, 2), "reward_changes": info.matched + info.extra}


def tasks_for(servers: list[Any], *, walks: int, max_chains: int, seed: int) -> list[Any]:
    """Offline tasks of every server (chains from graph walks, plus server-mode tasks) that
    pass the task gates and scores, as benchmarks/foreign_tools.py makes them."""
    from astra.graph import build_graph
    from astra.graph.graph import to_networkx
    from astra.graph.verify import resolve_args
    from astra.graph.walks import random_walks, walk_chains
    from astra.tasks.gates import task_gates
    from astra.tasks.generate import OfflineGenerator
    from astra.tasks.score import Thresholds, offline_scores

    gen = OfflineGenerator(seed=seed)
    kept = []
    for server in servers:
        g = build_graph(server)
        res = random_walks(to_networkx(g), walks=walks, min_len=2, max_len=4, seed=seed, max_chains=max_chains,
                           start="entry") if g.edges else None
        tasks = []
        for ch in walk_chains(server.name, res) if res else []:
            a = resolve_args(server, ch.tools)
            if a.ok:
                got, _ = gen.for_chain(server, ch.model_copy(update={"checks": {"args": a.record}}), n=1)
                tasks += got
        got, _ = gen.for_server(server, n=4)
        tasks += got
        kept += [t for t in tasks if not task_gates(t)
                 and not Thresholds().failures(offline_scores(t, [x.name for x in server.tools]))]
    return kept


def counts(sets: list[str], out: str | None, *, walks: int, max_chains: int, seed: int) -> None:
    import sys
    from pathlib import Path

    from astra.envsynth.stateful import make_environments, manifest, write_outcomes
    from astra.tools.ingest import ingest

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    toolsets = here / "foreign_toolsets.py"
    srcs = {"sample": ["sample"], "tau2": [f"{toolsets}:Tau2Retail", f"{toolsets}:Tau2Airline"]}
    if "bfcl-classes" in sets:
        from foreign_toolsets import BFCL_CLASSES

        srcs["bfcl-classes"] = [f"{toolsets}:{c}" for c in BFCL_CLASSES]
    for name in sets:
        t0 = time.perf_counter()
        if name == "sample-domains":  # the sample's doc-only servers made stateful (astra envs domains)
            import tempfile

            from astra.envsynth.stateful_domains import synthesize_domains

            docs = [s for s in ingest(["sample"]).servers if s.call.kind == "doc_only"]
            where = Path(out) / name / "domains" if out else Path(tempfile.mkdtemp(prefix="astra-domains-"))
            _, servers = asyncio.run(synthesize_domains(docs, where))
        else:
            servers = [s for s in ingest(srcs[name]).servers if s.call.kind == "python"]
        tasks = tasks_for(servers, walks=walks, max_chains=max_chains, seed=seed)
        outcomes = asyncio.run(make_environments(tasks, servers))
        m = write_outcomes(outcomes, Path(out) / name) if out else manifest(outcomes)
        print(json.dumps({"set": name, "servers": len(servers), "tasks": m["tasks"], "kept": m["kept"],
                          "kept_by_mode": m["kept_by_mode"], "rejected": m["rejected"],
                          "by_server": {k: {kk: vv for kk, vv in v.items()} for k, v in m["by_server"].items()},
                          "examples": m["examples"], "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


def main() -> None:
    global ROWS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--counts", default=None, help="comma list of tool sets: sample, tau2, bfcl-classes, sample-domains")
    ap.add_argument("--out", default=None, help="with --counts: write the environments under OUT/<set>/")
    ap.add_argument("--walks", type=int, default=200)
    ap.add_argument("--max-chains", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.counts:
        counts([s.strip() for s in args.counts.split(",") if s.strip()], args.out, walks=args.walks,
               max_chains=args.max_chains, seed=args.seed)
        return
    ROWS = args.rows
    rows = [measure("benchmarks.stateful_envs:Ledger", "deposit", {"account_id": "A-00007", "amount": 5.0},
                    args.repeat),
            measure("astra.data.servers.shop:ShopServer", "add_to_cart", {"product_id": "P-1003", "quantity": 1},
                    args.repeat)]
    for r in rows:
        print(json.dumps(r))
    big = rows[0]
    print(f"reset of a {big['rows']}-row state: {big['reset_ms_median']} ms median (goal <= 5 ms): "
          f"{'ok' if big['reset_ms_median'] <= 5 else 'over'}")


if __name__ == "__main__":
    main()
