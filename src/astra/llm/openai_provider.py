"""Any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp server, hosted APIs)."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import openai

from astra.errors import ConfigError
from astra.llm.errors import (
    LLMBadResponse,
    LLMConnectionError,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
)
from astra.llm.types import ChatRequest, ChatResponse, ToolCall


class OpenAIProvider:
    """Chat completions with native tool calls.

    ``api_key`` defaults to the environment variable named by ``api_key_env``
    (``ASTRA_API_KEY``, then ``OPENAI_API_KEY``); local servers that need no key get a
    placeholder. Retries are left to :class:`~astra.llm.client.LLMClient`.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, timeout: float = 120.0,
                 use_response_format: bool = True, extra_body: dict[str, Any] | None = None):
        if not model:
            raise ConfigError("openai provider needs a model name: --llm openai:MODEL")
        self.model = model
        self.base_url = base_url or os.environ.get("ASTRA_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if api_key is None:
            names = [api_key_env] if api_key_env else ["ASTRA_API_KEY", "OPENAI_API_KEY"]
            api_key = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if api_key is None:
            if self.base_url is None:
                raise ConfigError(
                    "openai provider: no API key (set ASTRA_API_KEY or OPENAI_API_KEY) and no "
                    "--base-url for a local server"
                )
            api_key = "not-needed"
        self.use_response_format = use_response_format
        self.extra_body = extra_body or {}
        self.provider_id = f"openai:{model}@{self.base_url or 'api.openai.com'}"
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=self.base_url, timeout=timeout,
                                          max_retries=0)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if request.tools:
            kwargs["tools"] = request.tools
            if request.tool_choice:
                kwargs["tool_choice"] = request.tool_choice
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.stop:
            kwargs["stop"] = request.stop
        if request.json_schema is not None and self.use_response_format:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.json_schema},
            }
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as e:
            raise LLMTimeout(f"{self.provider_id}: request timed out") from e
        except openai.RateLimitError as e:
            raise LLMRateLimited(f"{self.provider_id}: rate limited (429)") from e
        except openai.InternalServerError as e:
            raise LLMServerError(f"{self.provider_id}: server error {e.status_code}") from e
        except openai.APIConnectionError as e:
            raise LLMConnectionError(f"{self.provider_id}: cannot connect ({e})") from e
        except openai.APIStatusError as e:
            if e.status_code >= 500:
                raise LLMServerError(f"{self.provider_id}: server error {e.status_code}") from e
            raise LLMRequestError(f"{self.provider_id}: request refused ({e.status_code}): "
                                  f"{_brief(e.message)}") from e
        except (openai.APIResponseValidationError, json.JSONDecodeError, httpx.DecodingError) as e:
            raise LLMBadResponse(f"{self.provider_id}: unreadable response ({_brief(str(e))})") from e
        return _to_response(completion, self.provider_id)


def _brief(s: str, n: int = 300) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[:n] + "…"


def _to_response(completion: Any, provider_id: str) -> ChatResponse:
    choices = getattr(completion, "choices", None)
    if not choices:
        raise LLMBadResponse(f"{provider_id}: response has no choices")
    choice = choices[0]
    msg = choice.message
    if msg is None:
        raise LLMBadResponse(f"{provider_id}: response choice has no message")
    calls = []
    for i, tc in enumerate(msg.tool_calls or []):
        fn = getattr(tc, "function", None)
        if fn is None:
            continue
        args = fn.arguments
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(id=tc.id or f"call_{i}", name=fn.name or "", arguments=args or "{}"))
    usage = getattr(completion, "usage", None)
    return ChatResponse(
        content=msg.content,
        tool_calls=calls,
        finish_reason=choice.finish_reason or "stop",
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        model=getattr(completion, "model", "") or "",
    )
