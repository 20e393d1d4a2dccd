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

from astra.cli_common import ConfigOpt, cli_errors, command_group, console
from astra.cli_config import takes_config
from astra.train.sft import SFTRunConfig

app = command_group("train", "Train tool-using agents: SFT on trajectories, then multi-turn RL on environments.")


@app.command("sft")
@cli_errors
@takes_config(SFTRunConfig)
def sft_command(cfg: SFTRunConfig, config: ConfigOpt = None) -> None:
    """Supervised fine-tuning on exported trajectories (loss on assistant tokens only)."""
    from astra.train.sft import train_sft

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
