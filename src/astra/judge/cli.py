"""``astra judge``: score trajectories on the seven dimensions of the ASTRA method §1.5 and keep the good ones.

::

    astra judge trajectories.jsonl -o judged.jsonl --llm openai:MODEL --min-score 0.7 [--judge offline|llm]

The integrator registers :func:`judge_command` with ``app.command("judge")``; ``app`` is the
same command as a stand-alone Typer app. See docs/rollouts.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from astra.cli_common import (
    RunnerOptions,
    cli_errors,
    run_stage_cli,
    takes_stage_options,
)
from astra.judge.stages import DEFAULT_MIN_SCORE, JudgeStage
from astra.llm.options import LLMOptions


@cli_errors
@takes_stage_options()
def judge_command(
    trajectories: Annotated[Path, typer.Argument(help="Trajectories JSONL (astra rollout).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Judged trajectories that pass, JSONL.")],
    min_score: Annotated[float, typer.Option("--min-score", help="Keep trajectories whose overall score is at "
                                             "least this (the mean of the seven dimensions).")] = DEFAULT_MIN_SCORE,
    judge: Annotated[str | None, typer.Option(
        "--judge", help="'llm' (structured LLM judgement) or 'offline' (rules + labelled heuristics, no LLM). "
                        "Default: offline when --llm is the tiny embedded default, else llm.")] = None,
    llm_options: LLMOptions = LLMOptions(),
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per judge reply.")] = 400,
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Judge trajectories (7 dimensions); keep those scoring at least --min-score."""
    stage = JudgeStage(min_score=min_score, mode=judge, settings=llm_options.settings(), max_tokens=max_tokens)
    run_stage_cli(stage, trajectories, output, **runner.kwargs())


app = typer.Typer(name="judge", add_completion=False, help="The 7-dimension trajectory judge.")
app.command("judge")(judge_command)
