"""Decoding time of the embedded model under each OpenMP wait policy, with and without
another process on the cores (why the ``astra`` command sets ``OMP_WAIT_POLICY=PASSIVE``).

Each cell is a fresh process (the policy is read when torch loads its OpenMP runtime): 4
prompts of 900-1,200 random tokens, 32 greedy tokens each through
:class:`astra.train.rl_kvcache.KVCacheBatch`, 2 torch threads. "shared" runs one busy
process beside it (a pure-Python loop: one core taken, as by another job).

    PYTHONPATH=src .venv/bin/python benchmarks/omp_wait_policy.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CELL = r"""
import json, time, torch
from astra.train.rl import load_policy
from astra.train.rl_kvcache import KVCacheBatch, make_sampler
model, tok = load_policy(None, threads=2)
model.eval()
g = torch.Generator().manual_seed(0)
seqs = [torch.randint(100, 40000, (n,), generator=g).tolist() for n in (900, 1000, 1100, 1200)]
kv = KVCacheBatch(model, pad_id=0, stop_ids=[-1], sample=make_sampler(0, 1.0))
t = time.perf_counter()
kv.generate([0, 1, 2, 3], seqs, [32] * 4)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""

BUSY = "while True: pass"


def cell(policy: str, shared: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy != "unset":  # unset: the OpenMP runtime's default
        env["OMP_WAIT_POLICY"] = policy
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if shared else None
    try:
        time.sleep(0.5 if shared else 0)
        out = subprocess.run([sys.executable, "-c", CELL], env=env, capture_output=True, text=True, check=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    rows = [(policy, shared, cell(policy, shared)) for shared in (False, True) for policy in ("unset", "ACTIVE", "PASSIVE")]
    print(f"cores: {os.cpu_count()}")
    print("| OMP_WAIT_POLICY | cores | seconds (4 × 32 tokens after a ~4,200-token prefill) |")
    print("|---|---|---:|")
    for policy, shared, s in rows:
        print(f"| {policy} | {'shared with a busy process' if shared else 'idle'} | {s:.1f} |")


if __name__ == "__main__":
    main()
