"""Requests and responses of the chat interface (OpenAI chat-completions shaped)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: How structured output is asked of an OpenAI-compatible endpoint (``--response-format``;
#: see :mod:`astra.llm.openai_provider`).
RESPONSE_FORMATS = ("auto", "json_schema", "json_object", "none")


class ToolCall(BaseModel):
    """A tool call as the model produced it; ``arguments`` is the raw JSON string."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    arguments: str = "{}"

    def openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError when they are not a JSON object."""
        value = json.loads(self.arguments) if self.arguments.strip() else {}
        if not isinstance(value, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
        return value


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    stop: list[str] | None = None
    #: JSON schema the reply must follow (sent as response_format where supported).
    json_schema: dict[str, Any] | None = None
    #: Distinguishes repeated samples of the same request in the cache (not sent).
    sample_index: int = 0

    def cache_key(self, provider_id: str) -> str:
        payload = {"provider": provider_id, "request": self.model_dump(mode="json")}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ChatResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cached: bool = False
    #: Tool-call blocks the parser could not read (text models only).
    parse_errors: list[str] = Field(default_factory=list)

    def message(self) -> dict[str, Any]:
        """The reply as an OpenAI assistant message."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [tc.openai() for tc in self.tool_calls]
        return msg
