"""``astra export sft``: judged trajectories -> an SFT dataset (openai | sharegpt | hf).

::

    astra export sft judged.jsonl -o sft/ --format openai|sharegpt|hf

The integrator mounts :data:`app` as ``astra export``. See docs/rollouts.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from astra.cli_common import cli_errors, command_group, console, note
from astra.errors import NothingProduced
from astra.export.sft import FORMATS, MANIFEST, export_sft

app = command_group("export", "Export judged trajectories as training data.")


@app.command("sft")
@cli_errors
def sft_command(
    judged: Annotated[Path, typer.Argument(help="Judged trajectories JSONL (astra judge).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")],
    format: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")] = "openai",
    min_score: Annotated[float | None, typer.Option(
        "--min-score", help="Re-threshold on the judgement's overall score (default: the judge's own).")] = None,
    allow_unjudged: Annotated[bool, typer.Option(
        "--allow-unjudged", help="Also export trajectories without a judgement.")] = False,
    tools_as: Annotated[str, typer.Option(
        "--tools-as", help="openai format: 'json' (a JSON string, Arrow-safe; TRL decodes it) or 'list'.")] = "json",
    thought: Annotated[str, typer.Option(
        "--thought", help="sharegpt: keep planning text as <think>…</think> ('think') or 'drop' it.")] = "think",
) -> None:
    """Export judged trajectories as an SFT dataset (loss on assistant tokens only)."""
    report = export_sft(judged, output, fmt=format, min_score=min_score, allow_unjudged=allow_unjudged,
                        tools_as=tools_as, thought=thought)
    note("exported", f"{report.written}/{report.seen} trajectories as {report.format} → {output}", style="green")
    for reason, n in report.skipped.most_common():
        console.print(f"  skipped {n}: {reason}")
    console.print(f"  manifest: {output / MANIFEST}")
    if not report.written:
        why = ", ".join(f"{reason} {n}" for reason, n in report.skipped.most_common(4)) or "the input has no records"
        raise NothingProduced(f"no trajectory exported from {judged} ({why})")
