"""The environment runtime (ASTRA §3.2): the F1 reward, reset / step / finish / reward with
solved-sub-task detection by typed matching, call counting, termination, isolation;
distractor mixing (banded / random / none, same-domain exclusion); the adapters (MCP server
tested with the MCP client, the TRL environment_factory class, ``astra envs play``)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys

import pytest
from typer.testing import CliRunner

from astra.envs import (
    DistractorSampler,
    EnvSession,
    EpisodeOver,
    HashEmbedder,
    trajectory_reward,
    trl_dataset_rows,
    trl_environment_class,
    trl_environment_factories,
    write_environment,
)
from astra.envs.adapters import AstraTRLEnv, final_answer_hook
from astra.envs.distractors import band_of, tool_doc
from astra.envs.reward import reward_parts
from astra.envsynth.cli import app
from astra.envsynth.compose import compose
from astra.envsynth.synth import synthesize_environment
from astra.envsynth.worlds import load_worlds
from astra.errors import ToolCallError
from astra.llm.types import ToolCall
from astra.sandbox import SandboxPool, parse_call_statement
from astra.types import Environment, EnvTool, QAInstance, SubTask, Tool


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(size=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def film_envs(pool) -> dict[str, Environment]:
    """One synthesized environment per scenario type from the film world."""
    insts = compose(load_worlds(["film"]), n=1, seed=0)

    async def build():
        return [await synthesize_environment(i, pool=pool) for i in insts]

    return {e.instance.scenario: e for e in asyncio.run(build())}


def gold_calls(env: Environment) -> list[dict]:
    """The environment's gold calls as OpenAI tool calls (in sub-task order)."""
    out = []
    for t in env.tools:
        for sid, stmt in t.calls.items():
            c = parse_call_statement(stmt)
            out.append((sid, {"id": f"c_{sid}", "type": "function",
                              "function": {"name": c.name, "arguments": json.dumps(c.kwargs)}}))
    return [c for _, c in sorted(out, key=lambda x: int(x[0][1:]))]


# ---------------------------------------------------------------------------------
# The reward (pure)
# ---------------------------------------------------------------------------------


def test_reward_arithmetic():
    eps = 1e-6
    r, p, f1 = reward_parts(2, 4, 5)
    assert r == 0.5 and p == pytest.approx(2 / (5 + eps)) and f1 == pytest.approx(2 * p * r / (p + r))
    assert trajectory_reward(2, 4, 5, "recall") == 0.5
    assert trajectory_reward(2, 4, 5, "precision") == pytest.approx(0.4, abs=1e-6)
    assert trajectory_reward(2, 4, 5) == pytest.approx(2 * 0.4 * 0.5 / 0.9, abs=1e-6)
    assert trajectory_reward(4, 4, 4) == pytest.approx(1.0, abs=1e-5) and trajectory_reward(4, 4, 4) < 1.0  # eps
    assert trajectory_reward(0, 4, 0) == 0.0 and trajectory_reward(0, 4, 9, "precision") == 0.0  # n_hat = 0
    assert trajectory_reward(1, 3, 0, "precision") == 1.0  # n_hat > c (final answer only): capped at 1
    assert trajectory_reward(1, 3, 0, eps=0.5, kind="precision") == 1.0
    assert trajectory_reward(1, 2, 3, eps=1.0, kind="precision") == 0.25  # eps enters the denominator
    for bad in [(1, 0, 1), (5, 4, 1), (1, 4, -1)]:
        with pytest.raises(ValueError):
            trajectory_reward(*bad)
    with pytest.raises(ValueError):
        trajectory_reward(1, 2, 2, kind="accuracy")


# ---------------------------------------------------------------------------------
# A hand-made environment for the exact runtime rules
# ---------------------------------------------------------------------------------

MOONS = '''MOCK_DATA = {"Kelvar": 3, "Ostra": 12}


def get_moons(planet):
    if planet not in MOCK_DATA:
        raise ValueError(f"unknown planet {planet!r}")
    return {"planet": planet, "moons": MOCK_DATA[planet]}
'''
STAR = '''def get_star(planet):
    return {"planet": planet, "star": "Vega", "note": "12 and 15"}
'''
ECHO = '''def echo(text):
    return {"text": text}
'''
COUNTER = '''CALLS = []


def tick():
    CALLS.append(1)
    with open("state.txt", "a") as f:
        f.write("x")
    with open("state.txt") as f:
        return {"calls_in_this_process": len(CALLS), "file": f.read()}
'''


def _tool(name: str, params: dict | None = None) -> Tool:
    props = {k: {"type": "string"} for k in (params or {})}
    return Tool(name=name, description=f"The {name} tool.", parameters={"type": "object", "properties": props,
                                                                        "required": list(props)})


def moons_env() -> Environment:
    subs = [SubTask(id="s1", sub_question="How many moons does Kelvar have?", sub_answer="3", is_parallel=True),
            SubTask(id="s2", sub_question="How many moons does Ostra have?", sub_answer="12", is_parallel=True),
            SubTask(id="s3", hop_level=2, sub_question="What is 3 + 12?", sub_answer="15", dependency=["s1", "s2"],
                    needs_tool=False)]
    inst = QAInstance(id="astro.psh.1", domain="astronomy", scenario="parallel_single_hop",
                      question="How many moons do Kelvar and Ostra have together?", answer="15", sub_tasks=subs,
                      meta={"answer_types": {"s1": "int", "s2": "int", "s3": "int"}})
    return Environment(id=inst.id, instance=inst, tools=[
        EnvTool(tool=_tool("get_moons", {"planet": 1}), code=MOONS, serves=["s1", "s2"],
                calls={"s1": "get_moons(planet='Kelvar')", "s2": "get_moons(planet='Ostra')"}),
        EnvTool(tool=_tool("get_star", {"planet": 1}), code=STAR),
        EnvTool(tool=_tool("echo", {"text": 1}), code=ECHO, serves=["s1"]),
        EnvTool(tool=_tool("tick"), code=COUNTER),
    ])


def call(name: str, args: dict | str, cid: str = "c") -> dict:
    return {"id": cid, "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}


async def test_reset_gives_messages_and_tools(pool):
    s = EnvSession(moons_env(), pool=pool, system_prompt="SYS")
    messages, tools = s.reset()
    assert messages == [{"role": "system", "content": "SYS"},
                        {"role": "user", "content": "How many moons do Kelvar and Ostra have together?"}]
    assert sorted(t["function"]["name"] for t in tools) == ["echo", "get_moons", "get_star", "tick"]
    assert all(t["type"] == "function" for t in tools)
    assert EnvSession(moons_env(), pool=pool).reset()[0][0]["content"].startswith("You are")  # default prompt


async def test_solved_by_typed_match_only_through_a_serving_tool(pool):
    s = EnvSession(moons_env(), pool=pool)
    s.reset()
    msgs = await s.astep([call("get_star", {"planet": "Ostra"}, "a"),  # output has "12", does not serve s2
                          call("echo", {"text": "3"}, "b")])  # serves s1, but "3" is only its own argument
    assert [m["tool_call_id"] for m in msgs] == ["a", "b"] and all(m["role"] == "tool" for m in msgs)
    assert s.solved == [] and s.calls == 2
    msgs = await s.astep([ToolCall(id="c", name="get_moons", arguments='{"planet": "Kelvar"}')])
    assert json.loads(msgs[0]["content"]) == {"planet": "Kelvar", "moons": 3}
    assert s.solved == ["s1"] and s.turns == 2 and not s.done
    await s.astep([call("get_moons", {"planet": "Ostra"}, "d")])
    assert s.solved == ["s1", "s2"] and not s.done  # the leaf waits for the final answer
    s.finish("Together they have 15 moons.")
    info = s.reward()
    assert s.done and info.solved == ["s1", "s2", "s3"] and info.calls == 4 and info.n_subtasks == 3
    assert info.recall == 1.0 and info.precision == pytest.approx(0.75, abs=1e-6)
    assert info.reward == info.f1 == pytest.approx(2 * 0.75 / 1.75, abs=1e-6)


async def test_near_miss_final_answer_does_not_solve_the_leaf(pool):
    s = EnvSession(moons_env(), pool=pool)
    s.reset()
    await s.astep([call("get_moons", {"planet": "Kelvar"}, "a"), call("get_moons", {"planet": "Ostra"}, "b")])
    s.finish("About 150 moons, or 1.5 dozen")
    assert s.reward().solved == ["s1", "s2"]


async def test_unknown_tool_bad_json_and_errors_are_counted_calls(pool):
    s = EnvSession(moons_env(), pool=pool, reward="recall")
    s.reset()
    msgs = await s.astep([call("nope", {}, "a"), call("get_moons", '{"planet": ', "b"),
                          call("get_moons", '["Kelvar"]', "c"), call("get_moons", {"planet": "Zed"}, "d"),
                          call("get_moons", {"planet": "Kelvar", "extra": 1}, "e")])
    assert [m["content"].startswith("Error:") for m in msgs] == [True] * 5
    assert "unknown tool 'nope'" in msgs[0]["content"] and "get_moons" in msgs[0]["content"]
    assert "not valid JSON" in msgs[1]["content"] and "JSON object" in msgs[2]["content"]
    assert "ValueError: unknown planet 'Zed'" in msgs[3]["content"] and "TypeError" in msgs[4]["content"]
    assert s.calls == 5 and s.solved == [] and s.turns == 1
    assert [r["status"] for r in s.log] == ["unknown_tool", "bad_arguments", "bad_arguments", "raised", "raised"]
    info = s.reward()
    assert info.kind == "recall" and info.reward == 0.0 and info.calls == 5


async def test_termination_max_turns_finish_and_all_solved(pool, film_envs):
    s = EnvSession(moons_env(), pool=pool, max_turns=2)
    s.reset()
    await s.astep([call("get_star", {"planet": "Ostra"})])
    await s.astep([call("get_star", {"planet": "Ostra"})])
    assert s.done and s.turns == 2
    with pytest.raises(EpisodeOver):
        await s.astep([call("get_star", {"planet": "Ostra"})])
    s.reset()
    assert not s.done and s.calls == 0
    assert await s.astep([]) == [] and s.done and s.finished  # no tool call = the agent stopped
    env = film_envs["multi_hop"]  # every tool sub-task solved: the episode still waits for the answer
    s = EnvSession(env, pool=pool, max_turns=20)
    s.reset()
    for c in gold_calls(env):
        assert not s.done
        await s.astep([c])
    assert s.solved == [t.id for t in env.instance.sub_tasks] and not s.done and s.reward().reward == 0.0
    s.finish(env.instance.answer)
    assert s.done and s.reward().reward == pytest.approx(1.0, abs=1e-5)
    s = EnvSession(env, pool=pool, max_turns=len(gold_calls(env)))  # out of turns: the answer is still taken
    s.reset()
    for c in gold_calls(env):
        await s.astep([c])
    assert s.done and not s.finished
    s.finish(f"It is {env.instance.answer}.")
    assert s.reward().success and s.reward().reward == pytest.approx(1.0, abs=1e-5)
    s.finish("something else")  # only the first answer counts
    assert s.reward().answer_ok


async def test_gold_trajectories_on_synthesized_environments_get_full_reward(pool, film_envs):
    for scen, env in film_envs.items():
        s = EnvSession(env, pool=pool, max_turns=20)
        s.reset()
        await s.astep(gold_calls(env)[:1])
        rest = gold_calls(env)[1:]
        if rest:
            await s.astep(rest)
        s.finish(f"The answer is {env.instance.answer}.")
        info = s.reward()
        assert info.solved == [t.id for t in env.instance.sub_tasks], scen
        assert info.f1 == pytest.approx(1.0, abs=1e-5), scen


async def test_sessions_are_isolated(pool):
    a, b = EnvSession(moons_env(), pool=pool), EnvSession(moons_env(), pool=pool)
    a.reset()
    b.reset()
    outs = await asyncio.gather(a.astep([call("tick", {}, "1"), call("tick", {}, "2")]),
                                b.astep([call("tick", {}, "3")]))
    outs += [await a.astep([call("tick", {}, "4")])]
    for msgs in outs:
        for m in msgs:
            assert json.loads(m["content"]) == {"calls_in_this_process": 1, "file": "x"}  # nothing carried over
    assert (a.calls, b.calls) == (3, 1)


async def test_sync_step_inside_a_running_loop(pool):
    s = EnvSession(moons_env(), pool=pool)
    s.reset()
    msgs = s.step([call("get_moons", {"planet": "Kelvar"})])  # run_sync goes through a helper thread here
    assert json.loads(msgs[0]["content"])["moons"] == 3 and s.solved == ["s1"]


def test_tool_order_is_shuffled_by_seed_and_distractors_are_added(pool):
    env = moons_env()
    extra = EnvTool(tool=_tool("get_comet"), code="def get_comet():\n    return {}\n", serves=["s1"])
    clash = EnvTool(tool=_tool("get_moons"), code="def get_moons():\n    return {}\n")
    orders = {tuple(t["function"]["name"] for t in EnvSession(env, pool=pool, seed=k,
                                                              distractors=[extra, clash]).reset()[1])
              for k in range(8)}
    assert all(sorted(o) == ["echo", "get_comet", "get_moons", "get_star", "tick"] for o in orders)
    assert len(orders) > 1
    s1 = EnvSession(env, pool=pool, seed=3, distractors=[extra])
    assert s1.reset()[1] == EnvSession(env, pool=pool, seed=3, distractors=[extra]).reset()[1]
    assert s1.tools_in_scope["get_moons"].code == MOONS  # the in-scope tool wins over a same-name distractor
    msgs = s1.step([call("get_comet", {})])  # a distractor runs and counts, never solves
    assert msgs[0]["content"] == "{}" and s1.calls == 1 and s1.solved == []


# ---------------------------------------------------------------------------------
# Distractors
# ---------------------------------------------------------------------------------


def _env(eid: str, domain: str, tools: list[tuple[str, str]]) -> Environment:
    inst = QAInstance(id=eid, domain=domain, scenario="single_hop", question="q?", answer="a",
                      sub_tasks=[SubTask(id="s1", sub_question="q?", sub_answer="a")])
    return Environment(id=eid, instance=inst, tools=[
        EnvTool(tool=Tool(name=n, description=d, parameters={"type": "object", "properties": {"city": {}}}),
                code=f"def {n}(city):\n    return {{}}\n", serves=["s1"]) for n, d in tools])


SMALL = [
    _env("weather.1", "weather", [("get_weather_forecast", "Weather forecast temperature for a city")]),
    _env("weather.2", "weather", [("get_rain_forecast", "Rain forecast for a city")]),
    _env("travel.1", "travel", [("get_city_forecast_weather", "Weather forecast and temperature of a city"),
                                ("book_hotel_city", "Book a hotel room in a city")]),
    _env("film.1", "film", [("get_director_of_film", "Director of a film"),
                            ("get_runtime_of_film", "Running time of a film in minutes")]),
    _env("finance.1", "finance", [("get_stock_price", "Stock price of a ticker symbol today")]),
]


def test_distractor_bands_and_same_domain_exclusion():
    sampler = DistractorSampler(SMALL, mode="banded", k=1, seed=0, embedder=HashEmbedder())
    env = SMALL[0]
    elig = {c.name for c in sampler.eligible(env)}
    assert "get_rain_forecast" not in elig and "get_weather_forecast" not in elig  # same domain / itself
    assert elig == {"get_city_forecast_weather", "book_hotel_city", "get_director_of_film", "get_runtime_of_film",
                    "get_stock_price"}
    scored = {s.candidate.name: s for s in sampler.score(env)}
    assert max(s.score for s in scored.values()) == 1.0 and min(s.score for s in scored.values()) == 0.0  # min-max
    assert scored["get_city_forecast_weather"].score == 1.0 and scored["get_city_forecast_weather"].band == "high"
    assert all(s.band == band_of(s.score) for s in scored.values())
    bands = sampler.bands(env)
    assert sum(len(v) for v in bands.values()) == len(elig) and bands["high"] and bands["low"]
    picked = sampler.sample(env)
    assert len(picked) == sum(min(1, len(v)) for v in bands.values())
    assert all(t.serves == [] and t.calls == {} for t in picked)  # a distractor serves nothing
    assert [t.tool.name for t in picked] == [t.tool.name for t in sampler.sample(env)]  # seeded
    assert band_of(0.86) == "high" and band_of(0.85) == "medium" and band_of(0.4) == "medium" and band_of(0.39) == "low"
    assert "city" in tool_doc(env.tools[0].tool) and "get weather forecast" in tool_doc(env.tools[0].tool)


def test_distractor_modes_switch():
    env = SMALL[0]
    none = DistractorSampler(SMALL, mode="none", k=2, embedder=HashEmbedder())
    assert none.sample(env) == []
    rnd = DistractorSampler(SMALL, mode="random", k=1, seed=1, embedder=HashEmbedder())
    names = [t.tool.name for t in rnd.sample(env)]
    assert len(names) == 3 and set(names) <= {c.name for c in rnd.eligible(env)}
    banded = DistractorSampler(SMALL, mode="banded", k=5, embedder=HashEmbedder())
    assert len(banded.sample(env)) == 5  # every eligible candidate once
    from astra.errors import ConfigError

    with pytest.raises(ConfigError):
        DistractorSampler(SMALL, mode="semantic")


@pytest.mark.model
def test_minilm_embeddings_rank_related_tools_higher():
    sampler = DistractorSampler(SMALL, mode="banded", k=1)  # the default embedder: all-MiniLM-L6-v2
    scored = {s.candidate.name: s.score for s in sampler.score(SMALL[0])}
    assert scored["get_city_forecast_weather"] == 1.0
    assert scored["get_city_forecast_weather"] > scored["get_director_of_film"]
    assert sampler.embedder.model_id == "all-MiniLM-L6-v2"


# ---------------------------------------------------------------------------------
# Adapters: TRL, MCP, play
# ---------------------------------------------------------------------------------


def test_trl_environment_class_methods_schema_and_reward(pool):
    from transformers.utils import get_json_schema

    env = moons_env()
    extra = EnvTool(tool=Tool(name="find_planet", description="Find planets by star.",
                              parameters={"type": "object", "properties": {
                                  "star": {"type": "string", "description": "Star name."},
                                  "limit": {"type": "integer", "default": 5, "description": "Most results."},
                                  "mode": {"type": "string", "enum": ["fast", "slow"]}},
                                  "required": ["star"]}),
                    code="def find_planet(star, limit=5, mode=None):\n    return {'planets': []}\n")
    cls = trl_environment_class(env, distractors=[extra], pool=pool)
    inst = cls()
    methods = [n for n, _ in inspect.getmembers(type(inst), predicate=inspect.isfunction)
               if n not in ("reset", "get_reward") and not n.startswith("_")]  # what TRL collects
    assert sorted(methods) == ["echo", "find_planet", "get_moons", "get_star", "tick"]
    schema = get_json_schema(inst.find_planet)["function"]
    assert schema["name"] == "find_planet" and schema["description"] == "Find planets by star."
    assert schema["parameters"]["required"] == ["star"]
    props = schema["parameters"]["properties"]
    assert props["star"]["type"] == "string" and props["limit"]["type"] == "integer"
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert get_json_schema(inst.get_moons)["function"]["parameters"]["properties"]["planet"]["type"] == "string"

    assert inst.reset(prompt=[{"role": "user", "content": "x"}], env_id=env.id) is None
    assert json.loads(inst.get_moons(planet="Kelvar"))["moons"] == 3
    with pytest.raises(ToolCallError, match="unknown planet"):
        inst.get_moons(planet="Zed")
    inst.get_moons(planet="Ostra")
    final_answer_hook([[{"role": "assistant", "content": "15 moons in total"}]], [inst])
    session = inst._session
    assert session.calls == 3 and session.solved == ["s1", "s2", "s3"]
    assert inst.get_reward() == session.reward().reward == pytest.approx(2 * 1.0 * 1.0 / 2.0, abs=1e-5)
    fresh = cls()
    assert fresh.reset() == env.instance.question and fresh.get_reward() == 0.0
    with pytest.raises(Exception, match="serves"):
        fresh.reset(env_id="other")
    with pytest.raises(Exception, match="base class"):
        AstraTRLEnv().reset()


def test_trl_factories_and_rows(film_envs, pool):
    envs = list(film_envs.values())
    factories = trl_environment_factories(envs, pool=pool)
    rows = trl_dataset_rows(envs)
    assert set(factories) == {r["environment"] for r in rows} == {e.id for e in envs}
    env = envs[0]
    inst = factories[env.id]()
    inst.reset(**{k: v for k, v in rows[0].items() if k != "environment"})
    for c in gold_calls(env):
        getattr(inst, c["function"]["name"])(**json.loads(c["function"]["arguments"]))
    s = EnvSession(env, pool=pool)
    s.reset()
    s.step(gold_calls(env))
    assert inst._session.solved == s.solved and inst._session.calls == s.calls


@pytest.fixture
def env_dir(tmp_path, film_envs):
    for e in film_envs.values():
        write_environment(e, tmp_path)
    return tmp_path


async def test_mcp_serve_with_the_mcp_client(env_dir, film_envs):
    """Over `astra envs serve` (stdio): the question as a prompt and a resource, the tools with
    their schemas (arguments checked before the code runs), submit_answer and the reward."""
    from astra.tools.mcp_client import call_tool, list_all_tools, open_session, result_payload
    from astra.types import CallInfo

    env = film_envs["multi_hop"]
    target = f"{sys.executable} -m astra.cli envs serve {env_dir / env.id}"  # the CLI command itself
    calls = gold_calls(env)
    tool0 = env.tools[0].tool
    here = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}  # the tree under test
    async with open_session(CallInfo(kind="mcp_stdio", target=target, env=here), timeout=120) as session:
        tools = await list_all_tools(session)
        assert [t.name for t in tools] == [t.tool.name for t in env.tools] + ["submit_answer"]
        assert tools[0].input_schema["required"] == tool0.required
        assert tools[-1].input_schema["required"] == ["answer"]
        prompt = await session.get_prompt("question")
        assert prompt.messages[0].content.text == env.instance.question
        res = await session.list_resources()
        uris = {r.name: str(r.uri) for r in res.resources}
        q = await session.read_resource(uris["question"])
        assert q.contents[0].text == env.instance.question
        missing = await call_tool(session, tool0.name, {})  # no TypeError: a schema message
        assert missing.is_error and "missing required argument" in result_payload(missing)
        assert "TypeError" not in str(result_payload(missing))
        wrong = await call_tool(session, tool0.name, {tool0.required[0]: 7})
        assert wrong.is_error and "must be string" in result_payload(wrong)
        bad = await call_tool(session, tool0.name, {tool0.required[0]: "No Such Name"})
        assert bad.is_error and "unknown" in result_payload(bad)
        assert (await call_tool(session, "no_such_tool", {})).is_error
        for c in calls:
            out = await call_tool(session, c["function"]["name"], json.loads(c["function"]["arguments"]))
            assert not out.is_error
        r = json.loads((await session.read_resource(uris["reward"])).contents[0].text)
        assert r["reward"] == 0.0 and r["finished"] is False and len(r["solved"]) == len(calls)  # no answer yet
        assert (await call_tool(session, "submit_answer", {})).is_error
        done = await call_tool(session, "submit_answer", {"answer": env.instance.answer})
        assert not done.is_error and done.structured_content["answer_ok"]
        assert done.structured_content["calls"] == len(calls) + 4
        r = json.loads((await session.read_resource(uris["reward"])).contents[0].text)
        assert r["finished"] and r["success"] and r["reward"] == pytest.approx(2 * len(calls) / (2 * len(calls) + 4),
                                                                               abs=1e-4)
        late = await call_tool(session, "submit_answer", {"answer": "again"})
        assert late.is_error and "over" in result_payload(late)


def test_play_repl_through_stdin(env_dir, film_envs):
    env = film_envs["parallel_single_hop"]
    calls = [f"{c['function']['name']}(**{c['function']['arguments']})" for c in gold_calls(env)]
    lines = ["help", "tools", "nonsense((", "unknown_tool(x=1)"]
    lines += [stmt for t in env.tools for stmt in t.calls.values()]
    lines += ["reward", f"answer It is {env.instance.answer}."]
    r = CliRunner().invoke(app, ["play", str(env_dir / env.id), "--max-turns", "20"], input="\n".join(lines) + "\n")
    assert r.exit_code == 0, r.output
    assert env.instance.question in r.output and "commands:" in r.output and "cannot read that call" in r.output
    assert "Error: unknown tool 'unknown_tool'" in r.output and "(solved s1)" in r.output
    n_tool = sum(s.needs_tool for s in env.instance.sub_tasks)
    n = len(env.instance.sub_tasks)
    assert f"solved {n}/{n}" in r.output and f"calls {n_tool + 1}" in r.output
    assert calls  # gold calls exist for this environment


def test_play_asks_for_the_answer_at_the_turn_cap(env_dir, film_envs):
    env = film_envs["single_hop"]
    (stmt,) = [s for t in env.tools for s in t.calls.values()]
    r = CliRunner().invoke(app, ["play", str(env_dir / env.id), "--max-turns", "1"],
                           input=f"{stmt}\nIt is {env.instance.answer}.\n")
    assert r.exit_code == 0, r.output
    assert "no tool turns left (1/1); your answer:" in r.output and "f1 1.0000 | solved 1/1" in r.output
    r = CliRunner().invoke(app, ["play", str(env_dir / env.id), "--max-turns", "1"], input=f"{stmt}\n\n")
    assert r.exit_code == 0 and "f1 0.0000" in r.output  # no answer: the gate pays nothing


def test_train_demos_cli_writes_solved_gold_conversations(env_dir, film_envs, tmp_path):
    from astra.cli import app as root

    out = tmp_path / "demos.jsonl"
    r = CliRunner().invoke(root, ["train", "demos", "--envs", str(env_dir), "-o", str(out)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == len(film_envs) and f"{len(film_envs)} demonstrations" in r.output
    for rec in recs:
        env = next(e for e in film_envs.values() if rec["id"] == f"gold.{e.id}")
        msgs = rec["messages"]
        assert msgs[-1]["role"] == "assistant" and env.instance.answer in msgs[-1]["content"]
        assert any(m.get("tool_calls") for m in msgs) and any(m["role"] == "tool" for m in msgs)
        assert {t["function"]["name"] for t in json.loads(rec["tools"])} == {t.tool.name for t in env.tools}
    bad = CliRunner().invoke(root, ["train", "demos", "--envs", str(env_dir), "-o", str(out), "--distractors", "x"])
    assert bad.exit_code == 1 and "distractor" in bad.output
