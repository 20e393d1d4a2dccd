"""``astra llm serve`` (mounted under ``astra llm``), and the LLM options of every command
that talks to a model: declared here once, taken as one :class:`~astra.llm.options.LLMOptions`
through :func:`takes_llm_options`."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, TypeVar

import typer

from astra.cli_common import cli_errors, console
from astra.errors import ConfigError
from astra.llm.options import LLMOptions
from astra.llm.types import RESPONSE_FORMATS

ResponseFormatChoice = Enum("ResponseFormatChoice", {f: f for f in RESPONSE_FORMATS}, type=str)  # type: ignore[misc]


@dataclass(frozen=True)
class _Option:
    """One LLM option: the command parameter it becomes, its type and default, its typer option."""

    param: str
    type: Any
    default: Any
    option: Any  # typer.models.OptionInfo


def _option(param: str, type_: Any, default: Any, *names: str, **kw: Any) -> _Option:
    return _Option(param, type_, default, typer.Option(*names, **kw))


#: LLMOptions field -> its option, in the order they are listed in ``--help``.
OPTIONS: dict[str, _Option] = {
    "spec": _option("llm", str | None, None, "--llm", envvar="ASTRA_LLM", show_envvar=True,
                    help="Provider: 'embedded' (in-process SmolLM2, offline), 'embedded:PATH' or 'openai:MODEL'."),
    "base_url": _option("base_url", str | None, None, "--base-url", envvar="ASTRA_BASE_URL", show_envvar=True,
                        help="OpenAI-compatible endpoint URL (vLLM, SGLang, llama.cpp server, hosted API)."),
    "api_key_env": _option("api_key_env", str | None, None, "--api-key-env",
                           help="Environment variable holding the API key (default ASTRA_API_KEY, then "
                                "OPENAI_API_KEY)."),
    "concurrency": _option("llm_concurrency", int, 8, "--llm-concurrency", help="Concurrent LLM requests."),
    "no_cache": _option("no_cache", bool, False, "--no-cache", help="Bypass the persistent LLM response cache."),
    "timeout": _option("llm_timeout", float, 120.0, "--llm-timeout", help="Seconds per LLM request before a retry."),
    "response_format": _option(
        "response_format", ResponseFormatChoice | None, None, "--response-format", envvar="ASTRA_RESPONSE_FORMAT",
        show_envvar=True,
        help="Structured output on OpenAI-compatible endpoints: json_schema, json_object, none, or auto "
             "(json_schema, falling back when the server refuses it; remembered per endpoint). [default: auto]"),
    "model_fingerprint": _option(
        "model_fingerprint", str | None, None, "--model-fingerprint", envvar="ASTRA_MODEL_FINGERPRINT",
        show_envvar=True,
        help="Identity of the served model in the response cache (FP, or MODEL=FP,...); default: what "
             "the server reports (/v1/models, /props). See docs/llm.md."),
}
#: The options a command gets from ``@takes_llm_options()``.
ALL = ("spec", "base_url", "api_key_env", "concurrency", "no_cache", "timeout")
#: What every command that takes ``--base-url`` also gets.
ENDPOINT = ("response_format", "model_fingerprint")
#: The parameter of a decorated command that receives the :class:`LLMOptions`.
PARAM = "llm_options"

F = TypeVar("F", bound=Callable[..., Any])


def _annotation(field: str, help: str | None) -> Any:
    opt = OPTIONS[field]
    info = opt.option
    if help is not None:
        info = copy.copy(info)
        info.help = help
    return Annotated[opt.type, info]


def takes_llm_options(*fields: str, help: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Give a command the LLM options: its parameter ``llm_options: LLMOptions`` becomes the
    options named by ``fields`` (:class:`LLMOptions` fields; default :data:`ALL`), plus
    ``--response-format`` and ``--model-fingerprint`` when ``base_url`` is among them, in its
    place in ``--help``. ``help`` replaces an option's help text (by field). The command
    receives one :class:`LLMOptions` (fields not offered keep their defaults) and runs with
    its endpoint options exported (:meth:`LLMOptions.exported`)."""
    chosen = list(fields or ALL)
    unknown = [f for f in (*chosen, *(help or {})) if f not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown LLM option(s) {unknown}; known: {list(OPTIONS)}")
    if "base_url" in chosen:
        chosen += [f for f in ENDPOINT if f not in chosen]
    by_param = {OPTIONS[f].param: f for f in chosen}

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        if PARAM not in sig.parameters:
            raise TypeError(f"{fn.__name__} has no parameter {PARAM!r} to take the LLM options")
        params: list[inspect.Parameter] = []
        for p in sig.parameters.values():
            if p.name != PARAM:
                params.append(p)
                continue
            params += [inspect.Parameter(OPTIONS[f].param, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                         default=OPTIONS[f].default,
                                         annotation=_annotation(f, (help or {}).get(f))) for f in chosen]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {by_param[n]: kwargs.pop(n) for n in list(kwargs) if n in by_param}
            values = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
            options = LLMOptions(**values)
            with options.exported():
                return fn(*args, **{PARAM: options}, **kwargs)

        new_sig = sig.replace(parameters=params)
        wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
        if sig.return_annotation is not sig.empty:
            wrapper.__annotations__["return"] = sig.return_annotation
        return wrapper  # type: ignore[return-value]

    return decorate


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
