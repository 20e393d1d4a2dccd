"""A stage output's files (:class:`StagePaths`) and its manifest: what a stage run did
(:class:`Manifest`, written next to the output as ``X.manifest.json``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astra.errors import InputError
from astra.llm.usage import Usage

log = logging.getLogger("astra.pipeline")

#: How a run ended (or ``running``).
RunStatus = Literal["running", "complete", "interrupted", "error", "stopped"]


@dataclass(frozen=True)
class StagePaths:
    """The three files of a stage output ``X.jsonl``."""

    output: Path
    ledger: Path
    manifest: Path
    lock: Path

    @classmethod
    def of(cls, output: str | os.PathLike[str]) -> StagePaths:
        p = Path(output)
        if p.name.endswith(".manifest.json"):
            stem = p.name[: -len(".manifest.json")]
            p = p.with_name(stem + ".jsonl")
        stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
        return cls(p, p.with_name(stem + ".ledger.jsonl"), p.with_name(stem + ".manifest.json"),
                   p.with_name(stem + ".lock"))


class Manifest(BaseModel):
    """What a stage run did. Run counts are about the latest run; totals are over the
    whole ledger (every run that wrote this output), so a resumed run's manifest is
    complete."""

    model_config = ConfigDict(extra="ignore")

    stage: str
    stage_class: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    input: str | None = None  # input path, or None for an in-memory iterable
    output: str
    ledger: str = ""
    executor: str = "local"
    concurrency: int = 1
    limit: int | None = None
    skip_failed: bool = False  # failed inputs of earlier runs were left failed, not retried
    # complete: every input read was decided or failed; stopped: the endpoint breaker
    # stopped the run early; error: the run itself raised; interrupted: Ctrl-C
    status: RunStatus = "running"
    error: str | None = None  # why the run itself stopped (status "error" / "stopped")
    started_at: str = ""
    updated_at: str = ""
    finished_at: str | None = None
    seconds: float = 0.0  # wall time of the latest run
    runs: int = 1  # runs that contributed to this output
    # -- the latest run
    inputs_seen: int = 0  # inputs read (after ``limit``)
    duplicate_inputs: int = 0  # inputs whose key already appeared in this run's stream
    skipped_done: int = 0  # inputs already in the ledger
    processed: int = 0  # inputs processed by this run
    processed_failed: int = 0  # of those, inputs that failed
    dropped_orphans: int = 0  # output lines removed on start (outputs without ledger line)
    # -- totals over the ledger (latest line per input key)
    done: int = 0  # distinct input keys in the ledger
    accepted: int = 0  # inputs with >= 1 output
    rejected: int = 0  # inputs with 0 outputs and >= 1 rejection
    empty: int = 0  # inputs with 0 outputs, no rejection, no error
    failed: int = 0  # inputs whose latest processing raised (retried by a rerun)
    outputs: int = 0  # records in the output file
    rejections: int = 0  # rejection entries (an accepted input may also reject some)
    rejections_by_reason: dict[str, int] = Field(default_factory=dict)
    errors_by_type: dict[str, int] = Field(default_factory=dict)
    failures_by_kind: dict[str, int] = Field(default_factory=dict)  # endpoint / error
    # -- LLM usage of this stage, summed over every run (Usage fields)
    llm_usage: dict[str, Any] = Field(default_factory=lambda: Usage().to_dict())  # over the ledger
    warnings: list[str] = Field(default_factory=list)

    @property
    def usage(self) -> Usage:
        return Usage.from_dict(self.llm_usage)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Load ``X.manifest.json`` (``path`` may also be the output ``X.jsonl``)."""
    p = Path(path)
    if not p.name.endswith(".manifest.json"):
        p = StagePaths.of(p).manifest
    if not p.exists():
        raise InputError("manifest not found (has the stage run?)", path=str(p))
    try:
        return Manifest.model_validate_json(p.read_text(encoding="utf-8"))
    except ValidationError as e:
        raise InputError(f"not a stage manifest: {e.errors()[0].get('msg')}", path=str(p)) from None


def collect_manifests(run_dir: str | os.PathLike[str]) -> list[Manifest]:
    """Every stage manifest under ``run_dir`` (recursively), sorted by path.
    Unreadable manifests are skipped with a warning."""
    out = []
    for p in sorted(Path(run_dir).rglob("*.manifest.json")):
        try:
            out.append(load_manifest(p))
        except (InputError, OSError, ValueError) as e:
            log.warning("skipping %s: %s", p, e)
    return out
