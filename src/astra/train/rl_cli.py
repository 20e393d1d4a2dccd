"""``astra train rl``: online multi-turn RL in synthesized environments.

::

    astra train rl --envs envs/ --model ckpt/sft|embedded -o ckpt/rl --group-size G --batch N \\
        --reward f1|recall|precision --distractors banded|random|none [--max-steps N] [--lr 2e-6] \\
        [--max-turns 8] [--max-new-tokens 128] [--temperature 1.0] [--seed S] [--resume]
        [--rollout-engine hf|hf-generate|vllm] [--precision auto|fp32|bf16] [--gradient-checkpointing]
    astra train rl --envs envs/ --model HF_ID_OR_PATH --backend verl --export verl_job/ [...]

:func:`rl_command` takes its options from :class:`~astra.train.rl_config.RLConfig` and
:class:`~astra.train.rl_config.VerlJob` (:func:`astra.cli_config.takes_config`: each knob is
declared once, on the config); ``astra.train.cli`` mounts it as ``astra train rl``. The logic is :func:`astra.train.rl.train_rl` and
:func:`astra.train.verl_export.export_verl_job`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astra.cli_common import ConfigOpt, cli_errors, console, note
from astra.cli_config import takes_config
from astra.train.rl_config import RLConfig, VerlJob


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


@cli_errors
@takes_config(RLConfig, exclude=("output_dir",))
@takes_config(VerlJob, param="job", exclude=("max_prompt_length", "max_gen_batches", "val_fraction"))
def rl_command(
    cfg: RLConfig,
    output: Annotated[Path | None, typer.Option("--output", "-o", help=(
        "Output directory: checkpoints, final model, metrics.jsonl, curves.png, samples.jsonl."))] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N environments.")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="veRL job directory (with --backend verl).")] = None,
    job: VerlJob | None = None,
    config: ConfigOpt = None,
) -> None:
    """Online multi-turn RL (GRPO, no KL, token-mean loss, zero-std filtering, adaptive batch filling)."""
    from astra.errors import ConfigError

    if cfg.envs is None:
        raise ConfigError("--envs is required: an `astra envs synthesize` output directory")
    from astra.train.rl import load_envs

    env_list = load_envs(cfg.envs)
    if limit:
        env_list = env_list[:limit]

    if cfg.backend == "verl":
        if export is None:
            raise ConfigError("--backend verl needs --export DIR (the veRL job directory to write)")
        _export(env_list, export, cfg, job or VerlJob())
        return
    if output is None:
        raise ConfigError("-o/--output is required with --backend local")

    from astra.train.rl import train_rl

    cfg = cfg.model_copy(update={"output_dir": output})

    def progress(step: int, m: dict) -> None:
        console.print(f"step {step}/{cfg.max_steps}  reward {_fmt(m.get('reward_mean'))} "
                      f"(f1 {_fmt(m.get('f1'))} r {_fmt(m.get('recall'))} p {_fmt(m.get('precision'))})  "
                      f"calls {_fmt(m.get('tool_calls'), '.2f')}  filtered {_fmt(m.get('filtered_group_share'), '.0%')}  "
                      f"rounds {m.get('rollout_rounds')}  buffer {m.get('buffer_size')}  "
                      f"loss {_fmt(m.get('loss'), '.4f')}  {_fmt(m.get('rollout_tokens_per_s'), '.0f')} tok/s  "
                      f"{_fmt(m.get('step_seconds'), '.0f')}s", highlight=False)

    s = train_rl(cfg, envs=env_list, on_step=progress)
    t = Table(title=f"train rl → {output}", show_header=False, title_justify="left")
    t.add_row("environments", f"{len(env_list)} from {cfg.envs}")
    t.add_row("steps", f"{s['steps']}" + (f" (resumed from {s['resumed_from']})" if s["resumed_from"] else ""))
    j = s.get("journal") or {}
    if j.get("replayable") or j.get("discarded"):
        t.add_row("rollout journal", f"{j.get('replayable', 0)} rollouts reused after the resume, "
                                     f"{j.get('discarded', 0)} discarded (made by weights no checkpoint holds)")
    engine = str(s.get("rollout_engine", cfg.rollout_engine))
    if s.get("rollout_engine_fallback"):
        engine += f" (requested {s.get('rollout_engine_requested')}: {s['rollout_engine_fallback']})"
    if s.get("weight_syncs") is not None:
        engine += f"; {s['weight_syncs']} weight syncs, {s['weight_sync_seconds']:.1f}s"
    t.add_row("rollout engine", engine)
    t.add_row("mean reward", f"first {_fmt(s['reward_first'])} → last {_fmt(s['reward_last'])}; first quarter "
                             f"{_fmt(s['reward_first_quarter_mean'])} → last quarter {_fmt(s['reward_last_quarter_mean'])}")
    t.add_row("logs", f"{s['metrics']}, {s['curves']}")
    t.add_row("model", s["model_dir"])
    console.print(t)


def _export(env_list: list, export: Path, cfg: RLConfig, job: VerlJob) -> None:
    from astra.train.verl_export import export_verl_job

    tokenizer = None
    model, model_path = cfg.model, cfg.model
    try:
        from transformers import AutoTokenizer

        from astra.llm.embedded import ensure_tool_chat_template, resolve_model_path

        ref = None if model in ("embedded", "default") else model.removeprefix("embedded:")
        model_path = resolve_model_path(ref)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        ensure_tool_chat_template(tokenizer)
    except Exception as e:  # the model may only exist on the cluster: estimate prompt lengths
        note("note:", f"no tokenizer for {model!r} here ({type(e).__name__}); prompt lengths estimated")
    res = export_verl_job(env_list, export, cfg, job=job, model_path=str(model_path), tokenizer=tokenizer)
    t = Table(title=f"veRL job → {res.out_dir}", show_header=False, title_justify="left")
    t.add_row("dataset", f"{res.rows_train} train / {res.rows_val} val rows (data/*.parquet)")
    t.add_row("lengths", f"longest prompt {res.max_prompt_tokens} tokens → max_prompt_length "
                         f"{res.max_prompt_length}; max_response_length {res.max_response_length}")
    t.add_row("files", ", ".join(res.files))
    t.add_row("run", f"{res.out_dir / 'run.sh'}  (needs veRL + astra on the GPU nodes)")
    console.print(t)
