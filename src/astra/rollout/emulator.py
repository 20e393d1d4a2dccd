"""The stateful tool emulator: an LLM plays the tools of a doc-only server.

For each call it sees the tool's schema and output schema, the call, the server's
description, the session's last ``history`` (≤5) calls and results -- so that an order
placed in one turn can be looked up in the next -- and, with probability
``query_p`` (0.5, drawn from the rollout's seeded RNG), the user's query. Its reply must be
a JSON value that validates against the tool's output schema when there is one; a reply
that does not (no JSON, schema violation, LLM error) is an **emulator failure**: recorded,
and returned to the agent as a retryable tool error.

**Failure injection**: before asking the LLM, each call fails with probability
``failure_rate`` (default 0.2) with one of :data:`~astra.rollout.outcome.FAILURE_KINDS`
(timeout, service unavailable, rate limit), drawn from the same seeded RNG. Injected
failures cost no LLM call and leave the session history unchanged. Only emulated calls are
ever injected.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from astra.llm import LLMClient, LLMError
from astra.llm.client import extract_json
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.rollout.outcome import EMULATOR_FAILURE, FAILURE_KINDS, INJECTED_FAILURE, ToolOutcome, jsonable
from astra.rollout.validation import schema_errors
from astra.types import Tool, ToolServer

DEFAULT_FAILURE_RATE = 0.2
DEFAULT_QUERY_P = 0.5
HISTORY = 5


class FailureInjector:
    """Draws injected failures from a seeded RNG."""

    def __init__(self, rate: float, rng: random.Random):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"failure rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.rng = rng

    def draw(self) -> str | None:
        """A failure kind, or None when the call goes through."""
        if self.rate <= 0:
            return None
        if self.rng.random() < self.rate:
            return self.rng.choice(sorted(FAILURE_KINDS))
        return None


def _coerce(value: Any, schema: dict[str, Any] | None) -> Any:
    """Tolerate one common wrapping: ``{"result": [...]}`` (or any one-key object) for an
    array output schema."""
    if schema and schema.get("type") == "array" and isinstance(value, dict) and len(value) == 1:
        inner = next(iter(value.values()))
        if isinstance(inner, list):
            return inner
    return value


class EmulatorBackend:
    """Emulates the tools of one doc-only server for one rollout (one session)."""

    name = "emulator"

    def __init__(self, server: ToolServer, client: LLMClient, rng: random.Random, *, query: str = "",
                 failure_rate: float = DEFAULT_FAILURE_RATE, query_p: float = DEFAULT_QUERY_P,
                 history: int = HISTORY, temperature: float = 0.3, max_tokens: int = 768):
        self.server = server
        self.client = client
        self.rng = rng
        self.query = query
        self.injector = FailureInjector(failure_rate, rng)
        self.query_p = query_p
        self.history_size = history
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.history: list[dict[str, Any]] = []
        self._asked: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()

    def messages(self, tool: Tool, args: dict[str, Any], *, with_query: bool) -> list[dict[str, Any]]:
        system = render(
            "tool_emulator",
            server=self.server,
            tool=tool,
            parameters=json.dumps(tool.parameters, ensure_ascii=False),
            output_schema=json.dumps(tool.output_schema, ensure_ascii=False) if tool.output_schema else "",
            history=[{"tool": h["tool"], "arguments": json.dumps(h["arguments"], ensure_ascii=False),
                      "result": json.dumps(h["result"], ensure_ascii=False)[:2000]}
                     for h in self.history[-self.history_size:]],
            query=self.query if with_query else "",
        )
        call = json.dumps({"tool": tool.name, "arguments": args}, ensure_ascii=False)
        return [{"role": "system", "content": system}, {"role": "user", "content": call}]

    async def call(self, tool: Tool, args: dict[str, Any]) -> ToolOutcome:
        self.stats["calls"] += 1
        kind = self.injector.draw()
        with_query = self.rng.random() < self.query_p  # drawn every call: a stable RNG stream
        if kind is not None:
            self.stats["injected"] += 1
            msg = FAILURE_KINDS[kind].format(tool=tool.name, server=self.server.title or self.server.name)
            return ToolOutcome.failure(INJECTED_FAILURE, msg, backend=self.name, injected=kind)
        key = json.dumps([tool.name, args], sort_keys=True, ensure_ascii=False)
        sample = self._asked[key]
        self._asked[key] += 1
        try:
            resp = await self.client.chat(self.messages(tool, args, with_query=with_query),
                                          temperature=self.temperature, max_tokens=self.max_tokens,
                                          json_schema=tool.output_schema, sample_index=sample)
        except LLMError as e:
            if is_endpoint_failure(e):
                raise  # an outage is not a tool result: the runner fails the task, a rerun retries it
            return self._failed(f"the emulator LLM failed: {type(e).__name__}: {e}")
        try:
            value = _coerce(extract_json(resp.content or ""), tool.output_schema)
        except ValueError as e:
            return self._failed(f"the emulated result is not JSON ({e})")
        errors = schema_errors(tool.output_schema, value)
        if errors:
            return self._failed("the emulated result does not match the output schema: " + "; ".join(errors))
        value = jsonable(value)
        self.history.append({"tool": tool.name, "arguments": args, "result": value})
        out = ToolOutcome.success(value, backend=self.name)
        out.meta["query_shown"] = with_query
        return out

    def _failed(self, message: str) -> ToolOutcome:
        self.stats["emulator_failures"] += 1
        out = ToolOutcome.failure(EMULATOR_FAILURE, f"{self.server.title or self.server.name} returned an "
                                  "unusable response. Try again.", backend=self.name)
        out.error = message
        return out

    async def aclose(self) -> None:
        return None
