"""The agent loop over OpenAI chat messages with native tool calls.

One rollout: ``system`` (``agent_system`` prompt), ``user`` (the task's query), then up to
``max_turns`` LLM turns. Each turn's tool calls (several = parallel calls) are executed in
the order the model wrote them -- sequentially, so stateful tools and the emulator's RNG
stream are reproducible -- and answered by one ``tool`` message each. The loop stops at the
first turn without a tool call (the final answer) or after ``max_turns`` turns.

Malformed calls never crash the loop: bad JSON arguments, unknown tools and schema-invalid
arguments come back as tool error messages (:mod:`astra.rollout.toolset`). A ``<tool_call>``
block a text model wrote but the parser could not read (``ChatResponse.parse_errors``) is
moved out of the assistant's text into a tool call named as written (or
``unreadable_tool_call``) with the raw block as its arguments, and answered with an
``unreadable_call`` error, so the model sees what went wrong and the transcript stays
valid OpenAI chat. An :class:`~astra.llm.errors.LLMError` ends the rollout as a recorded
failure (:class:`RolloutFailure`), never as a kept trajectory.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from astra.llm import LLMClient, LLMError
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.rollout.backends import BackendUnavailable
from astra.rollout.toolset import ToolSet
from astra.types import Task, ToolServer

DEFAULT_MAX_TURNS = 20


class RolloutFailure(Exception):
    """A rollout that produced no usable trajectory; ``reason`` is the rejection code."""

    def __init__(self, reason: str, detail: str = "", *, meta: dict[str, Any] | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.meta = meta or {}


@dataclass
class AgentRun:
    """A finished rollout: the transcript and what happened."""

    messages: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def system_prompt(server: ToolServer | None) -> str:
    return render("agent_system", server=server)


def initial_messages(task: Task, server: ToolServer | None) -> list[dict[str, Any]]:
    return [{"role": "system", "content": system_prompt(server)}, {"role": "user", "content": task.query}]


_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"\\]{1,100})"')


def split_unreadable(content: str | None, errors: list[str], turn: int) -> tuple[str | None, list[dict[str, Any]]]:
    """Move the unreadable ``<tool_call>`` blocks out of ``content`` into tool-call entries
    ``{"id", "name", "arguments", "error"}`` (one per parse error, in order)."""
    text = content or ""
    bodies = [m.group(1) for m in _BLOCK.finditer(text)]
    text = _BLOCK.sub("", text).strip()
    calls = []
    for k, err in enumerate(errors):
        raw = bodies[k] if k < len(bodies) else err
        m = _NAME.search(raw)
        digest = hashlib.sha1(f"{turn}:{k}:{raw}".encode()).hexdigest()[:10]
        calls.append({"id": f"call_bad_{digest}", "name": m.group(1) if m else "unreadable_tool_call",
                      "arguments": raw, "error": err})
    return (text or None), calls


async def run_agent(
    client: LLMClient,
    task: Task,
    toolset: ToolSet,
    *,
    server: ToolServer | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
    temperature: float = 0.0,
    max_tokens: int = 1024,
    sample_index: int = 0,
) -> AgentRun:
    """Solve ``task`` with the LLM behind ``client``; raises :class:`RolloutFailure`."""
    if max_turns < 1:
        raise ValueError("max_turns must be >= 1")
    messages = initial_messages(task, server)
    tools = toolset.openai_tools
    finish = "max_turns"
    turns = 0
    tokens = {"prompt": 0, "completion": 0}
    truncated = False
    seen_ids: set[str] = set()
    for turn in range(1, max_turns + 1):
        try:
            resp = await client.chat(messages, tools=tools, temperature=temperature, max_tokens=max_tokens,
                                     sample_index=sample_index)
        except LLMError as e:
            if is_endpoint_failure(e):
                raise  # not the task's fault: the runner fails the task, a rerun retries it
            raise RolloutFailure("llm_error", f"turn {turn}: {type(e).__name__}: {e}",
                                 meta={"turns": turns, **toolset.meta()}) from None
        turns = turn
        tokens["prompt"] += resp.prompt_tokens
        tokens["completion"] += resp.completion_tokens
        msg = resp.message()
        calls = [{"id": tc.id, "name": tc.name, "arguments": tc.arguments} for tc in resp.tool_calls]
        bad: list[dict[str, Any]] = []
        if resp.parse_errors:
            msg["content"], bad = split_unreadable(msg.get("content"), resp.parse_errors, turn)
        all_calls = calls + bad
        _dedupe_ids(all_calls, turn, seen_ids)
        if all_calls:
            msg["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": _as_str(c["arguments"])}}
                                 for c in all_calls]
        messages.append(msg)
        if not all_calls:
            finish = "answer"
            truncated = resp.finish_reason == "length"
            break
        for c in all_calls:
            try:
                if "error" in c:
                    out = toolset.unreadable(c["id"], c["arguments"], c["error"], turn=turn)
                else:
                    out = await toolset.execute(c["id"], c["name"], c["arguments"], turn=turn)
            except BackendUnavailable as e:
                if is_endpoint_failure(e):
                    raise
                raise RolloutFailure(e.reason, str(e), meta={"turns": turns, **toolset.meta()}) from None
            messages.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": out.content})
    meta = {"turns": turns, "finish": finish, "max_turns": max_turns, "final_truncated": truncated,
            "tokens": tokens, **toolset.meta()}
    return AgentRun(messages=messages, meta=meta)


def _as_str(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _dedupe_ids(calls: list[dict[str, Any]], turn: int, seen: set[str]) -> None:
    """Tool-call ids must be unique within the transcript (some providers number them per
    turn); a missing or repeated id becomes ``call_<turn>_<k>``."""
    for k, c in enumerate(calls):
        if not c.get("id") or c["id"] in seen:
            c["id"] = f"call_{turn}_{k}"
            while c["id"] in seen:
                c["id"] += "_"
        seen.add(c["id"])
