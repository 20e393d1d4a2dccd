"""``astra llm serve`` (mounted under ``astra llm``), and the endpoint options every command
that takes ``--base-url`` gets: ``--response-format`` and ``--model-fingerprint``."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from astra.cli_common import cli_errors, console
from astra.errors import ConfigError
from astra.llm.types import RESPONSE_FORMATS

ResponseFormatChoice = Enum("ResponseFormatChoice", {f: f for f in RESPONSE_FORMATS}, type=str)
ResponseFormatOpt = Annotated[ResponseFormatChoice | None, typer.Option(
    "--response-format", envvar="ASTRA_RESPONSE_FORMAT", show_envvar=True,
    help="Structured output on OpenAI-compatible endpoints: json_schema, json_object, none, or auto "
         "(json_schema, falling back when the server refuses it; remembered per endpoint). [default: auto]")]
ModelFingerprintOpt = Annotated[str | None, typer.Option(
    "--model-fingerprint", envvar="ASTRA_MODEL_FINGERPRINT", show_envvar=True,
    help="Identity of the served model in the response cache (FP, or MODEL=FP,...); default: what "
         "the server reports (/v1/models, /props). See docs/llm.md.")]

#: name -> (option, environment variable that carries its value to every LLMSettings.from_env)
ENDPOINT_OPTIONS = {"response_format": (ResponseFormatOpt, "ASTRA_RESPONSE_FORMAT"),
                    "model_fingerprint": (ModelFingerprintOpt, "ASTRA_MODEL_FINGERPRINT")}


def with_endpoint_options(fn: Callable) -> Callable:
    """``fn`` with ``--response-format`` and ``--model-fingerprint`` added, when it takes
    ``--base-url`` and declares neither. A given value is put in the environment for the
    command's run (so every client it builds, in-process or in a worker, sees it) and the
    previous value is restored afterwards."""
    sig = inspect.signature(fn, eval_str=True)
    if "base_url" not in sig.parameters:
        return fn
    extra = [n for n in ENDPOINT_OPTIONS if n not in sig.parameters]
    if not extra:
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        saved: dict[str, str | None] = {}
        for name in extra:
            value = kwargs.pop(name, None)
            value = value.value if isinstance(value, Enum) else value
            env = ENDPOINT_OPTIONS[name][1]
            if value is not None:
                saved[env] = os.environ.get(env)
                os.environ[env] = value
        try:
            return fn(*args, **kwargs)
        finally:
            for env, old in saved.items():
                if old is None:
                    os.environ.pop(env, None)
                else:
                    os.environ[env] = old

    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=ENDPOINT_OPTIONS[n][0]) for n in extra]
    params += [p for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD]
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def install_endpoint_options(app: typer.Typer) -> None:
    """Give every command of ``app`` (and its sub-apps) that takes ``--base-url`` the
    endpoint options; call once, after every command is registered."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = with_endpoint_options(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            install_endpoint_options(group.typer_instance)


@cli_errors
def serve_command(
    model: Annotated[str, typer.Option(
        "--model", "-m", help="'embedded' (the bundled SmolLM2-135M-Instruct), a model directory or a hub id.")]
        = "embedded",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    served_model_name: Annotated[str | None, typer.Option(
        "--served-model-name", help="Model name clients send (default: smollm2-135m-instruct, or the "
                                    "directory's name).")] = None,
    max_batch: Annotated[int, typer.Option(help="Requests generated together in one batch.")] = 8,
    threads: Annotated[int | None, typer.Option(help="CPU threads for generation (default: up to 2; use 1 on a "
                                                     "busy machine).")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", help="The most tokens of any reply, whatever a request asks (a cost bound, like "
                             "llama.cpp's --n-predict).")] = None,
) -> None:
    """Serve a model over the OpenAI chat-completions API (/v1/models, /v1/chat/completions).

    Example: astra llm serve --port 8000, then any stage with
    --llm openai:smollm2-135m-instruct --base-url http://127.0.0.1:8000/v1 (docs/llm.md).
    """
    from astra.llm.server import embedded_app, serve

    ref = None if model in ("embedded", "default") else model.removeprefix("embedded:")
    if max_tokens is not None and max_tokens < 1:
        raise ConfigError(f"--max-tokens must be >= 1, got {max_tokens}")
    app, name = embedded_app(ref, name=served_model_name, max_batch=max_batch, threads=threads,
                             max_tokens_cap=max_tokens)
    console.print(f"serving [bold]{name}[/] on http://{host}:{port}/v1 "
                  f"(--llm openai:{name} --base-url http://{host}:{port}/v1)", highlight=False)
    serve(app, host=host, port=port)
