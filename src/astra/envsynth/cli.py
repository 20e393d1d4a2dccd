"""``astra envs``: QA decomposition, validation, environment synthesis and the runtime.

::

    astra envs decompose -o qa.jsonl [--limit N] [--seed S] [--n 8] [--hops auto]     # offline worlds
    astra envs decompose --domains geo,film --knowledge corpus.jsonl --hops 3-5 -o qa.jsonl \\
                         [--questions q.jsonl] [--scenarios ...] [--n N] [--llm ...]
    astra envs validate qa.jsonl -o valid.jsonl --percentile 90 [--min-qs X] [--validator offline|llm]

    astra envs synthesize valid.jsonl -o envs/ [--synthesizer offline|llm] [--max-attempts 3]
    astra envs verify envs/          astra envs play envs/ENV_ID          astra envs serve envs/ENV_ID
    astra envs stateful --tasks tasks.jsonl --tools tools.jsonl -o envs/   # stateful environments

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
    ApiKeyEnvOpt,
    BaseUrlOpt,
    ConcurrencyOpt,
    ExecutorOpt,
    LimitOpt,
    LLMConcurrencyOpt,
    LLMOpt,
    NoCacheOpt,
    NoProgressOpt,
    RayAddressOpt,
    SkipFailedOpt,
    TimeoutOpt,
    check_manifest,
    cli_errors,
    console,
    llm_settings,
    print_manifest,
    run_stage_cli,
)
from astra.errors import ConfigError, InputError
from astra.pipeline import read_outputs
from astra.types import QAInstance

app = typer.Typer(
    name="envs",
    help="Environment synthesis for RL: decompose multi-hop questions (LLM or the bundled "
         "knowledge worlds), validate them (tool necessity, DC/SA/SR/TC, QS percentile gate), "
         "then synthesize verifiable environments.",
    no_args_is_help=True,
)

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


def _split(s: str | None) -> list[str] | None:
    if s is None:
        return None
    items = [x.strip() for x in s.split(",") if x.strip()]
    return items or None


def _summary(output: Path) -> None:
    """Instances per domain and scenario type, and the hop counts, of a QA output."""
    insts = list(read_outputs(output, QAInstance))
    if not insts:
        return
    per = Counter((i.domain, i.scenario) for i in insts)
    scen = ["single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop"]
    t = Table("domain", *scen, "total", title=f"QA instances in {output}", title_justify="left")
    for dom in sorted({d for d, _ in per}):
        row = [per.get((dom, s), 0) for s in scen]
        t.add_row(dom, *map(str, row), str(sum(row)))
    tot = [sum(per.get((d, s), 0) for d in {d for d, _ in per}) for s in scen]
    t.add_row("total", *map(str, tot), str(sum(tot)))
    console.print(t)
    hops = [len(i.sub_tasks) for i in insts]
    tool = sum(s.needs_tool for i in insts for s in i.sub_tasks)
    console.print(f"mean hops {sum(hops) / len(hops):.2f}; {tool}/{sum(hops)} sub-questions need a tool")


@app.command("decompose")
@cli_errors
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
    llm: LLMOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    llm_concurrency: LLMConcurrencyOpt = 8,
    no_cache: NoCacheOpt = False,
    llm_timeout: TimeoutOpt = 120.0,
    limit: LimitOpt = None,
    concurrency: ConcurrencyOpt = 4,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    skip_failed: SkipFailedOpt = False,
    no_progress: NoProgressOpt = False,
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
    doms = _split(domains)
    runner = dict(limit=limit, concurrency=concurrency, executor=executor, ray_address=ray_address,
                  skip_failed=skip_failed, no_progress=no_progress)
    if n is not None and n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
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
        run_stage_cli(stage, insts, output, **runner)
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
        settings = llm_settings(llm, base_url, api_key_env, llm_concurrency, no_cache, llm_timeout)
        console.print(f"LLM ({settings.spec}): {len(reqs)} {reqs[0].mode} requests, hops {budget.spec}")
        stage = DecomposeStage(llm=settings, scenarios=scen, temperature=temperature)
        run_stage_cli(stage, reqs, output, **runner)
    _summary(output)


@app.command("validate")
@cli_errors
def validate_cmd(
    qa: Annotated[Path, typer.Argument(help="QA instances JSONL (from `astra envs decompose`).")],
    output: OutputOpt,
    percentile: Annotated[float, typer.Option(
        "--percentile", help="Keep instances with QS >= this percentile of the batch's QS (0 disables).")] = 90.0,
    min_qs: Annotated[float | None, typer.Option("--min-qs", help="Also require QS >= this absolute value.")] = None,
    validator: Annotated[str | None, typer.Option(
        "--validator", help="'offline' (rules from the DAG and the plan) or 'llm' (a judge). Default: offline "
                            "when the LLM is the tiny embedded default, else llm.")] = None,
    llm: LLMOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    llm_concurrency: LLMConcurrencyOpt = 8,
    no_cache: NoCacheOpt = False,
    llm_timeout: TimeoutOpt = 120.0,
    limit: LimitOpt = None,
    concurrency: ConcurrencyOpt = 4,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    skip_failed: SkipFailedOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Validate QA instances: tool necessity, the leaf rule, DC/SA/SR/TC and QS,
    then a percentile gate. Pass 1 writes OUTPUT's sibling <stem>.scored.jsonl."""
    from astra.envsynth.qa_stages import ScoreStage, default_validator, run_validate

    if not qa.exists():
        raise InputError("QA file not found", path=str(qa))
    settings = llm_settings(llm, base_url, api_key_env, llm_concurrency, no_cache, llm_timeout)
    which = validator or default_validator(settings)
    if which not in ("offline", "llm"):
        raise ConfigError(f"unknown --validator {which!r} (use 'offline' or 'llm')")
    console.print(f"validator: {which}" + (f" ({settings.spec})" if which == "llm" else ""))
    stage = ScoreStage(validator=which, llm=settings)  # type: ignore[arg-type]
    res = run_validate(qa, output, stage=stage, percentile=percentile, min_qs=min_qs, limit=limit,
                       concurrency=concurrency, executor=executor, ray_address=ray_address,
                       skip_failed=skip_failed, progress=not no_progress and sys.stderr.isatty())
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

_SCEN = ["single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop"]


def _env_summary(out_dir: Path) -> None:
    """Environments per domain and scenario type in a bundle directory."""
    from astra.envs.bundle import INDEX_NAME, EnvIndexEntry

    index = out_dir / INDEX_NAME
    if not index.exists():
        return
    entries = list(read_outputs(index, EnvIndexEntry))
    if not entries:
        return
    per = Counter((e.domain, e.scenario) for e in entries)
    t = Table("domain", *_SCEN, "total", title=f"environments in {out_dir}", title_justify="left")
    doms = sorted({d for d, _ in per})
    for dom in doms:
        row = [per.get((dom, s), 0) for s in _SCEN]
        t.add_row(dom, *map(str, row), str(sum(row)))
    tot = [sum(per.get((d, s), 0) for d in doms) for s in _SCEN]
    t.add_row("total", *map(str, tot), str(sum(tot)))
    console.print(t)
    tools = sum(len(e.tools) for e in entries)
    subs = sum(e.n_tool_subtasks for e in entries)
    console.print(f"{len(entries)} environments, {tools} tools serving {subs} tool sub-tasks "
                  f"({sum(e.verified for e in entries)} verified)")


@app.command("synthesize")
@cli_errors
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
    llm: LLMOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = None,
    llm_concurrency: LLMConcurrencyOpt = 8,
    no_cache: NoCacheOpt = False,
    llm_timeout: TimeoutOpt = 120.0,
    limit: LimitOpt = None,
    concurrency: ConcurrencyOpt = 4,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    skip_failed: SkipFailedOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Synthesize verified environments (the ASTRA method §2.3-2.4): tool spec -> complexity scaling -> call
    statement -> stdlib code -> sandbox verification (typed answer matching; retries with the
    error fed back) -> merging. Writes OUTPUT/<id>.json and OUTPUT/index.jsonl (resumable)."""
    import time

    from astra.envs.bundle import INDEX_NAME
    from astra.envsynth.synth_stages import SynthesizeStage

    if not qa.exists():
        raise InputError("QA file not found", path=str(qa))
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output must be a directory, {output} is a file")
    settings = llm_settings(llm, base_url, api_key_env, llm_concurrency, no_cache, llm_timeout)
    stage = SynthesizeStage(output, synthesizer=synthesizer, llm=settings, max_attempts=max_attempts,  # type: ignore[arg-type]
                            on_merge_fail=on_merge_fail, scale=scale, seed=seed,  # type: ignore[arg-type]
                            pool_size=pool_size, exploit_check=not skip_exploit_check)
    console.print(f"synthesizer: {synthesizer or 'auto'} (LLM {settings.spec}); max attempts {max_attempts}; "
                  f"on merge failure: {on_merge_fail}")
    t0 = time.perf_counter()
    run_stage_cli(stage, qa, output / INDEX_NAME, limit=limit, concurrency=concurrency, executor=executor,
                  ray_address=ray_address, skip_failed=skip_failed, no_progress=no_progress)
    console.print(f"took {time.perf_counter() - t0:.1f} s")
    _env_summary(output)


def _exploit_report_table(table: dict) -> Table:
    """Probe × scenario: environments where the probe earned more than the threshold."""
    from astra.envs.exploits import DIAGNOSTICS
    from astra.envsynth.stateful import STATE_DIAGNOSTICS

    scen = [s for s in _SCEN if s in table["by_scenario"]] + [s for s in table["by_scenario"] if s not in _SCEN]
    short = {"single_hop": "sh", "parallel_single_hop": "psh", "multi_hop": "mh", "parallel_multi_hop": "pmh"}
    t = Table(title=f"environments a probe earns > {table['threshold']} on (* = diagnostic, never rejects)",
              title_justify="left")
    t.add_column("probe", no_wrap=True)
    for s in scen:
        t.add_column(f"{short.get(s, s)} ({table['by_scenario'][s]})", justify="right")
    t.add_column("all", justify="right")
    t.add_column("max", justify="right")
    for name, row in table["probes"].items():
        if name == "gold":
            continue
        label = f"{name} *" if name in DIAGNOSTICS or name in STATE_DIAGNOSTICS else name
        t.add_row(label, *[str(row["over_threshold_by_scenario"].get(s, 0)) for s in scen], str(row["over_threshold"]),
                  f"{row['max']:.3f}" + (f", {row['crashed']} crashed" if row["crashed"] else ""))
    return t


@app.command("verify")
@cli_errors
def verify_cmd(
    envs: Annotated[Path, typer.Argument(help="Environment directory (envs/), index/environments JSONL, or one file.")],
    limit: LimitOpt = None,
    concurrency: ConcurrencyOpt = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line per environment.")] = False,
    exploits: Annotated[bool, typer.Option(
        "--exploits/--no-exploits", help="Run the exploit suite on every environment (default on).")] = True,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", help="Where to write the counts (default: ENVS/verify.manifest.json, or next to the file).")] = None,
) -> None:
    """Re-run every gold call of every environment in the sandbox (typed answer matching),
    then the exploit suite: the gold plan must earn 1 and no exploit (do nothing, echo the
    question, dump the tool outputs, spray numbers, list every candidate, repeat calls, a huge
    answer, junk calls, wrong types, the answer without the calls) more than 0.05. Writes the
    counts per exploit to a manifest; exit code 1 if any environment fails."""
    import asyncio
    import json
    import time

    from astra.envs.bundle import load_environments, verify_environments
    from astra.envs.exploits import EXPLOIT_MAX, exploit_table, probe_environments
    from astra.io import write_json

    items = load_environments(envs, limit=limit)
    if not items:
        raise InputError("no environments found", path=str(envs))
    t0 = time.perf_counter()
    results = asyncio.run(verify_environments(items, concurrency=concurrency))
    reports = asyncio.run(probe_environments(items, concurrency=concurrency)) if exploits else []
    wall = time.perf_counter() - t0
    by_id = {e.id: e for e in items}
    probe_of = {r.id: r for r in reports}
    failed_ids: list[str] = []
    for r in results:
        p = probe_of.get(r.id)
        ok = r.ok and (p is None or p.ok)
        if not ok:
            failed_ids.append(r.id)
        if as_json:
            row = r.model_dump()
            if p is not None:
                row["exploits"] = p.summary()
            row["ok"] = ok
            typer.echo(json.dumps(row, ensure_ascii=False))
            continue
        e = by_id[r.id]
        extra = ""
        if p is not None:
            worst = max(p.exploits.values(), default=0.0)
            extra = f", gold plan {p.gold:.3f}, best exploit {worst:.3f}"
        typer.echo(f"{'PASS' if ok else 'FAIL'} {r.id} [{e.instance.scenario}] {len(e.tools)} tools, "
                   f"{r.calls} calls{extra}, {r.seconds + (p.seconds if p else 0):.2f}s")
        for f in r.failures:
            typer.echo(f"    {f.get('sub_id')} {f.get('tool')}: {f.get('error') or f.get('output_excerpt')}")
        if p is not None and not p.ok:
            typer.echo(f"    exploit suite: {p.describe()}")
    calls = sum(r.calls for r in results)
    per = Counter(by_id[r.id].instance.scenario for r in results if r.id not in failed_ids)
    summary = {"environments": len(results), "passed": len(results) - len(failed_ids), "failed": failed_ids,
               "gold_calls": {"calls": calls, "failed_environments": [r.id for r in results if not r.ok]},
               "passed_by_scenario": {s: per.get(s, 0) for s in _SCEN}, "seconds": round(wall, 2)}
    if exploits:
        table = exploit_table(reports, threshold=EXPLOIT_MAX)
        summary["exploits"] = table
        summary["exploit_failures"] = {p.id: p.describe() for p in reports if not p.ok}
        if not as_json:
            console.print(_exploit_report_table(table))
    target = manifest or (envs / "verify.manifest.json" if envs.is_dir() else
                          envs.with_name(envs.stem + ".verify.manifest.json"))
    write_json(target, summary)
    console.print(f"verified {len(results) - len(failed_ids)}/{len(results)} environments, {calls} gold calls"
                  + (f", {len(reports)} exploit suites" if exploits else "") + f" in {wall:.1f} s; passed per "
                  "scenario: " + ", ".join(f"{s} {per.get(s, 0)}" for s in _SCEN) + f"; counts in {target}")
    if failed_ids:
        raise typer.Exit(1)


_PLAY_HELP = """commands:
  tools                      list the tools
  NAME(arg=value, ...)       call a tool (Python literals: "text", 3, 2.5, true/True, None)
  answer TEXT                give the final answer and end the episode
  reward                     show the reward so far
  help                       this text
  quit                       end the episode without an answer"""


def _play_parse(line: str, schemas: dict[str, dict]) -> tuple[str, dict]:
    import re

    from astra.sandbox import parse_call_statement

    fixed = re.sub(r"(?<![\w\"'])(true|false|null)(?![\w\"'])",
                   lambda m: {"true": "True", "false": "False", "null": "None"}[m.group(1)], line)
    call = parse_call_statement(fixed)
    kwargs = dict(call.kwargs)
    if call.args:
        props = list(schemas.get(call.name, {}).get("properties", {}))
        if len(call.args) > len(props):
            raise ValueError(f"{call.name} takes at most {len(props)} positional arguments")
        for name, value in zip(props, call.args, strict=False):
            kwargs[name] = value
    return call.name, kwargs


@app.command("play")
@cli_errors
def play_cmd(
    env_path: Annotated[Path, typer.Argument(help="envs/ENV_ID (or envs/ENV_ID.json).")],
    reward: Annotated[str, typer.Option("--reward", help="f1 | recall | precision")] = "f1",
    max_turns: Annotated[int, typer.Option("--max-turns", help="Tool calls before the episode ends.")] = 8,
    distractors_from: Annotated[Path | None, typer.Option(
        "--distractors-from", help="Environment directory to draw distractor tools from.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="Distractors: banded | random | none.")] = "banded",
    k: Annotated[int, typer.Option("--k", help="Distractors per band.")] = 1,
    embedder: Annotated[str, typer.Option("--embedder", help="minilm (all-MiniLM-L6-v2) or hash (no model).")] = "minilm",
    seed: Annotated[int, typer.Option("--seed", help="Tool order and distractor sampling seed.")] = 0,
    show_gold: Annotated[bool, typer.Option("--show-gold", help="Print the gold decomposition at the end.")] = False,
) -> None:
    """Play an environment interactively: list its tools, call them as name(arg=value), give
    an answer, see the reward breakdown (recall, precision, F1, solved sub-tasks)."""
    import json

    from astra.envs.bundle import load_environment, load_environments
    from astra.envs.runtime import EnvSession
    from astra.sandbox import CallStatementError

    env = load_environment(env_path)
    dis = None
    if distractors_from is not None and mode != "none":
        from astra.envs.distractors import DistractorSampler, HashEmbedder

        if embedder not in ("minilm", "hash"):
            raise ConfigError(f"--embedder must be minilm or hash, got {embedder!r}")
        sampler = DistractorSampler(load_environments(distractors_from), mode=mode, k=k, seed=seed,  # type: ignore[arg-type]
                                    embedder=HashEmbedder() if embedder == "hash" else None)
        dis = sampler.sample(env)
    session = EnvSession(env, max_turns=max_turns, reward=reward, distractors=dis, seed=seed)
    _, tools = session.reset()
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}

    def show_tools() -> None:
        for t in tools:
            f = t["function"]
            req = set(f["parameters"].get("required", []))
            ps = ", ".join(f"{n}: {s.get('type', 'any')}" + ("" if n in req else " = …")
                           for n, s in f["parameters"].get("properties", {}).items())
            typer.echo(f"  {f['name']}({ps})\n      {f['description']}")

    def show_reward() -> None:
        info = session.reward()
        typer.echo(f"reward ({info.kind}) {info.reward:.4f} | recall {info.recall:.4f} precision {info.precision:.4f} "
                   f"f1 {info.f1:.4f} | solved {len(info.solved)}/{info.n_subtasks} {info.solved} | "
                   f"calls {info.calls}, turns {session.turns}/{max_turns}")

    typer.echo(f"environment {env.id} ({env.instance.domain}, {env.instance.scenario}, "
               f"{len(env.instance.sub_tasks)} sub-tasks)")
    typer.echo(f"question: {env.instance.question}")
    typer.echo(f"tools ({len(tools)}):")
    show_tools()
    typer.echo("type 'help' for commands")
    while not session.done:
        typer.echo("> ", nl=False)
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        if line in ("quit", "exit"):
            break
        if line == "help":
            typer.echo(_PLAY_HELP)
            continue
        if line == "tools":
            show_tools()
            continue
        if line == "reward":
            show_reward()
            continue
        if line.startswith("answer"):
            session.finish(line[len("answer"):].strip() or None)
            break
        try:
            name, kwargs = _play_parse(line, schemas)
        except (CallStatementError, ValueError) as e:
            typer.echo(f"cannot read that call: {e}")
            continue
        before = len(session.solved)
        msgs = session.step([{"id": f"play_{session.calls}", "name": name, "arguments": json.dumps(kwargs)}])
        typer.echo(msgs[0]["content"])
        new = session.solved[before:]
        if new:
            typer.echo(f"  (solved {', '.join(new)})")
    if not session.finished:
        session.finish(None)
    typer.echo("episode over")
    show_reward()
    if show_gold:
        for s in env.instance.sub_tasks:
            typer.echo(f"  {s.id}: {s.sub_question} -> {s.sub_answer}")


@app.command("serve")
@cli_errors
def serve_cmd(
    env_path: Annotated[Path, typer.Argument(help="envs/ENV_ID (or envs/ENV_ID.json).")],
    http: Annotated[int | None, typer.Option("--http", help="Serve streamable HTTP on this port (default: stdio).")] = None,
    host: Annotated[str, typer.Option("--host", help="HTTP host.")] = "127.0.0.1",
    reward: Annotated[str, typer.Option("--reward", help="f1 | recall | precision")] = "f1",
) -> None:
    """Serve an environment as an MCP server (stdio, or --http PORT): the question (prompt
    'question' and a resource), its tools (arguments checked against their schema, code run in
    the sandbox), a submit_answer tool, and the reward (a resource; also submit_answer's result).
    One episode per connection."""
    from astra.envs.bundle import load_environment
    from astra.envs.mcp import serve_env_http, serve_env_stdio

    if reward not in ("f1", "recall", "precision"):
        raise ConfigError(f"--reward must be f1, recall or precision, got {reward!r}")
    env = load_environment(env_path)
    if http is not None:
        console.print(f"serving {env.id} ({len(env.tools)} tools + submit_answer) at http://{host}:{http}/mcp")
        serve_env_http(env, http, host=host, reward=reward)
    else:
        serve_env_stdio(env, reward=reward)


@app.command("stateful")
@cli_errors
def stateful_cmd(
    tasks: Annotated[Path, typer.Option("--tasks", help="Tasks JSONL (from `astra tasks generate`), with plans.")],
    tools: Annotated[Path, typer.Option("--tools", help="Tool servers JSONL (from `astra tools ingest`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory (envs/).")],
    limit: LimitOpt = None,
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
        if not p.exists():
            raise InputError("file not found", path=str(p))
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output must be a directory, {output} is a file")
    if (output / "index.ledger.jsonl").exists():
        raise ConfigError(f"{output} holds a QA environment bundle (index.ledger.jsonl); use another directory")
    task_list = list(read_outputs(tasks, Task))
    if limit is not None:
        task_list = task_list[:limit]
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


@app.command("domains")
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

    if not tools.exists():
        raise InputError("file not found", path=str(tools))
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output must be a directory, {output} is a file")
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
