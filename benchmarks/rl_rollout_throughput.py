"""RL rollout throughput: batched (all sessions in one ``generate`` per turn) vs sequential
(one session at a time), and the RL update's training tokens/s against the machine's
measured fp32 matmul throughput.

    .venv/bin/python benchmarks/rl_rollout_throughput.py [--envs DIR] [--model embedded|PATH]
        [--sessions 8] [--max-new-tokens 64] [--max-turns 3] [--repeats 1] [--no-train]

Environments: ``--envs`` (an ``astra envs synthesize`` directory) or, by default, the film
world composed and synthesized offline. Each session is a real ``EnvSession`` (tools run
in the sandbox, no distractors). Sampling at temperature 1, so the two modes generate
different numbers of tokens: compare tokens/s. Prints a markdown table and the load
average (the numbers are only comparable on an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time

import torch


def _envs(path: str | None, n: int):
    if path:
        from astra.envs.bundle import load_environments

        envs = load_environments(path)
    else:
        from astra.envsynth.compose import compose
        from astra.envsynth.synth import synthesize_environment
        from astra.envsynth.worlds import load_worlds
        from astra.sandbox import SandboxPool

        insts = compose(load_worlds(["film", "geo"]), n=2, seed=0)
        with SandboxPool(size=2) as pool:
            async def build():
                return [await synthesize_environment(i, pool=pool) for i in insts]
            envs = asyncio.run(build())
    return (envs * (n // max(1, len(envs)) + 1))[:n]


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    dt = time.perf_counter() - t0
    return 2 * n**3 * reps / dt / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", default=None)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-train", action="store_true")
    args = ap.parse_args()

    from astra.envs.runtime import EnvSession
    from astra.train.rl import RLConfig, RLTrainer, load_policy

    model, tok = load_policy(args.model, device="cpu", threads=args.threads)
    envs = _envs(args.envs, args.sessions)
    cfg = RLConfig(output_dir="/tmp/astra-rl-bench", group_size=2, batch_size=len(envs), micro_batch_size=2,
                   distractors="none", tensorboard=False, lr=1e-6, max_new_tokens=args.max_new_tokens,
                   max_turns=args.max_turns, device="cpu")
    trainer = RLTrainer(cfg, envs, model=model, tokenizer=tok,
                        session_factory=lambda env, d, seed: EnvSession(env, max_turns=args.max_turns, seed=seed))
    engine = trainer.engine
    batched_eps = []

    def sessions():
        return [EnvSession(e, max_turns=args.max_turns, seed=i) for i, e in enumerate(envs)]

    rows = []
    for mode in ("sequential", "batched"):
        tokens = secs = gen_secs = calls = turns = 0.0
        for r in range(args.repeats):
            torch.manual_seed(r)
            engine.stats.__init__()
            t0 = time.perf_counter()
            if mode == "batched":
                eps = engine.run(sessions())
                batched_eps = [(e, env) for e, env in zip(eps, envs, strict=True)]
            else:
                eps = [e for s in sessions() for e in engine.run([s])]
            secs += time.perf_counter() - t0
            tokens += engine.stats.gen_tokens
            gen_secs += engine.stats.gen_seconds
            calls += engine.stats.generate_calls
            turns += sum(e.turns for e in eps)
        rows.append((mode, tokens / args.repeats, turns / args.repeats, calls / args.repeats, secs / args.repeats,
                     tokens / secs, tokens / gen_secs))
    print(f"\nRL rollouts: {args.sessions} sessions, model {args.model}, max {args.max_new_tokens} new tokens/turn, "
          f"<= {args.max_turns} turns, torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| mode | generated tokens | assistant turns | generate calls | wall s | tokens/s (wall) | tokens/s (generate) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, tk, tu, ca, s, tps, gps in rows:
        print(f"| {mode} | {tk:.0f} | {tu:.0f} | {ca:.0f} | {s:.1f} | {tps:.1f} | {gps:.1f} |")
    print(f"\nbatched / sequential tokens/s (wall): {rows[1][5] / rows[0][5]:.2f}x")

    if args.no_train:
        return
    # training throughput of one RL update on the batched episodes (old log-probs taken lazily)
    gf = matmul_gflops()
    samples = [trainer._to_sample(e, env, f"g{i // 2}") for i, (e, env) in enumerate(batched_eps)]
    for i, s in enumerate(samples):
        s.advantage = 1.0 if i % 2 else -1.0
    stats = trainer.update(samples)
    n_params = sum(p.numel() for p in model.parameters())
    tokens = sum(len(s.input_ids) for s in samples)
    achieved = 6 * n_params * tokens / stats["train_seconds"] / 1e9  # fwd + bwd ~ 6 N FLOPs/token
    print(f"\nRL update: {len(samples)} sequences, {tokens} tokens ({stats['train_tokens']} policy tokens) in "
          f"{stats['train_seconds']:.1f}s = {stats['train_tokens_per_s']:.0f} tokens/s; "
          f"~{achieved:.1f} GFLOP/s (6·N·tokens, N={n_params / 1e6:.0f}M) vs measured fp32 matmul "
          f"{gf:.1f} GFLOP/s → {achieved / gf:.0%} of matmul peak")


if __name__ == "__main__":
    main()
