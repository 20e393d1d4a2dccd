"""The ``astra`` command line: one Typer app with a sub-app per noun."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astra import __version__
from astra.cli_common import (
    ConfigOpt,
    cli_errors,
    console,
    note,
    setup_logging,
    takes_llm_options,
)
from astra.cli_help import AstraGroup
from astra.errors import ConfigError, InputError, NothingProduced
from astra.llm.options import LLMOptions

app = typer.Typer(
    name="astra", cls=AstraGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Train tool-using LLM agents end to end: tool graphs → tasks → trajectories → SFT; "
         "multi-hop questions → verifiable environments → RL.",
)
tools_app = typer.Typer(no_args_is_help=True, help="Ingest, inspect and serve tool servers.")
llm_app = typer.Typer(no_args_is_help=True, help="Talk to a provider; LLM usage of a run.")
app.add_typer(tools_app, name="tools")
app.add_typer(llm_app, name="llm")

import astra.envsynth.cli  # noqa: E402,F401  (adds decompose, validate, synthesize to `astra envs`)
from astra.envs.cli import app as envs_app  # noqa: E402
from astra.eval.cli import app as eval_app  # noqa: E402
from astra.eval.envs import eval_envs_command  # noqa: E402
from astra.export.cli import app as export_app  # noqa: E402
from astra.graph.cli import app as graph_app  # noqa: E402
from astra.judge.cli import judge_command  # noqa: E402
from astra.report.cli import report_command  # noqa: E402
from astra.rollout.cli import rollout_command  # noqa: E402
from astra.tasks.cli import app as tasks_app  # noqa: E402
from astra.train.cli import app as train_app  # noqa: E402

app.add_typer(graph_app, name="graph")
app.add_typer(tasks_app, name="tasks")
app.command("rollout")(rollout_command)
app.command("judge")(judge_command)
app.add_typer(export_app, name="export")
app.add_typer(envs_app, name="envs")
app.add_typer(train_app, name="train")
eval_app.command("envs")(eval_envs_command)


app.add_typer(eval_app, name="eval")
app.command("report")(report_command)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"astra {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging; tracebacks of internal errors.")]
    = False,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print astra's version and exit.")] = False,
) -> None:
    setup_logging(verbose)
    if not sys.stderr.isatty():  # logs and CI: no carriage-return progress bars of HF libraries
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@app.command()
def version() -> None:
    """Print astra's version."""
    typer.echo(__version__)


# ---------------------------------------------------------------------------------
# astra tools
# ---------------------------------------------------------------------------------


@tools_app.command("ingest")
@cli_errors
def tools_ingest(
    sources: Annotated[list[str], typer.Argument(
        help="'sample', servers.jsonl (ASTRA format), tools.json (OpenAI tools), "
             "'stdio:COMMAND', an http(s):// MCP URL, 'py:module[:Class]' or file.py.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL of ToolServer records.")],
    server_name: Annotated[str | None, typer.Option(help="Name of the server of a single-server source.")] = None,
    domain: Annotated[str | None, typer.Option(help="Domain to set on every ingested server.")] = None,
    min_tools: Annotated[int, typer.Option(help="Drop servers with fewer tools than this.")] = 3,
    min_description_words: Annotated[int, typer.Option(help="Drop tools with shorter descriptions.")] = 3,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a live MCP server.")] = 30.0,
) -> None:
    """Ingest tool documents, normalize them to the OpenAI schema and filter them."""
    ingest_tools(sources, output, server_name=server_name, domain=domain, min_tools=min_tools,
                 min_description_words=min_description_words, timeout=timeout)


def ingest_tools(sources: list[str], output: Path, **options) -> dict:
    """Run ingestion and write ``output`` plus ``<output stem>.manifest.json``."""
    from astra.io import write_json, write_jsonl
    from astra.pipeline import Manifest, StagePaths
    from astra.tools.ingest import ingest

    started = datetime.now(UTC).isoformat()
    result = ingest(list(sources), **options)
    write_jsonl(output, result.servers)
    reasons = Counter(r.reason for r in result.rejections)
    manifest = Manifest(
        stage="tools.ingest", config={"sources": list(sources), **options}, input=" ".join(sources),
        output=str(output), status="complete", started_at=started,
        finished_at=datetime.now(UTC).isoformat(), inputs_seen=len(result.servers) + reasons.get(
            "server_too_few_tools", 0), processed=len(result.servers), done=len(result.servers),
        accepted=len(result.servers), outputs=len(result.servers), rejections=len(result.rejections),
        rejections_by_reason=dict(reasons),
        errors_by_type={"input_error": len(result.errors)} if result.errors else {},
        warnings=result.errors[:50],
    )
    # every dropped tool or server with its reason (the counts alone do not say which)
    write_json(StagePaths.of(output).manifest, {**manifest.model_dump(mode="json"),
                                                "dropped": [r.model_dump() for r in result.rejections]})
    n_tools = sum(len(s.tools) for s in result.servers)
    domains = sorted({s.domain for s in result.servers})
    note("ingested", f"{len(result.servers)} servers, {n_tools} tools, {len(domains)} domains → {output}",
         style="green")
    for reason, n in reasons.most_common():
        console.print(f"  dropped {n}: {reason}")
    for r in result.rejections[:20]:
        console.print(f"    {r.key}: {r.detail}", highlight=False)
    if len(result.rejections) > 20:
        console.print(f"    … {len(result.rejections) - 20} more under 'dropped' in the manifest")
    for err in result.errors[:20]:
        note("  input error", err)
    if len(result.errors) > 20:
        console.print(f"  … {len(result.errors) - 20} more input errors in the manifest")
    if not result.servers:
        why = [f"{len(result.errors)} input error(s)"] if result.errors else []
        why += [f"dropped {n}: {reason}" for reason, n in reasons.most_common()]
        raise NothingProduced(f"no tool server ingested from {' '.join(sources)}"
                              + (f" ({'; '.join(why)})" if why else " (the sources hold no tools)"))
    return {"servers": len(result.servers), "tools": n_tools, "domains": domains,
            "rejections": dict(reasons), "errors": len(result.errors)}


@tools_app.command("list")
@cli_errors
def tools_list(path: Annotated[Path, typer.Argument(help="A tools.jsonl written by `astra tools ingest`.")]) -> None:
    """Show the servers and tools of an ingested file."""
    from astra.io import read_records
    from astra.types import ToolServer

    t = Table("server", "domain", "execution", "tools")
    for s in read_records(path, ToolServer):
        t.add_row(s.name, s.domain, s.call.kind, ", ".join(x.name for x in s.tools))
    console.print(t)


@tools_app.command("serve")
@cli_errors
def tools_serve(
    target: Annotated[str, typer.Argument(help="A bundled sample server name (e.g. 'shop') or module:Class.")],
    http: Annotated[int | None, typer.Option(help="Serve streamable HTTP on this port instead of stdio.")] = None,
    sse: Annotated[int | None, typer.Option(help="Serve the legacy SSE transport on this port.")] = None,
    host: Annotated[str, typer.Option(help="HTTP host.")] = "127.0.0.1",
) -> None:
    """Run a Python tool server as a live MCP server (stdio by default)."""
    from astra.data.servers import PYTHON_SERVERS, server_target
    from astra.tools.mcp_serve import serve_http, serve_sse, serve_stdio

    if target in PYTHON_SERVERS:
        target = server_target(target)
    elif ":" not in target and not target.endswith(".py"):
        raise ConfigError(f"unknown sample server {target!r}; samples: {', '.join(sorted(PYTHON_SERVERS))}")
    if sse is not None:
        serve_sse(target, sse, host=host)
    elif http is not None:
        serve_http(target, http, host=host)
    else:
        serve_stdio(target)


# ---------------------------------------------------------------------------------
# astra llm
# ---------------------------------------------------------------------------------


@llm_app.command("serve")
@cli_errors
def llm_serve(
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


@llm_app.command("chat")
@cli_errors
@takes_llm_options("spec", "base_url", "api_key_env", "no_cache", "timeout")
def llm_chat(
    message: Annotated[str, typer.Argument(help="The user message.")],
    llm_options: LLMOptions = LLMOptions(),
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Maximum tokens to generate.")] = 128,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 0.0,
    tools: Annotated[Path | None, typer.Option(help="OpenAI tools JSON to offer the model.")] = None,
) -> None:
    """Send one message to a provider and print the reply (a provider smoke test)."""
    from astra.llm import USAGE, make_client

    client = make_client(llm_options.settings())
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": message}]
    tool_list = None
    if tools is not None:
        try:
            doc = json.loads(tools.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read tools JSON: {e}", path=str(tools)) from None
        tool_list = doc["tools"] if isinstance(doc, dict) and "tools" in doc else doc
    resp = asyncio.run(client.chat(messages, tools=tool_list, max_tokens=max_tokens, temperature=temperature))
    if resp.content:
        typer.echo(resp.content)
    for tc in resp.tool_calls:
        typer.echo(f"tool call: {tc.name}({tc.arguments})")
    for err in resp.parse_errors:
        note("unreadable tool call", err)
    u = USAGE.total()
    console.print(f"{client.provider_id} · {resp.prompt_tokens}+{resp.completion_tokens} tokens · "
                  f"{'cache hit' if resp.cached else f'{u.seconds:.1f}s'} · finish {resp.finish_reason}", style="dim")


@llm_app.command("stats")
@cli_errors
def llm_stats(run_dir: Annotated[Path, typer.Argument(help="A run directory (searched recursively).")],
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
              ) -> None:
    """LLM calls, tokens, cache hits, retries and failures per stage of a run."""
    from astra.llm.usage import Usage
    from astra.pipeline import collect_manifests

    if not run_dir.exists():
        raise InputError("no such run directory", path=str(run_dir))
    rows: dict[str, Usage] = {}
    for m in collect_manifests(run_dir):
        rows.setdefault(m.stage, Usage()).add(m.usage)
    total = Usage()
    for u in rows.values():
        total.add(u)
    if as_json:
        typer.echo(json.dumps({"stages": {k: v.to_dict() for k, v in rows.items()},
                               "total": total.to_dict()}, indent=2))
        return
    t = Table("stage", "requests", "calls", "cache hits", "prompt tok", "completion tok", "retries",
              "repairs", "failures", "seconds", title=f"LLM usage in {run_dir}", title_justify="left")
    for name, u in [*sorted(rows.items()), ("total", total)]:
        t.add_row(name, str(u.requests), str(u.calls), str(u.cache_hits), str(u.prompt_tokens),
                  str(u.completion_tokens), str(u.retries), str(u.repairs), str(u.failures), f"{u.seconds:.1f}")
    console.print(t)


# ---------------------------------------------------------------------------------
# astra demo
# ---------------------------------------------------------------------------------


@app.command()
@cli_errors
@takes_llm_options("spec", "base_url")
def demo(
    profile: Annotated[str, typer.Option(help="'tiny' (minutes, used by the tests) or 'default'.")] = "tiny",
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    llm_options: LLMOptions = LLMOptions(),
    training: Annotated[bool, typer.Option("--training/--no-training",
                                           help="Run SFT, RL and the held-out evaluation.")] = True,
    config: ConfigOpt = None,
) -> None:
    """The main job: the whole flow on the bundled sample, offline, on the embedded model."""
    from astra.demo import run_demo

    run_demo(typer.main.get_command(app), profile=profile, out=out, llm=llm_options.spec,
             base_url=llm_options.base_url, training=training)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
