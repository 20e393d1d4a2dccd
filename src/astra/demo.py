"""``astra demo``: the main job, the whole flow on the bundled sample, offline.

The demo is a recipe of the same ``astra`` commands a user runs by hand (each printed
before it runs), into one run directory. Every step is a resumable stage, so an
interrupted demo continues where it stopped when started again. It ends with a summary
table built from the stages' manifests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from astra.cli_common import console
from astra.errors import AstraError, ConfigError

PROFILES: dict[str, dict[str, int | float | str]] = {
    # tiny: minutes on 2 CPU cores (used by the end-to-end test). SFT trains on the CPU at
    # ~50 tokens/s there, so SFT gets short conversations only (--max-length 1024: the
    # environment demonstrations, ~700 tokens; the exported trajectories, ~2,000 tokens with
    # the compact tool template, are all longer and dropped) and 12 steps of 2; every
    # held-out environment is evaluated, with 3 tool turns (then one answer turn).
    "tiny": {"walks": 60, "max_per_server": 4, "per_chain": 1, "qa_n": 2, "sft_steps": 12, "sft_batch": 2,
             "sft_lr": 1e-4, "sft_max_length": 1024, "format_check": 2, "format_tokens": 128, "rl_steps": 1,
             "rl_group": 2, "rl_batch": 2, "rl_rounds": 4, "rl_turns": 2, "rl_curriculum": "hops", "eval_n": 10_000, "max_turns": 3,
             "bfcl_categories": "simple", "bfcl_n": 2},
    # default: the full sample, more SFT and RL steps (35 minutes on 2 idle CPU cores with 8
    # evaluated environments; 24 now, spread over the scenario types)
    "default": {"walks": 200, "max_per_server": 50, "per_chain": 2, "qa_n": 8, "sft_steps": 12, "sft_batch": 2,
                "sft_lr": 1e-4, "sft_max_length": 2048, "format_check": 4, "format_tokens": 256, "rl_steps": 6,
                "rl_group": 4, "rl_batch": 4, "rl_rounds": 3, "rl_turns": 2, "rl_curriculum": "none", "eval_n": 24, "max_turns": 4,
                "bfcl_categories": "simple,multiple", "bfcl_n": 5},
}


@dataclass
class Step:
    name: str
    args: list[str]
    output: str  # the file whose manifest summarizes the step
    llm: bool = False  # accepts --llm / --base-url
    runner: bool = True  # accepts the stage-runner options (--no-progress, …)
    training: bool = False  # trains or evaluates a model (skipped with --no-training)


@dataclass
class StepResult:
    name: str
    output: str
    summary: str
    seconds: float
    command: str = ""
    extra: dict = field(default_factory=dict)


class DemoStepFailed(AstraError):
    pass


def plan(out: Path, profile: str) -> list[Step]:
    p = PROFILES[profile]
    o = str(out)
    return [
        Step("tools ingest", ["tools", "ingest", "sample", "-o", f"{o}/tools.jsonl"], f"{o}/tools.jsonl"),
        Step("graph build", ["graph", "build", f"{o}/tools.jsonl", "-o", f"{o}/graphs"],
             f"{o}/graphs/graphs.jsonl", llm=True),
        Step("graph chains", ["graph", "chains", f"{o}/graphs", "-o", f"{o}/chains.jsonl",
                              "--walks", str(p["walks"]), "--max-per-server", str(p["max_per_server"])],
             f"{o}/chains.jsonl"),
        Step("graph verify", ["graph", "verify", f"{o}/chains.jsonl", "-o", f"{o}/verified.jsonl",
                              "--tools", f"{o}/tools.jsonl"], f"{o}/verified.jsonl", llm=True),
        Step("tasks generate", ["tasks", "generate", f"{o}/verified.jsonl", "-o", f"{o}/tasks.jsonl",
                                "--tools", f"{o}/tools.jsonl", "--per-chain", str(p["per_chain"])],
             f"{o}/tasks.jsonl", llm=True),
        Step("tasks augment", ["tasks", "augment", f"{o}/tasks.jsonl", "-o", f"{o}/aug.jsonl",
                               "--tools", f"{o}/tools.jsonl"], f"{o}/aug.jsonl", llm=True),
        Step("tasks score", ["tasks", "score", f"{o}/aug.jsonl", "-o", f"{o}/scored.jsonl",
                             "--tools", f"{o}/tools.jsonl"], f"{o}/scored.jsonl", llm=True),
        Step("rollout", ["rollout", f"{o}/scored.jsonl", "-o", f"{o}/trajectories.jsonl", "--tools",
                         f"{o}/tools.jsonl", "--agent", "chain-executor"], f"{o}/trajectories.jsonl"),
        Step("judge", ["judge", f"{o}/trajectories.jsonl", "-o", f"{o}/judged.jsonl"],
             f"{o}/judged.jsonl", llm=True),
        Step("export sft", ["export", "sft", f"{o}/judged.jsonl", "-o", f"{o}/sft", "--format", "openai"],
             f"{o}/sft/export.manifest.json", runner=False),
        Step("envs decompose", ["envs", "decompose", "-o", f"{o}/qa.jsonl", "--n", str(p["qa_n"])],
             f"{o}/qa.jsonl"),
        Step("envs validate", ["envs", "validate", f"{o}/qa.jsonl", "-o", f"{o}/valid.jsonl"],
             f"{o}/valid.jsonl", llm=True),
        Step("envs synthesize", ["envs", "synthesize", f"{o}/valid.jsonl", "-o", f"{o}/envs"],
             f"{o}/envs/index.jsonl", llm=True),
        Step("envs verify", ["envs", "verify", f"{o}/envs"], f"{o}/envs/index.jsonl", runner=False),
        Step("envs stateful", ["envs", "stateful", "--tasks", f"{o}/tasks.jsonl", "--tools", f"{o}/tools.jsonl",
                               "-o", f"{o}/senvs"], f"{o}/senvs/index.jsonl", runner=False),
        Step("envs split", ["envs", "split", f"{o}/envs", f"{o}/senvs", "-o", f"{o}/envsplit", "--heldout", "0.25"],
             f"{o}/envsplit/heldout/index.jsonl", runner=False, training=True),
        Step("train demos", ["train", "demos", "--envs", f"{o}/envsplit/train", "-o", f"{o}/demos.jsonl"],
             f"{o}/demos.jsonl", runner=False, training=True),
        Step("train sft", ["train", "sft", "--data", f"{o}/sft", "--data", f"{o}/demos.jsonl", "--model", "embedded",
                           "-o", f"{o}/ckpt/sft",
                           "--max-steps", str(p["sft_steps"]), "--batch-size", str(p["sft_batch"]),
                           "--lr", str(p["sft_lr"]), "--max-length", str(p["sft_max_length"]), "--allow-drop",
                           "--format-check", str(p["format_check"]),
                           "--format-check-tokens", str(p["format_tokens"])], f"{o}/ckpt/sft/train_summary.json",
             runner=False, training=True),
        Step("train rl", ["train", "rl", "--envs", f"{o}/envsplit/train", "--model", f"{o}/ckpt/sft",
                          "-o", f"{o}/ckpt/rl", "--group-size", str(p["rl_group"]), "--batch", str(p["rl_batch"]),
                          "--groups-per-round", "1", "--max-rollout-rounds", str(p["rl_rounds"]),
                          "--max-steps", str(p["rl_steps"]), "--max-turns", str(p["rl_turns"]),
                          "--max-new-tokens", "64", "--curriculum", str(p["rl_curriculum"])],
             f"{o}/ckpt/rl/metrics.jsonl", runner=False, training=True),
        Step("eval envs", ["eval", "envs", f"{o}/envsplit/heldout", "--model", "embedded",
                           "--model", f"{o}/ckpt/sft", "--model", f"{o}/ckpt/rl", "--limit", str(p["eval_n"]),
                           "--max-turns", str(p["max_turns"]), "--max-tokens", "96",
                           "-o", f"{o}/eval/envs.json"], f"{o}/eval/envs.json", runner=False, training=True),
        Step("eval bfcl", ["eval", "bfcl", "--model", f"{o}/ckpt/rl", "--categories", str(p["bfcl_categories"]),
                           "--limit", str(p["bfcl_n"]), "--max-tokens", "128", "-o", f"{o}/eval/bfcl"],
             f"{o}/eval/bfcl/bfcl_summary.md", runner=False, training=True),
        Step("report", ["report", o, "-o", f"{o}/report.html"], f"{o}/report.html", runner=False),
    ]


def _registered(args: list[str], group: Any) -> bool:
    """Whether the command path exists in ``group`` (the root ``astra`` command)."""
    ctx = typer.Context(group)
    cmd: Any = group
    for word in args[:2]:
        if not hasattr(cmd, "get_command"):  # a command, not a group: the rest are its arguments
            return True
        cmd = cmd.get_command(ctx, word)
        if cmd is None:
            return False
    return True


def _invoke(args: list[str], command: Any) -> None:
    console.print(f"\n$ astra {' '.join(args)}", style="bold cyan")
    try:
        code = command.main(args=args, prog_name="astra", standalone_mode=False)
    except typer.TyperException as e:  # usage errors of the CLI typer bundles
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        raise DemoStepFailed(f"`astra {' '.join(args)}`: {message}") from None
    if code:
        raise DemoStepFailed(f"`astra {' '.join(args)}` exited with {code}; fix the cause and rerun the demo "
                             "(finished stages are kept)")


def _summary(output: str) -> str:
    from astra.pipeline import load_manifest

    try:
        m = load_manifest(output)
    except AstraError:
        return "done"
    parts = [f"{m.outputs} records"]
    if m.rejected or m.rejections:
        parts.append(f"{m.rejections} rejections")
    if m.failed:
        parts.append(f"{m.failed} failed")
    top = sorted(m.rejections_by_reason.items(), key=lambda kv: -kv[1])[:2]
    if top:
        parts.append("(" + ", ".join(f"{k} {v}" for k, v in top) + ")")
    return ", ".join(parts)


def run_demo(cli: Any, *, profile: str = "tiny", out: Path = Path("runs/demo"), llm: str | None = None,
             base_url: str | None = None, training: bool = True) -> list[StepResult]:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    out.mkdir(parents=True, exist_ok=True)
    console.print(Text("astra demo", style="bold"), f"profile={profile} → {out} "
                  f"(LLM: {llm or 'embedded, offline generators where the tiny model cannot do the job'})")
    results: list[StepResult] = []
    skipped: list[str] = []
    for step in plan(out, profile):
        if not _registered(step.args, cli) or (step.training and not training):
            skipped.append(step.name)
            continue
        args = list(step.args)
        if step.llm and llm:
            args += ["--llm", llm]
        if step.llm and base_url:
            args += ["--base-url", base_url]
        if step.runner and step.args[0] != "tools":
            args.append("--no-progress")
        if step.name == "report":  # the report reads the numbers (with their intervals)
            write_model_results(out)
        t0 = time.perf_counter()
        _invoke(args, cli)
        results.append(StepResult(step.name, step.output, _summary(step.output), time.perf_counter() - t0,
                                  command="astra " + " ".join(args)))
    _print_summary(results, skipped, out)
    write_model_results(out)
    _print_models(out)
    return results


def model_results(out: Path) -> dict[str, dict]:
    """Base / SFT / RL on the held-out environments (``eval/envs.json``) and the BFCL subset
    of the RL model, as written by the demo's evaluation steps ({} for what did not run)."""
    import json

    res: dict[str, dict] = {}
    envs = out / "eval" / "envs.json"
    if envs.exists():
        rep = json.loads(envs.read_text("utf-8"))
        for label, m in zip(("base", "SFT", "RL"), rep.get("models", []), strict=False):
            res[label] = {"model": m["model"], **{k: m["overall"][k] for k in
                                                   ("n", "success_rate", "f1", "recall", "precision", "turns")},
                          "subtasks": m["overall"].get("subtasks", 0.0)}
            if m.get("same_weights_as"):
                res[label]["same_weights_as"] = m["same_weights_as"]
            if m["overall"].get("ci"):
                res[label]["ci"] = m["overall"]["ci"]
        if rep.get("comparisons"):
            res["comparisons"] = rep["comparisons"]
    bfcl = out / "eval" / "bfcl" / "bfcl_summary.json"
    if bfcl.exists():
        cats = json.loads(bfcl.read_text("utf-8")).get("categories", {})
        res.setdefault("RL", {})["bfcl"] = {c: {"accuracy": v["accuracy"], "total": v["total_count"]}
                                            for c, v in cats.items()}
    return res


def write_model_results(out: Path) -> dict[str, Any]:
    """Write ``demo_results.json`` (what :func:`model_results` reads) and return it."""
    from astra.io import write_json

    res = model_results(out)
    if res:
        write_json(out / "demo_results.json", res)
    return res


def _print_models(out: Path) -> None:
    res = model_results(out)
    if not res:
        return
    t = Table("model", "path", "n", "success", "F1", "recall", "precision", "sub-tasks", "turns",
              title="held-out environments: base vs SFT vs RL", title_justify="left")
    for label, m in res.items():
        if "n" in m:
            t.add_row(label, m["model"], str(m["n"]), f"{m['success_rate']:.3f}", f"{m['f1']:.3f}",
                      f"{m['recall']:.3f}", f"{m['precision']:.3f}", f"{m.get('subtasks', 0.0):.3f}",
                      f"{m['turns']:.2f}")
    t.caption = "sub-tasks: share of each environment's tool calls made right, answer aside (not the reward)"
    console.print(t)
    for label, m in res.items():
        if m.get("same_weights_as"):
            console.print(f"{label}: the same weights as {m['same_weights_as']} (no update), "
                          "its episodes reused", highlight=False)
    for c in res.get("comparisons", []):
        ci = f" [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]" if c.get("ci") else ""
        metric = {"f1": "F1"}.get(c.get("metric", "f1"), c.get("metric", "f1"))
        console.print(f"{c['b']} vs {c['a']}: {metric} {c['diff']:+.3f}{ci} (paired bootstrap, {c['n']} environments)",
                      highlight=False)
    for cat, b in (res.get("RL", {}).get("bfcl") or {}).items():
        console.print(f"BFCL {cat} (RL model): accuracy {b['accuracy']:.2%} of {b['total']} entries")
    console.print(f"numbers → {out / 'demo_results.json'}")


def _print_summary(results: list[StepResult], skipped: list[str], out: Path) -> None:
    t = Table("stage", "output", "result", "seconds", title="astra demo — summary", title_justify="left")
    for r in results:
        t.add_row(r.name, r.output, r.summary, f"{r.seconds:.1f}")
    for name in skipped:
        t.add_row(name, "—", Text("skipped", style="dim"), "")
    console.print(t)
    console.print(f"LLM usage of this run: astra llm stats {out}")
