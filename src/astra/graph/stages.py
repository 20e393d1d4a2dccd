"""The graph stages of the pipeline runner.

- :class:`BuildGraphStage` (``graph.build``): ToolServer -> ToolGraph;
- :class:`ChainsStage` (``graph.chains``): ToolGraph -> Chain (0..max_per_server);
- :class:`VerifyChainsStage` (``graph.verify``): Chain -> Chain (kept with its verdicts in
  ``Chain.checks``, or rejected with the failing check as the reason).

Stages keep only settings in ``__init__`` (picklable, for Ray); clients and the server
table are built in :meth:`setup`. ``client=``/``bt_client=`` inject a ready client
(tests, notebooks; not for the Ray executor).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astra.errors import ConfigError, InputError
from astra.graph.dataflow import EDGE_THRESHOLD, MATCHERS, matcher_id, set_matcher
from astra.graph.graph import DATAFLOW, LLM, SOURCES, ToolGraph, build_graph, to_networkx
from astra.graph.propose import ProposalResult, propose_chains
from astra.graph.verify import (
    UnknownTool,
    backtranslate_check,
    parse_checks,
    resolve_args,
    vote_check,
)
from astra.graph.walks import random_walks, walk_chains
from astra.io import read_records, write_json
from astra.llm import LLMClient, LLMSettings
from astra.pipeline import Stage, StagePaths, StageResult
from astra.pipeline.llm_stage import LLMStage, settings_config
from astra.pipeline.stage import parse_selection
from astra.types import Chain, ToolServer


def parse_sources(spec: str | Sequence[str]) -> list[str]:
    return parse_selection(spec, SOURCES, "graph source")


# ---------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------


class BuildGraphStage(LLMStage):
    """ToolServer -> ToolGraph. ``sources``: ``dataflow`` (schema data flow, no LLM) and/or
    ``llm`` (``proposals`` samples of ``chains_per_proposal`` (task, chain) pairs)."""

    name = "graph.build"
    input_model = ToolServer
    output_model = ToolGraph

    def __init__(self, *, sources: str | Sequence[str] = (DATAFLOW,), llm: LLMSettings | None = None,
                 proposals: int = 3, chains_per_proposal: int = 5, max_len: int = 5,
                 temperature: float = 0.8, dataflow_weight: float = 1.0, threshold: float = EDGE_THRESHOLD,
                 matcher: str = "semantic", client: LLMClient | None = None) -> None:
        self.sources = parse_sources(sources)
        if matcher not in MATCHERS:
            raise ConfigError(f"--matcher must be {' or '.join(MATCHERS)}, got {matcher!r}")
        self.matcher = matcher
        if proposals < 1 and LLM in self.sources:
            raise ConfigError(f"--proposals must be >= 1, got {proposals}")
        self.proposals = proposals
        self.chains_per_proposal = chains_per_proposal
        self.max_len = max_len
        self.temperature = temperature
        self.dataflow_weight = dataflow_weight
        self.threshold = threshold
        self.keep_llm(llm, client)

    def setup(self) -> None:
        set_matcher(self.matcher)
        if LLM in self.sources:
            self.connect()

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"sources": self.sources, "dataflow_weight": self.dataflow_weight,
                               "threshold": self.threshold, "matcher": self.matcher}
        if LLM in self.sources:
            cfg.update(llm=settings_config(self.llm), proposals=self.proposals,
                       chains_per_proposal=self.chains_per_proposal, max_len=self.max_len,
                       temperature=self.temperature)
        return cfg

    async def process(self, record: ToolServer) -> StageResult:
        if len(record.tools) < 2:
            return StageResult.reject(record.name, "too_few_tools",
                                      f"{len(record.tools)} tool(s): nothing to chain")
        prop = ProposalResult()
        if LLM in self.sources:
            client = self.from_setup(self._client, " (no LLM client)")
            prop = await propose_chains(client, record, proposals=self.proposals,
                                        k=self.chains_per_proposal, max_len=self.max_len,
                                        temperature=self.temperature)
        graph = build_graph(record, sources=self.sources, proposed_chains=prop.chains,
                            dataflow_weight=self.dataflow_weight, threshold=self.threshold,
                            proposals=prop.stats)
        graph.stats["matcher"] = matcher_id()
        return StageResult(outputs=[graph], rejections=prop.rejections)


# ---------------------------------------------------------------------------------
# chains
# ---------------------------------------------------------------------------------


@dataclass(kw_only=True, eq=False, repr=False)
class ChainsStage(Stage):
    """ToolGraph -> Chain records by seeded, weight-biased random walks. Its fields are its
    settings (the manifest's config)."""

    name = "graph.chains"
    input_model = ToolGraph
    output_model = Chain

    walks: int = 200
    min_len: int = 2
    max_len: int = 5
    seed: int = 0
    allow_cycles: bool = False
    max_per_server: int | None = 50
    start: str = "entry"

    def __post_init__(self) -> None:
        min_len, max_len = self.min_len, self.max_len
        if min_len < 2:
            raise ConfigError(f"--min-len must be >= 2 (single-tool tasks come from task generation), got {min_len}")
        if max_len < min_len:
            raise ConfigError(f"--max-len ({max_len}) must be >= --min-len ({min_len})")
        if self.walks < 1:
            raise ConfigError(f"--walks must be >= 1, got {self.walks}")
        if self.max_per_server is not None and self.max_per_server < 1:
            raise ConfigError(f"--max-per-server must be >= 1, got {self.max_per_server}")
        if self.start not in ("entry", "any"):
            raise ConfigError(f"--start must be 'entry' or 'any', got {self.start!r}")

    def config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    async def process(self, record: ToolGraph) -> StageResult:
        if not record.edges:
            return StageResult.reject(record.server, "no_edges", f"graph of {len(record.nodes)} tools has no edge")
        res = random_walks(to_networkx(record), walks=self.walks, min_len=self.min_len, max_len=self.max_len,
                           seed=self.seed, allow_cycles=self.allow_cycles, max_chains=self.max_per_server,
                           start=self.start)
        chains = walk_chains(record.server, res)
        if not res.stats["start_nodes"]:
            return StageResult.reject(record.server, "no_chains",
                                      "no tool can start a chain: every tool with out-edges needs an identifier "
                                      "from an earlier call (use --start any to walk anyway)")
        if not chains:
            return StageResult.reject(record.server, "no_chains",
                                      f"{res.stats['attempts']} walks, none reached length {self.min_len}")
        return StageResult.accept(*chains)


# ---------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------


def load_servers(tools: str | os.PathLike[str]) -> dict[str, ToolServer]:
    """ToolServer records of a tools file (``tools.jsonl``) by name."""
    from astra.pipeline import read_outputs

    p = Path(tools)
    if not p.exists():
        raise InputError("tools file not found (pass --tools tools.jsonl)", path=str(p))
    paths = StagePaths.of(p)
    records = read_outputs(p, ToolServer) if paths.ledger.exists() else read_records(p, ToolServer)
    return {s.name: s for s in records}


class VerifyChainsStage(LLMStage):
    """Chain -> Chain, kept iff it passes every selected check (``args``, ``vote``,
    ``backtranslate``). ``tools`` is the tools file the graphs were built from (or the
    servers themselves)."""

    name = "graph.verify"
    input_model = Chain
    output_model = Chain
    _NOT_PICKLED = ("_client", "_bt_client", "_servers")  # built in setup()

    def __init__(self, tools: str | os.PathLike[str] | list[ToolServer], *, checks: str | Sequence[str] = ("args",),
                 votes: int = 3, llm: LLMSettings | None = None, bt_llm: LLMSettings | None = None,
                 vote_temperature: float = 0.7, client: LLMClient | None = None,
                 bt_client: LLMClient | None = None) -> None:
        try:
            self.checks = parse_checks(checks)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if votes < 1:
            raise ConfigError(f"--votes must be >= 1, got {votes}")
        if isinstance(tools, list):
            self.tools_path: str | None = None
            self._given: list[ToolServer] | None = list(tools)
        else:
            self.tools_path = str(tools)
            self._given = None
        self.votes = votes
        self.keep_llm(llm, client)
        self.bt_llm = bt_llm
        self.vote_temperature = vote_temperature
        self._injected_bt = bt_client
        self._bt_client: LLMClient | None = None
        self._servers: dict[str, ToolServer] | None = None

    @property
    def uses_llm(self) -> bool:
        return "vote" in self.checks or "backtranslate" in self.checks

    def setup(self) -> None:
        self._servers = ({s.name: s for s in self._given} if self._given is not None
                         else load_servers(self.tools_path or ""))
        if self.uses_llm:
            self.connect()
            if self._injected_bt is not None or self.bt_llm is not None:
                self._bt_client = self.build_client(self.bt_llm, self._injected_bt)
            else:
                self._bt_client = self._client

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"checks": self.checks, "tools": self.tools_path}
        if "vote" in self.checks:
            cfg.update(votes=self.votes, vote_temperature=self.vote_temperature)
        if self.uses_llm:
            cfg["llm"] = settings_config(self.llm)
        if "backtranslate" in self.checks:
            cfg["bt_llm"] = settings_config(self.bt_llm) or cfg["llm"]
        return cfg

    async def process(self, record: Chain) -> StageResult:
        key = record.record_key()
        server = self.from_setup(self._servers).get(record.server)
        if server is None:
            return StageResult.reject(key, "unknown_server",
                                      f"server {record.server!r} is not in {self.tools_path or 'the given servers'}")
        try:
            args = resolve_args(server, record.tools)
        except UnknownTool as e:
            return StageResult.reject(key, "unknown_tool", f"server {server.name!r} has no tool {e.args[0]!r}")
        checks: dict[str, Any] = dict(record.checks)
        checks["args"] = args.record  # always stored: task generation uses the resolution
        passed: list[str] = []
        if "args" in self.checks:
            if not args.ok:
                return StageResult.reject(key, "args", args.detail)
            passed.append("args")
        if "vote" in self.checks:
            assert self._client is not None
            v = await vote_check(self._client, server, record.tools, votes=self.votes, resolution=args.record,
                                 temperature=self.vote_temperature)
            if not v.ok:
                return StageResult.reject(key, v.reason, v.detail)
            checks["vote"] = v.record
            passed.append("vote")
        if "backtranslate" in self.checks:
            assert self._client is not None
            b = await backtranslate_check(self._client, server, record.tools, resolution=args.record,
                                          bt_client=self._bt_client)
            if not b.ok:
                return StageResult.reject(key, b.reason, b.detail)
            checks["backtranslate"] = b.record
            passed.append("backtranslate")
        checks["passed"] = passed
        return StageResult.accept(record.model_copy(update={"checks": checks}))


# ---------------------------------------------------------------------------------
# Helpers for the CLI
# ---------------------------------------------------------------------------------


def annotate_manifest(output: str | os.PathLike[str], key: str, value: Any) -> None:
    """Add ``key: value`` to a stage's manifest (e.g. ``graph_stats``; readers of
    :class:`~astra.pipeline.Manifest` ignore unknown keys)."""
    p = StagePaths.of(output).manifest
    if not p.exists():
        return
    data = json.loads(p.read_text(encoding="utf-8"))
    data[key] = value
    write_json(p, data)


def _near(p: Path, base: Path) -> Path:
    """A path from a manifest (relative to the cwd of that run): as is when it exists,
    else relative to the manifest's directory."""
    if p.is_absolute() or p.exists() or not (base / p).exists():
        return p
    return base / p


def default_tools_path(chains: str | os.PathLike[str]) -> Path:
    """Where ``astra graph verify`` finds the servers when ``--tools`` is not given:

    1. the input of the ``graph.build`` stage upstream of ``chains``, found by following
       the manifests' ``input`` links (``chains.manifest.json`` -> ``graphs.manifest.json``
       -> the tools file; verifying an already verified file works too);
    2. ``tools.jsonl`` next to the graphs directory, or inside it;
    3. ``tools.jsonl`` next to the chains file.
    """
    from astra.pipeline import load_manifest

    cp = Path(chains)
    candidates: list[Path] = []
    graphs_dirs: list[Path] = []
    current: Path | None = cp
    for _ in range(8):  # chains -> graphs -> tools, possibly through earlier verify runs
        if current is None:
            break
        try:
            m = load_manifest(current)
        except InputError:
            break
        base = current.parent
        if m.stage == "graph.build":
            graphs_dirs.append(_near(Path(m.output), base).parent)
            if m.input:
                candidates.insert(0, _near(Path(m.input), base))
            break
        if m.stage == "tools.ingest":
            candidates.insert(0, _near(Path(m.output), base))
            break
        current = _near(Path(m.input), base) if m.input else None
    for gdir in graphs_dirs:
        candidates += [gdir.parent / "tools.jsonl", gdir / "tools.jsonl"]
    candidates.append(cp.parent / "tools.jsonl")
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError("cannot find the tools file the chains come from; pass --tools tools.jsonl "
                      f"(looked at: {', '.join(str(c) for c in candidates)})")
