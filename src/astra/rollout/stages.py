"""The rollout stage (``rollout``): Task -> Trajectory (``samples`` per task).

:class:`RolloutStage` keeps only settings on the object (picklable for Ray); the agent's
LLM client, the emulator's client, the server table and the backend pool are built in
:meth:`setup`. ``client=`` / ``emulator_client=`` inject ready clients (tests, notebooks;
not for the Ray executor).

Rejection reasons (one per failed sample, key ``<task id>#<sample>``): ``unknown_server``,
``llm_error`` (the agent's LLM answered unusably), ``backend_unavailable`` (a Python server
that does not import, a server without a call target), ``no_emulator`` (a doc-only server without
an emulator LLM: none usable, see :meth:`RolloutStage.emulator_spec`), ``no_plan`` / ``chain_step_failed`` /
``derived_value_missing`` / ``tool_failed_after_retries`` / ``max_turns`` (the chain
executor). A trajectory that hits the agent's max turns without answering is kept with
``meta.finish == "max_turns"``; the judge scores it.

Outages are failures, not rejections (:mod:`astra.pipeline.failures`): when the agent's or
the emulator's LLM endpoint does not answer, or a live MCP server cannot be reached or
started, the
whole task fails (none of its samples is kept) and a rerun rolls it out again — from the
response cache for the calls that had succeeded.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from astra.errors import ConfigError, InputError
from astra.llm import LLMClient, LLMSettings, make_client
from astra.pipeline import StageResult
from astra.pipeline.failures import is_endpoint_failure
from astra.pipeline.llm_stage import LLMStage, settings_config
from astra.rollout.agent import DEFAULT_MAX_TURNS, AgentRun, RolloutFailure, run_agent
from astra.rollout.backends import BackendUnavailable, SessionOpener
from astra.rollout.chain_executor import run_chain_executor
from astra.rollout.emulator import DEFAULT_FAILURE_RATE, DEFAULT_QUERY_P
from astra.rollout.toolset import BackendPool
from astra.types import Record, Rejection, Task, ToolServer, Trajectory

CHAIN_EXECUTOR = "chain-executor"
#: The tiny embedded default model: it cannot emulate tools, so it is never the implicit emulator.
TINY_DEFAULT = "embedded"


def is_llm_agent(agent: str) -> bool:
    return agent != CHAIN_EXECUTOR


def check_agent(agent: str) -> str:
    kind = agent.partition(":")[0]
    if agent != CHAIN_EXECUTOR and kind not in ("embedded", "openai"):
        raise ConfigError(f"unknown agent {agent!r}: use 'chain-executor', 'embedded', 'embedded:PATH' "
                          "or 'openai:MODEL'")
    return agent


def agent_slug(agent: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", agent).strip("-") or "agent"


def load_servers(path: str | Path | None) -> list[ToolServer]:
    """Servers from a ``tools.jsonl`` (``astra tools ingest``); the bundled sample when None."""
    if path is None:
        from astra.tools.ingest import ingest

        return ingest(["sample"]).servers
    from astra.io import read_records

    p = Path(path)
    if not p.exists():
        raise InputError("tools file not found", path=str(p))
    return list(read_records(p, ToolServer))


def rollout_rng(seed: int, task_id: str, sample: int) -> random.Random:
    """The seeded RNG of one rollout (failure injection, query exposure): independent of
    concurrency and of the order tasks are processed in."""
    return random.Random(f"astra.rollout:{seed}:{task_id}:{sample}")


class RolloutStage(LLMStage[Task, Trajectory]):
    name = "rollout"
    input_model = Task
    output_model = Trajectory
    #: built in setup(), or given to the constructor
    _NOT_PICKLED = ("_client", "_emulator_client", "_pool", "_table", "_mcp_opener")

    def __init__(
        self,
        *,
        agent: str = CHAIN_EXECUTOR,
        agent_settings: LLMSettings | None = None,
        emulator_settings: LLMSettings | None = None,
        emulator_explicit: bool = True,
        servers: list[ToolServer] | None = None,
        tools_path: str | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        samples: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        failure_rate: float = DEFAULT_FAILURE_RATE,
        query_p: float = DEFAULT_QUERY_P,
        seed: int = 0,
        retries: int = 2,
        mcp_timeout: float = 30.0,
        mcp_concurrency: int = 4,
        emulator_temperature: float = 0.3,
        emulator_max_tokens: int = 768,
        client: LLMClient | None = None,
        emulator_client: LLMClient | None = None,
        mcp_opener: SessionOpener | None = None,
    ):
        self.agent = check_agent(agent)
        if max_turns < 1:
            raise ConfigError(f"--max-turns must be >= 1, got {max_turns}")
        if samples < 1:
            raise ConfigError(f"--samples must be >= 1, got {samples}")
        if samples > 1 and is_llm_agent(agent) and temperature <= 0:
            raise ConfigError("--samples > 1 with an LLM agent needs --temperature > 0 (greedy samples are identical)")
        if not 0.0 <= failure_rate <= 1.0:
            raise ConfigError(f"--emulator-failure-rate must be in [0, 1], got {failure_rate}")
        self.agent_settings = agent_settings or (LLMSettings.from_env(spec=agent) if is_llm_agent(agent) else None)
        self.emulator_settings = emulator_settings
        self.emulator_explicit = emulator_explicit
        self.servers = servers
        self.tools_path = tools_path
        self.max_turns = max_turns
        self.samples = samples
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.failure_rate = failure_rate
        self.query_p = query_p
        self.seed = seed
        self.retries = retries
        self.mcp_timeout = mcp_timeout
        self.mcp_concurrency = mcp_concurrency
        self.emulator_temperature = emulator_temperature
        self.emulator_max_tokens = emulator_max_tokens
        self._client = client
        self._emulator_client = emulator_client
        self._mcp_opener = mcp_opener
        self._pool: BackendPool | None = None
        self._table: dict[str, ToolServer] | None = None

    def setup(self) -> None:
        servers = self.servers if self.servers is not None else load_servers(self.tools_path)
        self._table = {s.name: s for s in servers}
        if self._client is None and is_llm_agent(self.agent):
            self._client = make_client(self.agent_settings)

        def emulator() -> LLMClient | None:
            if self._emulator_client is not None:
                return self._emulator_client
            spec = self.emulator_spec()
            if spec is None:
                return None
            if self.emulator_settings is not None:
                return make_client(self.emulator_settings)
            if self._client is not None:
                return self._client
            return make_client(LLMSettings.from_env())

        self._pool = BackendPool(
            emulator_client=emulator, failure_rate=self.failure_rate, query_p=self.query_p,
            emulator_temperature=self.emulator_temperature, emulator_max_tokens=self.emulator_max_tokens,
            mcp_timeout=self.mcp_timeout, mcp_concurrency=self.mcp_concurrency, mcp_opener=self._mcp_opener)

    def emulator_spec(self) -> str | None:
        """The emulator's provider spec, or None when there is no usable emulator: an
        explicit ``emulator_settings`` is always used; the implicit default (the agent's
        LLM, for the chain executor ``ASTRA_LLM``) is not when it is the tiny embedded model,
        which cannot emulate tools (doc-only tasks are then rejected as ``no_emulator``)."""
        if self._emulator_client is not None:
            return self._emulator_client.provider_id
        if self.emulator_settings is not None:
            spec = self.emulator_settings.spec
            explicit = self.emulator_explicit
        elif is_llm_agent(self.agent) and self.agent_settings is not None:
            spec, explicit = self.agent_settings.spec, False
        else:
            spec, explicit = LLMSettings.from_env().spec, False
        if not explicit and spec.strip() == TINY_DEFAULT:
            return None
        return spec

    def config(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "agent_llm": settings_config(self.agent_settings),
            "emulator_llm": self.emulator_spec() if self._emulator_client is None else "<injected>",
            "tools": self.tools_path or ("<given>" if self.servers is not None else "sample"),
            "max_turns": self.max_turns, "samples": self.samples, "temperature": self.temperature,
            "max_tokens": self.max_tokens, "emulator_failure_rate": self.failure_rate,
            "emulator_query_p": self.query_p, "seed": self.seed, "retries": self.retries,
            "mcp_timeout": self.mcp_timeout, "mcp_concurrency": self.mcp_concurrency,
            "emulator_temperature": self.emulator_temperature,
        }

    async def process(self, record: Task) -> StageResult:
        if self._table is None or self._pool is None:
            self.setup()
        assert self._table is not None
        server = self._table.get(record.server)
        if server is None:
            return StageResult.reject(record.id, "unknown_server",
                                      f"server {record.server!r} is not in the tools file")
        outputs: list[Record] = []
        rejections: list[Rejection] = []
        for k in range(self.samples):
            try:
                outputs.append(await self.rollout(record, server, k))
            except RolloutFailure as e:
                rejections.append(Rejection(key=f"{record.id}#{k}", reason=e.reason, detail=e.detail[:500]))
        return StageResult(outputs=outputs, rejections=rejections)

    async def rollout(self, task: Task, server: ToolServer, sample: int = 0) -> Trajectory:
        """One rollout of ``task``; raises :class:`RolloutFailure`."""
        assert self._pool is not None
        rng = rollout_rng(self.seed, task.id, sample)
        try:
            toolset = self._pool.toolset([server], rng, task.query)
        except BackendUnavailable as e:
            if is_endpoint_failure(e):
                raise
            raise RolloutFailure(e.reason, str(e)) from None
        try:
            if is_llm_agent(self.agent):
                assert self._client is not None
                run: AgentRun = await run_agent(
                    self._client, task, toolset, server=server, max_turns=self.max_turns,
                    temperature=self.temperature, max_tokens=self.max_tokens, sample_index=sample)
            else:
                run = await run_chain_executor(task, toolset, server=server, retries=self.retries,
                                               max_turns=self.max_turns)
        finally:
            await toolset.aclose()
        meta = {
            "agent": self.agent, "sample": sample, "seed": self.seed,
            "task": {"server": task.server, "mode": task.mode, "target_tools": task.target_tools,
                     "chain": task.chain, "language": task.language},
            **run.meta,
        }
        return Trajectory(id=f"{task.id}/{agent_slug(self.agent)}/{sample}", task_id=task.id,
                          messages=run.messages, tools=toolset.openai_tools, agent=self.agent, meta=meta)
