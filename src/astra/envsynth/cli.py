"""``astra envs`` synthesis commands: QA decomposition, validation, environment synthesis.

::

    astra envs decompose -o qa.jsonl [--limit N] [--seed S] [--n 8] [--hops auto]     # offline worlds
    astra envs decompose --domains geo,film --knowledge corpus.jsonl --hops 3-5 -o qa.jsonl \\
                         [--questions q.jsonl] [--scenarios ...] [--n N] [--llm ...]
    astra envs validate qa.jsonl -o valid.jsonl --percentile 90 [--min-qs X] [--validator offline|llm]

    astra envs synthesize valid.jsonl -o envs/ [--synthesizer offline|llm] [--max-attempts 3]
    astra envs stateful --tasks tasks.jsonl --tools tools.jsonl -o envs/   # stateful environments

Importing this module adds these commands to the ``astra envs`` group of
:mod:`astra.envs.cli` (verify, play, serve, split), which never imports synthesis.
See docs/environments.md. Each command is a thin wrapper: the logic lives in
:mod:`astra.envsynth.compose`, :mod:`~astra.envsynth.decompose`, :mod:`~astra.envsynth.validate`,
:mod:`~astra.envsynth.synth` and :mod:`astra.envs`.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astra.cli_common import (
    RunnerOptions,
    check_manifest,
    cli_errors,
    comma_list,
    console,
    need_file,
    output_dir,
    print_manifest,
    run_stage_cli,
    takes_runner_options,
    takes_stage_options,
)
from astra.envs.cli import SCENARIOS, app
from astra.errors import ConfigError, InputError
from astra.llm.options import LLMOptions
from astra.pipeline import Stage, read_outputs
from astra.types import QAInstance

# The synthesis commands join the `astra envs` group of the runtime commands (astra.envs.cli).

# -- options shared by the envs commands ------------------------------------------------
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output JSONL.")]
DomainsOpt = Annotated[str | None, typer.Option(
    "--domains", help="Comma list of domains: knowledge worlds (offline) or corpus domains (LLM). Default: all.")]
ScenariosOpt = Annotated[str | None, typer.Option(
    "--scenarios", help="Comma list of single_hop, parallel_single_hop, multi_hop, parallel_multi_hop "
                        "(default: all four).")]
HopsOpt = Annotated[str | None, typer.Option(
    "--hops", help="Hop budget (sub-questions per instance): N (fixed), A-B (range) or auto "
                   "(model-chosen / sampled per scenario). Default: auto offline, 3-5 with an LLM.")]


def _scenario_table(per: Counter[tuple[str, str]], title: str) -> Table:
    """Counts per domain (rows) and scenario type (columns), with totals."""
    t = Table("domain", *SCENARIOS, "total", title=title, title_justify="left")
    doms = sorted({d for d, _ in per})
    for dom in doms:
        row = [per.get((dom, s), 0) for s in SCENARIOS]
        t.add_row(dom, *map(str, row), str(sum(row)))
    tot = [sum(per.get((d, s), 0) for d in doms) for s in SCENARIOS]
    t.add_row("total", *map(str, tot), str(sum(tot)))
    return t


def _summary(output: Path) -> None:
    """Instances per domain and scenario type, and the hop counts, of a QA output."""
    insts = list(read_outputs(output, QAInstance))
    if not insts:
        return
    console.print(_scenario_table(Counter((i.domain, i.scenario) for i in insts), f"QA instances in {output}"))
    hops = [len(i.sub_tasks) for i in insts]
    tool = sum(s.needs_tool for i in insts for s in i.sub_tasks)
    console.print(f"mean hops {sum(hops) / len(hops):.2f}; {tool}/{sum(hops)} sub-questions need a tool")


@app.command("decompose", rich_help_panel="Synthesize environments")
@cli_errors
@takes_stage_options()
def decompose_cmd(
    output: OutputOpt,
    domains: DomainsOpt = None,
    knowledge: Annotated[Path | None, typer.Option(
        "--knowledge", help="Knowledge corpus JSONL of {id, domain, text} (LLM decomposition).")] = None,
    questions: Annotated[Path | None, typer.Option(
        "--questions", help="Questions JSONL of {id, question, answer?, domain?} to decompose (question-conditional).")] = None,
    hops: HopsOpt = None,
    scenarios: ScenariosOpt = None,
    n: Annotated[int | None, typer.Option(
        "--n", help="Instances per (domain, scenario): offline default 8; unconditional LLM default 5.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the offline composer (same seed, same instances).")] = 0,
    worlds: Annotated[list[Path] | None, typer.Option(
        "--worlds", help="Extra knowledge world JSON files or directories (offline).")] = None,
    temperature: Annotated[float, typer.Option("--temperature", help="LLM sampling temperature.")] = 0.7,
    knowledge_chars: Annotated[int, typer.Option(
        "--knowledge-chars", help="Most corpus characters put in one prompt.")] = 4000,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Decompose multi-hop questions into sub-question DAGs.

    Without --knowledge/--questions: offline, composed by rules from the bundled knowledge
    worlds with gold decompositions and tool plans. With them: by the LLM, question-conditional
    (--questions) or unconditional (invented from the --knowledge corpus)."""
    from astra.envsynth.compose import compose
    from astra.envsynth.decompose import (
        HopBudget,
        build_requests,
        load_corpus,
        load_questions,
        parse_scenarios,
    )
    from astra.envsynth.qa_stages import ComposeStage, DecomposeStage
    from astra.envsynth.worlds import load_worlds

    scen = parse_scenarios(scenarios)
    doms = comma_list(domains)
    runner_kw = runner.kwargs()
    if n is not None and n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    stage: Stage
    if knowledge is None and questions is None:
        budget = HopBudget.parse(hops, default="auto")
        ws = load_worlds(doms, extra=list(worlds or []))
        insts = compose(ws, n=n or 8, scenarios=scen, hops=budget, seed=seed)
        if not insts:
            raise ConfigError(f"the knowledge worlds yield no instance for scenarios {', '.join(scen)} "
                              f"under --hops {budget.spec}")
        console.print(f"offline: {len(insts)} instances composed from {len(ws)} knowledge worlds "
                      f"({', '.join(w.domain for w in ws)}), hops {budget.spec}, seed {seed}")
        stage = ComposeStage(hops=budget.spec, scenarios=scen, seed=seed, worlds=[str(w) for w in worlds or []])
        run_stage_cli(stage, insts, output, **runner_kw)
    else:
        if worlds:
            raise ConfigError("--worlds is for the offline composer; drop --knowledge/--questions to use it")
        budget = HopBudget.parse(hops, default="3-5")
        corpus = load_corpus(knowledge) if knowledge is not None else None
        qs = load_questions(questions) if questions is not None else None
        reqs = build_requests(corpus=corpus, questions=qs, domains=doms, scenarios=scen, n=n or 5,
                              hops=budget.spec, knowledge_chars=knowledge_chars)
        if not reqs:
            raise InputError("nothing to decompose (no question matches --domains?)",
                             path=str(questions or knowledge))
        settings = llm_options.settings()
        console.print(f"LLM ({settings.spec}): {len(reqs)} {reqs[0].mode} requests, hops {budget.spec}")
        stage = DecomposeStage(llm=settings, scenarios=scen, temperature=temperature)
        run_stage_cli(stage, reqs, output, **runner_kw)
    _summary(output)


@app.command("validate", rich_help_panel="Synthesize environments")
@cli_errors
@takes_stage_options()
def validate_cmd(
    qa: Annotated[Path, typer.Argument(help="QA instances JSONL (from `astra envs decompose`).")],
    output: OutputOpt,
    percentile: Annotated[float, typer.Option(
        "--percentile", help="Keep instances with QS >= this percentile of the batch's QS (0 disables).")] = 90.0,
    min_qs: Annotated[float | None, typer.Option("--min-qs", help="Also require QS >= this absolute value.")] = None,
    validator: Annotated[str | None, typer.Option(
        "--validator", help="'offline' (rules from the DAG and the plan) or 'llm' (a judge). Default: offline "
                            "when the LLM is the tiny embedded default, else llm.")] = None,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Validate QA instances: tool necessity, the leaf rule, DC/SA/SR/TC and QS,
    then a percentile gate. Pass 1 writes OUTPUT's sibling <stem>.scored.jsonl."""
    from astra.envsynth.qa_stages import ScoreStage, default_validator, run_validate

    need_file(qa, "QA file")
    settings = llm_options.settings()
    which = validator or default_validator(settings)
    if which not in ("offline", "llm"):
        raise ConfigError(f"unknown --validator {which!r} (use 'offline' or 'llm')")
    console.print(f"validator: {which}" + (f" ({settings.spec})" if which == "llm" else ""))
    stage = ScoreStage(validator=which, llm=settings)  # type: ignore[arg-type]
    res = run_validate(qa, output, stage=stage, percentile=percentile, min_qs=min_qs, limit=runner.limit,
                       concurrency=runner.concurrency, executor=runner.executor, ray_address=runner.ray_address,
                       skip_failed=runner.skip_failed, progress=not runner.no_progress and sys.stderr.isatty())
    print_manifest(res.score)
    check_manifest(res.score)
    print_manifest(res.gate_manifest)
    g = res.gate
    cut = "none" if g["cutoff"] is None else f"{g['cutoff']:.4f}"
    console.print(f"gate: p{g['percentile']:g} cutoff {cut}" + (f", min-qs {g['min_qs']:g}" if g["min_qs"] is not None
                                                               else "")
                  + f" → kept {g['kept']} of {g['scored']} scored → {output}")
    check_manifest(res.gate_manifest)


# ---------------------------------------------------------------------------------
# Environment synthesis and runtime commands (synthesize, verify, play, serve) go below.
# ---------------------------------------------------------------------------------

def _env_summary(out_dir: Path) -> None:
    """Environments per domain and scenario type in a bundle directory."""
    from astra.envs.bundle import INDEX_NAME, EnvIndexEntry

    index = out_dir / INDEX_NAME
    if not index.exists():
        return
    entries = list(read_outputs(index, EnvIndexEntry))
    if not entries:
        return
    console.print(_scenario_table(Counter((e.domain, e.scenario) for e in entries), f"environments in {out_dir}"))
    tools = sum(len(e.tools) for e in entries)
    subs = sum(e.n_tool_subtasks for e in entries)
    console.print(f"{len(entries)} environments, {tools} tools serving {subs} tool sub-tasks "
                  f"({sum(e.verified for e in entries)} verified)")


@app.command("synthesize", rich_help_panel="Synthesize environments")
@cli_errors
@takes_stage_options()
def synthesize_cmd(
    qa: Annotated[Path, typer.Argument(help="Validated QA instances JSONL (from `astra envs validate`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory (envs/).")],
    synthesizer: Annotated[str | None, typer.Option(
        "--synthesizer", help="'offline' (templates from the instance's plan) or 'llm'. Default: offline when the "
                              "instance has a plan and the LLM is the tiny embedded default, else llm.")] = None,
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", help="Tries of call statement + code (the error fed back each time).")] = 3,
    on_merge_fail: Annotated[str, typer.Option(
        "--on-merge-fail", help="When a same-intent cluster cannot be merged: 'drop' the instance or 'keep' "
                                "its tools unmerged.")] = "drop",
    scale: Annotated[int, typer.Option(
        "--scale", help="Complexity scaling: optional parameters added (0-2; LLM path: 0 = off).")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Recorded in provenance.")] = 0,
    pool_size: Annotated[int | None, typer.Option("--pool-size", help="Warm sandbox workers (default 2).")] = None,
    skip_exploit_check: Annotated[bool, typer.Option(
        "--skip-exploit-check", help="Keep environments without running the exploit suite on them (by default an "
                                     "environment is rejected when an exploit earns > 0.05 or the gold plan < 1).")] = False,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Synthesize verified environments (the ASTRA method §2.3-2.4): tool spec -> complexity scaling -> call
    statement -> stdlib code -> sandbox verification (typed answer matching; retries with the
    error fed back) -> merging. Writes OUTPUT/<id>.json and OUTPUT/index.jsonl (resumable)."""
    import time

    from astra.envs.bundle import INDEX_NAME
    from astra.envsynth.synth_stages import SynthesizeStage

    need_file(qa, "QA file")
    output_dir(output)
    settings = llm_options.settings()
    stage = SynthesizeStage(output, synthesizer=synthesizer, llm=settings, max_attempts=max_attempts,  # type: ignore[arg-type]
                            on_merge_fail=on_merge_fail, scale=scale, seed=seed,  # type: ignore[arg-type]
                            pool_size=pool_size, exploit_check=not skip_exploit_check)
    console.print(f"synthesizer: {synthesizer or 'auto'} (LLM {settings.spec}); max attempts {max_attempts}; "
                  f"on merge failure: {on_merge_fail}")
    t0 = time.perf_counter()
    run_stage_cli(stage, qa, output / INDEX_NAME, **runner.kwargs())
    console.print(f"took {time.perf_counter() - t0:.1f} s")
    _env_summary(output)


@app.command("stateful", rich_help_panel="Synthesize environments")
@cli_errors
@takes_runner_options("limit")
def stateful_cmd(
    tasks: Annotated[Path, typer.Option("--tasks", help="Tasks JSONL (from `astra tasks generate`), with plans.")],
    tools: Annotated[Path, typer.Option("--tools", help="Tool servers JSONL (from `astra tools ingest`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory (envs/).")],
    runner: RunnerOptions = RunnerOptions(),
    skip_exploit_check: Annotated[bool, typer.Option(
        "--skip-exploit-check", help="Keep environments without the integrity suite (gold 1, nothing 0, "
                                     "exploits <= 0.05, reset restores the state).")] = False,
) -> None:
    """Stateful environments from tasks whose plans run on stateful Python tool classes: the
    initial state, the request, and a verifier derived by running the gold plan twice (the
    state diff it must leave, the fact the answer must state). Writes OUTPUT/<id>.json,
    OUTPUT/index.jsonl, OUTPUT/rejected.jsonl and the counts per reason in
    OUTPUT/index.manifest.json (docs/stateful.md)."""
    import asyncio

    from astra.envsynth.stateful import make_environments, write_outcomes
    from astra.types import Task, ToolServer

    for p in (tasks, tools):
        need_file(p)
    output_dir(output)
    if (output / "index.ledger.jsonl").exists():
        raise ConfigError(f"{output} holds a QA environment bundle (index.ledger.jsonl); use another directory")
    task_list = list(read_outputs(tasks, Task))
    if runner.limit is not None:
        task_list = task_list[:runner.limit]
    servers = list(read_outputs(tools, ToolServer))
    if not task_list:
        raise InputError("no tasks", path=str(tasks))
    outcomes = asyncio.run(make_environments(task_list, servers, probe=not skip_exploit_check))
    m = write_outcomes(outcomes, output)
    t = Table("server", "tasks", "kept", "write", "read", "rejected (reason: count)",
              title=f"stateful environments in {output}", title_justify="left")
    for name, row in sorted(m["by_server"].items()):
        t.add_row(name, str(row["tasks"]), str(row["kept"]), str(row["write"]), str(row["read"]),
                  ", ".join(f"{k}: {v}" for k, v in sorted(row["rejected"].items())))
    console.print(t)
    console.print(f"{m['kept']}/{m['tasks']} tasks became environments ({m['kept_by_mode']}); rejected: "
                  + (", ".join(f"{k} {v}" for k, v in m["rejected"].items()) or "none")
                  + f"; counts in {output / 'index.manifest.json'}")


@app.command("domains", rich_help_panel="Synthesize environments")
@cli_errors
def domains_cmd(
    tools: Annotated[Path, typer.Option("--tools", help="Tool servers JSONL; its doc-only servers are used.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory (domains/).")],
) -> None:
    """Synthesize stateful domains from doc-only servers (rule-based, offline): a SQLite schema
    from the output schemas, seed rows, and tool implementations for the CRUD-shaped tools, each
    tool run against the schema in the sandbox before the domain is kept. Writes
    OUTPUT/<server>_domain.py, OUTPUT/tools.jsonl (servers that call them, for `astra graph` /
    `astra tasks generate` / `astra envs stateful`) and OUTPUT/domains.manifest.json."""
    import asyncio

    from astra.envsynth.stateful_domains import domains_manifest, synthesize_domains
    from astra.io import write_json, write_jsonl
    from astra.types import ToolServer

    need_file(tools)
    output_dir(output)
    servers = [s for s in read_outputs(tools, ToolServer) if s.call.kind == "doc_only"]
    if not servers:
        raise InputError("no doc-only servers", path=str(tools))
    results, kept = asyncio.run(synthesize_domains(servers, output))
    output.mkdir(parents=True, exist_ok=True)
    write_jsonl(output / "tools.jsonl", kept)
    m = domains_manifest(results)
    write_json(output / "domains.manifest.json", m)
    t = Table("server", "kept", "tools", "left out", "reason", title=f"stateful domains in {output}",
              title_justify="left")
    for r in results:
        t.add_row(r.server, "yes" if r.kept else "no", ", ".join(r.tools), ", ".join(r.unmapped),
                  (r.reason or "") + (f": {r.detail[:80]}" if r.detail else ""))
    console.print(t)
    console.print(f"{m['kept']}/{m['servers']} doc-only servers became stateful domains ({m['tools_kept']} tools); "
                  f"servers in {output / 'tools.jsonl'}")
