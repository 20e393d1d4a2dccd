"""``astra eval bfcl`` reproduces BFCL's own scoring on entries with known answers.

The model is :class:`astra.llm.testing.ScriptedChatProvider`, a scripted chat-API test
double (never a real model, except the one ``@pytest.mark.model`` smoke test): it answers
with the **ground-truth calls** read from BFCL's possible-answer files (100%), with no
tool call at all (0), or with a wrong argument (0 for that entry). Everything between the
double and the score is the real pipeline: our inference loop and translation layer,
BFCL's data, executable multi-turn backends and checkers.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json

import pytest

pytest.importorskip("bfcl_eval", reason="needs the bfcl-eval package (pip install --no-deps bfcl-eval==2026.3.23)")

from astra.eval import bfcl as B
from astra.llm import LLMClient
from astra.llm.testing import ScriptedChatProvider, reply
from astra.llm.types import ChatResponse, ToolCall
from astra.llm.usage import UsageBook

N = 5  # entries per category
SINGLE = ["simple_python", "multiple", "parallel", "parallel_multiple"]


def _client(script) -> LLMClient:
    return LLMClient(ScriptedChatProvider(script), usage=UsageBook(), max_retries=0, cache=None, timeout=None)


# -- the ground-truth test double --------------------------------------------------------
def ast_calls(ground_truth: list[dict]) -> list[tuple[str, dict]]:
    """BFCL possible answers ``[{func: {arg: [allowed values]}}]`` → the calls an OpenAI
    model would make: first allowed value of each argument ("" = optional, left out), and
    the OpenAI-safe name (``.`` → ``_``)."""
    calls = []
    for d in ground_truth:
        ((name, args),) = d.items()
        calls.append((name.replace(".", "_"), {k: v[0] for k, v in args.items() if v and v[0] != ""}))
    return calls


def multi_turn_calls(call_strings: list[str], classes: list[str]) -> list[tuple[str, dict]]:
    """BFCL's ground-truth call strings (``"cd(folder='x')"``, positional arguments too) →
    named-argument tool calls, using the backend classes' signatures."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    out = []
    for s in call_strings:
        node = ast.parse(s, mode="eval").body
        args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        if node.args:
            for cls_name in classes:
                cls = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[cls_name]), cls_name)
                if hasattr(cls, node.func.id):
                    params = [p for p in inspect.signature(getattr(cls, node.func.id)).parameters if p != "self"]
                    args.update({p: ast.literal_eval(v) for p, v in zip(params, node.args, strict=False)})
                    break
        out.append((node.func.id, args))
    return out


def ground_truth_script(items: list[B.BfclEntry]):
    """Answer each request with the ground truth of the entry it belongs to. Multi-turn:
    all of a turn's calls at once, then a text reply to close the turn; a turn whose
    ground truth is empty gets a text reply."""
    firsts = [it.entry["question"][0] for it in items]
    assert len({json.dumps(f) for f in firsts}) == len(items), "test entries must have distinct first turns"

    def script(req):
        convo = [m for m in req.messages if m["role"] != "system"]
        it = next((it for it, f in zip(items, firsts, strict=True) if convo[: len(f)] == f), None)
        assert it is not None, f"request of no known entry: {convo[:1]}"
        if not B.is_multi_turn(it.category):
            return reply(tool_calls=ast_calls(it.ground_truth))
        if req.messages[-1]["role"] == "tool":
            return reply("Done.")
        turn = sum(1 for m in req.messages if m["role"] == "user") - 1
        calls = it.ground_truth[turn]
        if not calls:
            return reply("Which one do you mean?")
        return reply(tool_calls=multi_turn_calls(calls, it.entry["involved_classes"]))

    return script


def _entries(category: str, n: int = N) -> list[B.BfclEntry]:
    return B.load_entries(category, limit=n)


# -- 100% / 0 ------------------------------------------------------------------------------
def test_ground_truth_scores_100_single_turn(tmp_path):
    items = [it for c in SINGLE for it in _entries(c)]
    report = B.run_bfcl(_client(ground_truth_script(items)), categories=",".join(SINGLE), limit=N,
                        output=tmp_path)
    by = report.by_category()
    assert [c.category for c in report.categories] == SINGLE
    for c in SINGLE:
        assert (by[c].total, by[c].correct) == (N, N), [e for e in report.entries if not e.valid]
    summary = {s.name: s for s in report.summaries}
    assert summary["Non-Live AST (summary)"].accuracy == 1.0 and summary["Non-Live AST (summary)"].complete
    # BFCL-format files: the score header is BFCL's.
    header = json.loads((tmp_path / "BFCL_v4_simple_python_score.json").read_text().splitlines()[0])
    assert header == {"accuracy": 1.0, "correct_count": N, "total_count": N}
    results = [json.loads(x) for x in (tmp_path / "BFCL_v4_parallel_result.json").read_text().splitlines()]
    assert len(results) == N and all(isinstance(r["result"], list) for r in results)


def test_ground_truth_scores_100_multi_turn_base(tmp_path):
    items = _entries("multi_turn_base")
    report = B.run_bfcl(_client(ground_truth_script(items)), categories="multi_turn_base", limit=N)
    (score,) = report.categories
    assert (score.total, score.correct) == (N, N), [(e.id, e.error_type, e.error) for e in report.entries]
    assert report.summaries[0].name == "Multi-Turn (overall)" and report.summaries[0].accuracy == 1.0
    # The ground truth was executed against BFCL's backends turn by turn: one step list per turn.
    e = report.entries[0]
    assert len(e.result) == len(items[0].ground_truth)
    assert any(m["role"] == "tool" for m in e.meta["inference_log"])


def test_ground_truth_miss_func_holdout_turn(tmp_path):
    """miss_func: the held-out function joins at its turn with BFCL's prompt; a turn whose
    ground truth is empty must get no call."""
    items = _entries("multi_turn_miss_func", 2)
    seen_prompt = []

    script = ground_truth_script(items)

    def spy(req):
        seen_prompt.extend(m["content"] for m in req.messages if m["role"] == "user")
        return script(req)

    report = B.run_bfcl(_client(spy), categories="multi_turn_miss_func", limit=2)
    assert report.categories[0].correct == 2, [(e.id, e.error_type, e.error) for e in report.entries]
    assert B._bfcl().MISS_FUNC_PROMPT in seen_prompt


def test_empty_model_scores_0():
    cats = SINGLE + ["multi_turn_base"]
    report = B.run_bfcl(_client(lambda req: reply("I can't help with that.")), categories=",".join(cats), limit=N)
    assert [c.correct for c in report.categories] == [0] * len(cats)
    assert [c.total for c in report.categories] == [N] * len(cats)
    assert all(s.accuracy == 0.0 for s in report.summaries)
    types = {e.error_type for e in report.entries}
    assert "ast_decoder:decoder_failed" in types and "multi_turn:empty_turn_model_response" in types


def test_wrong_argument_scores_0_for_that_entry():
    items = _entries("simple_python")
    wrong = items[2]
    good = ground_truth_script(items)

    def script(req):
        resp = good(req)
        if req.messages[-1]["content"] == wrong.entry["question"][0][-1]["content"]:
            tc = resp.tool_calls[0]
            args = json.loads(tc.arguments)
            key = next(iter(args))
            args[key] = "definitely-wrong" if not isinstance(args[key], str) else args[key] + "-wrong"
            return ChatResponse(tool_calls=[ToolCall(id=tc.id, name=tc.name, arguments=json.dumps(args))])
        return resp

    report = B.run_bfcl(_client(script), categories="simple", limit=N)
    by_id = {e.id: e for e in report.entries}
    assert not by_id[wrong.id].valid
    assert by_id[wrong.id].error_type.startswith(("value_error", "type_error"))
    assert report.categories[0].correct == N - 1


def test_wrong_argument_multi_turn_fails_state_check():
    items = _entries("multi_turn_base", 1)
    good = ground_truth_script(items)

    def script(req):
        resp = good(req)
        if resp.tool_calls and resp.tool_calls[0].name == "cd":
            tc = resp.tool_calls[0]
            resp.tool_calls[0] = ToolCall(id=tc.id, name="cd", arguments=json.dumps({"folder": "nowhere"}))
        return resp

    report = B.run_bfcl(_client(script), ids=[items[0].id])
    assert report.categories[0].correct == 0
    assert report.entries[0].error_type == "multi_turn:instance_state_mismatch"


# -- translation layer ---------------------------------------------------------------------
def test_translation_layer():
    resp = ChatResponse(tool_calls=[ToolCall(id="a", name="math_factorial", arguments='{"number": 5}'),
                                    ToolCall(id="b", name="cd", arguments='{"folder": "x"}')])
    names = B.openai_name_map([{"name": "math.factorial"}, {"name": "cd"}])
    out = B.bfcl_model_responses(resp, names)
    assert out == [{"math.factorial": '{"number": 5}'}, {"cd": '{"folder": "x"}'}]
    dec = B.FCDecoder()
    assert dec.decode_ast(out) == [{"math.factorial": {"number": 5}}, {"cd": {"folder": "x"}}]
    assert dec.decode_execute(out) == ["math.factorial(number=5)", "cd(folder='x')"]
    # Text replies are no call for BFCL's decoder.
    assert B.bfcl_model_responses(ChatResponse(content="hello")) == "hello"
    with pytest.raises(Exception):  # noqa: B017 - BFCL's decoder raises on text
        dec.decode_execute("hello")
    # Names/argument names that could inject code into BFCL's eval'd call string are neutralized.
    evil = ChatResponse(tool_calls=[ToolCall(id="c", name="__import__('os').system('x');cd", arguments="{}"),
                                    ToolCall(id="d", name="cd", arguments='{"folder=1,x": "y"}')])
    assert B.bfcl_model_responses(evil) == [{B.INVALID_CALL: "{}"}, {B.INVALID_CALL: "{}"}]


def test_categories_and_ids():
    assert B.resolve_categories("simple,multiple,multi_turn") == [
        "simple_python", "multiple", "multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
        "multi_turn_long_context"]
    from astra.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown or unsupported"):
        B.resolve_categories("simple_java")
    picked = B.load_entries("parallel", ids=["parallel_3", "parallel_1"])
    assert [e.id for e in picked] == ["parallel_1", "parallel_3"]


def test_table_renders(tmp_path):
    from rich.console import Console

    report = B.run_bfcl(_client(lambda req: reply("no")), categories="simple,multi_turn_base", limit=1,
                        output=tmp_path)
    console = Console(record=True, width=120)
    console.print(report.table())
    text = console.export_text()
    assert "simple_python" in text and "multi_turn_base" in text and "Multi-Turn (overall) (1/4 categories)" in text
    md = (tmp_path / "bfcl_summary.md").read_text()
    assert "| simple_python | 1 | 0 | 0.00% |" in md
    summary = json.loads((tmp_path / "bfcl_summary.json").read_text())
    assert summary["categories"]["multi_turn_base"]["total_count"] == 1


def test_cli_bfcl(tmp_path, monkeypatch):
    """``astra eval bfcl`` end to end with a scripted provider behind ``make_client``."""
    from typer.testing import CliRunner

    import astra.eval.bfcl as mod
    from astra.eval.cli import app

    monkeypatch.setattr(mod, "make_client", lambda settings: _client(lambda req: reply("no")))
    r = CliRunner().invoke(app, ["bfcl", "--model", "embedded", "--ids", "simple_python_0,multiple_1",
                                 "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "simple_python" in r.output and "multiple" in r.output
    assert (tmp_path / "BFCL_v4_multiple_score.json").exists()
    r = CliRunner().invoke(app, ["bfcl", "--categories", "nope"])
    assert r.exit_code == 1 and "unknown or unsupported BFCL category" in r.output


@pytest.mark.model
def test_embedded_model_smoke(tmp_path):
    """The real embedded model on 2 BFCL simple entries, end to end (score whatever it is)."""
    report = B.run_bfcl("embedded", categories="simple", limit=2, output=tmp_path, max_tokens=128)
    (score,) = report.categories
    assert score.total == 2 and 0 <= score.correct <= 2
    assert report.model == "embedded"
    assert (tmp_path / "BFCL_v4_simple_python_result.json").exists()
