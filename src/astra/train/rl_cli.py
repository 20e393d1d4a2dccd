"""``astra train rl``: online multi-turn RL in synthesized environments.

::

    astra train rl --envs envs/ --model ckpt/sft|embedded -o ckpt/rl --group-size G --batch N \\
        --reward f1|recall|precision --distractors banded|random|none [--max-steps N] [--lr 2e-6] \\
        [--max-turns 8] [--max-new-tokens 128] [--temperature 1.0] [--seed S] [--resume]
        [--rollout-engine hf|hf-generate] [--precision auto|fp32|bf16] [--gradient-checkpointing]
    astra train rl --envs envs/ --model HF_ID_OR_PATH --backend verl --export verl_job/ [...]

:func:`rl_command` is a plain function with Typer annotations; ``astra.train.cli`` mounts it
as ``astra train rl``. The logic is :func:`astra.train.rl.train_rl` and
:func:`astra.train.verl_export.export_verl_job`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astra.cli_common import ConfigOpt, cli_errors, console, note


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


@cli_errors
def rl_command(
    envs: Annotated[Path, typer.Option("--envs", "-e", help=(
        "Environments: an `astra envs synthesize` output directory (or one environment file)."))],
    output: Annotated[Path | None, typer.Option("--output", "-o", help=(
        "Output directory: checkpoints, final model, metrics.jsonl, curves.png, samples.jsonl."))] = None,
    model: Annotated[str, typer.Option("--model", "-m", help=(
        "'embedded' (SmolLM2-135M-Instruct), an SFT output directory ('embedded:PATH' accepted), "
        "a local model directory or a Hugging Face id."))] = "embedded",
    group_size: Annotated[int, typer.Option("--group-size", "-G", help="Rollouts per environment (GRPO group).")] = 4,
    batch: Annotated[int, typer.Option("--batch", "-n", help=(
        "Samples from learning-active groups per optimizer step (batch = mini-batch: on-policy).")) ] = 8,
    reward: Annotated[str, typer.Option("--reward", help="Trajectory reward: f1 | recall | precision.")] = "f1",
    distractors: Annotated[str, typer.Option("--distractors", help=(
        "Irrelevant tools mixed in: banded (similarity bands) | random | none.")) ] = "banded",
    distractor_k: Annotated[int, typer.Option("--distractor-k", help=(
        "Distractors per band (banded) or K·3 in total (random).")) ] = 1,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Optimizer steps.")] = 20,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (constant, AdamW).")] = 2e-6,
    max_turns: Annotated[int, typer.Option("--max-turns", help="Tool-calling turns per episode (<= 32).")] = 8,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens per assistant turn.")] = 128,
    max_total_tokens: Annotated[int, typer.Option("--max-total-tokens", help=(
        "Context budget of an episode (prompt + all turns).")) ] = 4096,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature (> 0).")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed (environment order, sampling, distractors).")] = 0,
    clip_low: Annotated[float, typer.Option("--clip-low", help="Ratio clip epsilon below 1.")] = 0.2,
    clip_high: Annotated[float, typer.Option("--clip-high", help="Ratio clip epsilon above 1 (DAPO clip-higher).")] = 0.28,
    std_threshold: Annotated[float, typer.Option("--std-threshold", help=(
        "delta: groups whose reward std is <= delta are dropped.")) ] = 1e-6,
    max_rollout_rounds: Annotated[int, typer.Option("--max-rollout-rounds", help=(
        "Cap on rollout rounds per step while filling the batch.")) ] = 4,
    groups_per_round: Annotated[int | None, typer.Option("--groups-per-round", help=(
        "Environments per rollout round (default ceil(batch / group size)).")) ] = None,
    mini_batch: Annotated[int | None, typer.Option("--mini-batch", help=(
        "Samples per optimizer update (default = --batch: one on-policy update per step).")) ] = None,
    micro_batch: Annotated[int, typer.Option("--micro-batch", help="Sequences per forward/backward.")] = 2,
    save_every: Annotated[int, typer.Option("--save-every", help="Checkpoint every N steps.")] = 10,
    resume: Annotated[bool, typer.Option("--resume", help=(
        "Continue from the newest checkpoint in -o, reusing the journaled rollouts made after it.")) ] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N environments.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when available) | cpu | cuda[:N].")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads.")] = None,
    tensorboard: Annotated[bool, typer.Option("--tensorboard/--no-tensorboard", help=(
        "Also log to TensorBoard (when installed).")) ] = True,
    wandb_project: Annotated[str | None, typer.Option("--wandb-project", help="Also log to this W&B project.")] = None,
    backend: Annotated[str, typer.Option("--backend", help=(
        "local (train here) | verl (write a veRL job to --export instead).")) ] = "local",
    export: Annotated[Path | None, typer.Option("--export", help="veRL job directory (with --backend verl).")] = None,
    n_gpus: Annotated[int, typer.Option("--n-gpus", help="veRL: GPUs per node.")] = 8,
    nnodes: Annotated[int, typer.Option("--nnodes", help="veRL: nodes.")] = 1,
    max_response_length: Annotated[int, typer.Option("--max-response-length", help=(
        "veRL: response tokens per episode (all turns).")) ] = 8192,
    rollout_engine: Annotated[str | None, typer.Option("--rollout-engine", help=(
        "local: hf (KV cache kept across turns, shared prompt prefixes prefilled once; default) | "
        "hf-generate (one HF generate call per turn). veRL: vllm (default) | sglang.")) ] = None,
    precision: Annotated[str, typer.Option("--precision", help=(
        "auto (bf16 autocast on a CUDA GPU that supports it, else fp32) | fp32 | bf16.")) ] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help=(
        "Recompute activations in the update's backward pass (less memory, more compute).")) ] = False,
    config: ConfigOpt = None,
) -> None:
    """Online multi-turn RL (GRPO, no KL, token-mean loss, zero-std filtering, adaptive batch filling)."""
    from pydantic import ValidationError

    from astra.errors import ConfigError

    if reward not in ("f1", "recall", "precision"):
        raise ConfigError(f"--reward {reward!r}: use f1, recall or precision")
    if distractors not in ("banded", "random", "none"):
        raise ConfigError(f"--distractors {distractors!r}: use banded, random or none")
    if backend not in ("local", "verl"):
        raise ConfigError(f"--backend {backend!r}: use local or verl")
    engines = ("hf", "hf-generate") if backend == "local" else ("vllm", "sglang")
    rollout_engine = rollout_engine or engines[0]
    if rollout_engine not in engines:
        raise ConfigError(f"--rollout-engine {rollout_engine!r} with --backend {backend}: use {' or '.join(engines)}")
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"--precision {precision!r}: use auto, fp32 or bf16")
    from astra.train.rl import load_envs

    env_list = load_envs(envs)
    if limit:
        env_list = env_list[:limit]

    if backend == "verl":
        if export is None:
            raise ConfigError("--backend verl needs --export DIR (the veRL job directory to write)")
        _export(env_list, export, model=model, reward=reward, group_size=group_size, batch=batch, lr=lr,
                clip_low=clip_low, clip_high=clip_high, max_turns=max_turns, distractors=distractors,
                distractor_k=distractor_k, temperature=temperature, top_p=top_p, seed=seed, max_steps=max_steps,
                n_gpus=n_gpus, nnodes=nnodes, max_response_length=max_response_length,
                rollout_engine=rollout_engine, save_every=save_every)
        return
    if output is None:
        raise ConfigError("-o/--output is required with --backend local")

    from astra.train.rl import RLConfig, train_rl

    try:
        cfg = RLConfig(envs=envs, model=model, output_dir=output, group_size=group_size, batch_size=batch,
                       mini_batch_size=mini_batch, micro_batch_size=micro_batch, groups_per_round=groups_per_round,
                       max_rollout_rounds=max_rollout_rounds, reward=reward, distractors=distractors,
                       distractor_k=distractor_k, max_steps=max_steps, lr=lr, max_turns=max_turns,
                       max_new_tokens=max_new_tokens, max_total_tokens=max_total_tokens, temperature=temperature,
                       top_p=top_p, clip_eps_low=clip_low, clip_eps_high=clip_high, std_threshold=std_threshold,
                       save_every=save_every, resume=resume, seed=seed, device=device, threads=threads,
                       tensorboard=None if tensorboard else False, wandb_project=wandb_project,
                       rollout_engine=rollout_engine, precision=precision,
                       gradient_checkpointing=gradient_checkpointing)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None

    def progress(step: int, m: dict) -> None:
        console.print(f"step {step}/{cfg.max_steps}  reward {_fmt(m.get('reward_mean'))} "
                      f"(f1 {_fmt(m.get('f1'))} r {_fmt(m.get('recall'))} p {_fmt(m.get('precision'))})  "
                      f"calls {_fmt(m.get('tool_calls'), '.2f')}  filtered {_fmt(m.get('filtered_group_share'), '.0%')}  "
                      f"rounds {m.get('rollout_rounds')}  buffer {m.get('buffer_size')}  "
                      f"loss {_fmt(m.get('loss'), '.4f')}  {_fmt(m.get('rollout_tokens_per_s'), '.0f')} tok/s  "
                      f"{_fmt(m.get('step_seconds'), '.0f')}s", highlight=False)

    s = train_rl(cfg, envs=env_list, on_step=progress)
    t = Table(title=f"train rl → {output}", show_header=False, title_justify="left")
    t.add_row("environments", f"{len(env_list)} from {envs}")
    t.add_row("steps", f"{s['steps']}" + (f" (resumed from {s['resumed_from']})" if s["resumed_from"] else ""))
    j = s.get("journal") or {}
    if j.get("replayable") or j.get("discarded"):
        t.add_row("rollout journal", f"{j.get('replayable', 0)} rollouts reused after the resume, "
                                     f"{j.get('discarded', 0)} discarded (made by weights no checkpoint holds)")
    t.add_row("mean reward", f"first {_fmt(s['reward_first'])} → last {_fmt(s['reward_last'])}; first quarter "
                             f"{_fmt(s['reward_first_quarter_mean'])} → last quarter {_fmt(s['reward_last_quarter_mean'])}")
    t.add_row("logs", f"{s['metrics']}, {s['curves']}")
    t.add_row("model", s["model_dir"])
    console.print(t)


def _export(env_list, export: Path, *, model: str, reward: str, group_size: int, batch: int, lr: float,
            clip_low: float, clip_high: float, max_turns: int, distractors: str, distractor_k: int,
            temperature: float, top_p: float, seed: int, max_steps: int, n_gpus: int, nnodes: int,
            max_response_length: int, rollout_engine: str, save_every: int) -> None:
    from astra.train.verl_export import export_verl_job

    tokenizer = None
    model_path = model
    try:
        from transformers import AutoTokenizer

        from astra.llm.embedded import ensure_tool_chat_template, resolve_model_path

        ref = None if model in ("embedded", "default") else model.removeprefix("embedded:")
        model_path = resolve_model_path(ref)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        ensure_tool_chat_template(tokenizer)
    except Exception as e:  # the model may only exist on the cluster: estimate prompt lengths
        note("note:", f"no tokenizer for {model!r} here ({type(e).__name__}); prompt lengths estimated")
    res = export_verl_job(env_list, export, model_path=str(model_path), reward=reward, group_size=group_size,
                          batch_size=batch, lr=lr, clip_low=clip_low, clip_high=clip_high, max_turns=max_turns,
                          distractors=distractors, distractor_k=distractor_k, temperature=temperature, top_p=top_p,
                          seed=seed, total_steps=max_steps, n_gpus_per_node=n_gpus, nnodes=nnodes,
                          max_response_length=max_response_length, rollout_engine=rollout_engine,
                          tokenizer=tokenizer, save_freq=save_every)
    t = Table(title=f"veRL job → {res.out_dir}", show_header=False, title_justify="left")
    t.add_row("dataset", f"{res.rows_train} train / {res.rows_val} val rows (data/*.parquet)")
    t.add_row("lengths", f"longest prompt {res.max_prompt_tokens} tokens → max_prompt_length "
                         f"{res.max_prompt_length}; max_response_length {res.max_response_length}")
    t.add_row("files", ", ".join(res.files))
    t.add_row("run", f"{res.out_dir / 'run.sh'}  (needs veRL + astra on the GPU nodes)")
    console.print(t)
