"""``astra train``: SFT (``astra train sft``) and RL (``astra train rl``). See docs/training.md.

::

    astra train sft --data sft/ --model embedded|HF_ID|PATH -o ckpt/sft [--lora] [--max-steps N]

The integrator mounts :data:`app` as ``astra train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astra.cli_common import ConfigOpt, cli_errors, console

app = typer.Typer(name="train", no_args_is_help=True, add_completion=False,
                  help="Train tool-using agents: SFT on trajectories, then multi-turn RL on environments.")


@app.callback()
def _train() -> None:
    """Train tool-using agents: SFT on trajectories, then multi-turn RL on environments."""


@app.command("sft")
@cli_errors
def sft_command(
    data: Annotated[list[Path], typer.Option("--data", "-d", help=(
        "`astra export sft` directory (openai | sharegpt | hf, detected) or a JSONL file of "
        "{messages, tools} records (e.g. from `astra train demos`); repeat to train on several together."))],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory (checkpoints, final model, logs).")],
    model: Annotated[str, typer.Option("--model", "-m", help=(
        "'embedded' (SmolLM2-135M-Instruct), 'embedded:PATH', a local model directory or a Hugging Face id."))
    ] = "embedded",
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (attention + MLP projections).")] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank (alpha = 2·r).")] = 16,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after N optimizer steps.")] = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Epochs (when --max-steps is unset).")] = 2.0,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine schedule, 5% warmup).")] = 5e-6,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Conversations per device batch.")] = 4,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="Gradient accumulation steps.")] = 1,
    max_length: Annotated[int | None, typer.Option("--max-length", help=(
        "Maximum tokens per conversation (default: the model's context length, 8,192 for the embedded model)."))
    ] = None,
    overlong: Annotated[str, typer.Option("--overlong", help=(
        "Conversations over --max-length: 'drop' them or 'truncate' (keep the start).")) ] = "drop",
    allow_drop: Annotated[bool, typer.Option("--allow-drop", help=(
        "Train even when --overlong drop removes more than 10% of the conversations (an error otherwise)."))
    ] = False,
    eval_fraction: Annotated[float, typer.Option("--eval-fraction", help="Share held out for the eval loss.")] = 0.1,
    eval_steps: Annotated[int | None, typer.Option("--eval-steps", help=(
        "Also evaluate every N steps (always before training and at the end)."))] = None,
    save_steps: Annotated[int, typer.Option("--save-steps", help="Checkpoint every N steps (and at the end).")] = 50,
    save_total_limit: Annotated[int, typer.Option("--save-total-limit", help="Checkpoints kept.")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, shuffling and initialization.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in -o.")] = False,
    report_to: Annotated[list[str] | None, typer.Option("--report-to", help=(
        "Also log to 'tensorboard' or 'wandb' (repeatable)."))] = None,
    format_check: Annotated[int, typer.Option("--format-check", help=(
        "Held-out prompts for the tool-call format check before/after (0: off)."))] = 4,
    format_check_tokens: Annotated[int, typer.Option("--format-check-tokens", help=(
        "Tokens generated per format-check prompt (room for a planning sentence and the call)."))] = 256,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N conversations.")] = None,
    device: Annotated[str, typer.Option("--device", help="'auto' (CUDA when available), 'cpu' or 'cuda'.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help=(
        "'auto' (fp32 on CPU, bf16 on a GPU that supports it), 'fp32', 'bf16' or 'fp16'."))] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help=(
        "Trade compute for memory (off by default).")) ] = False,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads.")] = None,
    chat_template: Annotated[str, typer.Option("--chat-template", help=(
        "'auto' (the model's own when it supports tools and string arguments, else astra's ChatML tool "
        "template), 'model' or 'astra'."))] = "auto",
    config: ConfigOpt = None,
) -> None:
    """Supervised fine-tuning on exported trajectories (loss on assistant tokens only)."""
    from pydantic import ValidationError

    from astra.errors import ConfigError
    from astra.train.sft import SFTRunConfig, train_sft

    try:
        cfg = SFTRunConfig(
            data=data, output_dir=output, model=model, lora=lora, lora_r=lora_r, max_steps=max_steps,
            epochs=epochs, learning_rate=lr, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
            overlong=overlong, allow_drop=allow_drop, eval_fraction=eval_fraction, eval_steps=eval_steps, save_steps=save_steps,
            save_total_limit=save_total_limit, seed=seed, resume=resume, report_to=list(report_to or []),
            format_check_prompts=format_check, format_check_max_tokens=format_check_tokens,
            limit=limit, device=device, precision=precision,
            gradient_checkpointing=gradient_checkpointing, threads=threads, chat_template=chat_template)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}") from None
    res = train_sft(cfg)

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    t = Table(title=f"train sft → {res.output_dir}", show_header=False, title_justify="left")
    d = res.data
    t.add_row("data", f"{d['format']} {d['source']}: {d['train']} train / {d['eval']} held out"
                      + (f"; {d['overlong']} over {d['max_length']} tokens ({d['overlong_policy']})"
                         if d["overlong"] else ""))
    t.add_row("steps", f"{res.global_step}" + (f" (resumed from {res.resumed_from})" if res.resumed_from else ""))
    t.add_row("held-out loss", f"{fmt(res.eval_loss_before)} → {fmt(res.eval_loss_after)}")
    if res.format_before and res.format_after:
        b, a = res.format_before, res.format_after
        t.add_row("well-formed tool calls", f"{b.well_formed:.0%} → {a.well_formed:.0%} of {a.prompts} prompts "
                                            f"(expected tool {b.expected_tool:.0%} → {a.expected_tool:.0%})")
    t.add_row("time", f"{res.train_seconds:.0f}s training, {res.total_seconds:.0f}s total · {res.device} "
                      f"{res.precision}" + (f" · {res.train_tokens_per_second:.0f} tokens/s"
                                             if res.train_tokens_per_second else ""))
    t.add_row("model", f"{res.model_path}  (use as --llm embedded:{res.model_path})")
    t.add_row("logs", f"{res.output_dir / 'logs.jsonl'}, {res.output_dir / 'curves.png'}, "
                      f"{res.output_dir / 'train_summary.json'}")
    console.print(t)


@app.command("demos")
@cli_errors
def demos_command(
    envs: Annotated[Path, typer.Option("--envs", "-e", help="Environments directory (astra envs synthesize).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="SFT JSONL to write (astra train sft --data).")],
    limit: Annotated[int | None, typer.Option(help="Use only the first N environments.")] = None,
    distractors: Annotated[str, typer.Option(help="Distractor tools in the tool list: none|random|banded.")] = "none",
    seed: Annotated[int, typer.Option(help="Seed of tool order and distractors.")] = 0,
) -> None:
    """Gold demonstrations of environments as SFT data (a warm start for RL).

    Every environment's gold calls are replayed in the sandbox, one assistant turn per hop
    level, then the answer; only conversations the environment judges fully solved are
    written. Use environments disjoint from the RL ones (astra envs split)."""
    from astra.envs.distractors import DistractorSampler
    from astra.train.rl import load_envs
    from astra.train.rl_demos import write_demonstrations

    every = load_envs(envs)
    items = every[:limit] if limit else every
    sampler = DistractorSampler(every, mode=distractors, seed=seed) if distractors != "none" else None  # type: ignore[arg-type]
    counts = write_demonstrations(items, output, distractor_sampler=sampler, seed=seed)
    console.print(f"{counts['kept']} demonstrations → {output}"
                  + (f" ({counts['dropped']} environments whose gold replay failed)" if counts["dropped"] else ""))


from astra.train.rl_cli import rl_command  # noqa: E402

app.command("rl")(rl_command)
