"""The progress bar of a stage run (on a terminal only)."""

from __future__ import annotations

from typing import Any


class Progress:
    def __init__(self, enabled: bool, name: str, total: int | None) -> None:
        self._p = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]} rej {task.fields[rej]} fail {task.fields[fail]}"
                       " skip {task.fields[skip]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._p.add_task(name, total=total, ok=0, rej=0, fail=0, skip=0)

    def __enter__(self) -> Progress:
        if self._p is not None:
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()

    def advance(self, **fields: Any) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1, **fields)

