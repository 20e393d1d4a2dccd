"""The command line: ingestion from every source kind, llm chat/stats, the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from astra.cli import app
from astra.io import load_records
from astra.pipeline import load_manifest
from astra.types import ToolServer
from tests.fake_openai import FakeOpenAI

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures" / "tools"


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_ingest_sample_writes_servers_and_manifest(tmp_path):
    out = tmp_path / "tools.jsonl"
    r = invoke("tools", "ingest", "sample", "-o", str(out))
    assert r.exit_code == 0, r.output
    servers = load_records(out, ToolServer)
    assert len(servers) >= 6
    assert sum(len(s.tools) for s in servers) >= 40
    assert len({s.domain for s in servers}) >= 4
    assert {s.call.kind for s in servers} == {"python", "doc_only"}
    m = load_manifest(out)
    assert m.stage == "tools.ingest" and m.outputs == len(servers)


def test_ingest_astra_jsonl_reports_bad_lines_and_keeps_the_rest(tmp_path):
    out = tmp_path / "tools.jsonl"
    r = invoke("tools", "ingest", str(FIXTURES / "mcp_servers.jsonl"), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "input error" in r.output
    m = load_manifest(out)
    assert m.errors_by_type.get("input_error", 0) >= 1
    assert any("mcp_servers.jsonl:" in w for w in m.warnings)
    assert m.outputs >= 1


def test_ingest_openai_json_and_python_module(tmp_path):
    out = tmp_path / "a.jsonl"
    r = invoke("tools", "ingest", str(FIXTURES / "openai_tools.json"), "-o", str(out))
    assert r.exit_code == 0, r.output
    out2 = tmp_path / "b.jsonl"
    r = invoke("tools", "ingest", str(FIXTURES / "notes_server.py") + ":NotesServer", "-o", str(out2))
    assert r.exit_code == 0, r.output
    (server,) = load_records(out2, ToolServer)
    assert server.call.kind == "python"


def test_ingest_live_mcp_server_over_stdio(tmp_path):
    out = tmp_path / "live.jsonl"
    cmd = f"stdio:{sys.executable} -m astra.tools.mcp_serve astra.data.servers.shop:ShopServer"
    r = invoke("tools", "ingest", cmd, "-o", str(out))
    assert r.exit_code == 0, r.output
    (server,) = load_records(out, ToolServer)
    assert server.call.kind == "mcp_stdio"
    assert "search_products" in {t.name for t in server.tools}
    assert all(t.output_schema for t in server.tools)


def test_bad_source_is_one_clear_line(tmp_path):
    r = invoke("tools", "ingest", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x.jsonl"))
    assert r.exit_code == 1
    assert "error:" in r.output and "Traceback" not in r.output


def test_llm_chat_against_an_endpoint_and_stats(tmp_path):
    with FakeOpenAI(["500", "ok"]) as fake:
        r = invoke("llm", "chat", "hello", "--llm", "openai:fake", "--base-url", fake.base_url)
    assert r.exit_code == 0, r.output
    assert "hello" in r.output
    # a dead endpoint is a clear failure, not a reply
    r = invoke("llm", "chat", "hello", "--llm", "openai:fake", "--base-url", "http://127.0.0.1:9/v1",
               "--llm-timeout", "2")
    assert r.exit_code == 1 and "cannot connect" in r.output


def test_llm_stats_sums_manifests(tmp_path):
    for stage, calls in [("a", 3), ("b", 4)]:
        (tmp_path / f"{stage}.manifest.json").write_text(json.dumps({
            "stage": stage, "output": f"{stage}.jsonl",
            "llm_usage": {"requests": calls + 1, "calls": calls, "cache_hits": 1}}))
    r = invoke("llm", "stats", str(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["total"]["calls"] == 7 and data["total"]["cache_hits"] == 2


def test_demo_tiny_runs_what_exists(tmp_path):
    r = invoke("demo", "--profile", "tiny", "--no-training", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    run = tmp_path / "run"
    for name in ("tools.jsonl", "verified.jsonl", "scored.jsonl", "judged.jsonl", "valid.jsonl", "report.html"):
        assert (run / name).exists(), name
    assert (run / "sft" / "train.jsonl").exists()
    assert len(list((run / "envs").glob("*.json"))) >= 8
    assert "summary" in r.output


def test_demo_model_table_reads_the_evaluations(tmp_path):
    from astra.demo import model_results

    assert model_results(tmp_path) == {}
    (tmp_path / "eval" / "bfcl").mkdir(parents=True)
    overall = {"n": 3, "success_rate": 0.0, "f1": 0.1, "recall": 0.2, "precision": 0.05, "turns": 2.0,
               "calls": 1.0, "errors": 0}
    models = [{"model": m, "overall": {**overall, "f1": f1}} for m, f1 in
              [("embedded", 0.1), ("run/ckpt/sft", 0.2), ("run/ckpt/rl", 0.3)]]
    (tmp_path / "eval" / "envs.json").write_text(json.dumps({"kind": "envs", "models": models}))
    (tmp_path / "eval" / "bfcl" / "bfcl_summary.json").write_text(json.dumps(
        {"categories": {"simple_python": {"accuracy": 0.5, "correct_count": 1, "total_count": 2}}}))
    res = model_results(tmp_path)
    assert [res[k]["f1"] for k in ("base", "SFT", "RL")] == [0.1, 0.2, 0.3]
    assert res["RL"]["model"] == "run/ckpt/rl" and res["RL"]["bfcl"]["simple_python"] == {"accuracy": 0.5, "total": 2}
