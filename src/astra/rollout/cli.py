"""``astra rollout``: tasks -> multi-turn trajectories on real, live and emulated tools.

::

    astra rollout tasks.jsonl -o trajectories.jsonl --tools tools.jsonl \\
        --agent embedded|openai:MODEL|chain-executor --max-turns 20 \\
        --emulator-failure-rate 0.2 [--emulator-llm openai:MODEL]

The integrator registers :func:`rollout_command` with ``app.command("rollout")``; ``app``
is the same command as a stand-alone Typer app. See docs/rollouts.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from astra.cli_common import (
    RunnerOptions,
    cli_errors,
    note,
    run_stage_cli,
    takes_llm_options,
    takes_runner_options,
)
from astra.llm.options import LLMOptions
from astra.rollout.agent import DEFAULT_MAX_TURNS
from astra.rollout.emulator import DEFAULT_FAILURE_RATE
from astra.rollout.stages import CHAIN_EXECUTOR, RolloutStage, check_agent, is_llm_agent


@cli_errors
@takes_llm_options("base_url", "api_key_env", "concurrency", "no_cache", "timeout")
@takes_runner_options()
def rollout_command(
    tasks: Annotated[Path, typer.Argument(help="Tasks JSONL (astra tasks …).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output trajectories JSONL.")],
    tools: Annotated[Path | None, typer.Option(
        "--tools", help="Servers JSONL from `astra tools ingest` (default: the bundled sample).")] = None,
    agent: Annotated[str, typer.Option(
        "--agent", help="'chain-executor' (offline teacher, no LLM), 'embedded', 'embedded:PATH' or "
                        "'openai:MODEL'.")] = CHAIN_EXECUTOR,
    max_turns: Annotated[int, typer.Option("--max-turns", help="LLM turns per rollout.")] = DEFAULT_MAX_TURNS,
    emulator_failure_rate: Annotated[float, typer.Option(
        "--emulator-failure-rate", help="Share of emulated calls that fail (timeout/unavailable/rate limit).")
    ] = DEFAULT_FAILURE_RATE,
    emulator_llm: Annotated[str | None, typer.Option(
        "--emulator-llm", help="LLM that emulates doc-only servers (default: the agent's LLM, for the chain "
                               "executor ASTRA_LLM; never implicitly the tiny embedded model, which cannot "
                               "emulate tools: doc-only tasks are then rejected as no_emulator).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="Rollouts per task (LLM agents need --temperature > 0).")
                       ] = 1,
    temperature: Annotated[float, typer.Option("--temperature", help="Agent sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per agent turn.")] = 1024,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the per-rollout RNGs (failure injection).")] = 0,
    retries: Annotated[int, typer.Option("--retries", help="Chain executor: retries of a transiently failing call.")
                       ] = 2,
    mcp_timeout: Annotated[float, typer.Option("--mcp-timeout", help="Seconds per MCP tool call.")] = 30.0,
    mcp_concurrency: Annotated[int, typer.Option("--mcp-concurrency", help="MCP calls in flight per server.")] = 4,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Roll out an agent (or the offline chain executor) on tasks; write trajectories."""
    check_agent(agent)
    agent_settings = None
    if is_llm_agent(agent):
        agent_settings = llm_options.settings(agent)
    emulator_settings = None
    if emulator_llm is not None or not is_llm_agent(agent):
        emulator_settings = llm_options.settings(emulator_llm)
    stage = RolloutStage(
        agent=agent, agent_settings=agent_settings, emulator_settings=emulator_settings,
        emulator_explicit=emulator_llm is not None,
        tools_path=str(tools) if tools else None, max_turns=max_turns, samples=samples,
        temperature=temperature, max_tokens=max_tokens, failure_rate=emulator_failure_rate, seed=seed,
        retries=retries, mcp_timeout=mcp_timeout, mcp_concurrency=mcp_concurrency)
    if stage.emulator_spec() is None:
        note("note:", "no tool emulator (the tiny embedded model cannot emulate tools): tasks on doc-only "
             "servers are rejected as no_emulator; pass --emulator-llm to emulate them")
    run_stage_cli(stage, tasks, output, **runner.kwargs())


app = typer.Typer(name="rollout", add_completion=False, help="Roll out agents on tasks.")
app.command("rollout")(rollout_command)
