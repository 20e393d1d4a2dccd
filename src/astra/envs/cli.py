"""``astra envs`` runtime commands: verify, play, serve and split environment bundles.

::

    astra envs verify envs/          astra envs play envs/ENV_ID          astra envs serve envs/ENV_ID
    astra envs split envs/ -o envsplit --heldout 0.2

These need only what a running environment needs (:mod:`astra.envs`). The synthesis
commands of the same group (``decompose``, ``validate``, ``synthesize``) are added by
importing :mod:`astra.envsynth.cli` (as :mod:`astra.cli` does); see docs/environments.md.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astra.cli_common import RunnerOptions, cli_errors, command_group, console, takes_runner_options
from astra.errors import ConfigError, InputError

app = command_group("envs", "Environment synthesis for RL: decompose multi-hop questions (LLM or the bundled "
                            "knowledge worlds), validate them (tool necessity, DC/SA/SR/TC, QS percentile gate), "
                            "then synthesize verifiable environments; verify, play, serve and split them.")

#: Scenario types in the order tables show them.
SCENARIOS = ["single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop"]


def _exploit_report_table(table: dict) -> Table:
    """Probe × scenario: environments where the probe earned more than the threshold."""
    from astra.envs.exploits import DIAGNOSTICS
    from astra.envs.stateful_verify import STATE_DIAGNOSTICS

    scen = [s for s in SCENARIOS if s in table["by_scenario"]] + [s for s in table["by_scenario"] if s not in SCENARIOS]
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


@app.command("verify", rich_help_panel="Run and check environments")
@cli_errors
@takes_runner_options("limit", "concurrency")
def verify_cmd(
    envs: Annotated[Path, typer.Argument(help="Environment directory (envs/), index/environments JSONL, or one file.")],
    runner: RunnerOptions = RunnerOptions(),
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

    items = load_environments(envs, limit=runner.limit)
    if not items:
        raise InputError("no environments found", path=str(envs))
    t0 = time.perf_counter()
    results = asyncio.run(verify_environments(items, concurrency=runner.concurrency))
    reports = asyncio.run(probe_environments(items, concurrency=runner.concurrency)) if exploits else []
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
    per: Counter[str] = Counter(by_id[r.id].instance.scenario for r in results if r.id not in failed_ids)
    summary = {"environments": len(results), "passed": len(results) - len(failed_ids), "failed": failed_ids,
               "gold_calls": {"calls": calls, "failed_environments": [r.id for r in results if not r.ok]},
               "passed_by_scenario": {s: per.get(s, 0) for s in SCENARIOS}, "seconds": round(wall, 2)}
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
                  "scenario: " + ", ".join(f"{s} {per.get(s, 0)}" for s in SCENARIOS) + f"; counts in {target}")
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


@app.command("play", rich_help_panel="Run and check environments")
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
    if not session.finished and session.done:
        # the turn cap: as in training and evaluation, one last turn is the answer
        typer.echo(f"no tool turns left ({session.turns}/{max_turns}); your answer: ", nl=False)
        last = sys.stdin.readline().strip()
        session.finish(last.removeprefix("answer").strip() or None)
    if not session.finished:
        session.finish(None)
    typer.echo("episode over")
    show_reward()
    if show_gold:
        for s in env.instance.sub_tasks:
            typer.echo(f"  {s.id}: {s.sub_question} -> {s.sub_answer}")


@app.command("serve", rich_help_panel="Run and check environments")
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


@app.command("split", rich_help_panel="Run and check environments")
@cli_errors
def split_cmd(
    envs: Annotated[list[Path], typer.Argument(help=(
        "Bundle directories written by `astra envs synthesize` / `astra envs stateful`; several are mixed "
        "into the same two sides."))],
    output: Annotated[Path, typer.Option("--output", "-o", help="Writes OUTPUT/train and OUTPUT/heldout.")],
    heldout: Annotated[float, typer.Option(help="Share of environments held out for evaluation.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split (a stable hash of each env id).")] = 0,
    stratify: Annotated[bool, typer.Option("--stratify/--no-stratify", help=(
        "Also hold out one environment of every scenario type (per kind) the hash left out.")) ] = True,
) -> None:
    """Split environments into train and held-out sets (stable per environment id)."""
    from astra.envs.split import split_environments

    try:
        train_dir, heldout_dir = split_environments(envs, heldout, seed, output, stratify=stratify)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    n_train = sum(1 for _ in train_dir.glob("*.json"))
    n_held = sum(1 for _ in heldout_dir.glob("*.json"))
    console.print(f"{n_train} train → {train_dir}, {n_held} held out → {heldout_dir}")


__all__ = ["SCENARIOS", "app"]
