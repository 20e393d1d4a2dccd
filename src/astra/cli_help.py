"""What every ``astra`` command's ``--help`` shows beyond its options: examples, and no
``<bool>`` type on plain flags.

:data:`EXAMPLES` is the one list of example command lines, by command path. The root
command group (:class:`AstraGroup`) puts each command's examples into its help text, and
the tests parse every example (and every ``astra`` line of the README) with the real
parser, so an example that stops working fails the suite.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from typer.core import TyperGroup

#: Example command lines per command path, each optionally followed by ``  # what it does``.
#: ``[...]`` marks optional parts; the tests parse each line with and without them.
EXAMPLES: dict[str, list[str]] = {
    "demo": [
        "astra demo --profile tiny -o runs/demo                     # minutes, the bundled sample, offline",
        "astra demo --profile default -o runs/full --no-training",
        "astra demo --config demo.yaml                              # options from a YAML or TOML file",
    ],
    "report": [
        "astra report run -o run/report.html                        # one self-contained HTML file",
    ],
    "version": ["astra version"],
    "rollout": [
        "astra rollout run/scored.jsonl -o run/trajectories.jsonl --tools run/tools.jsonl --agent chain-executor",
        "astra rollout run/scored.jsonl -o run/traj.jsonl --agent openai:MODEL --base-url URL --samples 2 -j 8",
    ],
    "judge": [
        "astra judge run/trajectories.jsonl -o run/judged.jsonl --min-score 0.6",
        "astra judge run/trajectories.jsonl -o run/judged.jsonl --judge llm --llm openai:MODEL --base-url URL",
    ],
    "tools ingest": [
        "astra tools ingest sample -o tools.jsonl                              # the bundled sample servers",
        "astra tools ingest sample -o run/tools.jsonl",
        "astra tools ingest mcp_servers.jsonl -o tools.jsonl                   # ASTRA's server format",
        "astra tools ingest tools.json --server-name crm --domain sales -o tools.jsonl   # OpenAI tools JSON",
        'astra tools ingest "stdio:python3 my_server.py" -o tools.jsonl        # a live MCP server (stdio)',
        "astra tools ingest https://host/mcp -o tools.jsonl                    # a live MCP server (streamable HTTP)",
        "astra tools ingest sse:https://host/sse -o tools.jsonl                # a live MCP server (legacy SSE)",
        "astra tools ingest py:my_pkg.tools -o tools.jsonl                     # Python functions "
        "(or py:module:Class, file.py)",
        "astra tools ingest benchmarks/foreign_toolsets.py:GorillaFileSystem -o fs.jsonl   # BFCL backend + scenario",
        "astra tools ingest benchmarks/foreign_toolsets.py:Tau2Retail -o retail.jsonl      # tau2-bench toolkit + db",
        "astra tools ingest .venv/lib/python3.11/site-packages/bfcl_eval/data/multi_turn_func_doc/posting_api.json"
        " -o x.jsonl",
        'astra tools ingest "stdio:.venv/bin/mcp-server-time --local-timezone UTC" --min-tools 2 -o time.jsonl',
    ],
    "tools list": ["astra tools list tools.jsonl"],
    "tools serve": [
        "astra tools serve shop                 # MCP over stdio",
        "astra tools serve shop --http 8765     # streamable HTTP at http://127.0.0.1:8765/mcp",
    ],
    "llm chat": [
        'astra llm chat "hello" --llm embedded                                   # in-process SmolLM2-135M (CPU)',
        'astra llm chat "hello" --llm embedded:/path/to/hf_model                 # any causal LM directory',
        'astra llm chat "hello" --llm openai:Qwen3-32B --base-url http://gpu:8000/v1   # vLLM, SGLang, llama.cpp, …',
        'astra llm chat "hello" --llm openai:gpt-4o-mini                         # a hosted API (OPENAI_API_KEY)',
    ],
    "llm serve": [
        "astra llm serve --port 8000                                             # the embedded model as an "
        "OpenAI-compatible server",
        "astra llm serve --model runs/demo/ckpt/sft --served-model-name sft --port 8001 --threads 1",
    ],
    "llm stats": ["astra llm stats runs/demo                                               # usage per stage of a run"],
    "graph build": [
        "astra graph build run/tools.jsonl -o run/graphs",
        "astra graph build run/tools.jsonl -o run/graphs --source dataflow,llm --llm openai:MODEL --base-url URL",
    ],
    "graph chains": [
        "astra graph chains run/graphs -o run/chains.jsonl --min-len 2 --max-len 5 --walks 200 --seed 0",
    ],
    "graph verify": [
        "astra graph verify run/chains.jsonl -o run/verified.jsonl --checks args   # + vote,backtranslate with an LLM",
        "astra graph verify run/chains.jsonl -o run/verified.jsonl --checks args,vote,backtranslate "
        "--llm openai:MODEL --base-url URL",
    ],
    "tasks generate": [
        "astra tasks generate run/verified.jsonl -o run/tasks.jsonl --tools run/tools.jsonl --mode chain,server",
        "astra tasks generate -o run/tasks.jsonl --tools run/tools.jsonl --mode server --limit 2",
    ],
    "tasks augment": [
        "astra tasks augment run/tasks.jsonl -o run/aug.jsonl --modes diversity,complexity,persona",
    ],
    "tasks score": [
        "astra tasks score run/aug.jsonl -o run/scored.jsonl --min-quality 3 --min-realism 3 --min-necessity 3",
    ],
    "export sft": [
        "astra export sft run/judged.jsonl -o run/sft --format openai               # or sharegpt | hf",
    ],
    "envs decompose": [
        "astra envs decompose -o run/qa.jsonl",
        "astra envs decompose -o run/qa.jsonl --llm openai:MODEL --base-url URL --questions 50",
    ],
    "envs validate": ["astra envs validate run/qa.jsonl -o run/valid.jsonl --percentile 90"],
    "envs synthesize": ["astra envs synthesize run/valid.jsonl -o run/envs"],
    "envs verify": ["astra envs verify run/envs"],
    "envs domains": ["astra envs domains --tools run/tools.jsonl -o run/domains   # doc-only servers -> SQLite domains"],
    "envs stateful": ["astra envs stateful --tasks run/tasks.jsonl --tools run/tools.jsonl -o run/senvs   "
                      "# stateful environments (docs/stateful.md)"],
    "envs play": ["astra envs play run/envs/<ENV_ID>                                          "
                  "# call tools by hand, see the reward"],
    "envs serve": ["astra envs serve run/envs/<ENV_ID>                                         "
                   "# the env's tools as an MCP server"],
    "envs split": ["astra envs split run/envs -o run/envsplit --heldout 0.2",
                   "astra envs split run/envs run/senvs -o run/envsplit   # QA and stateful environments mixed"],
    "train demos": ["astra train demos --envs run/envsplit/train -o run/demos.jsonl   # gold environment demonstrations"],
    "train sft": [
        "astra train sft --data run/sft --data run/demos.jsonl --model embedded -o run/ckpt/sft "
        "[--lora] [--max-steps N]",
        "astra train sft --config sft.yaml                          # options from a YAML or TOML file",
    ],
    "train rl": [
        "astra train rl --envs run/envsplit/train --model run/ckpt/sft -o run/ckpt/rl --group-size 4 --batch 8 "
        "--reward f1 --distractors banded [--max-steps N]",
        "astra train rl --envs run/envsplit/train --model run/ckpt/sft -o run/ckpt/rl --precision bf16 "
        "--gradient-checkpointing --resume   # a GPU; --resume reuses journaled rollouts",
        "astra train rl --envs run/envsplit/train --model run/ckpt/sft --backend verl --export run/verl_job"
        "   # a veRL (Ray) job",
        "astra train rl --config rl.toml --max-steps 10             # file values, overridden by flags",
    ],
    "eval envs": ["astra eval envs run/envsplit/heldout --model embedded --model run/ckpt/sft --model run/ckpt/rl"],
    "eval bfcl": ["astra eval bfcl --model run/ckpt/rl --categories multi_turn_base,simple,multiple --limit 20"],
    "eval tau2": ["astra eval tau2 --domains retail,telecom --agent openai:MODEL --user-llm openai:MODEL --base-url URL"],
}


def _command_paths(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subs = getattr(cmd, "commands", None)
    out: list[tuple[tuple[str, ...], Any]] = [(path, cmd)]
    for name, sub in (subs or {}).items():
        out.extend(_command_paths(sub, (*path, name)))
    return out


def examples_text(lines: list[str]) -> str:
    """The help section of ``lines`` (escaped: shown verbatim by rich)."""
    return "Examples:\n\n" + "\n".join(escape(line) for line in lines)


def exit_codes_text() -> str:
    from astra.cli_common import EXIT_CODES

    return "Exit codes:\n\n" + "\n".join(f"{code:>4}  {escape(what)}" for code, what in EXIT_CODES.items())


def polish(root: Any) -> None:
    """Examples into each command's help text, the exit codes into the top-level help;
    plain flags without a type column."""
    if not getattr(root, "_astra_examples", False):
        root.epilog = exit_codes_text() + "\n\nDetails and examples: docs/cli.md; each command's --help."
        root._astra_examples = True
    for path, cmd in _command_paths(root):
        for p in getattr(cmd, "params", ()):
            if getattr(p, "is_flag", False) and not getattr(p, "count", False):
                p.metavar = ""  # typer shows the metavar in place of the type: nothing for a flag
        help_opt = cmd.get_help_option(cmd.context_class(cmd))  # cached on the command
        if help_opt is not None:
            help_opt.metavar = ""
        ex = EXAMPLES.get(" ".join(path))
        if ex and not getattr(cmd, "_astra_examples", False):
            cmd.epilog = (cmd.epilog + "\n\n" if cmd.epilog else "") + examples_text(ex)
            cmd._astra_examples = True


class AstraGroup(TyperGroup):
    """The root ``astra`` group: polishes the command tree's help before running it."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        polish(self)
        return super().main(*args, **kwargs)


__all__ = ["AstraGroup", "EXAMPLES", "examples_text", "polish"]
