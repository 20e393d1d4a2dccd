"""The QA stages of the pipeline runner (decomposition and validation).

- :class:`ComposeStage` (``envs.compose``): QAInstance -> QAInstance. The offline
  generator's instances (:func:`astra.envsynth.compose.compose`) re-checked by the same
  output validation as LLM decompositions plus the gold check against the world
  (rejection ``gold_mismatch``); this gives the offline path the runner's ledger,
  manifest and resume.
- :class:`DecomposeStage` (``envs.decompose``): DecomposeRequest -> QAInstance with the LLM.
- :class:`ScoreStage` (``envs.validate.score``): QAInstance -> QAInstance with ``scores``
  (pass 1 of validation; rejections ``non_tool_dependency``, ``validation_failed`` and the
  structural reasons).
- :class:`GateStage` (``envs.validate.gate``): QAInstance -> QAInstance, kept iff its QS
  passes the batch's gate (pass 2; rejections ``below_percentile`` / ``below_min_qs`` with
  the cutoff in the detail).

Two-pass validation (:func:`run_validate`)
------------------------------------------
The percentile needs the whole batch, so ``validate IN -o OUT`` runs:

1. pass 1: :class:`ScoreStage` over ``IN`` into ``OUT``'s sibling ``<stem>.scored.jsonl``
   (resumable like every stage: a rerun scores only what is missing);
2. the gate: the cutoff is computed from the QS of every record in the scored file;
3. pass 2: :class:`GateStage` over the scored records into ``OUT``. Its manifest carries
   the gate (``"gate": {"percentile", "cutoff", "min_qs", "scored", "kept", "scored_output",
   "score_rejections_by_reason"}``) and each rejection's detail names the cutoff.

Pass 2 is a pure function of the scored file: when the scored batch (or the gate's
settings) changed since ``OUT`` was written — e.g. ``--retry-failed`` scored more
records — ``OUT`` and its ledger are rebuilt instead of mixing two cutoffs. Rerunning a
finished validation therefore reproduces ``OUT`` exactly.

Stages keep only settings in ``__init__`` (picklable, for Ray) and build their LLM client
in :meth:`setup`; ``client=`` injects a ready one (tests; not for the Ray executor).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from astra.envsynth.compose import check_gold
from astra.envsynth.decompose import (
    DecomposeRequest,
    HopBudget,
    Rejected,
    check_decomposition,
    decompose_request,
    parse_scenarios,
)
from astra.envsynth.validate import Validator, gate_cutoff, gate_verdict, score_instance
from astra.envsynth.worlds import World, load_worlds
from astra.errors import ConfigError
from astra.io import write_json
from astra.llm import LLMClient, LLMSettings
from astra.pipeline import Manifest, Stage, StagePaths, StageResult, load_manifest, read_outputs, run_stage
from astra.pipeline.executors import Executor
from astra.pipeline.llm_stage import LLMStage, settings_config, tiny_default
from astra.types import QAInstance

log = logging.getLogger("astra.envsynth")

class _QAStage(LLMStage):
    _NOT_PICKLED = ("_client", "_worlds", "_injected")  # built in setup(), or injected


# ---------------------------------------------------------------------------------
# decomposition
# ---------------------------------------------------------------------------------


class ComposeStage(_QAStage):
    """Offline instances, re-validated: the decomposition checks + the gold check."""

    name = "envs.compose"
    input_model = QAInstance
    output_model = QAInstance

    def __init__(self, *, hops: str = "auto", scenarios: Collection[str] | None = None, seed: int = 0,
                 worlds: list[str] | None = None) -> None:
        self.hops = HopBudget.parse(hops).spec
        self.scenarios = parse_scenarios(list(scenarios) if scenarios else None)
        self.seed = seed
        self.world_paths = [str(w) for w in worlds or []]
        self._worlds: dict[str, World] | None = None
        self._injected = None

    def setup(self) -> None:
        self._worlds = {w.domain: w for w in load_worlds(extra=self.world_paths)}

    def config(self) -> dict[str, Any]:
        return {"hops": self.hops, "scenarios": self.scenarios, "seed": self.seed, "worlds": self.world_paths}

    async def process(self, record: QAInstance) -> StageResult:
        worlds = self.from_setup(self._worlds)
        try:
            inst = check_decomposition(record, budget=self.hops, scenarios=self.scenarios)
        except Rejected as r:
            return StageResult.reject(record.id, r.reason, r.detail)
        world = worlds.get(str(record.meta.get("world", record.domain)))
        if world is None:
            return StageResult.reject(record.id, "unknown_world", f"no knowledge world {record.meta.get('world')!r}")
        problems = check_gold(inst, world)
        if problems:
            return StageResult.reject(record.id, "gold_mismatch", "; ".join(problems)[:500])
        return StageResult.accept(inst)


class DecomposeStage(_QAStage):
    """DecomposeRequest -> QAInstance with the LLM, validated."""

    name = "envs.decompose"
    input_model = DecomposeRequest
    output_model = QAInstance

    def __init__(self, *, llm: LLMSettings | None = None, scenarios: Collection[str] | None = None,
                 temperature: float = 0.7, max_repairs: int = 2, max_tokens: int = 1500,
                 client: LLMClient | None = None) -> None:
        self.scenarios = parse_scenarios(list(scenarios) if scenarios else None)
        self.temperature = temperature
        self.max_repairs = max_repairs
        self.max_tokens = max_tokens
        self.keep_llm(llm, client)

    def setup(self) -> None:
        self.connect()

    def config(self) -> dict[str, Any]:
        return {"llm": settings_config(self.llm), "scenarios": self.scenarios, "temperature": self.temperature,
                "max_repairs": self.max_repairs, "max_tokens": self.max_tokens}

    async def process(self, record: DecomposeRequest) -> StageResult:
        client = self.from_setup(self._client, " (no LLM client)")
        try:
            inst = await decompose_request(client, record, scenarios=self.scenarios,
                                           temperature=self.temperature, max_repairs=self.max_repairs,
                                           max_tokens=self.max_tokens)
        except Rejected as r:
            return StageResult.reject(record.id, r.reason, r.detail)
        return StageResult.accept(inst)


# ---------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------


def default_validator(llm: LLMSettings | None) -> Validator:
    """``offline`` when the LLM is the tiny embedded default (``embedded`` without a path),
    else ``llm``: a 135M model's judgement is noise, the rules are not."""
    return "offline" if tiny_default(llm) else "llm"


class ScoreStage(_QAStage):
    """Pass 1 of validation: tool necessity, the leaf rule, DC/SA/SR/TC and QS."""

    name = "envs.validate.score"
    input_model = QAInstance
    output_model = QAInstance

    def __init__(self, *, validator: Validator = "offline", llm: LLMSettings | None = None, max_repairs: int = 2,
                 client: LLMClient | None = None) -> None:
        if validator not in ("offline", "llm"):
            raise ConfigError(f"unknown validator {validator!r} (use 'offline' or 'llm')")
        self.validator = validator
        self.max_repairs = max_repairs
        self.keep_llm(llm, client)

    def setup(self) -> None:
        if self.validator == "llm":
            self.connect()

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"validator": self.validator}
        if self.validator == "llm":
            cfg.update(llm=settings_config(self.llm), max_repairs=self.max_repairs)
        return cfg

    async def process(self, record: QAInstance) -> StageResult:
        if self.validator == "llm" and self._client is None:
            raise ConfigError("envs.validate.score: setup() was not called (no LLM client)")
        try:
            out = await score_instance(record, validator=self.validator, client=self._client,
                                       max_repairs=self.max_repairs)
        except Rejected as r:
            return StageResult.reject(record.id, r.reason, r.detail)
        return StageResult.accept(out)


class GateStage(Stage):
    """Pass 2 of validation: keep the instances whose QS passes the precomputed gate."""

    name = "envs.validate.gate"
    input_model = QAInstance
    output_model = QAInstance

    def __init__(self, gate: dict[str, Any]) -> None:
        self.gate = dict(gate)

    def config(self) -> dict[str, Any]:
        return dict(self.gate)

    async def process(self, record: QAInstance) -> StageResult:
        qs = record.scores.get("qs")
        if not isinstance(qs, int | float):
            return StageResult.reject(record.id, "not_scored", "the record has no QS (run the score pass)")
        verdict = gate_verdict(float(qs), self.gate)
        if verdict is not None:
            return StageResult.reject(record.id, *verdict)
        return StageResult.accept(record)


def scored_path(output: str | os.PathLike[str]) -> Path:
    """Where pass 1 writes: ``valid.jsonl`` -> ``valid.scored.jsonl``."""
    p = StagePaths.of(output).output
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return p.with_name(stem + ".scored.jsonl")


def _digest(records: list[QAInstance]) -> str:
    items = sorted((r.id, round(float(r.scores.get("qs", -1)), 6)) for r in records)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def _reset_output(output: Path) -> None:
    paths = StagePaths.of(output)
    for p in (paths.output, paths.ledger, paths.manifest):
        if p.exists():
            p.unlink()


@dataclass
class ValidateResult:
    score: Manifest
    gate_manifest: Manifest
    gate: dict[str, Any]
    scored_output: Path


def run_validate(inputs: Iterable[Any] | str | os.PathLike[str], output: str | os.PathLike[str], *,
                 stage: ScoreStage, percentile: float = 90.0, min_qs: float | None = None,
                 limit: int | None = None, concurrency: int = 4, executor: str = "local",
                 ray_address: str | None = None, skip_failed: bool = False, progress: bool = False) -> ValidateResult:
    """Two-pass validation (see the module docstring): score into
    :func:`scored_path` (``output``), gate into ``output``."""
    if not 0 <= percentile <= 100:
        raise ConfigError(f"--percentile must be in [0, 100], got {percentile}")
    if min_qs is not None and not 0 <= min_qs <= 1:
        raise ConfigError(f"--min-qs must be in [0, 1], got {min_qs}")
    out = StagePaths.of(output).output
    scored = scored_path(out)
    score_manifest = run_stage(stage, inputs, scored, concurrency=concurrency, limit=limit,
                               executor=cast(Executor, executor),  # run_stage checks the name
                               ray_address=ray_address, skip_failed=skip_failed, progress=progress)
    records = list(read_outputs(scored, QAInstance))
    gate = gate_cutoff([float(r.scores["qs"]) for r in records], pct=percentile, min_qs=min_qs)
    gate["scored_digest"] = _digest(records)
    paths = StagePaths.of(out)
    if paths.manifest.exists():
        try:
            prev = load_manifest(paths.manifest)
        except Exception:  # an unreadable manifest: rebuild
            prev = None
        if prev is None or prev.config != gate:
            log.warning("the scored batch or the gate changed since %s was written; rebuilding it", out)
            _reset_output(out)
    elif paths.ledger.exists():
        _reset_output(out)
    gate_manifest = run_stage(GateStage(gate), records, out, concurrency=1, progress=progress)
    info = {k: v for k, v in gate.items() if k != "scored_digest"}
    info.update(kept=gate_manifest.outputs, scored_output=str(scored),
                score_rejections_by_reason=score_manifest.rejections_by_reason,
                score_failed=score_manifest.failed)
    data = json.loads(paths.manifest.read_text(encoding="utf-8"))
    data["gate"] = info
    write_json(paths.manifest, data)
    return ValidateResult(score=score_manifest, gate_manifest=gate_manifest, gate=info, scored_output=scored)


__all__ = [
    "ComposeStage", "DecomposeStage", "GateStage", "ScoreStage", "ValidateResult", "default_validator",
    "run_validate", "scored_path",
]
