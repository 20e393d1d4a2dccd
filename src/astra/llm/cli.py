"""``astra llm serve``: a model as an OpenAI-compatible server (mounted under ``astra llm``)."""

from __future__ import annotations

from typing import Annotated

import typer

from astra.cli_common import cli_errors, console
from astra.errors import ConfigError


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
