"""The task stages for the runner, and the functions the CLI (and recipes) call.

==================  ====================  =========================================
stage               input -> output       rejection reasons
==================  ====================  =========================================
``tasks.generate``  GenerationRequest ->  see :mod:`astra.tasks.generate`
                    Task (0..n)
``tasks.augment``   Task -> Task          see :mod:`astra.tasks.augment`
                    (original + variants)
``tasks.score``     Task -> Task (scored) ``score_unusable``
``tasks.select``    Task -> Task          a failing gate (:mod:`astra.tasks.gates`), ``low_<aspect>``, ``near_duplicate``
==================  ====================  =========================================

Generation reads two kinds of input -- verified chains (chain mode) and tool servers
(server mode) -- so its stage runs over one union record, :class:`GenerationRequest`
(``chain:<server>:<a>><b>`` or ``server:<name>`` keys), built by :func:`generation_requests`
from ``verified.jsonl`` and the servers; the servers themselves travel on the stage. One
output file, one ledger, one manifest.

``astra tasks score`` is two runner stages: ``tasks.score`` writes every scored task to
``<out>.judged.jsonl`` (LLM calls happen here; a rerun makes none), then
``tasks.select`` applies the thresholds and near-duplicate removal to that whole set
(:func:`astra.tasks.dedup.select_tasks`) and writes the kept tasks to ``<out>.jsonl``. The
selection depends on the whole set, so it is recomputed from scratch whenever the judged
set or the thresholds changed (its manifest records a digest of both); otherwise a rerun
resumes and changes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from astra.errors import ConfigError, InputError
from astra.io import read_records
from astra.llm import LLMClient, LLMSettings
from astra.llm.errors import LLMError
from astra.pipeline import Manifest, Stage, StagePaths, StageResult, load_manifest, read_outputs, run_stage
from astra.pipeline.failures import is_endpoint_failure
from astra.pipeline.llm_stage import LLMStage, settings_config
from astra.pipeline.stage import parse_selection
from astra.tasks.augment import LLMAugmenter, OfflineAugmenter, augment_task, load_personas, parse_modes
from astra.tasks.dedup import DEFAULT_DEDUP_THRESHOLD, select_tasks
from astra.tasks.gates import task_gates
from astra.tasks.generate import MAX_K, LLMGenerator, OfflineGenerator, stable_hash
from astra.tasks.score import LLMScorer, Thresholds, offline_scores
from astra.types import Chain, Record, Rejection, Task, ToolServer

GENERATION_MODES = ("chain", "server")


def parse_generation_modes(spec: str | Sequence[str]) -> list[str]:
    return parse_selection(spec, GENERATION_MODES, "generation mode")


# ---------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------


def load_servers(spec: str | os.PathLike[str]) -> list[ToolServer]:
    """Tool servers from ``tools.jsonl`` (ToolServer records, as `astra tools ingest` writes
    them) or from any source :func:`astra.tools.ingest.ingest` accepts (``sample``, an
    ASTRA ``mcp_servers.jsonl``, OpenAI tools JSON, ``py:module:Class`` ...)."""
    s = str(spec)
    p = Path(s)
    if p.exists() and p.suffix == ".jsonl":
        try:
            paths = StagePaths.of(p)
            records = read_outputs(p, ToolServer) if paths.ledger.exists() else read_records(p, ToolServer)
            return list(records)
        except InputError:
            pass  # not ToolServer records: let ingestion read it
    from astra.tools.ingest import ingest

    return list(ingest([s]).servers)


def default_tools_for(chains: str | os.PathLike[str] | None) -> Path | None:
    """Where the servers are when ``--tools`` is not given: the tools file the chain
    verification used (its manifest), the graph stage's discovery from the chains'
    manifests, or ``tools.jsonl`` next to the chains file."""
    if chains is None:
        return None
    cp = Path(chains)
    try:
        m = load_manifest(cp)
        t = (m.config or {}).get("tools")
        if t and Path(t).exists():
            return Path(t)
    except InputError:
        pass
    try:
        from astra.graph.stages import default_tools_path

        p = default_tools_path(cp)
        if p.exists():
            return p
    except Exception:  # the graph package's discovery is a convenience
        pass
    p = cp.with_name("tools.jsonl")
    return p if p.exists() else None


def _backend(value: str) -> str:
    if value not in ("offline", "llm"):
        raise ConfigError(f"unknown backend {value!r}: use 'offline' or 'llm'")
    return value


# ---------------------------------------------------------------------------------
# generate
# ---------------------------------------------------------------------------------


class GenerationRequest(Record):
    """One unit of generation: a verified chain (chain mode) or a server (server mode)."""

    mode: Literal["chain", "server"]
    server: str
    chain: Chain | None = None

    def record_key(self) -> str:
        if self.mode == "chain" and self.chain is not None:
            return f"chain:{self.chain.record_key()}"
        return f"server:{self.server}"


def generation_requests(chains: list[Chain] | None, servers: list[ToolServer], modes: list[str],
                        limit: int | None = None) -> list[GenerationRequest]:
    """Chain requests (one per chain, in file order) then server requests (one per server).
    ``limit`` applies to each mode: the first ``limit`` chains and the first ``limit``
    servers (a limit over the concatenation would silently leave out every server)."""
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {limit}")
    out: list[GenerationRequest] = []
    if "chain" in modes:
        for c in (chains or [])[:limit]:
            out.append(GenerationRequest(mode="chain", server=c.server, chain=c))
    if "server" in modes:
        for s in servers[:limit]:
            out.append(GenerationRequest(mode="server", server=s.name))
    return out


class GenerateStage(LLMStage):
    """GenerationRequest -> Task (0..n)."""

    name = "tasks.generate"
    input_model = GenerationRequest
    output_model = Task
    _NOT_PICKLED = ("_client", "_offline", "_llm")

    def __init__(self, servers: list[ToolServer], *, generator: str = "offline", llm: LLMSettings | None = None,
                 per_chain: int = 2, per_server: int = 3, max_k: int = MAX_K, seed: int = 0,
                 temperature: float = 0.7, dry_run: bool = True, client: LLMClient | None = None) -> None:
        if per_chain < 1 or per_server < 1:
            raise ConfigError("--per-chain and --per-server must be >= 1")
        if not 1 <= max_k <= 5:
            raise ConfigError(f"--max-k must be in 1..5, got {max_k}")
        self.servers = {s.name: s for s in servers}
        self.generator = _backend(generator)
        self.per_chain = per_chain
        self.per_server = per_server
        self.max_k = max_k
        self.seed = seed
        self.temperature = temperature
        self.dry_run = dry_run
        self.keep_llm(llm, client)
        self._offline: OfflineGenerator | None = None
        self._llm: LLMGenerator | None = None

    def setup(self) -> None:
        self._offline = OfflineGenerator(seed=self.seed, dry_run=self.dry_run)
        if self.generator == "llm":
            self._llm = LLMGenerator(self.connect(), self._offline, temperature=self.temperature)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"generator": self.generator, "per_chain": self.per_chain,
                               "per_server": self.per_server, "max_k": self.max_k, "seed": self.seed,
                               "dry_run": self.dry_run, "servers": sorted(self.servers)}
        if self.generator == "llm":
            cfg.update(llm=settings_config(self.llm), temperature=self.temperature)
        return cfg

    async def process(self, record: GenerationRequest) -> StageResult:
        offline = self.from_setup(self._offline)
        key = record.record_key()
        server = self.servers.get(record.server)
        if server is None:
            return StageResult.reject(key, "unknown_server",
                                      f"server {record.server!r} is not among the given tool servers")
        if record.mode == "chain":
            if record.chain is None:
                return StageResult.reject(key, "no_chain", "a chain-mode request without a chain")
            if self._llm is not None:
                tasks, rej = await self._llm.for_chain(server, record.chain, self.per_chain)
            else:
                tasks, rej = offline.for_chain(server, record.chain, self.per_chain)
        else:
            if self._llm is not None:
                tasks, rej = await self._llm.for_server(server, self.per_server, self.max_k)
            else:
                tasks, rej = offline.for_server(server, self.per_server, self.max_k)
        return StageResult(outputs=list(tasks), rejections=list(rej))


# ---------------------------------------------------------------------------------
# augment
# ---------------------------------------------------------------------------------


class AugmentStage(LLMStage):
    """Task -> the original + valid variants (variants are passed through unchanged)."""

    name = "tasks.augment"
    input_model = Task
    output_model = Task
    _NOT_PICKLED = ("_client", "_offline", "_llm", "_personas")

    def __init__(self, *, modes: str | Sequence[str] = ("diversity", "complexity", "persona"), per_mode: int = 1,
                 augmenter: str = "offline", llm: LLMSettings | None = None, seed: int = 0,
                 personas: str | None = None, servers: list[ToolServer] | None = None,
                 temperature: float = 0.8, client: LLMClient | None = None) -> None:
        try:
            self.modes = parse_modes(modes)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if per_mode < 0:
            raise ConfigError(f"--per-mode must be >= 0, got {per_mode}")
        self.per_mode = per_mode
        self.augmenter = _backend(augmenter)
        self.seed = seed
        self.personas_path = personas
        self.tool_names = {s.name: [t.name for t in s.tools] for s in servers or []}
        self.temperature = temperature
        self.keep_llm(llm, client)
        self._offline: OfflineAugmenter | None = None
        self._llm: LLMAugmenter | None = None

    def setup(self) -> None:
        personas = load_personas(self.personas_path)
        self._offline = OfflineAugmenter(self.seed, personas)
        if self.augmenter == "llm":
            self._llm = LLMAugmenter(self.connect(), seed=self.seed, personas=personas, temperature=self.temperature)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"modes": self.modes, "per_mode": self.per_mode, "augmenter": self.augmenter,
                               "seed": self.seed, "personas": self.personas_path or "bundled"}
        if self.augmenter == "llm":
            cfg.update(llm=settings_config(self.llm), temperature=self.temperature)
        return cfg

    async def process(self, record: Task) -> StageResult:
        offline = self.from_setup(self._offline)
        tasks, rej = await augment_task(record, self.modes, self.per_mode, offline=offline, llm=self._llm,
                                        tool_names=self.tool_names.get(record.server))
        return StageResult(outputs=list(tasks), rejections=list(rej))


# ---------------------------------------------------------------------------------
# score and select
# ---------------------------------------------------------------------------------


class ScoreStage(LLMStage):
    """Task -> the task with ``scores``; an LLM judgement that cannot be parsed is
    ``score_unusable``; an endpoint that does not answer fails the task (retried on a rerun)."""

    name = "tasks.score"
    input_model = Task
    output_model = Task
    _NOT_PICKLED = ("_client", "_scorer")

    def __init__(self, *, scorer: str = "offline", llm: LLMSettings | None = None,
                 servers: list[ToolServer] | None = None, client: LLMClient | None = None) -> None:
        self.scorer = _backend(scorer)
        self.servers = {s.name: s for s in servers or []}
        self.keep_llm(llm, client)
        self._scorer: LLMScorer | None = None

    def setup(self) -> None:
        if self.scorer == "llm":
            self._scorer = LLMScorer(self.connect())

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"scorer": self.scorer}
        if self.scorer == "llm":
            cfg["llm"] = settings_config(self.llm)
        return cfg

    async def process(self, record: Task) -> StageResult:
        server = self.servers.get(record.server)
        if self.scorer == "llm":
            scorer = self.from_setup(self._scorer)
            try:
                scores = await scorer.score(record, server)
            except LLMError as e:
                if is_endpoint_failure(e):
                    raise
                return StageResult.reject(record.id, "score_unusable", str(e)[:300])
        else:
            scores = offline_scores(record, [t.name for t in server.tools] if server else None)
        scores = {**scores, "gates": task_gates(record)}  # meaning checks, whichever scorer
        return StageResult.accept(record.model_copy(update={"scores": scores}))


class SelectStage(Stage):
    """Task -> the task when kept; decisions are computed over the whole scored set first
    (:func:`astra.tasks.dedup.select_tasks`)."""

    name = "tasks.select"
    input_model = Task
    output_model = Task

    def __init__(self, decisions: dict[str, Rejection | None], *, settings: dict[str, Any] | None = None) -> None:
        self.decisions = decisions
        self.settings = dict(settings or {})

    def config(self) -> dict[str, Any]:
        return dict(self.settings)

    async def process(self, record: Task) -> StageResult:
        if record.id not in self.decisions:
            return StageResult.reject(record.id, "not_scored", "the task is not in the scored set")
        rej = self.decisions[record.id]
        if rej is not None:
            return StageResult(rejections=[rej])
        return StageResult.accept(record)


# ---------------------------------------------------------------------------------
# Entry points (CLI and recipes)
# ---------------------------------------------------------------------------------


def judged_path(output: str | os.PathLike[str]) -> Path:
    """``scored.jsonl`` -> ``scored.judged.jsonl`` (every scored task, before selection)."""
    p = StagePaths.of(output).output
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return p.with_name(f"{stem}.judged.jsonl")


def _remove_outputs(output: Path) -> None:
    paths = StagePaths.of(output)
    for f in (paths.output, paths.ledger, paths.manifest):
        if f.exists():
            f.unlink()


def select_scored(judged: str | os.PathLike[str], output: str | os.PathLike[str], *, thresholds: Thresholds,
                  dedup_threshold: float | None = DEFAULT_DEDUP_THRESHOLD, **runner: Any) -> Manifest:
    """Apply thresholds and near-duplicate removal to the scored set in ``judged`` and
    write the kept tasks to ``output`` (recomputed from scratch when the scored set or the
    settings changed since the last run)."""
    tasks = sorted(read_outputs(judged, Task), key=lambda t: t.id)
    decisions = select_tasks(tasks, thresholds, dedup_threshold)
    digest = stable_hash(json.dumps([[t.id, t.query, t.scores] for t in tasks], sort_keys=True, default=str),
                         thresholds.as_dict(), dedup_threshold, n=16)
    settings = {"thresholds": thresholds.as_dict(), "dedup_threshold": dedup_threshold,
                "dedup": "char-5-shingle jaccard", "input": str(judged), "digest": digest}
    out = Path(output)
    try:
        previous = load_manifest(out)
        if previous.config.get("digest") != digest:
            _remove_outputs(out)
    except InputError:
        if StagePaths.of(out).ledger.exists():
            _remove_outputs(out)
    return run_stage(SelectStage(decisions, settings=settings), tasks, out, **runner)


def score_tasks(inputs: str | os.PathLike[str] | list[Task], output: str | os.PathLike[str], *,
                thresholds: Thresholds | None = None, dedup_threshold: float | None = DEFAULT_DEDUP_THRESHOLD,
                scorer: str = "offline", llm: LLMSettings | None = None, servers: list[ToolServer] | None = None,
                client: LLMClient | None = None, **runner: Any) -> tuple[Manifest, Manifest]:
    """``tasks.score`` into ``<output stem>.judged.jsonl``, then ``tasks.select`` into
    ``output``. Returns both manifests."""
    judged = judged_path(output)
    m1 = run_stage(ScoreStage(scorer=scorer, llm=llm, servers=servers, client=client), inputs, judged, **runner)
    sel_runner = {k: v for k, v in runner.items() if k in ("progress", "manifest_interval", "fsync")}
    m2 = select_scored(judged, output, thresholds=thresholds or Thresholds(), dedup_threshold=dedup_threshold,
                       **sel_runner)
    return m1, m2


def generate_tasks(chains: str | os.PathLike[str] | list[Chain] | None, servers: list[ToolServer],
                   output: str | os.PathLike[str], *, modes: str | Sequence[str] = ("chain", "server"),
                   generator: str = "offline", llm: LLMSettings | None = None, per_chain: int = 2,
                   per_server: int = 3, max_k: int = MAX_K, seed: int = 0, dry_run: bool = True,
                   client: LLMClient | None = None, **runner: Any) -> Manifest:
    """Run ``tasks.generate`` over the chains (chain mode) and servers (server mode)."""
    mode_list = parse_generation_modes(modes if isinstance(modes, str) else list(modes))
    chain_records: list[Chain] = []
    if "chain" in mode_list:
        if chains is None:
            raise ConfigError("chain mode needs a chains file (verified.jsonl); use --mode server without one")
        if isinstance(chains, list):
            chain_records = chains
        else:
            cp = Path(chains)
            if not cp.exists():
                raise InputError("chains file not found", path=str(cp))
            paths = StagePaths.of(cp)
            chain_records = list(read_outputs(cp, Chain) if paths.ledger.exists() else read_records(cp, Chain))
    requests = generation_requests(chain_records, servers, mode_list, limit=runner.pop("limit", None))
    stage = GenerateStage(servers, generator=generator, llm=llm, per_chain=per_chain, per_server=per_server,
                          max_k=max_k, seed=seed, dry_run=dry_run, client=client)
    return run_stage(stage, requests, output, **runner)


def augment_tasks(inputs: str | os.PathLike[str] | list[Task], output: str | os.PathLike[str], *,
                  modes: str | Sequence[str] = ("diversity", "complexity", "persona"), per_mode: int = 1,
                  augmenter: str = "offline", llm: LLMSettings | None = None, seed: int = 0,
                  personas: str | None = None, servers: list[ToolServer] | None = None,
                  client: LLMClient | None = None, **runner: Any) -> Manifest:
    """Run ``tasks.augment``."""
    stage = AugmentStage(modes=modes, per_mode=per_mode, augmenter=augmenter, llm=llm, seed=seed,
                         personas=personas, servers=servers, client=client)
    return run_stage(stage, inputs, output, **runner)


__all__ = [
    "AugmentStage", "GENERATION_MODES", "GenerateStage", "GenerationRequest", "ScoreStage", "SelectStage",
    "augment_tasks", "default_tools_for", "generate_tasks", "generation_requests", "judged_path", "load_servers",
    "parse_generation_modes", "score_tasks", "select_scored",
]
