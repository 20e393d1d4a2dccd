"""The run report: sections from a hand-made run directory, escaping of data, self-containment,
lenience on missing / broken parts, the CLI, and a render check in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from astra.envs import write_environment
from astra.pipeline.runner import Manifest
from astra.report import build_context, render_report, write_report
from astra.report.cli import report_command
from astra.types import Environment, EnvTool, QAInstance, SubTask, Tool

EVIL = "<script>alert('x')</script>"


def _manifest(run: Path, rel: str, stage: str, **kw) -> None:
    out = run / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    m = Manifest(stage=stage, output=str(out), status="complete", **kw)
    out.with_name(out.name[: -len(".jsonl")] + ".manifest.json").write_text(m.model_dump_json(), "utf-8")


def make_run(run: Path) -> Path:
    run.mkdir(parents=True)
    _manifest(run, "tools.jsonl", "tools.ingest", done=2, accepted=2, outputs=2)
    _manifest(run, "verified.jsonl", "graph.verify", done=10, accepted=7, rejected=3, outputs=7,
              rejections_by_reason={"args": 2, EVIL: 1},
              llm_usage={"requests": 10, "calls": 4, "cache_hits": 6, "prompt_tokens": 900, "completion_tokens": 80})
    (run / "graphs").mkdir()
    _manifest(run, "graphs/graphs.jsonl", "graph.build", done=1, accepted=1, outputs=1)
    graph = {"server": "shop", "nodes": ["search", "get", "buy"],
             "edges": [{"source": "search", "target": "get", "weight": 1.0, "provenance": ["dataflow"]},
                       {"source": "get", "target": "buy", "weight": 0.4, "provenance": ["llm", "dataflow"]}]}
    (run / "graphs" / "graphs.jsonl").write_text(json.dumps(graph) + "\n", "utf-8")
    traj = {"id": "t1", "task_id": "task1", "agent": "embedded", "tools": [{"type": "function", "function": {
        "name": "search", "parameters": {}}}], "messages": [
        {"role": "system", "content": "be helpful"},
        {"role": "user", "content": "Find a lamp"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"lamp\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"found {EVIL}"},
        {"role": "assistant", "content": "The lamp costs 12 EUR."}],
        "judgement": {"mode": "offline", "overall": 0.8, "passed": True,
                      "dimensions": {"tool_use": {"score": 0.9, "method": "rule", "reason": "ok"},
                                     "final_answer": {"score": 0.7, "method": "heuristic", "reason": "fine"}}}}
    (run / "judged.jsonl").write_text(json.dumps(traj) + "\n", "utf-8")
    env = Environment(
        id="film.sh.1",
        instance=QAInstance(id="q1", domain="film", scenario="single_hop", question="Who directed \"Ash\"?",
                            answer="Mira Tann", sub_tasks=[SubTask(id="s1", sub_question="director of Ash?",
                                                                   sub_answer="Mira Tann")]),
        tools=[EnvTool(tool=Tool(name="get_director", description="the director of a film",
                                 parameters={"type": "object", "properties": {"film": {"type": "string"}},
                                             "required": ["film"]}),
                       code="def get_director(film):\n    return {'director': 'Mira Tann'}\n",
                       serves=["s1"], calls={"s1": "get_director(film='Ash')"})],
        verification={"ok": True}, provenance={"generator": "template"})
    write_environment(env, run / "envs" / "heldout")
    sft = run / "ckpt" / "sft"
    sft.mkdir(parents=True)
    (sft / "logs.jsonl").write_text("".join(json.dumps({"step": i, "loss": 2.0 / (i + 1)}) + "\n"
                                            for i in range(1, 8)), "utf-8")
    (sft / "train_summary.json").write_text(json.dumps({"steps": 7, "final_loss": 0.25}), "utf-8")
    (run / "eval").mkdir()
    res = {"kind": "envs", "envs": "envs/heldout", "n_envs": 1, "max_turns": 8, "distractors": "none",
           "models": [{"model": "ckpt/rl", "overall": {"n": 1, "success_rate": 1.0, "f1": 0.99},
                       "by_scenario": {"single_hop": {"n": 1, "success_rate": 1.0, "f1": 0.99}}}]}
    (run / "eval" / "envs.json").write_text(json.dumps(res), "utf-8")
    (run / "eval" / "bfcl.json").write_text(json.dumps({"overall": {"accuracy": 0.5}, "simple": 0.6}), "utf-8")
    return run


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "run")


def test_sections_and_content(run):
    html = render_report(run)
    for anchor in ("run", "funnel", "graphs", "trajectories", "environments", "training", "evaluation", "usage"):
        assert f'id="{anchor}"' in html
    assert "graph.verify" in html and "rejected: args" in html
    assert "shop" in html and html.count("data:image/png;base64,") >= 2  # graph + plotted SFT curve
    assert "get_director(film: string)" in html and "Mira Tann" in html
    assert "ckpt/rl" in html and "single_hop" in html and "overall.accuracy" in html
    assert "60%" in html  # the cache hit rate of graph.verify
    assert "RL training has not run" in html  # ckpt/rl absent
    assert "trajectories.jsonl" in html  # absent stages named
    ctx = build_context(run)
    assert ctx["problems"] == []
    assert ctx["trajectories"]["samples"][0]["judgement"]["dims"][0]["name"] == "tool_use"


def test_data_is_escaped(run):
    html = render_report(run)
    assert EVIL not in html
    assert "&lt;script&gt;alert(" in html
    assert "<script" not in html.lower()


def test_self_contained(run):
    html = render_report(run)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html.lower()
    for src in re.findall(r'src="([^"]+)"', html):
        assert src.startswith("data:image/png;base64,")


def test_empty_and_broken_runs_do_not_fail(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    html = render_report(empty)
    assert "No stage manifests" in html and "No tool graphs" in html and "No evaluation results" in html
    run = make_run(tmp_path / "broken")
    (run / "graphs" / "graphs.jsonl").write_text('{"server": 3}\nnot json\n', "utf-8")
    (run / "eval" / "bad.json").write_text("{", "utf-8")
    (run / "envs" / "heldout" / "film.sh.1.json").write_text("{}", "utf-8")
    html = render_report(run)
    assert 'id="problems"' in html
    assert "not a directory" in render_report(tmp_path / "missing")


def test_cli(run, tmp_path):
    app = typer.Typer()
    app.command()(report_command)
    out = tmp_path / "out" / "report.html"
    r = CliRunner().invoke(app, [str(run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text("utf-8").startswith("<!DOCTYPE html>")
    assert CliRunner().invoke(app, [str(tmp_path / "nope"), "-o", str(out)]).exit_code == 1


def _png_is_not_uniform(path: Path) -> bool:
    """Decode the PNG's first rows (8-bit RGB/RGBA, any filter) and look for varying bytes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    idat, pos = b"", 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    return len(set(raw[: 200_000])) > 8


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not on PATH (apt-get install -y chromium) — render check skipped")
def test_renders_in_headless_chromium(run, tmp_path):
    html_path = write_report(run, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1280,2000", html_path.resolve().as_uri()],
                   check=False, capture_output=True, timeout=120)
    assert shot.exists(), "chromium wrote no screenshot"
    assert shot.stat().st_size > 10_000
    assert _png_is_not_uniform(shot)
