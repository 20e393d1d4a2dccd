"""One RL step of astra's trainer (``astra.train.rl``) and of TRL's ``GRPOTrainer``
(``environment_factory`` over the same environments, ``astra.envs.adapters.trl_grpo_trainer``)
at equal work: the same environments, model, group size, batch, sampling temperature,
learning rate, and the same budget of turns and new tokens per turn.

    python benchmarks/trl_vs_astra.py [--envs DIR] [--prompts 2] [--group-size 2]
        [--max-new-tokens 48] [--max-turns 2] [--model embedded] [--seed 0] [--only astra|trl]

Each step is ``prompts`` environments × ``group-size`` rollouts (batch = their product), one
rollout round, every group kept (astra: ``std_threshold = -1``, so degenerate groups are
trained on as TRL does), one optimizer step. Both read the reward from the same
``EnvSession`` (the final answer gates the F1). TRL has no per-turn cap: it bounds a whole
rollout by ``max_completion_length`` (tool results included), set to turns × new tokens so
that neither generates more policy tokens than the other may, and
``max_tool_calling_iterations = turns - 1``; astra bounds new tokens per turn and turns. The
policy tokens each generated are counted at the generation call.

Prints one markdown table: step wall time, time in generation, rollouts, policy tokens,
tool calls per rollout, mean reward. Timings on a shared machine vary with its load: the
script prints the load average next to the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def _envs(path: str | None, n: int) -> list[Any]:
    if path:
        from astra.envs.bundle import load_environments

        envs = load_environments(path)
    else:
        from astra.envsynth.compose import compose
        from astra.envsynth.synth import synthesize_environment
        from astra.envsynth.worlds import load_worlds
        from astra.sandbox import SandboxPool

        insts = [i for i in compose(load_worlds(["film"]), n=2, seed=0) if i.scenario in ("single_hop", "multi_hop")]
        with SandboxPool(size=2) as pool:
            async def build() -> list[Any]:
                return [await synthesize_environment(i, pool=pool) for i in insts]
            envs = asyncio.run(build())
    if len(envs) < n:
        raise SystemExit(f"need {n} environments, found {len(envs)}")
    return envs[:n]


def run_astra(envs: list[Any], a: argparse.Namespace, out: Path) -> dict[str, Any]:
    from astra.train.rl import RLConfig, train_rl

    cfg = RLConfig(model=a.model, output_dir=out / "astra", group_size=a.group_size,
                   batch_size=a.prompts * a.group_size, groups_per_round=a.prompts, max_rollout_rounds=1,
                   max_steps=1, max_turns=a.max_turns, max_new_tokens=a.max_new_tokens, distractors="none",
                   std_threshold=-1.0, lr=a.lr, temperature=1.0, save_every=10**6, log_samples=0, plot_every=10**6,
                   tensorboard=False, seed=a.seed)
    got: dict[str, Any] = {}

    def on_step(step: int, m: dict[str, Any]) -> None:
        got.update(m)

    t0 = time.perf_counter()
    train_rl(cfg, envs=envs, on_step=on_step)
    total = time.perf_counter() - t0
    rollouts = int(got.get("rollouts", 0))
    return {"trainer": "astra.train.rl", "step_s": got.get("step_seconds", float("nan")), "total_s": total,
            "gen_s": got.get("rollout_seconds", float("nan")), "rollouts": rollouts,
            "policy_tokens": int(got.get("rollout_tokens", 0)), "tool_calls": got.get("tool_calls", 0.0),
            "reward": got.get("reward_mean", 0.0)}


def run_trl(envs: list[Any], a: argparse.Namespace, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from astra.envs.adapters import trl_grpo_trainer
    from astra.llm.embedded import resolve_model_path

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    path = resolve_model_path(None if a.model == "embedded" else a.model)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    args = GRPOConfig(output_dir=str(out / "trl"), per_device_train_batch_size=a.prompts * a.group_size,
                      num_generations=a.group_size, max_completion_length=a.max_turns * a.max_new_tokens,
                      max_tool_calling_iterations=max(0, a.max_turns - 1), max_steps=1, learning_rate=a.lr,
                      temperature=1.0, report_to=[], logging_steps=1, use_cpu=not torch.cuda.is_available(),
                      bf16=False, activation_checkpointing=False, save_strategy="no", seed=a.seed)
    trainer = trl_grpo_trainer(envs, model=model, tokenizer=tok, args=args)
    counts = {"tokens": 0, "gen_s": 0.0}
    generate = trainer._generate_single_turn

    def counted(*args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        ids, lps = generate(*args, **kw)
        counts["gen_s"] += time.perf_counter() - t
        counts["tokens"] += sum(len(x) for x in ids)
        return ids, lps

    trainer._generate_single_turn = counted
    trainer.train()
    total = time.perf_counter() - t0
    logs = trainer.state.log_history[0]
    rollouts = a.prompts * a.group_size
    return {"trainer": "TRL GRPOTrainer", "step_s": logs.get("step_time", float("nan")), "total_s": total,
            "gen_s": counts["gen_s"], "rollouts": rollouts, "policy_tokens": counts["tokens"],
            "tool_calls": logs.get("tools/call_frequency", 0.0), "reward": logs.get("reward", 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", default=None)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--prompts", type=int, default=2, help="environments per step")
    ap.add_argument("--group-size", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--max-turns", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["astra", "trl"])
    a = ap.parse_args()
    envs = _envs(a.envs, a.prompts)
    print(f"{a.prompts} environments × group {a.group_size} = batch {a.prompts * a.group_size}; "
          f"{a.max_turns} turns × {a.max_new_tokens} new tokens; model {a.model}; "
          f"environments: {', '.join(e.id for e in envs)}", flush=True)
    print("| trainer | step s | generation s | rollouts | policy tokens | policy tokens/s | tool calls/rollout "
          "| mean reward | wall s (incl. load) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    runs = [("astra", run_astra), ("trl", run_trl)]
    with tempfile.TemporaryDirectory() as d:
        for name, fn in runs:
            if a.only not in (None, name):
                continue
            r = fn(envs, a, Path(d))
            tps = r["policy_tokens"] / r["gen_s"] if r["gen_s"] else 0.0
            print(f"| {r['trainer']} | {r['step_s']:.1f} | {r['gen_s']:.1f} | {r['rollouts']} | {r['policy_tokens']} | "
                  f"{tps:.1f} | {r['tool_calls']:.2f} | {r['reward']:.3f} | {r['total_s']:.1f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
