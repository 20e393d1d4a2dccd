"""An OpenAI-compatible HTTP server in front of any provider (``astra llm serve``).

Serves the embedded model — or any causal LM directory / hub id it can load — so that
anything speaking the chat-completions API (astra's own ``--llm openai:MODEL``, the
``openai`` SDK, tau2-bench, …) can use it:

- ``GET /v1/models`` — the served model, with ``root`` (the weights' directory) and
  ``fingerprint`` (their identity), which astra's cache key reads;
- ``POST /v1/chat/completions`` — messages, ``tools`` (the model's text tool calls are
  parsed and returned as ``tool_calls``), ``tool_choice`` ``auto``/``none``, ``max_tokens``
  / ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``, ``stream``
  (the finished reply is sent as one chunk: generation is batched, not incremental) and
  ``usage`` (``max_tokens_cap`` bounds every reply, as llama.cpp's ``--n-predict`` does). What
  it cannot do it refuses with a 400 that names the parameter:
  ``response_format`` other than ``text`` (there is no constrained decoding), ``n`` > 1,
  ``logprobs``, a forced ``tool_choice``, non-text content;
- ``GET /health``.

Concurrent requests are batched by the provider (the embedded one generates up to
``max_batch`` prompts at once).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from astra.llm.errors import LLMError, LLMRequestError
from astra.llm.types import ChatRequest, ChatResponse

_ROLES = {"system", "user", "assistant", "tool"}


class RequestRefused(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.status, self.kind = message, param, status, kind


def _error(message: str, *, status: int = 400, param: str | None = None,
           kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status)


def _text_content(content: Any, where: str) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RequestRefused(f"{where}: content parts of type {kind!r} are not supported "
                                     "(text only)", "messages")
        return "".join(parts)
    raise RequestRefused(f"{where}: content must be a string or a list of text parts", "messages")


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise RequestRefused("messages must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in _ROLES | {"developer"}:
            raise RequestRefused(f"messages[{i}]: needs a role of {sorted(_ROLES)}", "messages")
        msg = dict(m)
        if msg["role"] == "developer":
            msg["role"] = "system"
        msg["content"] = _text_content(m.get("content"), f"messages[{i}]")
        out.append(msg)
    return out


def chat_request(body: Any, *, max_tokens_cap: int | None = None) -> ChatRequest:
    """The :class:`ChatRequest` of a chat-completions body; :class:`RequestRefused` for what
    this server does not do. ``max_tokens_cap``: the most tokens a reply may have, whatever
    the request asks (like llama.cpp's ``--n-predict``)."""
    if not isinstance(body, dict):
        raise RequestRefused("the body must be a JSON object")
    rf = body.get("response_format")
    if rf is not None:
        kind = rf.get("type") if isinstance(rf, dict) else rf
        if kind != "text":
            raise RequestRefused(f"response_format {kind!r} is not supported by this server (no "
                                 "constrained decoding): state the format in the prompt", "response_format")
    if (body.get("n") or 1) != 1:
        raise RequestRefused("n > 1 is not supported", "n")
    if body.get("logprobs"):
        raise RequestRefused("logprobs are not supported", "logprobs")
    tools = body.get("tools") or None
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise RequestRefused("tools must be a list of objects", "tools")
    choice = body.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise RequestRefused(f"tool_choice {json.dumps(choice)} is not supported (auto or none only)",
                             "tool_choice")
    if choice == "none":
        tools = None
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 512
    if max_tokens_cap:
        try:
            max_tokens = min(int(max_tokens), max_tokens_cap)
        except (TypeError, ValueError):
            raise RequestRefused(f"max_tokens must be an integer, got {max_tokens!r}", "max_tokens") from None
    temperature, top_p = body.get("temperature"), body.get("top_p")
    try:
        return ChatRequest(
            messages=_messages(body.get("messages")), tools=tools,
            temperature=float(temperature if temperature is not None else 0.0),
            top_p=float(top_p if top_p is not None else 1.0),
            max_tokens=int(max_tokens), seed=body.get("seed"), stop=stop or None,
        )
    except (TypeError, ValueError) as e:
        raise RequestRefused(f"invalid request: {' '.join(str(e).split())[:300]}") from None


def completion_body(resp: ChatResponse, model: str) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": resp.content}
    if resp.tool_calls:
        msg["tool_calls"] = [tc.openai() for tc in resp.tool_calls]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": resp.finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": resp.prompt_tokens, "completion_tokens": resp.completion_tokens,
                  "total_tokens": resp.prompt_tokens + resp.completion_tokens},
    }


def _stream(body: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
            "model": body["model"]}
    choice = body["choices"][0]
    delta: dict[str, Any] = {"role": "assistant", "content": choice["message"]["content"]}
    if choice["message"].get("tool_calls"):
        delta["tool_calls"] = [dict(tc, index=i) for i, tc in enumerate(choice["message"]["tool_calls"])]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    for c in chunks:
        yield f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def create_app(provider: Any, model_name: str, *, root: str | None = None,
               fingerprint: str | None = None, max_model_len: int | None = None,
               max_tokens_cap: int | None = None) -> Starlette:
    """The server app around ``provider`` (anything with ``async complete(ChatRequest)``)."""

    async def models(request: Request) -> Response:
        card: dict[str, Any] = {"id": model_name, "object": "model", "created": 0, "owned_by": "astra"}
        if root:
            card["root"] = root
        if fingerprint:
            card["fingerprint"] = fingerprint
        if max_model_len:
            card["max_model_len"] = max_model_len
        return JSONResponse({"object": "list", "data": [card]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def chat(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError as e:
            return _error(f"the body is not JSON: {e}")
        try:
            if isinstance(body, dict) and body.get("model") not in (None, model_name):
                raise RequestRefused(f"the model {body.get('model')!r} does not exist; this server serves "
                                     f"{model_name!r}", "model", status=404, kind="not_found_error")
            req = chat_request(body, max_tokens_cap=max_tokens_cap)
        except RequestRefused as e:
            return _error(e.message, status=e.status, param=e.param, kind=e.kind)
        try:
            resp = await provider.complete(req)
        except LLMRequestError as e:
            return _error(str(e), status=400)
        except LLMError as e:
            return _error(str(e), status=500, kind="server_error")
        except Exception as e:  # the model itself failed: say so, do not hide it
            return _error(f"{type(e).__name__}: {' '.join(str(e).split())[:300]}", status=500,
                          kind="server_error")
        out = completion_body(resp, model_name)
        if body.get("stream"):
            opts = body.get("stream_options") or {}
            return StreamingResponse(_stream(out, bool(opts.get("include_usage"))),
                                     media_type="text/event-stream")
        return JSONResponse(out)

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/health", health, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def embedded_app(model: str | None = None, *, name: str | None = None, max_batch: int = 8,
                 threads: int | None = None, max_tokens_cap: int | None = None) -> tuple[Starlette, str]:
    """The app serving the embedded model (default) or a model directory / hub id; the
    weights are loaded before it returns. Returns (app, served model name)."""
    from astra.llm.embedded import DEFAULT_MODEL, EmbeddedProvider

    provider = EmbeddedProvider(model, max_batch=max_batch, threads=threads)
    lm = provider.loaded()
    served = name or (DEFAULT_MODEL if model in (None, "", "default", DEFAULT_MODEL)
                      else str(model).rstrip("/").rsplit("/", 1)[-1])
    limit = getattr(lm.model.config, "max_position_embeddings", None)
    app = create_app(provider, served, root=provider.path, fingerprint=provider.provider_id,
                     max_model_len=limit, max_tokens_cap=max_tokens_cap)
    return app, served


@contextlib.contextmanager
def running(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields its ``/v1`` base URL."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(app: Starlette, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve in the foreground until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="off")


__all__ = ["create_app", "embedded_app", "running", "serve", "chat_request", "completion_body",
           "RequestRefused"]
