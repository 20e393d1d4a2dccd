"""Scale-out: export an RL run as a veRL (Ray) job — ``astra train rl --backend verl --export DIR``.

What ``DIR`` holds (veRL itself is not needed to write it, only to run it)::

    DIR/
      data/train.parquet, data/val.parquet   # veRL's RL dataset layout (one row per environment)
      envs/<env id>.json                     # the environments (astra's bundle format)
      astra_agent_loop.py                    # agent loop 'astra_env_agent' -> EnvSession (+ reward)
      astra_reward.py                        # compute_score(data_source, solution_str, ground_truth, extra_info)
      agent_loop.yaml                        # registers the agent loop for veRL
      astra_grpo.yaml                        # trainer config (GRPO, the ASTRA method §3.2 settings)
      run.sh                                 # python -m verl.trainer.main_ppo --config-name astra_grpo ...
      README.md, export_manifest.json

Dataset rows (``data/*.parquet``), the columns veRL's ``RLHFDataset`` and agent loops read:

- ``data_source`` = ``"astra_env"`` (``data.reward_fn_key``), ``agent_name`` = ``"astra_env_agent"``;
- ``prompt``: the OpenAI messages of ``EnvSession.reset()`` (system + user question);
- ``ability`` = ``"tool_use"``; ``reward_model`` = ``{"style": "rule", "ground_truth": <JSON of
  the answer and the sub-task answers>}``;
- ``extra_info``: ``index``, ``split``, ``env_id``, ``env_dir`` (``"envs"``, relative to DIR),
  ``reward_kind``, ``max_turns``, ``seed``, ``distractors`` (JSON list of ``[env id, tool
  name]``, sampled once per row at export, so the G rollouts of a group see the same tools),
  ``tools`` (JSON of the OpenAI tools the agent sees), ``domain``, ``scenario``,
  ``n_subtasks``. JSON strings, not nested structs, for fields whose shape varies (Arrow
  would unify them across rows).

Config (``astra_grpo.yaml``, composed over veRL's ``ppo_trainer``): ``adv_estimator: grpo``,
no KL anywhere (``use_kl_loss: false``, ``kl_loss_coef: 0``, ``use_kl_in_reward: false``,
``kl_ctrl.kl_coef: 0``), ``entropy_coeff: 0``, ``loss_agg_mode: token-mean``, decoupled
clip ``clip_ratio_low/high``, dynamic group filtering (``algorithm.filter_groups.enable:
true``, metric ``seq_reward``: groups whose rewards are all equal are dropped and generation
continues until the batch is full — veRL's form of adaptive batch filling), ``ppo_mini_batch_size
== train_batch_size`` (on-policy), lr, ``n`` = group size, multi-turn on with
``max_assistant_turns`` (<= 32), the agent loop, the reward function.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from astra.errors import ConfigError
from astra.train.rl_config import RLConfig, VerlJob
from astra.train.verl_plugin import TEMPLATES, template_text
from astra.train.verl_plugin.core import AGENT_NAME, DATA_SOURCE

#: the ASTRA method §3.2 caps turns at 32.
MAX_TURNS_CAP = 32


@dataclass
class VerlExport:
    out_dir: Path
    rows_train: int
    rows_val: int
    max_prompt_tokens: int
    max_prompt_length: int
    max_response_length: int
    files: list[str]

    def summary(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "rows_train": self.rows_train, "rows_val": self.rows_val,
                "max_prompt_tokens": self.max_prompt_tokens, "max_prompt_length": self.max_prompt_length,
                "max_response_length": self.max_response_length, "files": self.files}


def _tool_key(name: str, code: str) -> tuple[str, str]:
    return name, hashlib.sha1(code.encode()).hexdigest()


def build_rows(envs: Sequence[Any], *, reward: str, max_turns: int, distractors: str, distractor_k: int,
               seed: int, distractor_sampler: Any = None, system_prompt: str | None = None) -> list[dict[str, Any]]:
    """One veRL dataset row per environment (``split`` set later)."""
    from astra.envs.runtime import EnvSession

    owner: dict[tuple[str, str], str] = {}
    for env in envs:
        for t in env.tools:
            owner.setdefault(_tool_key(t.tool.name, t.code), env.id)
    if distractor_sampler is None and distractors != "none" and distractor_k > 0:
        from astra.envs.distractors import DistractorSampler, Mode

        distractor_sampler = DistractorSampler(envs, mode=cast(Mode, distractors), k=distractor_k, seed=seed)
    rows = []
    for i, env in enumerate(envs):
        picked = distractor_sampler.sample(env) if distractor_sampler is not None and distractors != "none" else []
        refs = [[owner[_tool_key(t.tool.name, t.code)], t.tool.name] for t in picked
                if _tool_key(t.tool.name, t.code) in owner]
        row_seed = (seed * 1_000_003 + i) % (2**31)
        session = EnvSession(env, max_turns=max_turns, reward=reward, distractors=picked, seed=row_seed,
                             system_prompt=system_prompt)
        messages, tools = session.reset()
        inst = env.instance
        truth = {"answer": inst.answer, "sub_answers": {s.id: s.sub_answer for s in inst.sub_tasks}}
        rows.append({
            "data_source": DATA_SOURCE,
            "agent_name": AGENT_NAME,
            "prompt": [{"role": m["role"], "content": m["content"] or ""} for m in messages],
            "ability": "tool_use",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(truth, ensure_ascii=False)},
            "extra_info": {
                "index": i, "split": "train", "env_id": env.id, "env_dir": "envs", "reward_kind": reward,
                "max_turns": max_turns, "seed": row_seed, "distractors": json.dumps(refs, ensure_ascii=False),
                "tools": json.dumps(tools, ensure_ascii=False), "domain": inst.domain, "scenario": inst.scenario,
                "n_subtasks": len(inst.sub_tasks),
            },
        })
    return rows


def _prompt_tokens(rows: Sequence[dict[str, Any]], tokenizer: Any) -> list[int]:
    out = []
    for r in rows:
        tools = json.loads(r["extra_info"]["tools"])
        if tokenizer is not None:
            ids = tokenizer.apply_chat_template(r["prompt"], tools=tools, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            out.append(len(ids))
        else:  # no tokenizer here: ~3 characters per token, rounded up
            out.append(math.ceil((len(json.dumps(r["prompt"])) + len(r["extra_info"]["tools"])) / 3))
    return out


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def trainer_config(*, model_path: str, group_size: int, batch_size: int, lr: float, clip_low: float,
                   clip_high: float, max_turns: int, max_prompt_length: int, max_response_length: int,
                   temperature: float, top_p: float, total_steps: int, n_gpus_per_node: int, nnodes: int,
                   rollout_engine: str, max_gen_batches: int, experiment: str, save_freq: int) -> dict[str, Any]:
    """The veRL config dict (``astra_grpo.yaml``) for the ASTRA method §3.2."""
    prompts_per_step = max(1, math.ceil(batch_size / group_size))
    seq_len = max_prompt_length + max_response_length
    return {
        "hydra": {"searchpath": ["pkg://verl.trainer.config"]},
        "defaults": ["ppo_trainer", "_self_"],
        "data": {
            "train_files": "data/train.parquet", "val_files": "data/val.parquet",
            "prompt_key": "prompt", "reward_fn_key": "data_source",
            "train_batch_size": prompts_per_step,
            # DAPO-style generation batch: prompts rolled out per round while filling the batch
            "gen_batch_size": prompts_per_step,
            "max_prompt_length": max_prompt_length, "max_response_length": max_response_length,
            "filter_overlong_prompts": True, "truncation": "error", "return_raw_chat": True, "shuffle": True,
        },
        "algorithm": {
            "adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True,
            "use_kl_in_reward": False, "kl_ctrl": {"kl_coef": 0.0},
            "filter_groups": {"enable": True, "metric": "seq_reward", "max_num_gen_batches": max_gen_batches},
        },
        "actor_rollout_ref": {
            "hybrid_engine": True,
            "model": {"path": model_path, "use_remove_padding": True, "enable_gradient_checkpointing": True},
            "actor": {
                "optim": {"lr": lr, "weight_decay": 0.0, "lr_warmup_steps_ratio": 0.0},
                "ppo_mini_batch_size": prompts_per_step,  # == train_batch_size: on-policy, one update per step
                "ppo_epochs": 1,
                "use_dynamic_bsz": True, "ppo_max_token_len_per_gpu": seq_len,
                "use_kl_loss": False, "kl_loss_coef": 0.0,
                "entropy_coeff": 0,
                "loss_agg_mode": "token-mean",
                "clip_ratio_low": clip_low, "clip_ratio_high": clip_high,
                "grad_clip": 1.0,
            },
            "rollout": {
                "name": rollout_engine, "mode": "async", "n": group_size,
                "temperature": temperature, "top_p": top_p,
                "prompt_length": max_prompt_length, "response_length": max_response_length,
                "log_prob_use_dynamic_bsz": True, "log_prob_max_token_len_per_gpu": seq_len,
                "multi_turn": {
                    "enable": True, "format": "hermes",
                    "max_assistant_turns": max_turns, "max_user_turns": max_turns,
                    "max_parallel_calls": 8, "max_tool_response_length": 2048,
                },
                "agent": {"agent_loop_config_path": "agent_loop.yaml", "num_workers": 8},
            },
        },
        "custom_reward_function": {"path": "astra_reward.py", "name": "compute_score"},
        "reward_model": {"enable": False, "reward_manager": "naive"},
        "trainer": {
            "project_name": "astra", "experiment_name": experiment, "logger": ["console"],
            "n_gpus_per_node": n_gpus_per_node, "nnodes": nnodes, "total_training_steps": total_steps,
            "total_epochs": 1000, "save_freq": save_freq, "test_freq": -1, "val_before_train": False,
            "critic_warmup": 0, "default_local_dir": "checkpoints",
        },
    }


RUN_SH = """#!/usr/bin/env bash
# veRL job written by `astra train rl --backend verl` (see README.md). Extra arguments are
# Hydra overrides, e.g.: ./run.sh trainer.n_gpus_per_node=4 actor_rollout_ref.rollout.name=sglang
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ASTRA_VERL_DIR="$DIR"
export PYTHONPATH="$DIR${PYTHONPATH:+:$PYTHONPATH}"
# verl.trainer.main_ppo with algorithm.filter_groups (dynamic sampling) support; on veRL
# releases that keep it in the DAPO recipe only, use VERL_ENTRY=recipe.dapo.main_dapo.
ENTRY="${VERL_ENTRY:-verl.trainer.main_ppo}"
exec python3 -m "$ENTRY" --config-path "$DIR" --config-name astra_grpo \\
    data.train_files="$DIR/data/train.parquet" \\
    data.val_files="$DIR/data/val.parquet" \\
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$DIR/agent_loop.yaml" \\
    custom_reward_function.path="$DIR/astra_reward.py" \\
    trainer.default_local_dir="$DIR/checkpoints" \\
    ++ray_kwargs.ray_init.runtime_env.env_vars.ASTRA_VERL_DIR="$DIR" \\
    ++ray_kwargs.ray_init.runtime_env.env_vars.PYTHONPATH="$PYTHONPATH" \\
    "$@"
"""

README = """# astra → veRL job

Written by `astra train rl --backend verl --export {out}` from {n_envs} environments.

Run on a GPU node (or the head node of a Ray cluster) with veRL installed and astra
installed (`pip install astra` — the agent loop runs astra's environment runtime and
sandbox on the rollout workers):

    ./run.sh                          # python -m verl.trainer.main_ppo --config-name astra_grpo
    ./run.sh trainer.n_gpus_per_node=4 trainer.nnodes=2

| file | what |
|---|---|
| `data/train.parquet`, `data/val.parquet` | one row per environment: `prompt`, `data_source`, `agent_name`, `reward_model`, `extra_info` (env id, reward kind, max turns, distractors, seed) |
| `envs/` | the environments (astra bundle format) |
| `astra_agent_loop.py` | agent loop `astra_env_agent`: one `EnvSession` per sample, masks tool tokens, returns the trajectory reward |
| `astra_reward.py` | `compute_score` fallback: replays a response's tool calls in a fresh session |
| `agent_loop.yaml` | registers the agent loop |
| `astra_grpo.yaml` | GRPO, no KL, no entropy bonus, token-mean loss, clip {clip_low}/{clip_high}, dynamic group filtering, batch = mini-batch, lr {lr}, {max_turns} turns |

Multi-node: put this directory on shared storage (the same path on every node); `run.sh`
passes `ASTRA_VERL_DIR` and `PYTHONPATH` to Ray workers.
"""


def export_verl_job(envs: Sequence[Any], out_dir: str | Path, cfg: RLConfig, *, model_path: str,
                    job: VerlJob | None = None, tokenizer: Any = None, distractor_sampler: Any = None,
                    overwrite: bool = False) -> VerlExport:
    """Write a veRL job directory for ``envs`` from the run's :class:`RLConfig` (``backend``
    ``verl``: its rollout engine is vllm or sglang) and the veRL-only :class:`VerlJob`; see
    the module docstring."""
    import yaml

    if cfg.backend != "verl":
        raise ConfigError("the veRL export needs an RLConfig with backend='verl'")
    job = job or VerlJob()
    reward, group_size, batch_size, lr = cfg.reward, cfg.group_size, cfg.batch_size, cfg.lr
    clip_low, clip_high, max_turns, seed = cfg.clip_eps_low, cfg.clip_eps_high, cfg.max_turns, cfg.seed
    distractors, distractor_k = cfg.distractors, cfg.distractor_k
    max_response_length = job.max_response_length

    from astra.envs.bundle import write_environment

    if not envs:
        raise ConfigError("no environments to export")
    if max_turns > MAX_TURNS_CAP:
        raise ConfigError(f"--max-turns {max_turns}: the ASTRA method §3.2 allows at most {MAX_TURNS_CAP} turns")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite and not (out / "export_manifest.json").exists():
            raise ConfigError(f"{out} exists and is not an astra veRL export; choose an empty directory")
        for sub in ("data", "envs"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    rows = build_rows(envs, reward=reward, max_turns=max_turns, distractors=distractors,
                      distractor_k=distractor_k, seed=seed, distractor_sampler=distractor_sampler)
    n_val = 0 if len(rows) < 2 else max(1, int(round(len(rows) * job.val_fraction)))
    val_idx = set(range(len(rows) - n_val, len(rows)))
    train = [r for i, r in enumerate(rows) if i not in val_idx]
    val = [r for i, r in enumerate(rows) if i in val_idx] or rows[:1]
    for r in val:
        r["extra_info"]["split"] = "test"
    lengths = _prompt_tokens(rows, tokenizer)
    longest = max(lengths)
    prompt_len = job.max_prompt_length or int(math.ceil((longest + 64) / 256) * 256)
    if longest > prompt_len:
        raise ConfigError(f"the longest prompt has {longest} tokens > --max-prompt-length {prompt_len}")
    _write_parquet(train, out / "data" / "train.parquet")
    _write_parquet(val, out / "data" / "val.parquet")

    env_dir = out / "envs"
    env_dir.mkdir(parents=True, exist_ok=True)
    for env in envs:
        write_environment(env, env_dir)

    for src, dst in TEMPLATES.items():
        (out / dst).write_text(template_text(src), "utf-8")
    (out / "agent_loop.yaml").write_text(yaml.safe_dump(
        [{"name": AGENT_NAME, "_target_": "astra_agent_loop.AstraEnvAgentLoop"}], sort_keys=False), "utf-8")
    trainer_cfg = trainer_config(model_path=model_path, group_size=group_size, batch_size=batch_size, lr=lr,
                         clip_low=clip_low, clip_high=clip_high, max_turns=max_turns,
                         max_prompt_length=prompt_len, max_response_length=max_response_length,
                         temperature=cfg.temperature, top_p=cfg.top_p, total_steps=cfg.max_steps,
                         n_gpus_per_node=job.n_gpus_per_node, nnodes=job.nnodes,
                         rollout_engine=str(cfg.rollout_engine), max_gen_batches=job.max_gen_batches,
                         experiment=f"astra-rl-{reward}", save_freq=cfg.save_every)
    (out / "astra_grpo.yaml").write_text(
        "# veRL trainer config written by `astra train rl --backend verl` (the ASTRA method §3.2 settings).\n"
        + yaml.safe_dump(trainer_cfg, sort_keys=False), "utf-8")
    run = out / "run.sh"
    run.write_text(RUN_SH, "utf-8")
    run.chmod(run.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (out / "README.md").write_text(README.format(out=out, n_envs=len(envs), clip_low=clip_low, clip_high=clip_high,
                                                 lr=lr, max_turns=max_turns), "utf-8")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and "envs" not in p.parts)
    result = VerlExport(out_dir=out, rows_train=len(train), rows_val=len(val), max_prompt_tokens=longest,
                        max_prompt_length=prompt_len, max_response_length=max_response_length, files=files)
    manifest = {**result.summary(), "n_envs": len(envs), "reward": reward, "group_size": group_size,
                "batch_size": batch_size, "distractors": distractors, "distractor_k": distractor_k,
                "model_path": model_path, "seed": seed, "astra_export_version": 1,
                "created_by": "astra train rl --backend verl", "cwd": os.getcwd()}
    (out / "export_manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")
    return result
