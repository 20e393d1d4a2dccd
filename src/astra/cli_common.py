"""Options and helpers shared by every ``astra`` sub-command.

Each noun package (tools, graph, tasks, …) defines its commands on a Typer sub-app and uses
these helpers, so every stage command takes the same LLM and runner options and prints the
same summary. The LLM options are declared once here and reach a command as one
:class:`~astra.llm.options.LLMOptions` through :func:`takes_llm_options`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from astra.choices import comma_items
from astra.cli_config import Flag, takes_options
from astra.errors import AstraError, ConfigError, InputError, NothingProduced, StageFailed
from astra.io import os_error_message
from astra.llm.options import LLMOptions
from astra.llm.types import RESPONSE_FORMATS
from astra.pipeline import Manifest, Stage, run_stage
from astra.pipeline.executors import Executor
from astra.pipeline.runner import DEFAULT_MAX_ENDPOINT_FAILURES

#: The console every command prints through. Markup and emoji codes are off: messages
#: carry file names, field paths (``[tool_list]``), JSON and model output, which rich would
#: otherwise read as style tags (and drop) or as ``:emoji:`` codes. Colour goes through
#: ``style=`` / :class:`rich.text.Text` instead.
console = Console(stderr=True, markup=False, emoji=False)

_VERBOSE = False


def note(label: str, message: str = "", *, style: str = "yellow") -> None:
    """Print ``label`` (styled) then ``message`` verbatim (never read as markup)."""
    console.print(Text.assemble((label, style), " " + message if message else ""), soft_wrap=True)


def print_error(message: str) -> None:
    """The one line of an error, verbatim."""
    console.print(Text.assemble(("error:", "bold red"), " " + message), soft_wrap=True, highlight=False)


# -- option groups: options declared once, taken by a command as one object ---------------
# (astra.cli_config.takes_options: each field of the object is an option, in the place of
# the command's parameter that takes the object)

F = TypeVar("F", bound=Callable[..., Any])

# -- LLM options ---------------------------------------------------------------------------
ResponseFormatChoice = Enum("ResponseFormatChoice", {f: f for f in RESPONSE_FORMATS}, type=str)  # type: ignore[misc]

#: How each LLMOptions field appears on the command line (the dataclass lives in
#: astra.llm, which knows nothing of the CLI); in the order they are listed in ``--help``.
LLM_OPTIONS: dict[str, Flag] = {
    "spec": Flag("--llm", param="llm", envvar="ASTRA_LLM",
                 help="Provider: 'embedded' (in-process SmolLM2, offline), 'embedded:PATH' or 'openai:MODEL'."),
    "base_url": Flag(envvar="ASTRA_BASE_URL",
                     help="OpenAI-compatible endpoint URL (vLLM, SGLang, llama.cpp server, hosted API)."),
    "api_key_env": Flag(help="Environment variable holding the API key (default ASTRA_API_KEY, then "
                             "OPENAI_API_KEY)."),
    "concurrency": Flag(param="llm_concurrency", help="Concurrent LLM requests."),
    "no_cache": Flag(negatable=False, help="Bypass the persistent LLM response cache."),
    "timeout": Flag(param="llm_timeout", help="Seconds per LLM request before a retry."),
    "response_format": Flag(
        type=ResponseFormatChoice, envvar="ASTRA_RESPONSE_FORMAT",
        help="Structured output on OpenAI-compatible endpoints: json_schema, json_object, none, or auto "
             "(json_schema, falling back when the server refuses it; remembered per endpoint). [default: auto]"),
    "model_fingerprint": Flag(
        envvar="ASTRA_MODEL_FINGERPRINT",
        help="Identity of the served model in the response cache (FP, or MODEL=FP,...); default: what "
             "the server reports (/v1/models, /props). See docs/llm.md."),
}
#: The options a command gets from ``@takes_llm_options()``.
LLM_DEFAULT = ("spec", "base_url", "api_key_env", "concurrency", "no_cache", "timeout")
#: What every command that takes ``--base-url`` also gets.
LLM_ENDPOINT = ("response_format", "model_fingerprint")


def takes_llm_options(*fields: str, help: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Give a command the LLM options: its parameter ``llm_options: LLMOptions`` becomes the
    options named by ``fields`` (:class:`LLMOptions` fields; default :data:`LLM_DEFAULT`),
    plus ``--response-format`` and ``--model-fingerprint`` when ``base_url`` is among them,
    in its place in ``--help``. ``help`` replaces an option's help text (by field). The
    command receives one :class:`LLMOptions` (fields not offered keep their defaults) and
    runs with its endpoint options exported (:meth:`LLMOptions.exported`)."""
    chosen = list(fields or LLM_DEFAULT)
    if "base_url" in chosen:
        chosen += [f for f in LLM_ENDPOINT if f not in chosen]
    return takes_options(LLMOptions, param="llm_options", fields=chosen, flags=LLM_OPTIONS, help=help,
                         around=LLMOptions.exported)


# -- runner options ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunnerOptions:
    """How a command runs its stage: ``run_stage_cli(stage, inputs, output, **runner.kwargs())``.
    Each field is an option (:func:`takes_runner_options`), listed in this order."""

    limit: Annotated[int | None, Flag(help="Process only the first N input records.")] = None
    concurrency: Annotated[int, Flag(short="-j", help="Records processed at once.")] = 4
    executor: Annotated[str, Flag(help="'local' (asyncio) or 'ray'.")] = "local"
    ray_address: Annotated[str | None, Flag(help="Ray cluster address (executor ray).")] = None
    skip_failed: Annotated[bool, Flag(
        "--skip-failed/--retry-failed",
        help="Inputs that failed in an earlier run (endpoint down, timeout, error) are processed again by "
             "default (--retry-failed); --skip-failed leaves them failed. Rejections are never redone.")] = False
    no_progress: Annotated[bool, Flag(negatable=False, help="Hide the progress bar.")] = False

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def takes_runner_options(*fields: str, help: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Give a command the runner options: its parameter ``runner: RunnerOptions`` becomes the
    options named by ``fields`` (default: all), the way :func:`takes_llm_options` does."""
    return takes_options(RunnerOptions, param="runner", fields=fields or None, help=help)


def takes_stage_options(*, help: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """What a stage command that talks to a model takes: the LLM options
    (:func:`takes_llm_options`, as ``llm_options``) then the runner options
    (:func:`takes_runner_options`, as ``runner``). ``help`` replaces a runner option's help."""

    def decorate(fn: F) -> F:
        return takes_llm_options()(takes_runner_options(help=help)(fn))

    return decorate


def command_group(name: str, help: str) -> typer.Typer:
    """The sub-app of a noun (``astra NAME COMMAND``): a group even while it has one command
    (``astra export sft``), whose help it prints when called bare."""
    app = typer.Typer(name=name, no_args_is_help=True, add_completion=False, help=help)

    @app.callback()
    def _group() -> None:
        pass

    return app


# -- checks every command makes of its paths ------------------------------------------------


def comma_list(s: str | None) -> list[str] | None:
    """The items of a comma list option (``a, b,c``), or None when it is unset or empty."""
    if s is None:
        return None
    return comma_items(s) or None


def need_file(path: Path, what: str = "file") -> Path:
    """``path``, which must exist: otherwise an :class:`InputError` ``<what> not found``."""
    if not path.exists():
        raise InputError(f"{what} not found", path=str(path))
    return path


def output_dir(path: Path) -> Path:
    """``--output`` as a directory: a :class:`ConfigError` when it is an existing file."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output must be a directory, {path} is a file")
    return path


# -- a run from one file ----------------------------------------------------------------


def _read_config(path: Path) -> dict[str, Any]:
    from astra.io import read_text_file

    raw = read_text_file(path)
    suffix = path.suffix.lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if suffix == ".toml":
        import tomllib

        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{path}: invalid YAML ({first})") from None
    else:
        raise ConfigError(f"{path}: a config file must end in .yaml, .yml or .toml")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    return data


def config_defaults(command: Any, data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Map a config file's keys (option names with or without dashes, or parameter names)
    to the command's parameters; an unknown key is a :class:`ConfigError` naming it."""
    lookup: dict[str, tuple[str, bool]] = {}  # key -> (parameter name, negated)
    for p in command.params:
        if p.name == "config":
            continue
        lookup[p.name.replace("-", "_")] = (p.name, False)
        for opt in p.opts:
            if opt.startswith("--"):
                lookup[opt[2:].replace("-", "_")] = (p.name, False)
        for opt in getattr(p, "secondary_opts", ()):
            if opt.startswith("--"):
                lookup[opt[2:].replace("-", "_")] = (p.name, True)
    out: dict[str, Any] = {}
    for key, value in data.items():
        k = str(key).strip().lstrip("-").replace("-", "_")
        if k not in lookup:
            known = ", ".join(sorted({n for n, _ in lookup.values()}))
            raise ConfigError(f"{path}: unknown key {key!r} for `{command.name}` (known: {known})")
        name, negated = lookup[k]
        if negated:
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: {key!r} takes true or false, got {value!r}")
            value = not value
        if name in out:
            raise ConfigError(f"{path}: {key!r} sets {name!r} a second time")
        out[name] = value
    return out


def _load_config(ctx: typer.Context, param: Any, value: Path | None) -> Path | None:
    """``--config FILE``: the file's values become the command's defaults (explicit flags
    still win). Runs before the other options (eager)."""
    if value is None:
        return None
    try:
        defaults = config_defaults(ctx.command, _read_config(Path(value)), Path(value))
    except AstraError as e:
        raise typer.BadParameter(str(e), ctx=ctx, param=param) from None
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", is_eager=True, callback=_load_config, metavar="FILE",
    help="A YAML (.yaml/.yml) or TOML (.toml) file of option values (keys: the option names, e.g. "
         "max_steps or max-steps); options given on the command line override them, an unknown key is an "
         "error. One file reproduces a run.")]

#: Exit codes of every ``astra`` command (documented in docs/cli.md).
EXIT_CODES = {
    0: "success (a stage may still have rejected or failed some records: see its summary)",
    1: "error: bad input, option, configuration or output path (one line says which)",
    2: "usage error: unknown option, missing argument (printed by the parser)",
    3: "nothing produced: the stage or command finished without writing a single record",
    4: "records failed: every record a stage run processed failed, or the endpoint breaker stopped "
       "the stage; rerun the same command to retry them",
    70: "internal error: a bug in astra (rerun with -v for the traceback)",
    130: "interrupted (Ctrl-C); rerun the same command to resume",
}


def cli_errors(fn: Callable) -> Callable:
    """Turn astra's typed errors, and the operating system's, into one clear line on
    stderr and the exit code of :data:`EXIT_CODES`; an unexpected exception is one line
    too (``-v`` prints its traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AstraError as e:
            print_error(str(e))
            raise typer.Exit(getattr(e, "exit_code", 1)) from None
        except KeyboardInterrupt:
            note("interrupted", "— rerun the same command to resume")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except OSError as e:
            print_error(os_error_message(e))
            raise typer.Exit(1) from None
        except RecursionError:
            print_error("input nested too deep to process")
            raise typer.Exit(1) from None
        except Exception as e:  # one line, not a traceback; -v shows it
            if _VERBOSE:
                console.print_exception()
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print_error(f"internal error: {type(e).__name__}{': ' + first if first else ''} "
                        "(a bug in astra; rerun with -v for the traceback)")
            raise typer.Exit(70) from None

    return wrapper


def max_endpoint_failures() -> int:
    """The endpoint breaker's threshold: ``ASTRA_MAX_ENDPOINT_FAILURES`` (0 = off)."""
    raw = os.environ.get("ASTRA_MAX_ENDPOINT_FAILURES")
    if raw is None or not raw.strip():
        return DEFAULT_MAX_ENDPOINT_FAILURES
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"ASTRA_MAX_ENDPOINT_FAILURES must be an integer, got {raw!r}") from None
    if n < 0:
        raise ConfigError(f"ASTRA_MAX_ENDPOINT_FAILURES must be >= 0, got {n}")
    return n


def run_stage_cli(stage: Stage, inputs: Any, output: Path, *, limit: int | None = None,
                  concurrency: int = 4, executor: Executor = "local", ray_address: str | None = None,
                  skip_failed: bool = False, no_progress: bool = False) -> Manifest:
    """Run a stage with the CLI's options, print its summary and turn a run that decided
    nothing (:class:`StageFailed`) or wrote nothing (:class:`NothingProduced`) into an
    error."""
    manifest = run_stage(stage, inputs, output, concurrency=concurrency, limit=limit,
                         executor=executor, ray_address=ray_address, skip_failed=skip_failed,
                         max_endpoint_failures=max_endpoint_failures(),
                         progress=not no_progress and sys.stderr.isatty())
    print_manifest(manifest)
    check_manifest(manifest)
    return manifest


def _counts(d: dict[str, int], n: int = 4) -> str:
    items = sorted(d.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k} {v}" for k, v in items[:n])
    return text + (f", … {len(items) - n} more" if len(items) > n else "")


def check_manifest(m: Manifest) -> None:
    """Raise when the run decided nothing or the output is empty; warn about failures."""
    ledger = m.ledger or "the ledger"
    if m.processed and m.processed_failed == m.processed:
        kinds = m.failures_by_kind
        hint = ("the endpoint did not answer: check that it is up (--base-url / ASTRA_BASE_URL), the model "
                "name and the API key" if kinds.get("endpoint") else f"each error is in {ledger}; -v shows "
                "tracebacks")
        raise StageFailed(f"{m.stage}: all {m.processed} records this run processed failed "
                          f"({_counts(m.errors_by_type)}); {hint}. Rerun the same command to retry them")
    if m.outputs == 0:
        if m.done == 0 and m.inputs_seen == 0:
            why = "the input has no records" + (" (--limit 0)" if m.limit == 0 else "")
        else:
            parts = []
            if m.rejected:
                parts.append(f"{m.rejected} rejected ({_counts(m.rejections_by_reason)})")
            if m.failed:
                parts.append(f"{m.failed} failed ({_counts(m.errors_by_type)}; rerun to retry them)")
            if m.empty:
                parts.append(f"{m.empty} produced no output and no rejection")
            why = f"of {m.done} inputs, " + "; ".join(parts) if parts else "no input was processed"
        raise NothingProduced(f"{m.stage}: no record written to {m.output} — {why}")
    if m.failed:
        note("warning:", f"{m.failed} input(s) failed ({_counts(m.failures_by_kind)}): rerun the same "
             "command to retry them")


def print_manifest(m: Manifest) -> None:
    t = Table(title=f"{m.stage} → {m.output}", show_header=False, title_justify="left")
    t.add_row("inputs (this run)", f"{m.inputs_seen} seen, {m.skipped_done} already done, {m.processed} processed"
              + (f", {m.processed_failed} failed" if m.processed_failed else ""))
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
    global _VERBOSE
    _VERBOSE = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
