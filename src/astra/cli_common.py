"""Options and helpers shared by every ``astra`` sub-command.

Each noun package (tools, graph, tasks, …) defines its commands on a Typer sub-app and uses
these helpers, so every stage command takes the same LLM and runner options and prints the
same summary.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from astra.errors import AstraError
from astra.llm import LLMSettings
from astra.pipeline import Manifest, Stage, run_stage

console = Console(stderr=True)

# -- LLM options -----------------------------------------------------------------------
LLMOpt = Annotated[str | None, typer.Option(
    "--llm", envvar="ASTRA_LLM", show_envvar=True,
    help="Provider: 'embedded' (in-process SmolLM2, offline), 'embedded:PATH' or 'openai:MODEL'.")]
BaseUrlOpt = Annotated[str | None, typer.Option(
    "--base-url", envvar="ASTRA_BASE_URL", show_envvar=True,
    help="OpenAI-compatible endpoint URL (vLLM, SGLang, llama.cpp server, hosted API).")]
ApiKeyEnvOpt = Annotated[str | None, typer.Option(
    "--api-key-env", help="Environment variable holding the API key (default ASTRA_API_KEY, then OPENAI_API_KEY).")]
LLMConcurrencyOpt = Annotated[int, typer.Option("--llm-concurrency", help="Concurrent LLM requests.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Bypass the persistent LLM response cache.")]
TimeoutOpt = Annotated[float, typer.Option("--llm-timeout", help="Seconds per LLM request before a retry.")]

# -- runner options --------------------------------------------------------------------
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Process only the first N input records.")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", "-j", help="Records processed at once.")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="'local' (asyncio) or 'ray'.")]
RayAddressOpt = Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (executor ray).")]
RetryFailedOpt = Annotated[bool, typer.Option("--retry-failed", help="Re-process inputs that failed before.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")]


def llm_settings(llm: str | None = None, base_url: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, no_cache: bool = False, timeout: float = 120.0) -> LLMSettings:
    return LLMSettings.from_env(spec=llm, base_url=base_url, api_key_env=api_key_env,
                                concurrency=concurrency, cache=not no_cache, timeout=timeout)


def cli_errors(fn: Callable) -> Callable:
    """Turn astra's typed errors into one clear line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AstraError as e:
            console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/] — rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


def run_stage_cli(stage: Stage, inputs: Any, output: Path, *, limit: int | None = None,
                  concurrency: int = 4, executor: str = "local", ray_address: str | None = None,
                  retry_failed: bool = False, no_progress: bool = False) -> Manifest:
    """Run a stage with the CLI's options and print its summary."""
    manifest = run_stage(stage, inputs, output, concurrency=concurrency, limit=limit,
                         executor=executor, ray_address=ray_address, retry_failed=retry_failed,
                         progress=not no_progress and sys.stderr.isatty())
    print_manifest(manifest)
    return manifest


def print_manifest(m: Manifest) -> None:
    t = Table(title=f"{m.stage} → {m.output}", show_header=False, title_justify="left")
    t.add_row("inputs (this run)", f"{m.inputs_seen} seen, {m.skipped_done} already done, {m.processed} processed")
    t.add_row("accepted / rejected / failed", f"{m.accepted} / {m.rejected} / {m.failed}")
    t.add_row("records written", str(m.outputs))
    for reason, n in sorted(m.rejections_by_reason.items(), key=lambda kv: -kv[1]):
        t.add_row(f"  rejected: {reason}", str(n))
    for err, n in sorted(m.errors_by_type.items(), key=lambda kv: -kv[1]):
        t.add_row(f"  failed: {err}", str(n))
    u = m.usage
    if u.requests:
        t.add_row("LLM", f"{u.requests} requests, {u.calls} calls, {u.cache_hits} cache hits, "
                         f"{u.prompt_tokens}+{u.completion_tokens} tokens, {u.failures} failures")
    for w in m.warnings:
        t.add_row("warning", w)
    console.print(t)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
