"""``astra graph``: tool-call graphs per server, chains by random walks, chain verification.

::

    astra graph build tools.jsonl -o graphs/ [--source dataflow,llm] [--proposals N]
    astra graph chains graphs/ -o chains.jsonl --min-len 2 --max-len 5 --walks N --seed S
    astra graph verify chains.jsonl -o verified.jsonl --checks args,vote,backtranslate [--votes 3]

See docs/graph.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from astra.cli_common import (
    RunnerOptions,
    cli_errors,
    command_group,
    console,
    need_file,
    run_stage_cli,
    takes_runner_options,
    takes_stage_options,
)
from astra.errors import ConfigError, InputError
from astra.graph.dataflow import EDGE_THRESHOLD
from astra.graph.graph import GRAPHS_FILE, ToolGraph, graphs_path
from astra.graph.stages import (
    BuildGraphStage,
    ChainsStage,
    VerifyChainsStage,
    annotate_manifest,
    default_tools_path,
    parse_sources,
)
from astra.graph.verify import parse_checks
from astra.llm.options import LLMOptions
from astra.pipeline import read_outputs
from astra.types import Chain

app = command_group("graph", "Tool-call transition graphs per server, candidate chains by weighted random walks, "
                             "and chain verification that filters.")


def _graphs_output(output: Path) -> Path:
    return output if output.suffix == ".jsonl" else output / GRAPHS_FILE


@app.command("build")
@cli_errors
@takes_stage_options()
def build_cmd(
    tools: Annotated[Path, typer.Argument(help="Tool servers (tools.jsonl from `astra tools`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help=f"Output directory ({GRAPHS_FILE} is written inside) or a .jsonl path.")],
    source: Annotated[str | None, typer.Option(
        "--source", help="Edge sources, comma list of 'dataflow' (schema data flow, no LLM) and 'llm' "
                         "(LLM-proposed chains). Default: dataflow,llm when --llm/--base-url/ASTRA_LLM is set, "
                         "else dataflow.")] = None,
    proposals: Annotated[int, typer.Option("--proposals", help="LLM proposal samples per server.")] = 3,
    chains_per_proposal: Annotated[int, typer.Option("--chains-per-proposal", help="(task, chain) pairs asked for per sample.")] = 5,
    max_len: Annotated[int, typer.Option("--max-len", help="Longest chain the proposal prompt asks for.")] = 5,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature of the proposals.")] = 0.8,
    dataflow_weight: Annotated[float, typer.Option("--dataflow-weight", help="Weight of a data-flow edge per unit of match score (an LLM transition counts 1).")] = 1.0,
    threshold: Annotated[float, typer.Option("--threshold", help="Lowest field->parameter match score that makes a data-flow edge.")] = EDGE_THRESHOLD,
    matcher: Annotated[str, typer.Option("--matcher", help="How fields and parameters whose names differ are compared: semantic (sentence embeddings, all-MiniLM-L6-v2) or lexical (token overlap, no model).")] = "semantic",
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Build one transition graph per server (writes OUTPUT/graphs.jsonl)."""
    need_file(tools, "tools file")
    src = source or ("dataflow,llm" if llm_options.configured else "dataflow")
    stage = BuildGraphStage(sources=parse_sources(src), llm=llm_options.settings(), proposals=proposals,
                            chains_per_proposal=chains_per_proposal, max_len=max_len, temperature=temperature,
                            dataflow_weight=dataflow_weight, threshold=threshold, matcher=matcher)
    out = _graphs_output(output)
    run_stage_cli(stage, tools, out, **runner.kwargs())
    graphs = list(read_outputs(out, ToolGraph))
    annotate_manifest(out, "graph_stats", {g.server: {**g.stats, "proposals": g.proposals} for g in graphs})
    t = Table(title=f"graphs ({', '.join(stage.sources)})", title_justify="left")
    for col in ("server", "tools", "edges", "df/llm/both", "density", "wcc", "proposals"):
        t.add_column(col)
    for g in graphs:
        s, p = g.stats, g.proposals
        by = s.get("edges_by_provenance", {})
        prop = "-"
        if p:
            kept, single = p.get("kept_chains", 0), p.get("single_tool_segments", 0)
            prop = (f"{p.get('ok', 0)} ok, {p.get('failed', 0)} unusable; {kept} chains kept"
                    + (f", {single} single-tool dropped" if single else "")
                    + (f", {p.get('hallucinated_names', 0)} bad names" if p.get("hallucinated_names") else ""))
        t.add_row(g.server, str(s.get("nodes")), str(s.get("edges")),
                  f"{by.get('dataflow', 0)}/{by.get('llm', 0)}/{by.get('both', 0)}", f"{s.get('density', 0):.2f}",
                  str(s.get("weakly_connected_components")), prop)
    console.print(t)


@app.command("chains")
@cli_errors
@takes_runner_options()
def chains_cmd(
    graphs: Annotated[Path, typer.Argument(help=f"Graphs directory (or its {GRAPHS_FILE}) from `astra graph build`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output chains JSONL.")],
    min_len: Annotated[int, typer.Option("--min-len", help="Shortest chain (>= 2).")] = 2,
    max_len: Annotated[int, typer.Option("--max-len", help="Longest chain.")] = 5,
    walks: Annotated[int, typer.Option("--walks", help="Random-walk attempts per server.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same chains).")] = 0,
    max_per_server: Annotated[int | None, typer.Option("--max-per-server", help="Keep at most this many chains per server (most often walked first).")] = 50,
    allow_cycles: Annotated[bool, typer.Option("--allow-cycles", help="Let a walk revisit a tool (default: simple paths).")] = False,
    start: Annotated[str, typer.Option(
        "--start", help="Start tools, drawn by out-degree: 'entry' = tools that need no identifier from an "
                        "earlier call (their chains can pass the args check), 'any' = every tool (the reference).")] = "entry",
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Sample candidate chains by seeded, weight-biased random walks on each graph."""
    src = graphs_path(graphs)
    if not src.exists():
        raise InputError("graph file not found (run `astra graph build` first)", path=str(src))
    stage = ChainsStage(walks=walks, min_len=min_len, max_len=max_len, seed=seed, allow_cycles=allow_cycles,
                        max_per_server=max_per_server, start=start)
    run_stage_cli(stage, src, output, **runner.kwargs())
    per = Counter(c.server for c in read_outputs(output, Chain))
    if per:
        console.print("chains per server: " + ", ".join(f"{k} {v}" for k, v in sorted(per.items())))


@app.command("verify")
@cli_errors
@takes_stage_options()
def verify_cmd(
    chains: Annotated[Path, typer.Argument(help="Chains JSONL from `astra graph chains`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output JSONL of the chains that pass.")],
    checks: Annotated[str | None, typer.Option(
        "--checks", help="Comma list of args (rules), vote (LLM majority), backtranslate (chain->query->chain). "
                         "Default: all three when --llm/--base-url/ASTRA_LLM is set, else args.")] = None,
    votes: Annotated[int, typer.Option("--votes", help="LLM samples for the majority vote.")] = 3,
    tools: Annotated[Path | None, typer.Option(
        "--tools", help="Tool servers the graphs were built from. Default: the build stage's input "
                        "(found through the manifests), else tools.jsonl next to the graphs directory, "
                        "else next to CHAINS.")] = None,
    bt_llm: Annotated[str | None, typer.Option(
        "--bt-llm", help="Provider for the query->chain half of back-translation (default: --llm).")] = None,
    llm_options: LLMOptions = LLMOptions(),
    runner: RunnerOptions = RunnerOptions(),
) -> None:
    """Keep the chains that pass every selected check; rejections name the failing check."""
    need_file(chains, "chains file")
    spec = checks or ("args,vote,backtranslate" if llm_options.configured else "args")
    try:
        selected = parse_checks(spec)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    tools_path = tools or default_tools_path(chains)
    need_file(tools_path, "tools file")
    bt = llm_options.settings(bt_llm) if bt_llm else None
    stage = VerifyChainsStage(str(tools_path), checks=selected, votes=votes, llm=llm_options.settings(), bt_llm=bt)
    console.print(f"checks: {', '.join(selected)}; servers from {tools_path}")
    run_stage_cli(stage, chains, output, **runner.kwargs())
