"""Test doubles for the chat API.

:class:`ScriptedChatProvider` is a scripted stand-in for an LLM endpoint: it answers each
request from a script (a list of replies, or a function of the request) and records what
it was asked. It is for tests and examples only; it never pretends to be a model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from astra.llm.types import ChatRequest, ChatResponse, ToolCall

Reply = ChatResponse | str | dict | BaseException
Script = Sequence[Reply] | Callable[[ChatRequest], Reply]


def reply(content: str | None = None, *, tool_calls: Sequence[tuple[str, dict | str]] = ()) -> ChatResponse:
    """Build a response: ``reply("hi")`` or ``reply(tool_calls=[("get_x", {"id": 1})])``."""
    calls = [ToolCall(id=f"call_{i}", name=n, arguments=a if isinstance(a, str) else json.dumps(a))
             for i, (n, a) in enumerate(tool_calls)]
    return ChatResponse(content=content, tool_calls=calls,
                        finish_reason="tool_calls" if calls else "stop",
                        prompt_tokens=10, completion_tokens=5, model="scripted")


class ScriptedChatProvider:
    """A scripted chat-API test double. Strings become text replies, dicts JSON replies,
    exceptions are raised. A list script is consumed in order (exhaustion is an error);
    a callable script is called with each request."""

    def __init__(self, script: Script, *, provider_id: str = "scripted"):
        self.script = script
        self.provider_id = provider_id
        self.requests: list[ChatRequest] = []
        self._i = 0

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        if callable(self.script):
            item = self.script(request)
        else:
            if self._i >= len(self.script):
                raise AssertionError(f"scripted provider exhausted after {self._i} replies")
            item = self.script[self._i]
            self._i += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, ChatResponse):
            return item
        if isinstance(item, dict):
            return reply(json.dumps(item))
        return reply(str(item))


def last_user_text(request: ChatRequest) -> str:
    for m in reversed(request.messages):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def as_dict(request: ChatRequest) -> dict[str, Any]:
    return request.model_dump()
