"""A real LLM stage on the bundled sample, uncached vs. rerun from the response cache.

    .venv/bin/python benchmarks/stage_cache.py [--chains 4] [--votes 1]

Builds the sample's tool graph and chains offline, then runs the ``graph.verify`` stage with
the LLM majority vote on the embedded model twice into two fresh outputs sharing one
response cache: the first run calls the model, the second is answered from the cache.
Prints a table of wall time, provider calls and cache hits.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from astra.graph.stages import BuildGraphStage, ChainsStage, VerifyChainsStage
from astra.io import write_jsonl
from astra.llm import LLMSettings
from astra.pipeline import run_stage
from astra.tools.ingest import ingest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--votes", type=int, default=1)
    ap.add_argument("--llm", default="embedded")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="astra-bench-"))
    os.environ["ASTRA_CACHE_DIR"] = str(work / "cache")  # fresh response cache, models dir unchanged
    os.environ.setdefault("ASTRA_MODELS_DIR", str(Path.home() / ".cache" / "astra" / "models"))
    tools = work / "tools.jsonl"
    write_jsonl(tools, ingest(["sample"]).servers)
    run_stage(BuildGraphStage(), tools, work / "graphs.jsonl", progress=False)
    run_stage(ChainsStage(walks=60, max_per_server=2), work / "graphs.jsonl", work / "chains.jsonl", progress=False)
    settings = LLMSettings(spec=args.llm, cache_path=str(work / "cache" / "responses.sqlite"))
    rows = []
    for label in ("uncached", "cached rerun"):
        out = work / f"verified-{label.split()[0]}.jsonl"
        stage = VerifyChainsStage(str(tools), checks="args,vote", votes=args.votes, llm=settings)
        t0 = time.perf_counter()
        m = run_stage(stage, work / "chains.jsonl", out, limit=args.chains, concurrency=4, progress=False)
        dt = time.perf_counter() - t0
        u = m.usage
        rows.append((label, dt, m.processed, u.calls, u.cache_hits, u.prompt_tokens + u.completion_tokens))
    print(f"stage graph.verify (args + vote x{args.votes}) on {args.chains} sample chains, provider {args.llm}")
    print(f"{'run':<14} {'seconds':>8} {'chains':>7} {'calls':>6} {'cache hits':>11} {'tokens':>7}")
    for label, dt, n, calls, hits, tok in rows:
        print(f"{label:<14} {dt:>8.2f} {n:>7} {calls:>6} {hits:>11} {tok:>7}")


if __name__ == "__main__":
    main()
