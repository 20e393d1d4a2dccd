"""The 7-dimension judge: rules, offline heuristics, the LLM judge through the scripted
chat-API test double, and failing judges (never fail open)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from astra.judge import DIMENSIONS, Judge, JudgeStage, detect_language, resolve_mode
from astra.judge.transcript import read_transcript
from astra.llm import LLMClient, LLMSettings, make_client
from astra.llm.errors import LLMServerError
from astra.llm.testing import ScriptedChatProvider, reply
from astra.llm.types import ChatRequest
from astra.pipeline import run_stage
from astra.rollout.outcome import error_content
from astra.types import Trajectory
from tests.fake_openai import FakeOpenAI
from tests.test_rollout import by_name, sample_servers

GEO = {"city": "Tokyo", "country": "JP", "latitude": 35.6762, "longitude": 139.6503, "timezone": "Asia/Tokyo"}
NOW = {"city": "Tokyo", "temperature": 49.1, "condition": "sunny", "units": "imperial"}
QUERY = "What is the weather in Tokyo right now, in imperial units?"


@pytest.fixture(scope="module")
def servers():
    return list(sample_servers())


def asst(text: str | None, *calls: tuple[str, str, Any]) -> dict[str, Any]:
    m: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        m["tool_calls"] = [{"id": i, "type": "function", "function": {
            "name": n, "arguments": a if isinstance(a, str) else json.dumps(a)}} for i, n, a in calls]
    return m


def tool(call_id: str, value: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": value if isinstance(value, str) else json.dumps(value)}


def traj(servers, messages: list[dict[str, Any]], *, query: str = QUERY, targets=("geocode_city", "get_current_weather"),
         tid: str = "t") -> Trajectory:
    weather = by_name(servers, "weather")
    return Trajectory(id=tid, task_id="task", tools=weather.openai_tools(), agent="test",
                      messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": query}, *messages],
                      meta={"task": {"target_tools": list(targets), "language": "en"}})


def good(servers, answer: str = "In Tokyo it is 49.1 °F and sunny.") -> Trajectory:
    return traj(servers, [
        asst("Plan: geocode Tokyo, then get the current weather in imperial units.", ("c1", "geocode_city", {"city": "Tokyo"})),
        tool("c1", GEO),
        asst("Tokyo is at 35.6762, 139.6503; now the weather.",
             ("c2", "get_current_weather", {"latitude": 35.6762, "longitude": 139.6503, "units": "imperial"})),
        tool("c2", NOW),
        asst(answer),
    ])


async def judge_offline(t: Trajectory):
    return await Judge("offline").judge(t, min_score=0.7)


# ---------------------------------------------------------------------------------
# rules and offline heuristics
# ---------------------------------------------------------------------------------


async def test_offline_good_trajectory_scores_high(servers):
    j = await judge_offline(good(servers))
    assert list(j.dimensions) == list(DIMENSIONS)
    assert j.overall == 1.0 and j.passed and j.failed is None
    assert j.dimensions["tool_call_status"].method == "rule"
    assert j.dimensions["query_understanding"].method == "heuristic" and "heuristic" in j.note
    assert all(d.reason for d in j.dimensions.values())
    assert j.overall == pytest.approx(sum(d.score for d in j.dimensions.values()) / 7)


async def test_conciseness_rules(servers):
    t = traj(servers, [
        asst("Plan: geocode.", ("c1", "geocode_city", {"city": "Tokyo"}), ("c2", "teleport", {"x": 1}),
             ("c3", "geocode_city", "{bad")),
        tool("c1", GEO), tool("c2", error_content("unknown_tool", "no", retryable=False)),
        tool("c3", error_content("bad_json", "no", retryable=False)),
        asst("Again.", ("c4", "geocode_city", {"city": "Tokyo"}),
             ("c5", "get_air_quality", {"latitude": 1.0, "longitude": 2.0})),
        tool("c4", GEO), tool("c5", error_content("tool_error", "no station there", retryable=False)),
        asst("Retry.", ("c6", "get_air_quality", {"latitude": 1.0, "longitude": 2.0}),
             ("c7", "get_current_weather", {"latitude": 35.6762, "longitude": 139.6503})),
        tool("c6", error_content("tool_error", "no station there", retryable=False)),
        tool("c7", error_content("timeout", "timed out", retryable=True)),
        asst("Retry the weather.", ("c8", "get_current_weather", {"latitude": 35.6762, "longitude": 139.6503})),
        tool("c8", NOW),
        asst("It is 49.1 and sunny in Tokyo."),
    ])
    j = await judge_offline(t)
    per = {c["id"]: c for c in j.dimensions["conciseness"].details["calls"]}
    assert per["c1"]["score"] == 1 and per["c8"]["score"] == 1 and "transient" in per["c8"]["reason"]
    assert per["c2"]["score"] == 0 and "undefined tool" in per["c2"]["reason"]
    assert per["c3"]["score"] == 0 and "malformed" in per["c3"]["reason"]
    assert per["c4"]["score"] == 0 and "already returned" in per["c4"]["reason"]
    assert per["c6"]["score"] == 0 and "blind retry" in per["c6"]["reason"]
    assert per["c5"]["score"] == 0 and per["c5"]["by"] == "heuristic"  # not a target tool, unused
    status = j.dimensions["tool_call_status"]
    assert status.score == pytest.approx(3 / 8) and status.details == {"calls": 8, "ok": 3}
    view = read_transcript(t)
    assert [c.status for c in view.calls] == ["ok", "unknown_tool", "bad_json", "ok", "tool_error", "tool_error",
                                              "timeout", "ok"]
    assert j.overall < 0.7 and not j.passed


async def test_answer_language_rule_and_missing_answer(servers):
    j = await judge_offline(good(servers, "In Tokio ist es 49.1 Grad und sonnig. Das ist das Wetter, das Sie wollten."))
    fa = j.dimensions["final_answer"]
    assert fa.details["relevance"] == 0 and "'de'" in fa.reason and fa.method == "rule+heuristic"
    t = good(servers)
    t.messages = t.messages[:-1]  # ends on a tool result
    j = await judge_offline(t)
    assert j.dimensions["final_answer"].score == 0 and j.dimensions["final_answer"].method == "rule"


async def test_no_tool_calls_scores_zero_on_tool_dimensions(servers):
    j = await judge_offline(traj(servers, [asst("It is probably sunny in Tokyo.")]))
    for name in ("tool_response_understanding", "round_planning", "tool_call_status", "conciseness"):
        assert j.dimensions[name].score == 0 and j.dimensions[name].method == "rule"
    assert j.dimensions["query_understanding"].score == 0
    assert j.overall < 0.3


async def test_unsupported_values_lower_faithfulness(servers):
    j = await judge_offline(good(servers, "In Tokyo it is 71.3 °F with storms, ticket W-9931."))
    fa = j.dimensions["final_answer"]
    assert fa.details["faithfulness"] == 0 and "71.3" in fa.reason


def test_language_detection():
    assert detect_language("What is the weather in Tokyo right now?") == "en"
    assert detect_language("Wie ist das Wetter heute in Berlin?") == "de"
    assert detect_language("¿Qué tiempo hace en Madrid?") == "es"
    assert detect_language("东京现在的天气怎么样？") == "zh"
    assert detect_language("東京の天気はどうですか？") == "ja"
    assert detect_language("Какая погода в Москве?") == "ru"
    assert detect_language("P-1003 12.5 call_1") is None
    # quoted tool output does not decide the language of an answer
    de = "Hier ist das Ergebnis Ihrer Anfrage:\n- get_x: name=The Best of the West, city=London\nAlle Werte stammen direkt aus den Ergebnissen."
    assert detect_language(de, strict=True) == "de"


def test_default_mode():
    assert resolve_mode(None, LLMSettings(spec="embedded")) == "offline"
    assert resolve_mode(None, LLMSettings(spec="openai:gpt-x")) == "llm"
    assert resolve_mode(None, LLMSettings(spec="embedded:/models/qwen")) == "llm"
    assert resolve_mode("llm", LLMSettings(spec="embedded")) == "llm"


# ---------------------------------------------------------------------------------
# the LLM judge
# ---------------------------------------------------------------------------------


def judge_script(*, skip_necessity: bool = False, score: float = 1):
    """The scripted chat-API test double answering each judge prompt by its kind."""

    def answer(req: ChatRequest):
        text = next(m["content"] for m in req.messages if m["role"] == "user")  # the prompt, not a repair turn
        s = {"score": score, "reason": "scripted"}
        if "evaluate the first turn" in text:
            return reply(json.dumps({"query_understanding": s, "initial_plan": s}))
        if "evaluate one round" in text:
            return reply(json.dumps({"understanding": s, "planning": s}))
        if "were necessary" in text:
            n = len([ln for ln in text.split("Calls to decide")[1].splitlines() if ln[:1].isdigit()])
            items = [{"index": i, "necessary": True, "reason": "needed"} for i in range(n - int(skip_necessity))]
            return reply(json.dumps({"calls": items}))
        if "final answer" in text:
            return reply(json.dumps({"relevance": s, "faithfulness": s}))
        raise AssertionError(text[:200])

    return answer


def llm_client(script) -> tuple[LLMClient, ScriptedChatProvider]:
    provider = ScriptedChatProvider(script)
    return LLMClient(provider, cache=None, max_retries=0, timeout=None), provider


async def test_llm_judge_scores_with_structured_output(servers):
    client, provider = llm_client(judge_script(score=0.5))
    j = await Judge("llm", client).judge(good(servers), min_score=0.7)
    assert j.failed is None and j.judge == "llm:scripted"
    assert provider.calls == 5  # first turn, rounds 2 and 3, necessity of the two calls, final answer
    assert j.dimensions["query_understanding"].score == 0.5 and j.dimensions["query_understanding"].method == "llm"
    assert j.dimensions["tool_call_status"].score == 1 and j.dimensions["tool_call_status"].method == "rule"
    assert j.dimensions["final_answer"].score == 0.5
    assert j.overall == pytest.approx((0.5 * 4 + 1 + j.dimensions["conciseness"].score + 0.5) / 7, abs=1e-4)


async def test_llm_judge_rejects_out_of_scale_and_partial_replies(servers):
    client, _ = llm_client(judge_script(score=0.7))  # 0.7 is not on the scale: repaired, then failed
    j = await Judge("llm", client).judge(good(servers))
    assert j.failed and j.failed["error_type"] == "StructuredOutputError" and j.overall is None
    t = good(servers)
    t.meta["task"]["target_tools"] = []
    client, _ = llm_client(judge_script(skip_necessity=True))
    j = await Judge("llm", client).judge(t)
    assert j.failed and j.failed["part"] == "" and "skips calls" in j.failed["message"]


def test_judge_outage_fails_records_and_a_plain_rerun_judges_them(tmp_path, servers):
    trajs = [good(servers).model_copy(update={"id": f"t{i}"}) for i in range(3)]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps(t.model_dump(mode="json")) + "\n" for t in trajs))
    # the scripted double raising server errors: nothing kept, nothing rejected, all failed
    client, _ = llm_client(lambda req: LLMServerError("judge endpoint down"))
    out = tmp_path / "a.jsonl"
    m = run_stage(JudgeStage(min_score=0.0, client=client), src, out, progress=False)
    assert m.outputs == 0 and m.rejections_by_reason == {} and m.rejected == 0
    assert m.failed == m.processed_failed == 3 and m.failures_by_kind == {"endpoint": 3}
    assert m.errors_by_type == {"LLMServerError": 3}
    assert out.exists() and out.read_text() == ""  # the next command finds an (empty) file
    # an OpenAI-compatible endpoint answering 500
    with FakeOpenAI(default="500") as fake:
        client = make_client(LLMSettings(spec="openai:judge", base_url=fake.base_url, cache=False, max_retries=0))
        m = run_stage(JudgeStage(min_score=0.0, client=client), src, tmp_path / "b.jsonl", progress=False)
        assert fake.requests  # the judge did ask, and got 500s
    assert m.outputs == 0 and m.failed == 3 and m.failures_by_kind == {"endpoint": 3}
    assert (tmp_path / "b.jsonl").read_text() == ""
    # the endpoint is back: a plain rerun judges exactly the failed three
    client, _ = llm_client(judge_script(score=1))
    m = run_stage(JudgeStage(min_score=0.0, client=client), src, out, progress=False)
    assert m.skipped_done == 0 and m.processed == 3 and m.failed == 0 and m.outputs == 3


def test_unusable_judge_reply_is_a_rejection_not_a_failure(tmp_path, servers):
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps(good(servers).model_dump(mode="json")) + "\n")
    client, _ = llm_client(judge_script(score=0.7))  # off the scale even after repairs
    m = run_stage(JudgeStage(min_score=0.0, client=client), src, tmp_path / "a.jsonl", progress=False)
    assert m.rejections_by_reason == {"judge_unusable": 1} and m.failed == 0
    m = run_stage(JudgeStage(min_score=0.0, client=client), src, tmp_path / "a.jsonl", progress=False)
    assert m.processed == 0 and m.skipped_done == 1  # a decision: not redone


async def test_an_outage_in_any_judge_part_wins_over_an_unusable_reply(servers):
    ok = judge_script(score=1)

    def script(req: ChatRequest):
        text = next(m["content"] for m in req.messages if m["role"] == "user")
        if "evaluate the first turn" in text:
            return reply("no JSON here")  # unusable in every repair round
        if "final answer" in text:
            return LLMServerError("503 while judging the answer")
        return ok(req)

    client, _ = llm_client(script)
    with pytest.raises(LLMServerError):
        await Judge("llm", client).judge(good(servers))
