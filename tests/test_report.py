"""The run report: sections from hand-made run directories (synthesis only, and through
demos, SFT, RL and evaluation), the funnel's shares, the results chart and its intervals,
one-step runs, diverse trajectories, highlighted chains, BFCL's JSON Lines, escaping,
self-containment, lenience on missing / broken parts, the CLI, and a render check in
headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from astra.envs import write_environment
from astra.pipeline.manifest import Manifest
from astra.report import build_context, render_report
from astra.report.cli import report_command
from astra.report.html import gather_eval, gather_graphs, gather_headline, pick_diverse, render_context
from astra.report.plots import KEPT_COLOR, MODEL_COLORS, tool_graph
from astra.report.results import bootstrap_ci, gather_results, read_ci, results_picture
from astra.report.training import gather_training, training_funnel
from astra.types import Environment, EnvTool, QAInstance, SubTask, Tool

EVIL = "<script>alert('x')</script>"


def _manifest(run: Path, rel: str, stage: str, **kw) -> None:
    out = run / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    m = Manifest(stage=stage, output=str(out), status="complete", **kw)
    out.with_name(out.name[: -len(".jsonl")] + ".manifest.json").write_text(m.model_dump_json(), "utf-8")


def _jsonl(path: Path, recs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), "utf-8")


def _traj(tid: str, task: str, server: str, passed: bool) -> dict:
    return {"id": tid, "task_id": task, "agent": "embedded", "meta": {"task": {"server": server}},
            "tools": [{"type": "function", "function": {"name": "search", "parameters": {}}}],
            "messages": [
                {"role": "system", "content": "be helpful"},
                {"role": "user", "content": f"Find a lamp ({task})"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"lamp\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": f"found {EVIL}"},
                {"role": "assistant", "content": "The lamp costs 12 EUR."}],
            "judgement": {"mode": "offline", "overall": 0.8 if passed else 0.3, "passed": passed,
                          "dimensions": {"tool_use": {"score": 0.9, "method": "rule", "reason": "ok"},
                                         "final_answer": {"score": 0.7, "method": "heuristic", "reason": "fine"}}}}


def _env(i: int, scenario: str = "single_hop") -> Environment:
    return Environment(
        id=f"film.sh.{i}",
        instance=QAInstance(id=f"q{i}", domain="film", scenario=scenario, question="Who directed \"Ash\"?",
                            answer="Mira Tann", sub_tasks=[SubTask(id="s1", sub_question="director of Ash?",
                                                                   sub_answer="Mira Tann")]),
        tools=[EnvTool(tool=Tool(name="get_director", description="the director of a film",
                                 parameters={"type": "object", "properties": {"film": {"type": "string"}},
                                             "required": ["film"]}),
                       code="def get_director(film):\n    return {'director': 'Mira Tann'}\n",
                       serves=["s1"], calls={"s1": "get_director(film='Ash')"})],
        verification={"ok": True}, provenance={"generator": "template"})


def _episodes(f1s: list[float]) -> list[dict]:
    return [{"env_id": f"film.sh.{i}", "scenario": "single_hop", "success": f == 1.0, "f1": f, "recall": f,
             "precision": f, "turns": 2, "calls": 1} for i, f in enumerate(f1s)]


def _model(name: str, f1s: list[float]) -> dict:
    n = len(f1s)
    mean = round(sum(f1s) / n, 4)
    ov = {"n": n, "success_rate": sum(f == 1.0 for f in f1s) / n, "f1": mean, "recall": mean, "precision": mean,
          "turns": 2.0, "calls": 1.0, "errors": 0}
    return {"model": name, "overall": ov, "by_scenario": {"single_hop": ov}, "episodes": _episodes(f1s),
            "seconds": 3.0}


def make_synthesis_run(run: Path) -> Path:
    """The synthesis stages only (what ``astra demo --no-training`` leaves)."""
    run.mkdir(parents=True)
    _manifest(run, "tools.jsonl", "tools.ingest", done=2, accepted=2, outputs=2)
    _manifest(run, "verified.jsonl", "graph.verify", done=10, accepted=7, rejected=3, outputs=7,
              rejections_by_reason={"args": 2, EVIL: 1},
              llm_usage={"requests": 10, "calls": 4, "cache_hits": 6, "prompt_tokens": 900, "completion_tokens": 80})
    _manifest(run, "tasks.jsonl", "tasks.generate", done=4, accepted=0, rejected=4, outputs=0,
              rejections_by_reason={"no_solvable_plan": 4})
    _manifest(run, "graphs/graphs.jsonl", "graph.build", done=1, accepted=1, outputs=1)
    graph = {"server": "shop", "nodes": ["search", "get", "buy", "refund"],
             "edges": [{"source": "search", "target": "get", "weight": 1.0, "provenance": ["dataflow"]},
                       {"source": "get", "target": "buy", "weight": 0.4, "provenance": ["llm", "dataflow"]},
                       {"source": "buy", "target": "refund", "weight": 0.2, "provenance": ["dataflow"]}]}
    _jsonl(run / "graphs" / "graphs.jsonl", [graph])
    _jsonl(run / "chains.jsonl", [{"server": "shop", "tools": c} for c in
                                  (["search", "get", "buy"], ["search", "get"], ["buy", "refund"])])
    _jsonl(run / "verified.jsonl", [{"server": "shop", "tools": c} for c in (["search", "get", "buy"], ["search", "get"])])
    # four trajectories of one task first: a report that takes the first ones shows one task only
    trajs = [_traj(f"a{i}", f"task-a{'.com0' if i else ''}", "shop", True) for i in range(4)]
    trajs += [_traj("b0", "task-b", "shop", False), _traj("c0", "task-c", "travel", True)]
    _jsonl(run / "judged.jsonl", trajs)
    for i in range(4):
        write_environment(_env(i), run / "envs")
    _manifest(run, "envs/index.jsonl", "envs.synthesize", done=5, accepted=4, rejected=1, outputs=4,
              rejections_by_reason={"gold_call_failed": 1})
    return run


def make_run(run: Path, *, rl_steps: int = 6) -> Path:
    """A whole run: synthesis, split, demos, SFT, RL, held-out evaluation and BFCL."""
    make_synthesis_run(run)
    for i in range(3):
        write_environment(_env(i), run / "envsplit" / "train")
    write_environment(_env(3), run / "envsplit" / "heldout")
    _jsonl(run / "demos.jsonl", [{"id": f"gold.film.sh.{i}", "messages": [], "tools": "[]"} for i in range(2)])
    sft = run / "ckpt" / "sft"
    _jsonl(sft / "logs.jsonl", [{"step": 0, "phase": "before", "eval_loss": 2.5}]
           + [{"step": i, "loss": 2.0 / (i + 1), "tokens_per_s": 100.0 + i} for i in range(1, 8)]
           + [{"step": 7, "phase": "after", "eval_loss": 0.9}])
    (sft / "train_summary.json").write_text(json.dumps({
        "global_step": 7, "train_loss": 0.5, "eval_loss_before": 2.5, "eval_loss_after": 0.9, "total_seconds": 42.0,
        "data": {"records": 12, "train": 8, "eval": 1, "overlong": 3, "dropped_overlong": 3, "max_length": 4096}}),
        "utf-8")
    rl = run / "ckpt" / "rl"
    _jsonl(rl / "metrics.jsonl", [{"step": s, "reward_mean": 0.1 * s, "reward_std": 0.05, "groups": 4,
                                   "filtered_groups": 1, "filtered_group_share": 0.25, "rollouts": 16,
                                   "batch_size": 12, "loss": 0.5 - 0.01 * s, "f1": 0.1 * s, "solved_all": 0.0}
                                  for s in range(1, rl_steps + 1)])
    (rl / "rl_summary.json").write_text(json.dumps({"steps": rl_steps, "seconds": 60.0, "reward_first": 0.1}), "utf-8")
    res = {"kind": "envs", "envs": "envsplit/heldout", "n_envs": 8, "max_turns": 8, "distractors": "none",
           "models": [_model("embedded", [0.0, 0.0, 0.5, 0.0, 0.0, 0.2, 0.0, 0.0]),
                      _model(str(run / "ckpt" / "sft"), [1.0, 0.5, 0.5, 0.0, 1.0, 0.2, 0.0, 0.5]),
                      _model(str(run / "ckpt" / "rl"), [1.0, 1.0, 0.5, 0.5, 1.0, 0.2, 0.0, 1.0])]}
    _jsonl(run / "eval" / "envs.json", [])
    (run / "eval" / "envs.json").write_text(json.dumps(res), "utf-8")
    bfcl = run / "eval" / "bfcl"
    (bfcl / "bfcl_summary.json").parent.mkdir(parents=True, exist_ok=True)
    (bfcl / "bfcl_summary.json").write_text(json.dumps({
        "model": str(rl), "seconds": 5.0,
        "categories": {"simple_python": {"accuracy": 0.5, "correct_count": 2, "total_count": 4}},
        "summaries": {}}), "utf-8")
    _jsonl(bfcl / "BFCL_v4_simple_python_result.json",
           [{"id": f"simple_python_{i}", "result": [{"f": "{}"}] if i else []} for i in range(4)])
    _jsonl(bfcl / "BFCL_v4_simple_python_score.json",
           [{"accuracy": 0.5, "correct_count": 2, "total_count": 4},
            {"id": "simple_python_0", "valid": False, "error_type": "ast_decoder:decoder_failed", "error": [EVIL],
             "model_result": []},
            {"id": "simple_python_3", "valid": False, "error_type": "value_error", "error": ["wrong"],
             "model_result": [{"f": "{}"}]}])
    (bfcl / "bfcl_summary.md").write_text("| category | accuracy |\n|---|---|\n| simple_python | 50% |\n", "utf-8")
    return run


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[Path, dict, str]:
    """One whole run, its context and its HTML, for the tests that only read them (drawing
    the pictures is what takes the time)."""
    run = make_run(tmp_path_factory.mktemp("shared") / "run")
    ctx = build_context(run)
    return run, ctx, render_context(ctx)


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "run")


def _svgs(html: str) -> list[str]:
    return [base64.b64decode(u).decode("utf-8") for u in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]


def _stage(ctx: dict, label: str) -> dict:
    return next(s for s in ctx["funnel"]["stages"] if s["label"] == label)


def test_sections_and_content(shared):
    run, ctx, html = shared
    for anchor in ("run", "results", "funnel", "graphs", "trajectories", "environments", "training", "evaluation",
                   "usage"):
        assert f'id="{anchor}"' in html
    assert "graph: verify" in html and "rejected: args" in html
    assert "get_director(film: string)" in html and "Mira Tann" in html
    assert "single_hop" in html and "60%" in html  # the cache hit rate of graph.verify
    assert ctx["problems"] == []
    assert ctx["trajectories"]["samples"][0]["judgement"]["dims"][0]["name"] == "tool_use"
    # tool results are named after their call
    msgs = ctx["trajectories"]["samples"][0]["messages"]
    assert next(m for m in msgs if m["role"] == "tool")["name"] == "search"


def test_rejection_bars_are_shares_of_the_inputs(shared):
    run, ctx, html = shared
    verify = _stage(ctx, "graph: verify")
    assert verify["kept"] == 70.0
    assert [(r["n"], r["w"], r["pct"]) for r in verify["reasons"]] == [(2, 20.0, "20%"), (1, 10.0, "10%")]
    tasks = _stage(ctx, "tasks: generate")  # every input rejected: a full bar, and no records
    assert tasks["reasons"][0]["w"] == 100.0 and tasks["kept"] == 0.0 and tasks["outputs"] == 0
    assert 'style="width: 20.0%"' in html and 'style="width: 10.0%"' in html
    assert "no records" in html


def test_funnel_continues_through_training_and_evaluation(shared):
    run, ctx, html = shared
    labels = [s["label"] for s in ctx["funnel"]["stages"]]
    for lbl in ("envs: split", "train: demos", "train: SFT", "train: RL", "eval: held-out envs", "eval: BFCL"):
        assert lbl in labels
    assert labels.index("graph: verify") < labels.index("envs: synthesize") < labels.index("train: demos") \
        < labels.index("train: SFT") < labels.index("train: RL") < labels.index("eval: held-out envs")
    demos = _stage(ctx, "train: demos")
    assert (demos["inputs"], demos["accepted"], demos["rejected"]) == (3, 2, 1)
    sft = _stage(ctx, "train: SFT")
    assert (sft["inputs"], sft["accepted"], sft["rejected"], sft["outputs"]) == (12, 9, 3, 8)
    assert sft["reasons"][0]["reason"].startswith("longer than max_length=4096") and sft["reasons"][0]["w"] == 25.0
    rl = _stage(ctx, "train: RL")
    assert (rl["inputs"], rl["rejected"], rl["outputs"]) == (24, 6, 18)
    ev = _stage(ctx, "eval: held-out envs")
    assert ev["inputs"] == 24 and ev["accepted"] == 2 + 4 + 0
    assert not {"envsplit", "demos", "ckpt/sft", "ckpt/rl", "eval/envs"} & {m["key"] for m in ctx["funnel"]["missing"]}


def test_results_chart_with_carried_intervals(run):
    demo = {"base": {"model": "embedded", "n": 8, "success_rate": 0.0, "f1": 0.09, "recall": 0.09,
                     "precision": 0.09, "ci": {"f1": [0.0, 0.2], "level": 0.95, "method": "bootstrap",
                                                 "resamples": 1000}},
            "SFT": {"model": str(run / "ckpt" / "sft"), "n": 8, "success_rate": 0.25, "f1": 0.4625,
                    "ci_low": {"f1": 0.2}, "ci_high": {"f1": 0.7}},
            "RL": {"model": str(run / "ckpt" / "rl"), "n": 8, "success_rate": 0.5, "f1": 0.65,
                   "f1_ci": [0.4, 0.85], "success_rate_ci_low": 0.2, "success_rate_ci_high": 0.8}}
    (run / "demo_results.json").write_text(json.dumps(demo), "utf-8")
    problems: list[str] = []
    h = gather_headline(run, problems)
    assert problems == []
    assert [m["label"] for m in h["models"]] == ["base", "SFT", "RL"]
    assert h["models"][0]["ci"] == {"f1": (0.0, 0.2)}
    assert h["models"][1]["ci"] == {"f1": (0.2, 0.7)}
    assert h["models"][2]["ci"] == {"f1": (0.4, 0.85), "success_rate": (0.2, 0.8)}
    assert "95% confidence intervals carried by the results (bootstrap, 1000 resamples)" in h["ci_note"]
    assert "computed by this report" not in h["ci_note"]
    assert h["sentence"] == "base 0.090 → SFT 0.463 → RL 0.650"
    assert h["models"][2]["ci_fmt"]["f1"] == "[0.40, 0.85]"
    # the error bars are in the picture: more line segments than without intervals
    with_ci = base64.b64decode(h["img"].split(",", 1)[1]).decode()
    for m in h["models"]:
        m["ci"] = {}
    without = base64.b64decode(results_picture(h).split(",", 1)[1]).decode()
    assert with_ci.count("<path") > without.count("<path")


def test_results_bootstrap_when_no_interval_is_carried(shared):
    run, ctx, html = shared
    h = ctx["headline"]
    assert [m["label"] for m in h["models"]] == ["base (embedded)", "SFT", "RL"]
    lo, hi = h["models"][2]["ci"]["f1"]
    assert lo < h["models"][2]["values"]["f1"] < hi
    assert "computed by this report" in h["ci_note"] and "8 held-out environments" in h["ci_note"]
    assert h["img"].startswith("data:image/svg+xml;base64,")
    assert bootstrap_ci([0.5]) is None
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_results_interval_outside_its_value_is_a_problem(run):
    (run / "demo_results.json").write_text(json.dumps({"RL": {"model": str(run / "ckpt" / "rl"), "f1": 0.65,
                                                              "ci": {"f1": [0.7, 0.9]}}}), "utf-8")
    problems: list[str] = []
    res = gather_results(run, problems)
    rl = next(m for m in res["models"] if m["label"] == "RL")
    assert rl["ci"].get("f1") != (0.7, 0.9)
    assert any("does not contain" in p for p in problems)


@pytest.mark.parametrize("obj", [
    {"f1": 0.5, "ci": {"f1": [0.4, 0.6]}},
    {"f1": 0.5, "ci": {"f1": {"low": 0.4, "high": 0.6}}},
    {"f1": 0.5, "ci_low": {"f1": 0.4}, "ci_high": {"f1": 0.6}},
    {"f1": 0.5, "f1_ci": [0.4, 0.6]},
    {"f1": 0.5, "f1_ci_low": 0.4, "f1_ci_high": 0.6},
    {"f1": {"mean": 0.5, "ci": [0.4, 0.6]}},
    {"f1": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}},
])
def test_read_ci_shapes(obj):
    assert read_ci(obj, "f1") == (0.4, 0.6)
    assert read_ci(obj, "recall") is None


def test_curves_and_one_step_runs(shared, tmp_path):
    run, ctx, html = shared
    sft, rl = ctx["training"]
    assert sft["img"].startswith("data:image/svg+xml;base64,") and sft["table"] is None and sft["steps"] == 7
    assert rl["img"].startswith("data:image/svg+xml;base64,") and rl["steps"] == 6
    one = make_run(tmp_path / "one", rl_steps=1)
    sft, rl = gather_training(one, [])
    assert rl["img"] is None and rl["table"]["cols"] == ["metric", "step 1"]
    rows = {r[0]: r[1:] for r in rl["table"]["rows"]}
    assert rows["reward_mean"] == [0.1] and rows["filtered_groups"] == [1] and rows["loss"] == [0.49]
    assert rl["img_source"].startswith("1 logged step: a table instead of curves")


def test_trajectories_come_from_different_tasks(shared):
    run, ctx, html = shared
    samples = ctx["trajectories"]["samples"]
    tasks = [s["task_id"].split(".")[0] for s in samples]
    assert len(samples) == 4 and len(set(tasks[:3])) == 3  # three tasks exist: the fourth repeats one
    assert samples[0]["judgement"]["passed"] is True and samples[1]["judgement"]["passed"] is False
    assert {s["server"] for s in samples} == {"shop", "travel"}
    # with one task only, the rest are still shown
    recs = [_traj(f"a{i}", "task-a", "shop", True) for i in range(5)]
    assert len(pick_diverse(recs, 4)) == 4


def test_graph_highlights_kept_chains(shared, run):
    g = shared[1]["graphs"]["samples"][0]
    assert (g["kept"], g["walked"]) == (2, 3)
    assert [c["tools"] for c in g["chains"]] == [["search", "get", "buy"], ["search", "get"]]
    svg = base64.b64decode(g["img"].split(",", 1)[1]).decode()
    assert KEPT_COLOR in svg
    (run / "verified.jsonl").unlink()
    graphs = gather_graphs(run, [])
    g = graphs["samples"][0]
    svg = base64.b64decode(g["img"].split(",", 1)[1]).decode()
    assert g["kept"] == 0 and KEPT_COLOR not in svg and graphs["has_kept"] is False


def test_graph_labels_the_font_cannot_draw_stay_text():
    nodes = ["查询天气", EVIL] + [f"tool_{i}" for i in range(20)]  # many tools: labels along the radius
    uri = tool_graph("天气", nodes, [{"source": nodes[0], "target": nodes[1], "weight": 1.0}],
                     kept_chains=[nodes[:2]])
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert "查询天气" in svg and "&lt;script&gt;" in svg and "<script" not in svg
    plain = base64.b64decode(tool_graph("shop", ["a", "b"], []).split(",", 1)[1]).decode()
    assert "<text" not in plain  # drawable text is drawn as outlines


def test_bfcl_result_files_are_json_lines(shared):
    run, ctx, html = shared
    assert ctx["problems"] == []
    by = {e["name"]: e for e in ctx["evals"]}
    score = dict(by["eval/bfcl/BFCL_v4_simple_python_score.json"]["items"])
    assert score["accuracy"] == "50.0%" and score["correct / entries"] == "2 / 4"
    assert score["invalid: ast_decoder:decoder_failed"] == "1" and score["invalid: value_error"] == "1"
    result = dict(by["eval/bfcl/BFCL_v4_simple_python_result.json"]["items"])
    assert result["entries"] == "4" and result["entries with an empty result"] == "1"
    summary = by["eval/bfcl/bfcl_summary.json"]
    assert summary["kind"] == "table" and summary["rows"][0] == ["simple_python", "4", "2", "50.0%"]
    assert "simple_python 50.0% of 4" in html


def test_bfcl_files_with_one_line_or_none(run):
    bfcl = run / "eval" / "bfcl"
    _jsonl(bfcl / "BFCL_v4_multiple_score.json", [{"accuracy": 1.0, "correct_count": 3, "total_count": 3}])
    _jsonl(bfcl / "BFCL_v4_multiple_result.json", [{"id": "multiple_0", "result": [{"g": "{}"}]}])
    (bfcl / "BFCL_v4_parallel_result.json").write_text("", "utf-8")
    (bfcl / "BFCL_v4_parallel_score.json").write_text('{"accuracy": 0.5}\n[1, 2]\n', "utf-8")
    problems: list[str] = []
    by = {e["name"]: e for e in gather_eval(run, problems)}
    assert dict(by["eval/bfcl/BFCL_v4_multiple_score.json"]["items"])["correct / entries"] == "3 / 3"
    assert dict(by["eval/bfcl/BFCL_v4_multiple_result.json"]["items"])["entries"] == "1"
    assert dict(by["eval/bfcl/BFCL_v4_parallel_result.json"]["items"])["entries"] == "0"
    assert problems == ["evaluation eval/bfcl/BFCL_v4_parallel_score.json: ValueError: JSON Lines: line 2 is not a "
                        "JSON object"]


def test_data_is_escaped(shared):
    html = shared[2]
    assert EVIL not in html
    assert "&lt;script&gt;alert(" in html
    assert "<script" not in html.lower()


def test_self_contained(shared):
    html = shared[2]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html.lower()
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) >= 4  # the results chart, SFT and RL curves, a graph
    for src in srcs:
        assert src.startswith(("data:image/svg+xml;base64,", "data:image/png;base64,"))
    for svg in _svgs(html):
        assert "<script" not in svg and "<image" not in svg
        assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', svg))


def test_run_stopped_before_training(tmp_path):
    run = make_synthesis_run(tmp_path / "synth")
    ctx = build_context(run)
    assert ctx["problems"] == []
    assert ctx["headline"]["models"] == []
    missing = {m["key"] for m in ctx["funnel"]["missing"]}
    assert {"envsplit", "demos", "ckpt/sft", "ckpt/rl", "eval/envs"} <= missing
    html = render_report(run)
    assert "the run stopped before training" in html and "RL training has not run" in html


def test_training_in_progress(run):
    (run / "ckpt" / "sft" / "train_summary.json").unlink()
    (run / "ckpt" / "rl" / "metrics.jsonl").write_text("", "utf-8")
    (run / "ckpt" / "rl" / "rl_summary.json").unlink()
    rows = {r["label"]: r for r in training_funnel(run, [])["rows"]}
    assert rows["train: SFT"]["status"] == "not finished"
    assert rows["train: RL"]["status"] == "not finished" and "no step logged" in rows["train: RL"]["note"]
    rl = gather_training(run, [])[1]
    assert rl["img"] is None and rl["table"] is None


def test_empty_and_broken_runs_do_not_fail(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    html = render_report(empty)
    assert "No stage manifests" in html and "No tool graphs" in html and "No evaluation results" in html
    assert "No held-out evaluation" in html
    run = make_run(tmp_path / "broken")
    (run / "graphs" / "graphs.jsonl").write_text('{"server": 3}\nnot json\n', "utf-8")
    (run / "eval" / "bad.json").write_text("{", "utf-8")
    (run / "envs" / "film.sh.1.json").write_text("{}", "utf-8")
    with (run / "ckpt" / "rl" / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"step": 99, "reward_me')  # a torn last line
    (run / "ckpt" / "sft" / "train_summary.json").write_bytes(b"\xff\xfe{")
    (run / "eval" / "envs.json").write_text('{"kind": "envs", "models": [3, {"model": "x"}]}', "utf-8")
    (run / "demos.jsonl").write_bytes(b"\x00\x01binary\n")
    ctx = build_context(run)
    text = "\n".join(ctx["problems"])
    for what in ("tool graph", "bad.json", "film.sh.1", "RL metrics: 1 line", "SFT summary", "demonstrations"):
        assert what in text, what
    assert ctx["training"][1]["img"] is not None  # the good steps are still drawn
    html = render_report(run)
    assert 'id="problems"' in html and "could not be read" in html
    assert "not a directory" in render_report(tmp_path / "missing")


def test_cli(shared, tmp_path):
    run = shared[0]
    app = typer.Typer()
    app.command()(report_command)
    out = tmp_path / "out" / "report.html"
    r = CliRunner().invoke(app, [str(run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text("utf-8").startswith("<!DOCTYPE html>")
    assert CliRunner().invoke(app, [str(tmp_path / "nope"), "-o", str(out)]).exit_code == 1
    r = CliRunner().invoke(app, [str(run), "-o", str(out / "under-a-file.html")])  # out is a file
    assert r.exit_code == 1 and "cannot write" in r.output and "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium is not on PATH (apt-get install -y chromium) — render check skipped")
def test_renders_in_headless_chromium(shared, tmp_path):
    html_path = tmp_path / "report.html"
    html_path.write_text(shared[2], "utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2400",
                    html_path.resolve().as_uri()], check=False, capture_output=True, timeout=120)
    assert shot.exists(), "chromium wrote no screenshot"
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2400)
    assert len(img.getcolors(1 << 20) or []) > 50  # not a blank page
    # the results chart (an SVG image near the top) was drawn: its SFT bars' colour is on screen
    sft_blue = tuple(int(MODEL_COLORS[1][i:i + 2], 16) for i in (1, 3, 5))
    hits = sum(n for n, c in img.getcolors(1 << 20) if all(abs(a - b) <= 6 for a, b in zip(c, sft_blue, strict=True)))
    assert hits > 500, hits
