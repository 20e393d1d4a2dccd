"""The tools of one rollout: dispatch, validation and the per-call record.

:class:`BackendPool` lives as long as a stage (Python prototypes, the emulator's LLM client,
MCP settings); :meth:`BackendPool.toolset` builds a :class:`ToolSet` for one rollout with
fresh backends. :meth:`ToolSet.execute` turns any tool call -- however malformed -- into a
:class:`~astra.rollout.outcome.ToolOutcome` and records it:

``meta.tool_calls``: one entry per call ``{id, turn, tool, server, backend, arguments,
status, transient, error, injected}``; ``meta.injected_failures``: the injected ones;
``meta.malformed``: counts per malformed status.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from astra.llm import LLMClient
from astra.rollout.backends import (
    MCP_KINDS,
    Backend,
    BackendUnavailable,
    EmulatorUnavailable,
    MCPBackend,
    PythonFactory,
    SessionOpener,
)
from astra.rollout.emulator import DEFAULT_FAILURE_RATE, DEFAULT_QUERY_P, EmulatorBackend
from astra.rollout.outcome import (
    BAD_JSON,
    INVALID_ARGUMENTS,
    MALFORMED,
    UNKNOWN_TOOL,
    UNREADABLE_CALL,
    ToolOutcome,
)
from astra.rollout.validation import argument_errors, parse_arguments
from astra.types import Tool, ToolServer


class BackendPool:
    """Stage-wide resources of the backends; hands out fresh per-rollout backends."""

    def __init__(self, *, emulator_client: LLMClient | Callable[[], LLMClient | None] | None = None,
                 failure_rate: float = DEFAULT_FAILURE_RATE, query_p: float = DEFAULT_QUERY_P,
                 emulator_temperature: float = 0.3, emulator_max_tokens: int = 768,
                 mcp_timeout: float = 30.0, mcp_connect_timeout: float = 30.0, mcp_concurrency: int = 4,
                 mcp_opener: SessionOpener | None = None):
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"emulator failure rate must be in [0, 1], got {failure_rate}")
        self._emulator_client = emulator_client
        self.failure_rate = failure_rate
        self.query_p = query_p
        self.emulator_temperature = emulator_temperature
        self.emulator_max_tokens = emulator_max_tokens
        self.mcp_timeout = mcp_timeout
        self.mcp_connect_timeout = mcp_connect_timeout
        self.mcp_concurrency = mcp_concurrency
        self.mcp_opener = mcp_opener
        self._python: dict[str, PythonFactory] = {}

    def emulator_client(self) -> LLMClient:
        c = self._emulator_client
        if not isinstance(c, LLMClient) and c is not None:
            c = self._emulator_client = c()
        if c is None:
            raise EmulatorUnavailable(
                "a doc-only server needs the tool emulator, but no emulator LLM is set (the tiny embedded "
                "default cannot emulate tools): pass --emulator-llm openai:MODEL (or embedded:PATH)")
        return c

    def backend(self, server: ToolServer, rng: random.Random, query: str) -> Backend:
        kind = server.call.kind
        if kind == "python":
            if not server.call.target:
                raise BackendUnavailable(f"python server {server.name!r} has no call target")
            factory = self._python.get(server.call.target)
            if factory is None:
                factory = self._python[server.call.target] = PythonFactory(server.call.target)
            return factory()
        if kind in MCP_KINDS:
            return MCPBackend(server, timeout=self.mcp_timeout, connect_timeout=self.mcp_connect_timeout,
                              concurrency=self.mcp_concurrency, opener=self.mcp_opener)
        if kind == "doc_only":
            return EmulatorBackend(server, self.emulator_client(), random.Random(f"{rng.random()}:{server.name}"),
                                   query=query, failure_rate=self.failure_rate, query_p=self.query_p,
                                   temperature=self.emulator_temperature, max_tokens=self.emulator_max_tokens)
        raise BackendUnavailable(f"server {server.name!r} has an unknown call kind {kind!r}")

    def toolset(self, servers: list[ToolServer], rng: random.Random, query: str) -> ToolSet:
        return ToolSet(servers, {s.name: self.backend(s, rng, query) for s in servers})


class ToolSet:
    """The tools one rollout can call, with their backends and the call record."""

    def __init__(self, servers: list[ToolServer], backends: dict[str, Backend]):
        self.servers = servers
        self.backends = backends
        self.tools: dict[str, tuple[ToolServer, Tool]] = {}
        for s in servers:
            for t in s.tools:
                self.tools.setdefault(t.name, (s, t))
        self.calls: list[dict[str, Any]] = []
        self.injected: list[dict[str, Any]] = []
        self.malformed: Counter[str] = Counter()

    @property
    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.openai() for _, t in self.tools.values()]

    def tool(self, name: str) -> Tool | None:
        entry = self.tools.get(name)
        return entry[1] if entry else None

    async def execute(self, call_id: str, name: str, arguments: Any, *, turn: int) -> ToolOutcome:
        """Run one call; never raises except :class:`BackendUnavailable`."""
        entry = self.tools.get(name)
        args: dict[str, Any] | None = None
        server = None
        if entry is None:
            out = ToolOutcome.failure(UNKNOWN_TOOL, f"unknown tool {name!r}; available tools: "
                                      f"{', '.join(self.tools) or '(none)'}")
        else:
            server, tool = entry
            args, err = parse_arguments(arguments)
            if err is not None or args is None:
                out = ToolOutcome.failure(BAD_JSON, f"{name}: {err}")
            else:
                errors = argument_errors(tool, args)
                if errors:
                    out = ToolOutcome.failure(INVALID_ARGUMENTS, f"invalid arguments for {name}: "
                                              + "; ".join(errors))
                else:
                    out = await self.backends[server.name].call(tool, args)
        self._record(call_id, name, arguments, out, turn=turn, server=server.name if server else None)
        return out

    def unreadable(self, call_id: str, raw: str, error: str, *, turn: int) -> ToolOutcome:
        """Record a ``<tool_call>`` block the parser could not read."""
        out = ToolOutcome.failure(UNREADABLE_CALL, f"your tool call could not be read: {error}. Write "
                                  '<tool_call>{"name": ..., "arguments": {...}}</tool_call> with valid JSON.')
        self._record(call_id, None, raw, out, turn=turn, server=None)
        return out

    def _record(self, call_id: str, name: str | None, arguments: Any, out: ToolOutcome, *, turn: int,
                server: str | None) -> None:
        rec = {"id": call_id, "turn": turn, "tool": name, "server": server, "backend": out.backend or None,
               "arguments": arguments if isinstance(arguments, str) else _dump(arguments),
               "status": out.status, "transient": out.transient, "error": out.error, "injected": out.injected}
        if out.meta:
            rec.update({k: v for k, v in out.meta.items() if k not in rec})
        self.calls.append(rec)
        if out.status in MALFORMED:
            self.malformed[out.status] += 1
        if out.injected:
            self.injected.append({"id": call_id, "turn": turn, "tool": name, "kind": out.injected})

    def meta(self) -> dict[str, Any]:
        statuses = Counter(c["status"] for c in self.calls)
        return {
            "tool_calls": self.calls,
            "injected_failures": self.injected,
            "malformed": {k: self.malformed.get(k, 0) for k in (BAD_JSON, UNKNOWN_TOOL, INVALID_ARGUMENTS,
                                                                 UNREADABLE_CALL)},
            "call_status": dict(sorted(statuses.items())),
            "n_tool_calls": len(self.calls),
            "backends": {s.name: getattr(self.backends.get(s.name), "name", None) for s in self.servers},
        }

    async def aclose(self) -> None:
        for b in self.backends.values():
            await b.aclose()


def _dump(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
