"""Embedded-model generation throughput at batch 1 and batch 8 (tokens/s).

    .venv/bin/python benchmarks/llm_throughput.py [--tokens 64] [--repeats 2]

Greedy decoding of a fixed number of new tokens (no early stop) per request, through the
same EmbeddedProvider the pipeline uses. Prints a table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from astra.llm.embedded import EmbeddedProvider
from astra.llm.types import ChatRequest


def measure(provider: EmbeddedProvider, batch: int, tokens: int, repeats: int) -> tuple[float, float]:
    reqs = [ChatRequest(messages=[{"role": "user", "content": f"Write a long story about a lighthouse keeper #{i}."}],
                        max_tokens=tokens) for i in range(batch)]
    rates, latencies = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = provider.generate_batch(reqs)
        dt = time.perf_counter() - t0
        rates.append(sum(r.completion_tokens for r in out) / dt)
        latencies.append(dt)
    return statistics.median(rates), statistics.median(latencies)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default=None, help="model path (default: embedded SmolLM2-135M)")
    args = ap.parse_args()
    provider = EmbeddedProvider(args.model)
    lm = provider.loaded()
    lm.model.generation_config.min_new_tokens = args.tokens  # fixed length: no early EOS
    provider.generate_batch([ChatRequest(messages=[{"role": "user", "content": "warm up"}], max_tokens=4)])
    print(f"model {provider.provider_id} · torch {torch.__version__} · threads {torch.get_num_threads()} · "
          f"{platform.processor() or platform.machine()}")
    print(f"{'batch':>5} {'new tokens':>10} {'seconds':>8} {'tokens/s':>9}")
    for batch in (1, 8):
        rate, lat = measure(provider, batch, args.tokens, args.repeats)
        print(f"{batch:>5} {batch * args.tokens:>10} {lat:>8.2f} {rate:>9.1f}")


if __name__ == "__main__":
    main()
