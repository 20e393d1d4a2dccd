"""``astra tasks``: task generation, augmentation and scoring.

::

    astra tasks generate verified.jsonl -o tasks.jsonl --mode chain,server [--tools tools.jsonl]
                         [--per-chain N] [--per-server N] [--generator offline|llm]
    astra tasks augment tasks.jsonl -o aug.jsonl --modes diversity,complexity,persona [--per-mode N]
    astra tasks score aug.jsonl -o scored.jsonl --min-quality Q --min-realism R --min-necessity N
                      [--min-difficulty D] [--min-uniqueness U] [--scorer offline|llm] [--dedup-threshold 0.9]

``--generator`` / ``--augmenter`` / ``--scorer`` default to ``offline`` when the LLM is
``offline`` or the tiny embedded default (``embedded`` without a model path) and to
``llm`` otherwise. See docs/tasks.md.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from astra.cli_common import (
    RunnerOptions,
    check_manifest,
    cli_errors,
    command_group,
    console,
    need_file,
    print_manifest,
    run_stage_cli,
    takes_stage_options,
)
from astra.errors import ConfigError, InputError
from astra.llm import LLMSettings
from astra.llm.options import LLMOptions
from astra.pipeline import read_outputs
from astra.tasks.dedup import DEFAULT_DEDUP_THRESHOLD
from astra.tasks.generate import default_backend
from astra.tasks.score import Thresholds
from astra.tasks.stages import (
    AugmentStage,
    GenerateStage,
    ScoreStage,
    default_tools_for,
    generation_requests,
    judged_path,
    load_servers,
    parse_generation_modes,
    select_scored,
)
from astra.types import Chain, ToolServer

app = command_group("tasks", "User tasks from verified chains and servers: generate (offline or LLM), augment, score and "
                             "deduplicate.")

ToolsOpt = Annotated[str | None, typer.Option(
    "--tools", help="Tool servers: tools.jsonl from `astra tools ingest` (or any ingest source, e.g. 'sample'). "
                    "Default for generate: the tools file the chain verification used, else tools.jsonl next "
                    "to the chains file.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random choice (values, phrasings, personas).")]


def _resolve_backend(explicit: str | None, llm: str | None, what: str) -> str:
    try:
        return default_backend(explicit, llm)
    except ValueError as e:
        raise ConfigError(f"--{what}: {e}") from None


def _settings(backend: str, llm: LLMOptions) -> LLMSettings | None:
    if backend != "llm":
        return None
    if (llm.spec or "").strip() == "offline":
        raise ConfigError("--llm offline cannot drive the 'llm' backend; choose a model or the offline backend")
    return llm.settings()


def _servers(tools: str | None, chains: Path | None, *, required: bool) -> list[ToolServer]:
    spec: str | Path | None = tools or default_tools_for(chains)
    if spec is None:
        if required:
            raise ConfigError("no tool servers: pass --tools tools.jsonl (the file `astra tools ingest` wrote)")
        return []
    servers = load_servers(spec)
    if not servers and required:
        raise InputError("no tool server in the tools file", path=str(spec))
    return servers


@app.command("generate")
@cli_errors
@takes_stage_options(help={"limit": "Use only the first N chains and the first N servers (per mode)."})
def generate_cmd(
    chains: Annotated[Path | None, typer.Argument(
        help="Verified chains (verified.jsonl from `astra graph verify`); optional with --mode server.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output tasks JSONL.")] = Path("tasks.jsonl"),
    mode: Annotated[str, typer.Option("--mode", help="Comma list of 'chain' (one request per verified chain) "
                                                     "and 'server' (k = 1..3 tools of each server).")] = "chain,server",
    tools: ToolsOpt = None,
    per_chain: Annotated[int, typer.Option("--per-chain", help="Tasks per chain.")] = 2,
    per_server: Annotated[int, typer.Option("--per-server", help="Server-mode tasks per server (k cycles 1..max-k).")] = 3,
    max_k: Annotated[int, typer.Option("--max-k", help="Most tools in a server-mode task.")] = 3,
    generator: Annotated[str | None, typer.Option(
        "--generator", help="'offline' (values from the server's data, dry-run verified) or 'llm'. Default: offline "
                            "with --llm offline or the embedded default model, llm otherwise.")] = None,
    seed: SeedOpt = 0,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run/--no-dry-run", help="Execute each plan on a fresh instance of a Python server and keep only "
                                       "plans that succeed (turn off for tools with real side effects).")] = True,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Generate tasks: chain-conditioned (exactly the chain's tools, in order) and server-only."""
    modes = parse_generation_modes(mode)
    if "chain" in modes and chains is None:
        raise ConfigError("chain mode needs the verified chains file as argument (or use --mode server)")
    if chains is not None:
        need_file(chains, "chains file")
    backend = _resolve_backend(generator, llm_options.spec, "generator")
    servers = _servers(tools, chains, required=True)
    chain_records: list[Chain] = list(read_outputs(chains, Chain)) if chains is not None and "chain" in modes else []
    limit = runner.limit
    requests = generation_requests(chain_records, servers, modes, limit=limit)
    if limit is not None:
        n_chain = sum(r.mode == "chain" for r in requests)
        console.print(f"--limit {limit}: {n_chain} chain request(s), {len(requests) - n_chain} server request(s)",
                      highlight=False)
    stage = GenerateStage(servers, generator=backend,
                          llm=_settings(backend, llm_options),
                          per_chain=per_chain, per_server=per_server, max_k=max_k, seed=seed, dry_run=dry_run)
    # --limit has cut the requests already
    run_stage_cli(stage, requests, output, **replace(runner, limit=None).kwargs())


@app.command("augment")
@cli_errors
@takes_stage_options()
def augment_cmd(
    tasks: Annotated[Path, typer.Argument(help="Tasks JSONL (from `astra tasks generate`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL: originals and their variants.")],
    modes: Annotated[str, typer.Option("--modes", help="Comma list of diversity, complexity, persona.")] =
        "diversity,complexity,persona",
    per_mode: Annotated[int, typer.Option("--per-mode", help="Variants per mode and task.")] = 1,
    augmenter: Annotated[str | None, typer.Option(
        "--augmenter", help="'offline' (rule-based) or 'llm'. Default as for generate.")] = None,
    personas: Annotated[str | None, typer.Option("--personas", help="Persona JSONL (default: the bundled set).")] = None,
    tools: Annotated[str | None, typer.Option("--tools", help="Tool servers, to reject variants naming any of "
                                                              "their tools (default: the task's own tools).")] = None,
    seed: SeedOpt = 0,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Augment tasks: keep each original and add diversity / complexity / persona variants."""
    need_file(tasks, "tasks file")
    backend = _resolve_backend(augmenter, llm_options.spec, "augmenter")
    stage = AugmentStage(modes=modes, per_mode=per_mode, augmenter=backend,
                         llm=_settings(backend, llm_options),
                         seed=seed, personas=personas, servers=_servers(tools, None, required=False))
    run_stage_cli(stage, tasks, output, **runner.kwargs())


@app.command("score")
@cli_errors
@takes_stage_options()
def score_cmd(
    tasks: Annotated[Path, typer.Argument(help="Tasks JSONL (from `astra tasks augment` or `generate`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL of the kept tasks; every scored "
                                                                "task also goes to <output>.judged.jsonl.")],
    min_quality: Annotated[int, typer.Option("--min-quality", help="Minimum question quality (1-5).")] = 3,
    min_realism: Annotated[int, typer.Option("--min-realism", help="Minimum scenario realism (1-5).")] = 3,
    min_necessity: Annotated[int, typer.Option("--min-necessity", help="Minimum tool-use necessity (1-5).")] = 3,
    min_difficulty: Annotated[int | None, typer.Option("--min-difficulty", help="Minimum tool-selection difficulty (1-5); off by default.")] = None,
    min_uniqueness: Annotated[int | None, typer.Option("--min-uniqueness", help="Minimum uniqueness (1-5); off by default.")] = None,
    dedup_threshold: Annotated[float, typer.Option(
        "--dedup-threshold", help="Drop a task whose normalized query has character-5-shingle Jaccard >= this with "
                                  "a kept one (1.0 = exact duplicates only).")] = DEFAULT_DEDUP_THRESHOLD,
    scorer: Annotated[str | None, typer.Option(
        "--scorer", help="'offline' (documented heuristics) or 'llm'. Default as for generate.")] = None,
    tools: Annotated[str | None, typer.Option("--tools", help="Tool servers, shown to the LLM judge and used to "
                                                              "spot tool names (optional).")] = None,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Score tasks (quality, realism, necessity, difficulty, uniqueness), keep those passing every
    threshold, and drop near duplicates."""
    need_file(tasks, "tasks file")
    for name, v in (("--min-quality", min_quality), ("--min-realism", min_realism),
                    ("--min-necessity", min_necessity), ("--min-difficulty", min_difficulty),
                    ("--min-uniqueness", min_uniqueness)):
        if v is not None and not 1 <= v <= 5:
            raise ConfigError(f"{name} must be in 1..5, got {v}")
    if not 0 < dedup_threshold <= 1:
        raise ConfigError(f"--dedup-threshold must be in (0, 1], got {dedup_threshold}")
    backend = _resolve_backend(scorer, llm_options.spec, "scorer")
    stage = ScoreStage(scorer=backend,
                       llm=_settings(backend, llm_options),
                       servers=_servers(tools, None, required=False))
    judged = judged_path(output)
    run_stage_cli(stage, tasks, judged, **runner.kwargs())
    thresholds = Thresholds(quality=min_quality, realism=min_realism, necessity=min_necessity,
                            difficulty=min_difficulty, uniqueness=min_uniqueness)
    manifest = select_scored(judged, output, thresholds=thresholds, dedup_threshold=dedup_threshold,
                             progress=False)
    print_manifest(manifest)
    console.print(f"kept {manifest.outputs} task(s) in {output}", highlight=False)
    check_manifest(manifest)


__all__ = ["app"]
