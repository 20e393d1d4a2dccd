"""``astra report RUN_DIR -o report.html`` (registered on the main app in :mod:`astra.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (what `astra demo --out DIR` writes).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """Write one self-contained HTML report of a run: stage funnel, tool graphs, trajectories,
    environments, training curves, evaluation tables, LLM usage."""
    from astra.cli_common import console, print_error
    from astra.report.html import write_report

    if not run_dir.is_dir():
        print_error(f"{run_dir}: not a directory")
        raise typer.Exit(1)
    from rich.markup import escape

    try:
        out = write_report(run_dir, output)
    except OSError as e:  # an unwritable place: a read-only or full disk, a file where a directory should be
        console.print(f"[bold red]error:[/] cannot write {escape(str(output))}: {escape(str(e.strerror or e))}",
                      highlight=False)
        raise typer.Exit(1) from None
    console.print(f"report → {escape(str(out))} ({out.stat().st_size / 1024:.0f} KiB)", highlight=False)


__all__ = ["report_command"]
