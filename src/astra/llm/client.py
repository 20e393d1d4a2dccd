"""One async chat interface around any provider.

:class:`LLMClient` adds, around every provider: the persistent response cache, retries
with exponential backoff and jitter on retryable errors (timeouts, 429, 5xx, broken
responses), a per-request timeout, a concurrency limit, usage accounting per stage and
structured output (extract JSON, validate with pydantic, repair with the error fed back).
A request that still fails raises an :class:`~astra.llm.errors.LLMError`; nothing is ever
defaulted to success.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from astra.llm.cache import ResponseCache
from astra.llm.errors import LLMError, LLMTimeout, StructuredOutputError
from astra.llm.types import ChatRequest, ChatResponse
from astra.llm.usage import USAGE, UsageBook

M = TypeVar("M", bound=BaseModel)


class Provider(Protocol):
    """What a provider implements: one request in, one response out (no retries, no cache).

    A provider may also define ``async cache_identity() -> str``: the identity of the model
    it reaches, used in cache keys instead of ``provider_id`` (the OpenAI provider asks the
    server, so that the same model behind another URL shares the cache)."""

    @property
    def provider_id(self) -> str:
        """Stable identity of the model behind the provider (a label, and the cache identity
        of providers without ``cache_identity``)."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResponse: ...


class LLMClient:
    def __init__(
        self,
        provider: Provider,
        *,
        cache: ResponseCache | None = None,
        max_retries: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 20.0,
        timeout: float | None = 120.0,
        concurrency: int = 8,
        usage: UsageBook = USAGE,
    ):
        self.provider = provider
        self.cache = cache
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.concurrency = concurrency
        self.usage = usage
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def provider_id(self) -> str:
        return self.provider.provider_id

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._semaphore

    async def chat(self, messages: list[dict[str, Any]], *, tools: list[dict] | None = None,
                   **options: Any) -> ChatResponse:
        """Send one chat request (see :class:`ChatRequest` for the options)."""
        return await self.complete(ChatRequest(messages=messages, tools=tools, **options))

    async def cache_identity(self) -> str:
        """The model identity in this client's cache keys."""
        ident = getattr(self.provider, "cache_identity", None)
        return await ident() if ident is not None else self.provider_id

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.usage.record(requests=1)
        key = ""
        if self.cache is not None:
            key = request.cache_key(await self.cache_identity())
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.record(cache_hits=1)
                return hit
        attempt = 0

        def _retryable(exc: BaseException) -> bool:
            return isinstance(exc, LLMError) and exc.retryable

        try:
            async for state in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self.max_retries + 1),
                wait=wait_exponential_jitter(multiplier=self.backoff_initial, max=self.backoff_max,
                                              jitter=self.backoff_initial),
                reraise=True,
            ):
                with state:
                    if attempt:
                        self.usage.record(retries=1)
                    attempt += 1
                    response = await self._call_once(request)
        except LLMError:
            self.usage.record(failures=1)
            raise
        if self.cache is not None:
            self.cache.put(key, response)
        return response

    async def _call_once(self, request: ChatRequest) -> ChatResponse:
        async with self._sem():
            self.usage.record(calls=1)
            t0 = time.perf_counter()
            try:
                if self.timeout:
                    try:
                        resp = await asyncio.wait_for(self.provider.complete(request), self.timeout)
                    except TimeoutError:
                        raise LLMTimeout(f"no response within {self.timeout:g}s") from None
                else:
                    resp = await self.provider.complete(request)
            finally:
                self.usage.record(seconds=time.perf_counter() - t0)
        self.usage.record(prompt_tokens=resp.prompt_tokens, completion_tokens=resp.completion_tokens)
        return resp

    async def structured(
        self,
        messages: list[dict[str, Any]],
        schema: type[M],
        *,
        max_repairs: int = 2,
        **options: Any,
    ) -> M:
        """Ask for a reply that validates as ``schema``.

        The JSON schema is stated in the prompt (and sent as ``response_format`` where the
        provider supports it). A reply that fails to parse or validate is sent back with
        the error, up to ``max_repairs`` times; then :class:`StructuredOutputError`.
        """
        json_schema = schema.model_json_schema()
        instruction = (
            "Reply with a single JSON object and nothing else. It must validate against this "
            f"JSON schema:\n{json.dumps(json_schema, ensure_ascii=False)}"
        )
        convo = _with_instruction(messages, instruction)
        raw = ""
        error = ""
        for attempt in range(max_repairs + 1):
            if attempt:
                self.usage.record(repairs=1)
            resp = await self.complete(ChatRequest(messages=convo, json_schema=json_schema, **options))
            raw = resp.content or ""
            try:
                return schema.model_validate(extract_json(raw))
            except (ValueError, ValidationError) as e:
                error = _short_error(e)
            convo = convo + [
                {"role": "assistant", "content": raw},
                {"role": "user", "content": f"That reply is invalid: {error}. {instruction}"},
            ]
        self.usage.record(failures=1)
        raise StructuredOutputError(
            f"no valid {schema.__name__} after {max_repairs + 1} attempts: {error}",
            raw=raw, attempts=max_repairs + 1,
        )


def _with_instruction(messages: list[dict[str, Any]], instruction: str) -> list[dict[str, Any]]:
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{instruction}".strip()
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


def _short_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        parts = []
        for err in e.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ())) or "<root>"
            parts.append(f"{loc}: {err.get('msg')}")
        return "; ".join(parts)
    return str(e)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (code fences and chatter allowed around it).

    Raises ValueError when there is none.
    """
    if not text or not text.strip():
        raise ValueError("empty reply, expected JSON")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for cand in candidates:
        cand = cand.strip()
        for i, ch in enumerate(cand):
            if ch in "{[":
                try:
                    value, _ = decoder.raw_decode(cand[i:])
                    return value
                except json.JSONDecodeError:
                    continue
    raise ValueError("no JSON object found in the reply")
