"""Any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp server,
llama-cpp-python, ``astra llm serve``, hosted APIs). See docs/llm.md.

Three things differ between such servers, and the provider handles each:

- **Structured output** (``response_format``): ``json_schema`` (OpenAI, vLLM, SGLang,
  llama.cpp), ``json_object`` (older servers; llama.cpp and llama-cpp-python also read a
  ``schema`` next to it) or nothing at all. ``auto`` (the default) starts with
  ``json_schema`` and, when the server refuses it with a reply that names
  ``response_format`` / the schema / the grammar, falls back to ``json_object`` and then
  to none; the mode that worked is remembered per endpoint across processes
  (:mod:`astra.llm.endpoints`).
- **Tool calls**: a server started without a tool-call parser returns the model's text
  in ``content``; the calls in it are read with :func:`astra.llm.toolparse.parse_tool_calls`.
- **Identity**: the response cache is keyed by the served model, not the URL
  (:meth:`OpenAIProvider.cache_identity`).

Errors carry the server's own message (trimmed to one line); a 4xx, or a 5xx whose message
says a feature is unsupported, is not retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from typing import Any, Literal

import httpx
import openai

from astra.errors import ConfigError
from astra.llm.endpoints import EndpointStore, endpoint_key
from astra.llm.errors import (
    LLMBadResponse,
    LLMConnectionError,
    LLMError,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
    LLMUnsupported,
)
from astra.llm.toolparse import offered_names, parse_tool_calls
from astra.llm.types import RESPONSE_FORMATS, ChatRequest, ChatResponse, ToolCall

log = logging.getLogger(__name__)

ResponseFormat = Literal["auto", "json_schema", "json_object", "none"]
_LADDER = ("json_schema", "json_object", "none")

#: An error reply that names the structured-output request.
_NAMES_FORMAT = re.compile(r"response_format|json_schema|json_object|\bschema\b|grammar|guided", re.I)
#: An error reply that says the server cannot do what was asked (the same request fails again).
_UNSUPPORTED = re.compile(
    r"not (?:yet )?(?:supported|implemented|available)|unsupported|does(?: not|n't) support|"
    r"NotImplemented|unknown (?:field|parameter|argument)|unrecognized (?:request )?(?:field|argument|parameter)|"
    r"extra (?:fields|inputs) (?:are )?not permitted|extra_forbidden|additional properties are not allowed",
    re.I)


class OpenAIProvider:
    """Chat completions with native or text tool calls.

    ``api_key`` defaults to the environment variable named by ``api_key_env``
    (``ASTRA_API_KEY``, then ``OPENAI_API_KEY``); local servers that need no key get a
    placeholder. ``response_format``: see the module doc. ``model_fingerprint``: the
    identity of the served model for the cache, when the user knows it better than the
    server says. Retries are left to :class:`~astra.llm.client.LLMClient`.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, timeout: float = 120.0,
                 response_format: ResponseFormat = "auto", model_fingerprint: str | None = None,
                 use_response_format: bool = True, extra_body: dict[str, Any] | None = None,
                 store: EndpointStore | None = None):
        if not model:
            raise ConfigError("openai provider needs a model name: --llm openai:MODEL")
        if response_format not in RESPONSE_FORMATS:
            raise ConfigError(f"unknown response format {response_format!r}: use one of "
                              f"{', '.join(RESPONSE_FORMATS)}")
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
        self._api_key = api_key
        self.response_format: str = response_format if use_response_format else "none"
        self.model_fingerprint = model_fingerprint or None
        self.extra_body = extra_body or {}
        self.timeout = timeout
        self.provider_id = f"openai:{model}@{self.base_url or 'api.openai.com'}"
        self.endpoint = endpoint_key(self.base_url, model)
        self._store = store if store is not None else EndpointStore()
        self._format_mode: str | None = None  # auto: the mode that works here (None = not known yet)
        self._identity: str | None = None
        self._identity_lock: asyncio.Lock | None = None
        self._identity_loop: asyncio.AbstractEventLoop | None = None
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=self.base_url, timeout=timeout,
                                          max_retries=0)

    def __getstate__(self) -> dict:
        return {"model": self.model, "base_url": self.base_url, "api_key": self._api_key,
                "timeout": self.timeout, "response_format": self.response_format,
                "model_fingerprint": self.model_fingerprint, "extra_body": self.extra_body,
                "store": self._store.path}

    def __setstate__(self, state: dict) -> None:
        store = EndpointStore(state.pop("store"))
        self.__init__(state.pop("model"), store=store, **state)  # type: ignore[misc]

    # -- structured output ---------------------------------------------------------
    def structured_mode(self) -> str:
        """The ``response_format`` mode a structured request is sent with now."""
        if self.response_format != "auto":
            return self.response_format
        if self._format_mode is None:
            remembered = self._store.get(self.endpoint).get("response_format")
            self._format_mode = remembered if remembered in _LADDER else "json_schema"
        return self._format_mode

    def _format_payload(self, mode: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
        if mode == "json_object":
            # llama.cpp and llama-cpp-python constrain to ``schema``; others ignore it
            return {"type": "json_object", "schema": schema}
        return None

    # -- requests ------------------------------------------------------------------
    def _kwargs(self, request: ChatRequest) -> dict[str, Any]:
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
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        return kwargs

    async def complete(self, request: ChatRequest) -> ChatResponse:
        kwargs = self._kwargs(request)
        if request.json_schema is None:
            return await self._send(request, kwargs, None)
        mode = self.structured_mode()
        if self.response_format != "auto":
            return await self._send(request, kwargs, mode)
        refused: dict[str, str] = {}
        for m in _LADDER[_LADDER.index(mode):]:
            try:
                response = await self._send(request, kwargs, m)
            except LLMUnsupported as e:
                if e.feature != "response_format" or m == "none":
                    raise
                refused[m] = str(e)
                log.info("%s refused response_format %s; trying the next mode", self.endpoint, m)
                continue
            if refused and self._format_mode != m:  # concurrent requests: the first one reports it
                self._format_mode = m
                self._store.update(self.endpoint, response_format=m, refused=refused)
                log.warning("%s does not take response_format %s; using %s from now on (remembered in %s)",
                            self.endpoint, "/".join(refused), m, self._store.path)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, request: ChatRequest, kwargs: dict[str, Any], mode: str | None) -> ChatResponse:
        kwargs = dict(kwargs)
        fmt = self._format_payload(mode, request.json_schema or {}) if mode else None
        if fmt is not None:
            kwargs["response_format"] = fmt
        pid = self.provider_id
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as e:
            raise LLMTimeout(f"{pid}: request timed out") from e
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e.__context__
            raise LLMConnectionError(f"{pid}: cannot connect ({_brief(str(cause or e))})") from e
        except openai.APIStatusError as e:
            raise status_error(pid, e.status_code, error_text(e), format_mode=mode if fmt else None) from e
        except (openai.APIResponseValidationError, json.JSONDecodeError, httpx.DecodingError, ValueError) as e:
            raise LLMBadResponse(f"{pid}: unreadable response ({_brief(str(e))})") from e
        return _to_response(completion, pid, request)



    # -- identity ------------------------------------------------------------------
    async def cache_identity(self) -> str:
        """The served model's identity, the provider part of every cache key.

        In order: ``model_fingerprint`` when given; else what the server reports about
        the model — its ``/v1/models`` entry (vLLM's and SGLang's ``root``: the weights'
        path or hub id; llama.cpp's ``meta``: parameter count, size, vocabulary) and
        llama.cpp's ``/props`` (the chat template) — with the model name (its last path
        component); a server that reports nothing beyond the name is identified by the
        name alone. The URL is part of the identity only when the server cannot be asked
        (no ``/v1/models``), so that nothing is shared with a model that was never seen.
        """
        if self.model_fingerprint:
            return f"openai-fp:{self.model_fingerprint}"
        if self._identity is not None:
            return self._identity
        loop = asyncio.get_running_loop()
        if self._identity_lock is None or self._identity_loop is not loop:
            self._identity_lock, self._identity_loop = asyncio.Lock(), loop
        async with self._identity_lock:
            if self._identity is not None:
                return self._identity
            ident, answered = await self._probe_identity()
            if answered:  # a server that could not be reached is asked again next time
                self._identity = ident
        return ident

    async def _probe_identity(self) -> tuple[str, bool]:
        """(identity, whether the server answered the listing)."""
        base = (self.base_url or "https://api.openai.com/v1").rstrip("/")
        headers = {"Authorization": f"Bearer {self._api_key}"}
        entry: dict[str, Any] | None = None
        props: dict[str, Any] = {}
        try:
            async with httpx.AsyncClient(timeout=min(10.0, self.timeout), headers=headers) as http:
                r = await http.get(f"{base}/models")
                r.raise_for_status()
                listed = [m for m in (r.json() or {}).get("data") or [] if isinstance(m, dict)]
                entry = next((m for m in listed if m.get("id") == self.model), None)
                if entry is None and len(listed) == 1 and self.base_url:
                    entry = listed[0]  # single-model servers (llama.cpp) answer any name
                if entry is not None and self.base_url:
                    root = base[: -len("/v1")] if base.endswith("/v1") else base
                    try:
                        p = await http.get(f"{root}/props")
                        if p.status_code == 200 and isinstance(p.json(), dict):
                            props = p.json()
                    except (httpx.HTTPError, ValueError):
                        props = {}
        except (httpx.TransportError, httpx.TimeoutException) as e:
            log.debug("%s: cannot reach the server (%s)", self.provider_id, e)
            return f"openai:{self.model}@{base}", False
        except (httpx.HTTPError, ValueError, AttributeError) as e:
            log.debug("%s: cannot list models (%s); the URL is part of the cache identity", self.provider_id, e)
            return f"openai:{self.model}@{base}", True
        if entry is None:
            return f"openai:{self.model}@{base}", True
        return served_model_identity(entry, props), True


def served_model_identity(entry: dict[str, Any], props: dict[str, Any] | None = None) -> str:
    """``openai-model:NAME#DIGEST`` from a ``/v1/models`` entry (and llama.cpp ``/props``)."""
    props = props or {}
    name = str(entry.get("root") or entry.get("id") or "")
    facts: dict[str, Any] = {"name": name}
    if isinstance(entry.get("meta"), dict):
        facts["meta"] = {k: entry["meta"].get(k) for k in sorted(entry["meta"])}
    for k in ("max_model_len", "fingerprint"):
        if entry.get(k) is not None:
            facts[k] = entry[k]
    template = props.get("chat_template")
    if isinstance(template, str) and template:
        facts["chat_template"] = hashlib.sha256(template.encode()).hexdigest()[:16]
    blob = json.dumps(facts, sort_keys=True, ensure_ascii=False)
    return f"openai-model:{name}#{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def status_error(pid: str, status: int, message: str, *, format_mode: str | None = None) -> LLMError:
    """The typed error of an HTTP error reply (``message``: the server's text)."""
    where = f"{pid}: HTTP {status}: {message or '(no message)'}"
    if format_mode and status not in (408, 429) and _NAMES_FORMAT.search(message or ""):
        hint = ("; set --response-format auto (falls back), json_object or none"
                if format_mode == "json_schema" else "; set --response-format auto or none")
        return LLMUnsupported(f"{pid}: the server refused response_format {format_mode} "
                              f"(HTTP {status}: {message}){hint}", feature="response_format")
    if status == 429:
        return LLMRateLimited(where)
    if status == 408:
        return LLMTimeout(where)
    if status == 501 or _UNSUPPORTED.search(message or ""):
        return LLMUnsupported(where, feature="")
    if status >= 500:
        return LLMServerError(where)
    return LLMRequestError(where)


def error_text(e: openai.APIStatusError) -> str:
    """The server's error message, one line: ``{"error": {"message"}}``, ``{"detail"}``
    (FastAPI), ``{"message"}``, else the raw body."""
    body: Any = e.body
    text = ""
    if isinstance(body, dict):
        for key in ("message", "detail", "error", "msg"):
            v = body.get(key)
            if isinstance(v, dict):
                v = v.get("message") or json.dumps(v, ensure_ascii=False)
            if isinstance(v, list):  # pydantic validation errors
                v = "; ".join(f"{'.'.join(str(x) for x in d.get('loc', ()))}: {d.get('msg')}"
                              if isinstance(d, dict) else str(d) for d in v)
            if v:
                text = str(v)
                break
        else:
            text = json.dumps(body, ensure_ascii=False)
    elif isinstance(body, str):
        text = body
    if not text:
        try:
            text = e.response.text
        except Exception:  # a streamed or closed response
            text = ""
    return _brief(text)


def _brief(s: str, n: int = 300) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[:n] + "…"


def _to_response(completion: Any, provider_id: str, request: ChatRequest | None = None) -> ChatResponse:
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
    content = msg.content
    errors: list[str] = []
    finish = choice.finish_reason or "stop"
    if not calls and content and request is not None and request.tools:
        parsed = parse_tool_calls(content, offered_names(request.tools))
        if parsed.tool_calls or parsed.errors:
            content, calls, errors = parsed.content, parsed.tool_calls, parsed.errors
            if calls:
                finish = "tool_calls"
    usage = getattr(completion, "usage", None)
    return ChatResponse(
        content=content,
        tool_calls=calls,
        parse_errors=errors,
        finish_reason=finish,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        model=getattr(completion, "model", "") or "",
    )
