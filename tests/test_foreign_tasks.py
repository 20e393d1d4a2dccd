"""Task writing and gates on foreign tool shapes: values from the tools' own data, no
placeholders, intents without boilerplate, gates that reject nonsense with a named reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from astra.tasks.gates import grammar_gate, is_placeholder, task_gates, trajectory_gates
from astra.tasks.generate import OfflineGenerator
from astra.tasks.plan import ValuePool, error_result, realistic_values
from astra.tasks.render import intent_phrase
from astra.tasks.text import normalize_description
from astra.tools.ingest import ingest
from astra.types import Task, Tool, ToolServer

FIX = Path(__file__).parent / "fixtures"
KITS = (FIX / "foreign" / "toolkits.py").resolve()
LABELLED = FIX / "gates" / "labelled_tasks.jsonl"


def _task(query: str, steps: list[dict], **meta) -> Task:
    return Task(id="t", server="s", query=query, target_tools=[s["tool"] for s in steps],
                arguments={"format": "astra.plan/v1", "steps": steps, "mentions": []}, meta=meta)


def test_boilerplate_is_not_the_intent():
    desc = ("This tool belongs to the Gorilla file system. It is a simple file system that allows users to "
            "perform basic file operations. Tool description: Display the contents of a file of any extension "
            "from currrent directory.")
    assert normalize_description(desc) == "Display the contents of a file of any extension from currrent directory."
    assert intent_phrase(Tool(name="cat", description=desc)) == "display the contents of a file"
    assert intent_phrase(Tool(name="q", description="This tool belongs to the Quotes API, which gives prices. "
                                                    "Get the latest price of a stock.")) == \
        "get the latest price of a stock"


def test_no_placeholder_and_no_type_invented_values():
    assert realistic_values("timezone", "IANA timezone name") and realistic_values("frobnicate", "") == []
    server = ToolServer(name="s", tools=[Tool(name="cd", description="Change the working directory to a folder.",
                                              parameters={"type": "object", "properties": {"folder": {"type": "string"}},
                                                          "required": ["folder"]})])
    pool = ValuePool(server)
    assert pool.candidates(server.tools[0], "folder") == []  # never "example", never a person's name


def test_tool_returned_errors_fail_the_dry_run():
    assert error_result({"error": "cat: 'archive': Is a directory"}) == "cat: 'archive': Is a directory"
    assert error_result("Error: market is closed") is not None
    assert error_result({"result": "ok", "error": None}) is None and error_result({"files": ["a"]}) is None


def test_values_come_from_the_tools_own_data_and_plans_run():
    res = ingest([f"{KITS}:Shop"])
    server = res.servers[0]
    gen = OfflineGenerator(seed=0)
    tasks, rej = gen.for_server(server, n=3)
    assert tasks, rej
    for t in tasks:
        assert t.meta["dry_run"] is True and not task_gates(t)
        values = [v for s in t.arguments["steps"] for v in s["user_args"].values()]
        assert all(v in ("ana@example.com", "ana_1", "#W100", "#W101") for v in values), values
    chained = [t for t in tasks if t.target_tools[:2] == ["find_user_id_by_email", "get_user_details"]]
    for t in chained:  # the id comes from the first step's bare str result, not from the user
        assert t.arguments["steps"][1]["derived_args"]["user_id"] == {"step": 0, "path": []}


@pytest.mark.parametrize("query,steps,meta,reason", [
    ("Can you this tool belongs to the Stock API, get the quote of AAPL?", [{"tool": "q", "user_args": {"symbol": "AAPL"}}],
     {}, "boilerplate_echo"),
    ("Change the current working directory to example.", [{"tool": "cd", "user_args": {"folder": "example"}}], {},
     "placeholder_value"),
    ("Display the contents of Grace Okoye.", [{"tool": "cat", "user_args": {"file_name": "Grace Okoye"}}], {},
     "type_invented_value"),
    ("Could you the details of order #W1?", [{"tool": "g", "user_args": {"order_id": "#W1"}}], {}, "ungrammatical"),
    ("Filter stocks with a price of at least 5 and at most 1.",
     [{"tool": "f", "user_args": {"min_price": 5.0, "max_price": 1.0}}], {}, "unmet_constraint"),
    ("Get product P1, but only as long as the price is under 100.", [{"tool": "p", "user_args": {"product_id": "P1"}}],
     {"step_results": [json.dumps({"product_id": "P1", "price": 180.0})]}, "unmet_constraint"),
    ("Find the user id of ana@example.com, then get the details of user bob_2.",
     [{"tool": "find", "user_args": {"email": "ana@example.com"}}, {"tool": "get", "user_args": {"user_id": "bob_2"}}],
     {"step_results": [json.dumps("ana_1"), json.dumps({"name": "Bob"})]}, "contradicts_outputs"),
])
def test_each_gate_rejects_with_its_reason(query, steps, meta, reason):
    gates = task_gates(_task(query, steps, **meta))
    assert reason in [g["reason"] for g in gates], gates


def test_sensible_tasks_pass_every_gate():
    t = _task("Find the user id of ana@example.com, then get the details of that user.",
              [{"tool": "find", "user_args": {"email": "ana@example.com"}},
               {"tool": "get", "user_args": {}, "derived_args": {"user_id": {"step": 0, "path": []}}}],
              step_results=[json.dumps("ana_1"), json.dumps({"name": "Ana"})])
    assert task_gates(t) == []
    assert grammar_gate("Could you list the files in the current directory, then show me notes.txt?") is None
    assert not is_placeholder("final_report.pdf") and is_placeholder("<order id>") and is_placeholder("example")


def test_trajectory_gates_catch_an_id_that_contradicts_a_result():
    msgs = [{"role": "user", "content": "Find the user with email ana@example.com and show their details."},
            {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {
                "name": "find", "arguments": json.dumps({"email": "ana@example.com"})}}]},
            {"role": "tool", "tool_call_id": "1", "content": json.dumps({"user_id": "ana_1"})},
            {"role": "assistant", "tool_calls": [{"id": "2", "type": "function", "function": {
                "name": "get", "arguments": json.dumps({"user_id": "bob_9"})}}]},
            {"role": "tool", "tool_call_id": "2", "content": "{}"}]
    assert [g["reason"] for g in trajectory_gates(msgs)] == ["contradicts_outputs"]
    msgs[3]["tool_calls"][0]["function"]["arguments"] = json.dumps({"user_id": "ana_1"})
    assert trajectory_gates(msgs) == []


def test_offline_gates_agree_with_the_labelled_set():
    """The labelled set (tasks read and labelled by hand): the offline gates + scores keep
    the sensible ones and reject the others (measured agreement, see benchmarks/gate_agreement.py)."""
    from astra.tasks.score import Thresholds, offline_scores

    rows = [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]
    assert len(rows) >= 30 and {r["sensible"] for r in rows} == {True, False}
    agree = 0
    for r in rows:
        task = Task.model_validate(r["task"])
        keep = not task_gates(task) and not Thresholds().failures(offline_scores(task))
        agree += keep == r["sensible"]
    assert agree / len(rows) >= 0.9


def test_selection_and_the_judge_reject_with_the_gate_reason(tmp_path):
    from astra.judge import JudgeStage
    from astra.pipeline import run_stage
    from astra.tasks.dedup import select_tasks
    from astra.tasks.score import Thresholds
    from astra.types import Trajectory

    bad = _task("Change the current working directory to example.", [{"tool": "cd", "user_args": {"folder": "example"}}])
    bad = bad.model_copy(update={"scores": {"quality": 5, "realism": 5, "necessity": 5, "gates": task_gates(bad)}})
    (decision,) = select_tasks([bad], Thresholds()).values()
    assert decision is not None and decision.reason == "placeholder_value"
    traj = Trajectory(id="x", task_id="t", tools=[], messages=[
        {"role": "user", "content": "Can you this tool belongs to the file system, list the files?"},
        {"role": "assistant", "content": "Done."}])
    src = tmp_path / "traj.jsonl"
    src.write_text(traj.model_dump_json() + "\n")
    m = run_stage(JudgeStage(min_score=0.0, mode="offline"), src, tmp_path / "judged.jsonl", progress=False)
    assert m.rejections_by_reason == {"boilerplate_echo": 1} or "boilerplate_echo" in m.rejections_by_reason


def test_tasks_of_a_pypi_mcp_server_are_dry_run_on_the_live_server():
    import shutil
    import sys

    exe = shutil.which("mcp-server-time") or str(Path(sys.executable).parent / "mcp-server-time")
    if not Path(exe).exists():
        pytest.skip("mcp-server-time is not installed (pip install '.[foreign]')")
    res = ingest([f"stdio:{exe} --local-timezone UTC"], min_tools=2)
    server = res.servers[0]
    assert {t.name for t in server.tools} == {"get_current_time", "convert_time"}
    tasks, rej = OfflineGenerator(seed=0).for_server(server, n=2)
    assert tasks, rej
    for t in tasks:
        assert t.meta["dry_run"] is True and t.meta["step_results"]
        assert not task_gates(t)
