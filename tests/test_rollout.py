"""Rollouts: the agent loop (scripted chat-API test double), the Python / MCP / emulator
backends, failure injection, the chain-executor teacher, and the offline end-to-end flow
tasks -> trajectories -> judged -> exported on the bundled sample."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections import Counter
from contextlib import asynccontextmanager
from typing import Any

import pytest

from astra.data.servers import server_target
from astra.llm import LLMClient
from astra.llm.errors import LLMError, LLMServerError
from astra.llm.testing import ScriptedChatProvider, reply
from astra.llm.types import ChatRequest, ChatResponse
from astra.pipeline import arun_stage, load_manifest, read_outputs, run_stage
from astra.rollout import BackendPool, EmulatorBackend, RolloutFailure, RolloutStage, run_agent
from astra.rollout.backends import MCPBackend
from astra.rollout.stages import rollout_rng
from astra.rollout.validation import schema_errors
from astra.tasks.plan import PLAN_FORMAT
from astra.tools.ingest import ingest
from astra.types import CallInfo, Task, ToolServer, Trajectory

# ---------------------------------------------------------------------------------
# helpers (also used by test_judge / test_export)
# ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def sample_servers() -> tuple[ToolServer, ...]:
    return tuple(ingest(["sample"]).servers)


@pytest.fixture(scope="module")
def servers() -> list[ToolServer]:
    return list(sample_servers())


def by_name(servers: list[ToolServer], name: str) -> ToolServer:
    return next(s for s in servers if s.name == name)


def client_of(script: Any) -> tuple[LLMClient, ScriptedChatProvider]:
    provider = ScriptedChatProvider(script)
    return LLMClient(provider, cache=None, max_retries=0, timeout=None), provider


def plan_task(tid: str, server: str, query: str, steps: list[dict[str, Any]], *, language: str = "en") -> Task:
    """A chain task with an ``astra.plan/v1`` plan, built by hand."""
    full = [{"tool": s["tool"], "user_args": s.get("user_args", {}), "derived_args": s.get("derived_args", {})}
            for s in steps]
    tools = [s["tool"] for s in steps]
    return Task(id=tid, server=server, query=query, target_tools=tools, chain=tools, language=language,
                arguments={"format": PLAN_FORMAT, "steps": full, "mentions": []})


def weather_task(tid: str = "w1", city: str = "Tokyo", language: str = "en", query: str | None = None) -> Task:
    return plan_task(tid, "weather", query or f"What is the weather in {city} right now, in imperial units?", [
        {"tool": "geocode_city", "user_args": {"city": city}},
        {"tool": "get_current_weather", "user_args": {"units": "imperial"},
         "derived_args": {"latitude": {"step": 0, "path": ["latitude"]},
                          "longitude": {"step": 0, "path": ["longitude"]}}},
    ], language=language)


def recipe_task(tid: str = "r1") -> Task:
    return plan_task(tid, "recipes", "Find a vegetarian chickpea curry and give me its nutrition facts for 4 servings.", [
        {"tool": "search_recipes", "user_args": {"query": "chickpea curry", "diet": "vegetarian"}},
        {"tool": "get_nutrition", "user_args": {"servings": 4},
         "derived_args": {"recipe_id": {"step": 0, "path": [0, "recipe_id"]}}},
    ])


def fake_value(schema: dict[str, Any] | None, salt: str, args: dict[str, Any]) -> Any:
    """A deterministic instance of ``schema`` that reuses the call's argument values."""
    schema = schema or {"type": "object", "properties": {}}
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if "enum" in schema:
        return schema["enum"][0]
    if t == "object":
        return {k: args[k] if k in args and not isinstance(args[k], list) else fake_value(p, f"{salt}.{k}", args)
                for k, p in (schema.get("properties") or {}).items()}
    if t == "array":
        return [fake_value(schema.get("items") or {"type": "string"}, f"{salt}[{i}]", args) for i in range(2)]
    if t == "integer":
        return 4 + len(salt) % 5
    if t == "number":
        return round(10.5 + len(salt) % 7, 1)
    if t == "boolean":
        return True
    return f"{salt.rsplit('.', 1)[-1].replace('[', '-').replace(']', '')}-{len(salt)}"


def emulator_script(server: ToolServer, *, bad_every: int = 0):
    """The scripted chat-API test double playing a doc-only server: a valid result built
    from the tool's output schema (every ``bad_every``-th reply is not JSON)."""
    counter = Counter()

    def answer(req: ChatRequest) -> ChatResponse:
        call = json.loads(req.messages[-1]["content"])
        counter["n"] += 1
        if bad_every and counter["n"] % bad_every == 0:
            return reply("sorry, I cannot do that")
        tool = server.tool(call["tool"])
        return reply(json.dumps(fake_value(tool.output_schema, tool.name, call["arguments"])))

    return answer


# ---------------------------------------------------------------------------------
# the agent loop
# ---------------------------------------------------------------------------------


def _toolset(servers: list[ToolServer], name: str = "weather", **pool: Any):
    return BackendPool(**pool).toolset([by_name(servers, name)], rollout_rng(0, "t", 0), "q")


async def test_agent_final_answer_without_calls(servers):
    client, provider = client_of([reply("It is sunny.")])
    run = await run_agent(client, weather_task(), _toolset(servers))
    assert [m["role"] for m in run.messages] == ["system", "user", "assistant"]
    assert run.meta["finish"] == "answer" and run.meta["turns"] == 1 and run.meta["n_tool_calls"] == 0
    system = run.messages[0]["content"]
    assert "plan" in system and "language of the user's request" in system
    assert provider.requests[0].tools and provider.requests[0].tools[0]["type"] == "function"


async def test_agent_parallel_calls_and_unique_ids(servers):
    client, _ = client_of([
        reply("Plan: geocode both cities.", tool_calls=[("geocode_city", {"city": "Tokyo"}),
                                                         ("geocode_city", {"city": "London"})]),
        reply("Next the weather.", tool_calls=[("get_current_weather", {"latitude": 35.6762, "longitude": 139.6503})]),
        reply("Tokyo is at 35.6762; it is sunny."),
    ])
    run = await run_agent(client, weather_task(), _toolset(servers))
    roles = [m["role"] for m in run.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    ids = [tc["id"] for m in run.messages if m["role"] == "assistant" for tc in m.get("tool_calls") or []]
    assert len(ids) == len(set(ids)) == 3  # the double numbers calls per turn: renamed where repeated
    answered = [m["tool_call_id"] for m in run.messages if m["role"] == "tool"]
    assert answered == ids
    assert [c["status"] for c in run.meta["tool_calls"]] == ["ok", "ok", "ok"]
    assert json.loads(run.messages[3]["content"])["city"] == "Tokyo"
    assert json.loads(run.messages[4]["content"])["city"] == "London"


async def test_agent_malformed_calls_become_tool_errors(servers):
    client, _ = client_of([
        reply(tool_calls=[("geocode_city", "{not json"), ("teleport", {"to": "Mars"}),
                          ("geocode_city", {"city": 5}), ("geocode_city", {"city": "Oslo", "zoom": 3})]),
        reply("Sorry."),
    ])
    run = await run_agent(client, weather_task(), _toolset(servers))
    statuses = [c["status"] for c in run.meta["tool_calls"]]
    assert statuses == ["bad_json", "unknown_tool", "invalid_arguments", "invalid_arguments"]
    assert run.meta["malformed"] == {"bad_json": 1, "unknown_tool": 1, "invalid_arguments": 2, "unreadable_call": 0}
    errors = [json.loads(m["content"])["error"] for m in run.messages if m["role"] == "tool"]
    assert [e["type"] for e in errors] == statuses
    assert "available tools" in errors[1]["message"] and "zoom" in errors[3]["message"]
    assert not any(e["retryable"] for e in errors)
    assert run.meta["finish"] == "answer"


async def test_agent_unreadable_tool_call_block(servers):
    broken = ChatResponse(content='Let me look. <tool_call>{"name": "geocode_city", "arguments": {city: Tokyo}}</tool_call>',
                          parse_errors=["tool call 1: invalid JSON (Expecting property name)"])
    client, provider = client_of([broken, reply("Done.")])
    run = await run_agent(client, weather_task(), _toolset(servers))
    first = run.messages[2]
    assert first["content"] == "Let me look." and "<tool_call>" not in first["content"]
    (tc,) = first["tool_calls"]
    assert tc["function"]["name"] == "geocode_city" and "{city: Tokyo}" in tc["function"]["arguments"]
    tool_msg = run.messages[3]
    assert tool_msg["tool_call_id"] == tc["id"]
    assert json.loads(tool_msg["content"])["error"]["type"] == "unreadable_call"
    assert run.meta["malformed"]["unreadable_call"] == 1
    assert provider.requests[1].messages[-1]["role"] == "tool"  # the model saw the error


async def test_agent_stops_at_max_turns(servers):
    client, provider = client_of(lambda req: reply(tool_calls=[("geocode_city", {"city": "Tokyo"})]))
    run = await run_agent(client, weather_task(), _toolset(servers), max_turns=3)
    assert run.meta["finish"] == "max_turns" and run.meta["turns"] == 3 and provider.calls == 3
    assert run.messages[-1]["role"] == "tool"


async def test_agent_llm_outage_fails_the_task_and_a_bad_reply_is_a_rejection(tmp_path, servers):
    # an endpoint that does not answer is not the task's fault: it propagates ...
    client, _ = client_of([reply(tool_calls=[("geocode_city", {"city": "Tokyo"})]), LLMServerError("boom 500")])
    with pytest.raises(LLMServerError):
        await run_agent(client, weather_task(), _toolset(servers))
    stage = RolloutStage(agent="openai:scripted", servers=servers, client=client_of([LLMServerError("down")])[0])
    m = await arun_stage(stage, [weather_task()], tmp_path / "t.jsonl", progress=False)
    # ... and the runner records a failure, retried by a rerun, not a rejection
    assert m.failed == 1 and m.failures_by_kind == {"endpoint": 1} and m.rejections_by_reason == {}
    # an LLM error that is not an outage stays a recorded rejection of the sample
    client, _ = client_of([reply(tool_calls=[("geocode_city", {"city": "Tokyo"})]), LLMError("unusable reply")])
    with pytest.raises(RolloutFailure) as ei:
        await run_agent(client, weather_task(), _toolset(servers))
    assert ei.value.reason == "llm_error" and "unusable reply" in ei.value.detail


# ---------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------


async def test_python_backend_fresh_state_per_rollout(servers):
    pool = BackendPool()
    shop = by_name(servers, "shop")
    carts = []
    for i in range(2):
        ts = pool.toolset([shop], rollout_rng(0, f"t{i}", 0), "q")
        await ts.execute("a", "add_to_cart", {"product_id": "P-1002", "quantity": i + 1}, turn=1)
        out = await ts.execute("b", "view_cart", "{}", turn=2)
        carts.append(out.value)
    assert [sum(it["quantity"] for it in c["items"]) for c in carts] == [1, 2]
    ts = pool.toolset([shop], rollout_rng(0, "t", 0), "q")
    out = await ts.execute("c", "get_product", {"product_id": "P-9999"}, turn=1)
    assert out.status == "tool_error" and not out.transient


class _FakeSession:
    def __init__(self, script: list[Any]):
        self.script = script

    async def call_tool(self, name, args, read_timeout_seconds=None):
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def _result(value: Any):
    import mcp_types

    return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=json.dumps(value))],
                                    structured_content={"result": value} if isinstance(value, list) else value)


async def test_mcp_backend_reconnects_once_and_times_out(servers):
    import anyio
    from mcp.shared.exceptions import MCPError
    from mcp_types import REQUEST_TIMEOUT

    weather = by_name(servers, "weather")
    sessions = [_FakeSession([anyio.ClosedResourceError()]), _FakeSession([_result([{"alert_id": "A-1"}]),
                                                                         MCPError(REQUEST_TIMEOUT, "timed out")])]
    opened = []

    @asynccontextmanager
    async def opener(call, timeout):
        opened.append(call.target)
        yield sessions[len(opened) - 1]

    server = weather.model_copy(update={"call": CallInfo(kind="mcp_http", target="http://fake/mcp")})
    backend = MCPBackend(server, timeout=1.0, opener=opener)
    tool = server.tool("list_weather_alerts")
    out = await backend.call(tool, {"latitude": 1.0, "longitude": 2.0})
    assert out.ok and out.value == [{"alert_id": "A-1"}]  # reconnected, list unwrapped
    assert backend.reconnects == 1 and len(opened) == 2
    out = await backend.call(tool, {"latitude": 1.0, "longitude": 2.0})
    assert out.status == "timeout" and out.transient
    await backend.aclose()


# ---------------------------------------------------------------------------------
# the emulator and failure injection
# ---------------------------------------------------------------------------------


async def test_emulator_failure_rate_matches_configuration(servers):
    recipes = by_name(servers, "recipes")
    client, provider = client_of(emulator_script(recipes))
    tool = recipes.tool("get_nutrition")
    measured = {}
    for rate in (0.2, 0.5):
        calls = injected = 0
        kinds: Counter[str] = Counter()
        for r in range(50):  # 50 rollouts x 12 calls = 600 emulated calls per rate
            emu = EmulatorBackend(recipes, client, rollout_rng(7, f"task-{r}", 0), query="q", failure_rate=rate)
            for i in range(12):
                out = await emu.call(tool, {"recipe_id": f"R-{i}", "servings": 2})
                calls += 1
                if out.injected:
                    injected += 1
                    kinds[out.injected] += 1
                    assert out.status == "injected_failure" and out.transient
                else:
                    assert out.ok and not schema_errors(tool.output_schema, out.value)
        measured[rate] = injected / calls
        assert calls == 600
        assert abs(measured[rate] - rate) <= 0.05, measured
        assert set(kinds) == {"timeout", "service_unavailable", "rate_limited"}
    # injected failures cost no LLM call
    assert provider.calls == sum(round(600 * (1 - measured[r])) for r in measured)


async def test_emulator_is_stateful_validated_and_seeded(servers):
    recipes = by_name(servers, "recipes")
    client, provider = client_of(emulator_script(recipes, bad_every=3))
    emu = EmulatorBackend(recipes, client, rollout_rng(1, "t", 0), query="vegan dinner ideas", failure_rate=0.0)
    tool = recipes.tool("get_recipe")
    outs = [await emu.call(tool, {"recipe_id": f"R-{i}"}) for i in range(9)]
    assert [o.status for o in outs].count("emulator_failure") == 3
    bad = next(o for o in outs if o.status == "emulator_failure")
    assert bad.transient and "not JSON" in bad.error and json.loads(bad.content)["error"]["retryable"]
    # the prompt carries at most the last 5 calls, and the query about half of the time
    last = provider.requests[-1].messages[0]["content"]
    assert last.count("- get_recipe(") == 5 and "R-0" not in last.split("Earlier calls")[1]
    shown = sum("vegan dinner ideas" in r.messages[0]["content"] for r in provider.requests)
    assert 1 <= shown <= 8
    # same seed -> same injected failures
    seqs = []
    for _ in range(2):
        e = EmulatorBackend(recipes, client_of(emulator_script(recipes))[0], rollout_rng(3, "x", 0), failure_rate=0.3)
        seqs.append([(await e.call(tool, {"recipe_id": "R-1"})).injected for _ in range(20)])
    assert seqs[0] == seqs[1] and any(seqs[0])


async def test_emulator_schema_violation_is_an_emulator_failure(servers):
    recipes = by_name(servers, "recipes")
    client, _ = client_of([reply(json.dumps({"recipe_id": "R-1"}))])  # misses required fields
    emu = EmulatorBackend(recipes, client, rollout_rng(0, "t", 0), failure_rate=0.0)
    out = await emu.call(recipes.tool("get_nutrition"), {"recipe_id": "R-1"})
    assert out.status == "emulator_failure" and "output schema" in out.error and not emu.history


# ---------------------------------------------------------------------------------
# the chain executor
# ---------------------------------------------------------------------------------


async def test_chain_executor_retries_injected_failures(servers):
    recipes = by_name(servers, "recipes")
    client, _ = client_of(emulator_script(recipes))
    stage = RolloutStage(servers=servers, emulator_client=client, failure_rate=0.5, retries=5, seed=11)
    stage.setup()
    trajs = []
    for i in range(6):
        res = await stage.process(recipe_task(f"r{i}"))
        trajs += res.outputs
        assert not res.rejections or res.rejections[0].reason == "tool_failed_after_retries"
    assert trajs
    t = max(trajs, key=lambda t: len(t.meta["injected_failures"]))
    assert t.meta["injected_failures"] and t.meta["retries"] == len(t.meta["injected_failures"])
    texts = [m["content"] for m in t.messages if m["role"] == "assistant"]
    assert "temporary error" in " ".join(texts)
    # the recipe id derived from step 1's (emulated) result is used in step 2
    calls = t.meta["tool_calls"]
    first_ok = next(c for c in calls if c["tool"] == "search_recipes" and c["status"] == "ok")
    step1 = json.loads(next(m["content"] for m in t.messages if m.get("tool_call_id") == first_ok["id"]))
    nutrition = [c for c in calls if c["tool"] == "get_nutrition"]
    assert json.loads(nutrition[0]["arguments"])["recipe_id"] == step1[0]["recipe_id"]
    final = t.messages[-1]["content"]
    assert step1[0]["recipe_id"] in final and "calories_kcal=" in final


async def test_chain_executor_names_every_failed_attempt(servers):
    """An emulator whose replies are never JSON: the rejection says so for each attempt,
    not only the last one's status."""
    client, _ = client_of(lambda req: reply("Sure! The recipes are great."))
    stage = RolloutStage(servers=servers, emulator_client=client, failure_rate=0.0, retries=2, seed=0)
    stage.setup()
    res = await stage.process(recipe_task("nojson"))
    assert not res.outputs
    (rej,) = res.rejections
    assert rej.reason == "tool_failed_after_retries"
    assert rej.detail.count("emulator_failure (the emulated result is not JSON") == 3


async def test_chain_executor_answers_in_the_users_language(servers):
    stage = RolloutStage(servers=servers)
    stage.setup()
    res = await stage.process(weather_task("de1", city="London", language="de",
                                           query="Wie ist das Wetter gerade in London?"))
    (t,) = res.outputs
    assert t.messages[-1]["content"].startswith("Hier ist das Ergebnis")
    assert t.meta["answer_language"] == "de" and not t.meta["language_fallback"]


async def test_chain_executor_failures_are_rejections(servers):
    stage = RolloutStage(servers=servers)
    stage.setup()
    no_plan = Task(id="np", server="weather", query="Weather in Oslo?", target_tools=["geocode_city"])
    bad_step = plan_task("bad", "shop", "Show me product P-0000.", [
        {"tool": "get_product", "user_args": {"product_id": "P-0000"}}])
    missing = plan_task("miss", "weather", "Weather in Tokyo?", [
        {"tool": "geocode_city", "user_args": {"city": "Tokyo"}},
        {"tool": "get_current_weather", "derived_args": {"latitude": {"step": 0, "path": ["lat_nope"]},
                                                          "longitude": {"step": 0, "path": ["longitude"]}}}])
    unknown = weather_task("us").model_copy(update={"server": "nowhere"})
    reasons = []
    for task in (no_plan, bad_step, missing, unknown):
        res = await stage.process(task)
        assert not res.outputs
        reasons += [r.reason for r in res.rejections]
    assert reasons == ["no_plan", "chain_step_failed", "derived_value_missing", "unknown_server"]


async def test_tiny_embedded_default_is_never_the_implicit_emulator(servers, monkeypatch):
    from astra.llm import LLMSettings

    monkeypatch.setenv("ASTRA_LLM", "embedded")
    stage = RolloutStage(servers=servers)
    stage.setup()
    assert stage.emulator_spec() is None
    res = await stage.process(recipe_task())
    assert not res.outputs and [r.reason for r in res.rejections] == ["no_emulator"]
    assert "--emulator-llm" in res.rejections[0].detail
    # named explicitly, it is used; any other implicit default is used too
    assert RolloutStage(emulator_settings=LLMSettings(spec="embedded")).emulator_spec() == "embedded"
    monkeypatch.setenv("ASTRA_LLM", "openai:emu")
    assert RolloutStage(emulator_settings=None).emulator_spec() == "openai:emu"
    assert RolloutStage(agent="embedded").emulator_spec() is None


async def test_chain_executor_on_generated_tasks(servers):
    """The real output of task generation (offline generator, Python servers) is solved."""
    from astra.tasks.generate import OfflineGenerator

    gen = OfflineGenerator(seed=3)
    tasks = []
    for s in servers:
        if s.call.kind == "python":
            tasks += gen.for_server(s, n=2)[0]
    assert len(tasks) >= 8
    stage = RolloutStage(servers=servers)
    stage.setup()
    kept = 0
    for task in tasks:
        res = await stage.process(task)
        kept += len(res.outputs)
        for t in res.outputs:
            assert all(c["status"] == "ok" for c in t.meta["tool_calls"])
            assert [c["tool"] for c in t.meta["tool_calls"]] == [s["tool"] for s in task.arguments["steps"]]
    assert kept == len(tasks)


# ---------------------------------------------------------------------------------
# end to end: all three backends -> judge -> export, with the funnel in the manifests
# ---------------------------------------------------------------------------------


def test_end_to_end_offline_three_backends(tmp_path, servers):
    from astra.export import export_sft
    from astra.judge import JudgeStage

    weather = by_name(servers, "weather")
    cmd = f"{sys.executable} -m astra.tools.mcp_serve {server_target('weather')}"
    mcp_weather = weather.model_copy(update={"name": "weather_live", "call": CallInfo(kind="mcp_stdio", target=cmd)})
    recipes = by_name(servers, "recipes")
    table = [*servers, mcp_weather]
    tasks = [
        weather_task("py-weather"),
        plan_task("py-shop", "shop", "Add two Volt 20W USB-C chargers (P-1002) to my cart and show me the cart.", [
            {"tool": "add_to_cart", "user_args": {"product_id": "P-1002", "quantity": 2}},
            {"tool": "view_cart"}]),
        weather_task("mcp-weather", city="London").model_copy(update={"server": "weather_live"}),
        *[recipe_task(f"emu-{i}") for i in range(3)],
        Task(id="no-plan", server="bank", query="What is my balance?", target_tools=["get_balance"]),
        weather_task("lost").model_copy(update={"server": "nowhere"}),
    ]
    client, _ = client_of(emulator_script(recipes))
    out = tmp_path / "trajectories.jsonl"
    m = run_stage(RolloutStage(servers=table, emulator_client=client, seed=5), tasks, out, concurrency=4,
                  progress=False)
    assert m.accepted == 6 and m.rejected == 2 and m.failed == 0
    assert m.rejections_by_reason == {"no_plan": 1, "unknown_server": 1}
    trajs = {t.task_id: t for t in read_outputs(out, Trajectory)}
    assert {trajs[k].meta["backends"][trajs[k].meta["task"]["server"]] for k in trajs} == {"python", "mcp", "emulator"}
    live = trajs["mcp-weather"]
    assert [c["backend"] for c in live.meta["tool_calls"]] == ["mcp", "mcp"]
    assert json.loads(live.messages[3]["content"])["city"] == "London"
    assert "London" in live.messages[-1]["content"]
    emulated = [c for k, t in trajs.items() if k.startswith("emu-") for c in t.meta["tool_calls"]]
    assert all(c["backend"] == "emulator" for c in emulated)
    assert all(not c.get("injected") for k, t in trajs.items() if not k.startswith("emu-")
               for c in t.meta["tool_calls"])  # only emulated calls are ever injected

    # an agent trajectory that never calls a tool joins the chain executor's ones
    bad = Trajectory(id="lazy", task_id="py-weather", agent="scripted", tools=weather.openai_tools(),
                     messages=[{"role": "user", "content": "What is the weather in Tokyo?"},
                               {"role": "assistant", "content": "It is probably nice."}])
    judged_in = tmp_path / "all.jsonl"
    judged_in.write_text("".join(json.dumps(t.model_dump(mode="json")) + "\n" for t in [*trajs.values(), bad]))
    judged = tmp_path / "judged.jsonl"
    jm = run_stage(JudgeStage(min_score=0.7, mode="offline"), judged_in, judged, progress=False)
    assert jm.accepted == 6 and jm.rejections_by_reason == {"below_min_score": 1}
    kept = list(read_outputs(judged, Trajectory))
    assert all(t.judgement["overall"] >= 0.7 and t.judgement["mode"] == "offline" for t in kept)

    sft = tmp_path / "sft"
    report = export_sft(judged, sft, fmt="openai")
    assert report.written == 6
    manifest = load_manifest(sft / "export.manifest.json")
    assert manifest.stage == "export.sft" and manifest.outputs == 6
    rows = [json.loads(line) for line in (sft / "train.jsonl").read_text().splitlines()]
    assert all(isinstance(r["tools"], str) for r in rows)
    # the funnel: rollout -> judge -> export, each with reasons
    funnel = [(mm.stage, mm.accepted, mm.rejections_by_reason) for mm in
              (load_manifest(out), load_manifest(judged), manifest)]
    assert funnel == [("rollout", 6, {"no_plan": 1, "unknown_server": 1}),
                      ("judge", 6, {"below_min_score": 1}), ("export.sft", 6, {})]


def test_cli_rollout_judge_export(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from astra.export.cli import app as export_app
    from astra.judge.cli import app as judge_app
    from astra.rollout.cli import app as rollout_app

    monkeypatch.setenv("ASTRA_LLM", "embedded")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t.model_dump(mode="json")) + "\n"
                             for t in (weather_task("a"), weather_task("b", city="Sydney"))))
    runner = CliRunner()
    r = runner.invoke(rollout_app, [str(tasks), "-o", str(tmp_path / "t.jsonl"), "--agent", "chain-executor",
                                    "--max-turns", "20", "--emulator-failure-rate", "0.2", "--no-progress"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(judge_app, [str(tmp_path / "t.jsonl"), "-o", str(tmp_path / "j.jsonl"), "--min-score", "0.8"])
    assert r.exit_code == 0, r.output
    assert load_manifest(tmp_path / "j.jsonl").config["mode"] == "offline"  # the embedded default
    for fmt in ("openai", "sharegpt"):
        r = runner.invoke(export_app, ["sft", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / fmt), "--format", fmt])
        assert r.exit_code == 0, r.output
        assert len((tmp_path / fmt / "train.jsonl").read_text().splitlines()) == 2
    r = runner.invoke(rollout_app, [str(tasks), "-o", str(tmp_path / "x.jsonl"), "--agent", "gpt"])
    assert r.exit_code == 1 and "unknown agent" in r.output


def test_rollout_is_reproducible(servers):
    recipes = by_name(servers, "recipes")

    def run() -> list:
        client, _ = client_of(emulator_script(recipes))
        stage = RolloutStage(servers=servers, emulator_client=client, failure_rate=0.4, retries=6, seed=2)
        stage.setup()
        res = asyncio.run(stage.process(recipe_task("rep")))
        return [t.messages for t in res.outputs] + [r.reason for r in res.rejections]

    assert run() == run()


@pytest.mark.model
def test_embedded_agent_rollout_is_well_formed(tmp_path, servers):
    """The real embedded model as the agent (one short turn, one tool to keep the prompt
    small): whatever it writes, the rollout ends as a valid trajectory, never a crash."""
    from astra.llm import LLMSettings

    weather = by_name(servers, "weather")
    small = weather.model_copy(update={"tools": [weather.tool("geocode_city")]})
    stage = RolloutStage(agent="embedded", agent_settings=LLMSettings(spec="embedded", cache=False),
                         servers=[small], max_turns=1, max_tokens=8)
    task = plan_task("emb", "weather", "Where is Tokyo?", [{"tool": "geocode_city", "user_args": {"city": "Tokyo"}}])
    m = run_stage(stage, [task], tmp_path / "t.jsonl", progress=False)
    assert m.failed == 0 and m.accepted == 1
    (t,) = read_outputs(tmp_path / "t.jsonl", Trajectory)
    assert t.agent == "embedded" and t.meta["finish"] in ("answer", "max_turns") and t.meta["turns"] == 1
    assert [m_["role"] for m_ in t.messages[:3]] == ["system", "user", "assistant"]
    ids = [tc["id"] for m_ in t.messages for tc in m_.get("tool_calls") or []]
    assert ids == [m_["tool_call_id"] for m_ in t.messages if m_["role"] == "tool"]
