"""Outages are failures, not rejections: the endpoint breaker, retry by a plain rerun, exit
codes of stages that decided or wrote nothing — on the runner and end to end through the
CLI against a local OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from astra.cli import app
from astra.cli_common import check_manifest
from astra.errors import EndpointDown, NothingProduced, StageFailed
from astra.llm.errors import LLMConnectionError, StructuredOutputError
from astra.pipeline import StagePaths, load_manifest, run_stage
from astra.pipeline.failures import failure_kind, is_endpoint_failure
from astra.pipeline.stage import Stage, StageResult
from tests.fake_openai import FakeOpenAI, completion
from tests.pipeline_stages import Item, Out, make_items

runner = CliRunner()


class Flaky(Stage[Item, Out]):
    """Raises ``exc`` for the records ``down(n)`` selects, accepts the others."""

    name = "test.flaky"
    input_model = Item
    output_model = Out

    def __init__(self, down=lambda n: True, exc: type[Exception] = LLMConnectionError) -> None:
        self.down, self.exc = down, exc

    async def process(self, record: Item) -> StageResult:
        if self.down(record.n):
            raise self.exc(f"connection refused for {record.id}")
        return StageResult.accept(Out(id=record.id, source=record.id, value=record.n))


def ledger(out: Path) -> list[dict]:
    return [json.loads(x) for x in StagePaths.of(out).ledger.read_text().splitlines()]


def test_failure_kinds():
    assert is_endpoint_failure(LLMConnectionError("x")) and failure_kind(LLMConnectionError("x")) == "endpoint"
    assert not is_endpoint_failure(StructuredOutputError("unparseable")) and failure_kind(ValueError()) == "error"


def test_breaker_stops_a_stage_whose_endpoint_is_down_and_a_rerun_finishes(tmp_path):
    items = make_items(40)
    out = tmp_path / "out.jsonl"
    with pytest.raises(EndpointDown, match=r"stopped after 5 records in a row failed to reach the endpoint"):
        run_stage(Flaky(), items, out, concurrency=1, progress=False)
    m = load_manifest(out)
    assert m.status == "stopped" and "--base-url" in m.error
    assert m.processed == m.processed_failed == m.failed == 5 and m.failures_by_kind == {"endpoint": 5}
    assert len(ledger(out)) == 5 and out.read_text() == ""
    # the endpoint is back: the failed five and the 35 never reached are all processed
    m = run_stage(Flaky(down=lambda n: False), items, out, concurrency=4, progress=False)
    assert m.status == "complete" and m.processed == 40 and m.skipped_done == 0
    assert m.failed == 0 and m.outputs == 40 and m.runs == 2


def test_breaker_needs_failures_in_a_row_and_of_the_endpoint(tmp_path):
    items = make_items(30)
    m = run_stage(Flaky(down=lambda n: n % 2 == 0), items, tmp_path / "a.jsonl", concurrency=1, progress=False)
    assert m.status == "complete" and m.failed == 15 and m.outputs == 15  # never 5 in a row
    m = run_stage(Flaky(exc=ValueError), items, tmp_path / "b.jsonl", concurrency=1, progress=False)
    assert m.status == "complete" and m.failed == 30 and m.failures_by_kind == {"error": 30}  # bugs: no stop
    m = run_stage(Flaky(), items, tmp_path / "c.jsonl", concurrency=1, progress=False, max_endpoint_failures=0)
    assert m.status == "complete" and m.failed == 30  # breaker off


def test_check_manifest_exit_codes(tmp_path):
    m = run_stage(Flaky(exc=ValueError), make_items(3), tmp_path / "a.jsonl", progress=False)
    with pytest.raises(StageFailed, match="all 3 records this run processed failed") as e:
        check_manifest(m)
    assert e.value.exit_code == 4
    m = run_stage(Flaky(down=lambda n: False), [], tmp_path / "b.jsonl", progress=False)
    with pytest.raises(NothingProduced, match="the input has no records") as e:
        check_manifest(m)
    assert e.value.exit_code == 3 and (tmp_path / "b.jsonl").exists()
    m = run_stage(Flaky(down=lambda n: n == 0), make_items(3), tmp_path / "c.jsonl", progress=False)
    check_manifest(m)  # some failed, some accepted: a warning, exit 0


def _tasks(tmp: Path) -> Path:
    r = runner.invoke(app, ["tasks", "generate", "--mode", "server", "--tools", "sample", "-o",
                            str(tmp / "tasks.jsonl"), "--per-server", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    return tmp / "tasks.jsonl"


SCORE = {"quality": {"score": 4, "reason": "clear"}, "realism": {"score": 5, "reason": "plausible"},
         "necessity": {"score": 5, "reason": "needs data"}, "difficulty": {"score": 3, "reason": "two tools"},
         "uniqueness": {"score": 4, "reason": "clear order"}}


def test_cli_outage_then_recovery_end_to_end(tmp_path, monkeypatch):
    """The reported scenario: an endpoint outage during `astra tasks score --scorer llm`."""
    tasks = _tasks(tmp_path)
    n = sum(1 for _ in tasks.open())
    out = tmp_path / "scored.jsonl"
    args = ["tasks", "score", str(tasks), "-o", str(out), "--scorer", "llm", "--llm", "openai:fake",
            "--no-progress", "-j", "1"]
    # the endpoint refuses every request: the breaker stops the stage after 5 tasks
    with FakeOpenAI(default="400") as fake:
        r = runner.invoke(app, [*args, "--base-url", fake.base_url], terminal_width=400)
    assert r.exit_code == 4, r.output
    assert "stopped after 5 records in a row failed to reach the endpoint" in r.output
    assert f"openai:fake at {fake.base_url}" in r.output and "Traceback" not in r.output
    judged = StagePaths.of(tmp_path / "scored.judged.jsonl")
    m = load_manifest(judged.output)
    assert m.status == "stopped" and m.rejected == 0 and m.failed == 5
    # fewer tasks than the breaker's threshold: all fail, exit 4, nothing rejected
    monkeypatch.setenv("ASTRA_MAX_ENDPOINT_FAILURES", "0")
    with FakeOpenAI(default="400") as fake:
        r = runner.invoke(app, [*args, "--base-url", fake.base_url], terminal_width=400)
    assert r.exit_code == 4 and f"all {n} records this run processed failed" in r.output, r.output
    assert "rerun the same command to retry them" in r.output.lower()
    # the endpoint is back: a plain rerun scores every task (not "N already done, 0 processed")
    with FakeOpenAI(default=lambda body: (200, completion(json.dumps(SCORE)))) as fake:
        r = runner.invoke(app, [*args, "--base-url", fake.base_url], terminal_width=400)
    assert r.exit_code == 0, r.output
    assert f"{n} seen, 0 already done, {n} processed" in r.output
    m = load_manifest(judged.output)
    assert m.failed == 0 and m.accepted == n and m.runs == 3
    assert len(list(out.open())) >= 1


def test_cli_stage_that_keeps_nothing_exits_3_with_the_reasons(tmp_path):
    tasks = _tasks(tmp_path)
    out = tmp_path / "scored.jsonl"
    r = runner.invoke(app, ["tasks", "score", str(tasks), "-o", str(out), "--min-quality", "5",
                            "--min-realism", "5", "--min-necessity", "5", "--min-difficulty", "5",
                            "--min-uniqueness", "5", "--no-progress"], terminal_width=400)
    assert r.exit_code == 3, r.output
    flat = " ".join(r.output.split())
    assert "no record written to" in flat and re.search(r"of (\d+) inputs, \1 rejected \(low_", flat), flat
    assert out.exists() and out.read_text() == ""  # the next command finds an empty file


# ---------------------------------------------------------------------------------
# Stage fixes
# ---------------------------------------------------------------------------------


async def test_proposals_of_single_tool_chains_are_rejected_with_a_reason():
    from astra.graph.propose import propose_chains
    from astra.llm import LLMClient
    from astra.llm.testing import ScriptedChatProvider
    from astra.tools.ingest import ingest

    shop = next(s for s in ingest(["sample"]).servers if s.name == "shop")
    replies = {0: {"chains": [{"task": "look", "tools": ["search_products"]},
                              {"task": "buy", "tools": ["checkout"]}]},
               1: {"chains": [{"task": "buy", "tools": ["search_products", "add_to_cart"]}]}}
    client = LLMClient(ScriptedChatProvider(lambda req: replies[req.sample_index]), max_retries=0, timeout=None)
    res = await propose_chains(client, shop, proposals=2, k=2)
    assert res.stats["ok"] == 2 and res.stats["kept_chains"] == 1 and res.stats["single_tool_segments"] == 2
    (rej,) = res.rejections
    assert rej.reason == "single_tool_chains" and rej.key == "shop#proposal0" and "none with two" in rej.detail


def test_graph_build_counts_an_outage_of_the_proposer_as_failed(tmp_path):
    from astra.graph.stages import BuildGraphStage
    from astra.llm import LLMClient
    from astra.llm.errors import LLMServerError
    from astra.llm.testing import ScriptedChatProvider
    from astra.tools.ingest import ingest

    servers = ingest(["sample"]).servers[:2]
    client = LLMClient(ScriptedChatProvider(lambda req: LLMServerError("503")), max_retries=0, timeout=None)
    m = run_stage(BuildGraphStage(sources="dataflow,llm", proposals=2, client=client), servers,
                  tmp_path / "graphs.jsonl", progress=False)
    assert m.failed == 2 and m.failures_by_kind == {"endpoint": 2} and "proposal_failed" not in m.rejections_by_reason


def test_tasks_generate_limit_applies_to_each_mode(tmp_path):
    from astra.tasks.stages import generate_tasks, generation_requests
    from astra.tools.ingest import ingest
    from astra.types import Chain

    servers = ingest(["sample"]).servers
    chains = [Chain(server="shop", tools=["search_products", "get_product"]),
              Chain(server="shop", tools=["search_products", "add_to_cart"]),
              Chain(server="bank", tools=["list_accounts", "get_balance"])]
    reqs = generation_requests(chains, servers, ["chain", "server"], limit=2)
    assert [r.mode for r in reqs] == ["chain", "chain", "server", "server"]
    m = generate_tasks(chains, servers, tmp_path / "t.jsonl", limit=1, progress=False)
    assert m.processed == 2 and m.inputs_seen == 2  # one chain request and one server request
    r = runner.invoke(app, ["tasks", "generate", "-o", str(tmp_path / "cli.jsonl"), "--mode", "server",
                            "--tools", "sample", "--limit", "2", "--no-progress"])
    assert r.exit_code == 0 and "0 chain request(s), 2 server request(s)" in r.output, r.output
    assert load_manifest(tmp_path / "cli.jsonl").processed == 2
