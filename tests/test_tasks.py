"""Task generation, augmentation, scoring and near-duplicate removal (ASTRA §1.3).

The LLM paths are driven by ``ScriptedChatProvider``, the scripted chat-API test double
(no model runs here); the offline paths run on the bundled sample servers.
"""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from astra.io import read_records, write_jsonl
from astra.llm import LLMClient, ResponseCache
from astra.llm.testing import ScriptedChatProvider, last_user_text
from astra.pipeline import read_outputs, run_stage
from astra.tasks import (
    Plan,
    Thresholds,
    augment_task,
    execute_plan,
    load_personas,
    near_duplicates,
    offline_scores,
    select_tasks,
)
from astra.tasks.augment import LLMAugmenter, OfflineAugmenter
from astra.tasks.cli import app
from astra.tasks.generate import LLMGenerator, OfflineGenerator, default_backend
from astra.tasks.plan import resolve_steps
from astra.tasks.stages import (
    AugmentStage,
    GenerateStage,
    ScoreStage,
    generation_requests,
    judged_path,
    score_tasks,
)
from astra.tasks.text import is_how_to, named_tools, value_mentioned
from astra.tools.ingest import ingest
from astra.tools.pyfunc import make_python_executor
from astra.types import Chain, Task, ToolServer

CHAINS = {
    "shop": [["search_products", "get_product", "add_to_cart"], ["search_products", "check_stock"],
             ["list_orders", "get_order"]],
    "weather": [["geocode_city", "get_current_weather"], ["geocode_city", "get_forecast"],
                ["geocode_city", "get_air_quality"]],
    "bank": [["list_accounts", "get_balance"], ["list_accounts", "list_transactions"],
             ["list_accounts", "transfer_funds"]],
    "travel": [["search_flights", "book_flight"], ["search_hotels", "book_hotel"],
               ["search_flights", "get_flight", "search_hotels"]],
    "files": [["list_dir", "read_file"], ["search_files", "read_file"]],
    "helpdesk": [["find_customer", "create_ticket"], ["list_tickets", "get_ticket", "add_comment"]],
}


@pytest.fixture(scope="module")
def servers() -> dict[str, ToolServer]:
    return {s.name: s for s in ingest(["sample"]).servers}


@pytest.fixture(scope="module")
def generator() -> OfflineGenerator:
    return OfflineGenerator(seed=0)


def _replay(server: ToolServer, task: Task) -> list:
    """Execute the task's plan with a brand-new executor (what a teacher would do)."""
    return execute_plan(task.arguments, make_python_executor(server.call.target))


def _user_values(task: Task) -> list:
    return [v for s in task.arguments["steps"] for v in s["user_args"].values() if not isinstance(v, bool)]


# ---------------------------------------------------------------------------------
# Offline generation
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("server_name,chain", [(s, c) for s, cs in CHAINS.items() for c in cs],
                         ids=lambda x: ">".join(x) if isinstance(x, list) else x)
def test_offline_chain_tasks_are_natural_and_solvable(servers, generator, server_name, chain):
    server = servers[server_name]
    tasks, rejections = generator.for_chain(server, Chain(server=server_name, tools=chain), n=2)
    assert tasks, rejections
    tool_names = [t.name for t in server.tools]
    for task in tasks:
        assert task.target_tools == chain and task.chain == chain and task.mode == "chain"
        assert task.meta["dry_run"] is True and task.meta["generator"] == "offline"
        assert not named_tools(task.query, tool_names), task.query
        assert not is_how_to(task.query)
        for v in _user_values(task):
            assert value_mentioned(v, task.query), (v, task.query)
        for m in task.arguments["mentions"]:
            assert value_mentioned(m, task.query)
        results = _replay(server, task)  # raises PlanError if any step fails
        assert len(results) == len(chain)


def test_offline_tasks_state_user_values_and_derive_the_rest(servers, generator):
    tasks, _ = generator.for_chain(servers["weather"], Chain(server="weather",
                                                             tools=["geocode_city", "get_current_weather"]), n=2)
    plan = Plan.from_arguments(tasks[0].arguments)
    assert plan.format == "astra.plan/v1"
    city = plan.steps[0].user_args["city"]
    assert city in tasks[0].query
    assert set(plan.steps[1].derived_args) >= {"latitude", "longitude"}
    assert plan.steps[1].derived_args["latitude"].model_dump() == {"step": 0, "path": ["latitude"]}
    shop, _ = generator.for_chain(servers["shop"], Chain(server="shop", tools=CHAINS["shop"][0]), n=1)
    steps = shop[0].arguments["steps"]
    assert "query" in steps[0]["user_args"]  # a search needs something to search for
    assert steps[1]["derived_args"]["product_id"]["path"] == [0, "product_id"]  # first item of the list


def test_generation_is_deterministic(servers):
    chain = Chain(server="travel", tools=["search_flights", "book_flight"])
    a, _ = OfflineGenerator(seed=3).for_chain(servers["travel"], chain, n=2)
    b, _ = OfflineGenerator(seed=3).for_chain(servers["travel"], chain, n=2)
    assert [t.model_dump() for t in a] == [t.model_dump() for t in b]
    assert len({t.id for t in a}) == 2


def test_server_mode_picks_one_to_three_tools(servers, generator):
    ks = set()
    for name, server in servers.items():
        tasks, _ = generator.for_server(server, n=3)
        assert tasks, name
        for t in tasks:
            assert 1 <= len(t.target_tools) <= 3 and t.mode == "server" and t.chain is None
            assert set(t.target_tools) <= {x.name for x in server.tools}
            assert not named_tools(t.query, [x.name for x in server.tools])
            ks.add(len(t.target_tools))
            if server.call.kind == "python":
                _replay(server, t)
    assert ks == {1, 2, 3}


def test_doc_only_server_tasks_are_marked_not_dry_run(servers, generator):
    recipes = servers["recipes"]
    assert recipes.call.kind == "doc_only"
    tasks, _ = generator.for_chain(recipes, Chain(server="recipes", tools=["search_recipes", "get_recipe"]), n=2)
    assert tasks and all(t.meta["dry_run"] is False for t in tasks)
    assert all(value_mentioned(v, t.query) for t in tasks for v in _user_values(t))
    # a list parameter filled from every item of an earlier list
    tasks, _ = generator.for_chain(recipes, Chain(server="recipes", tools=["search_recipes", "create_shopping_list"]))
    assert tasks[0].arguments["steps"][1]["derived_args"]["recipe_ids"]["path"] == ["*", "recipe_id"]
    server_tasks, _ = generator.for_server(recipes, n=2)
    assert server_tasks and all(t.meta["dry_run"] is False for t in server_tasks)
    # with the dry run turned off nothing is executed, even for a Python server
    unverified, _ = OfflineGenerator(dry_run=False).for_chain(servers["shop"], Chain(server="shop",
                                                                                      tools=CHAINS["shop"][0]))
    assert unverified and all(t.meta["dry_run"] is False and "final_result" not in t.meta for t in unverified)


def test_unknown_chain_tool_is_hallucinated(servers, generator):
    tasks, rej = generator.for_chain(servers["shop"], Chain(server="shop", tools=["search_products", "teleport"]))
    assert not tasks and rej[0].reason == "hallucinated_tool"


def test_graph_resolution_is_used_when_present(servers):
    """``Chain.checks["args"]`` from the graph's verification decides what is derived."""
    checks = {"args": {"ok": True, "steps": [
        {"tool": "search_products", "args": {}},
        {"tool": "add_to_cart", "args": {"product_id": {"source": "step", "step": 0, "tool": "search_products",
                                                        "field": "[].product_id", "score": 1.0}}}]}}
    steps = resolve_steps(servers["shop"], ["search_products", "add_to_cart"], checks)
    assert steps[1].derived["product_id"].path == [0, "product_id"]


def test_default_backend_rule():
    assert default_backend(None, None) == "offline"
    assert default_backend(None, "embedded") == "offline"
    assert default_backend(None, "offline") == "offline"
    assert default_backend(None, "openai:gpt-4o-mini") == "llm"
    assert default_backend(None, "embedded:/models/qwen") == "llm"
    assert default_backend("llm", "embedded") == "llm"


# ---------------------------------------------------------------------------------
# LLM generation with the scripted chat-API test double
# ---------------------------------------------------------------------------------


def _prompt(request) -> str:
    """The prompt of a request (its first user message; later ones are repair rounds)."""
    return next(m["content"] for m in request.messages if m.get("role") == "user")


def scripted_client(script, tmp_path=None) -> tuple[LLMClient, ScriptedChatProvider]:
    provider = ScriptedChatProvider(script)
    cache = ResponseCache(tmp_path / "llm-cache.sqlite") if tmp_path is not None else None
    return LLMClient(provider, cache=cache, max_retries=0, backoff_initial=0.0, backoff_max=0.0), provider


WEATHER_CHAIN = Chain(server="weather", tools=["geocode_city", "get_current_weather"])


def _weather_reply(query="I'm heading out soon: what's the weather like in Tokyo right now?", city="Tokyo",
                   tools=("geocode_city", "get_current_weather")) -> dict:
    return {"query": query, "target_tools": list(tools), "language": "en",
            "steps": [{"tool": "geocode_city", "arguments": {"city": city}},
                      {"tool": "get_current_weather", "arguments": {}}]}


async def _llm_chain(servers, script, n=1):
    client, provider = scripted_client(script)
    gen = LLMGenerator(client, OfflineGenerator(seed=0))
    tasks, rej = await gen.for_chain(servers["weather"], WEATHER_CHAIN, n=n)
    return tasks, rej, provider


async def test_scripted_llm_generation_valid(servers):
    tasks, rej, provider = await _llm_chain(servers, [_weather_reply()])
    assert not rej and len(tasks) == 1 and provider.calls == 1
    t = tasks[0]
    assert t.meta["generator"] == "llm" and t.target_tools == WEATHER_CHAIN.tools and t.language == "en"
    assert t.arguments["steps"][0]["user_args"] == {"city": "Tokyo"}
    assert "latitude" in t.arguments["steps"][1]["derived_args"]
    _replay(servers["weather"], t)
    prompt = last_user_text(provider.requests[0])
    assert "geocode_city" in prompt and "Tokyo" in prompt  # the prompt offers values from the data


async def test_scripted_llm_generation_malformed_json_is_a_rejection(servers):
    tasks, rej, provider = await _llm_chain(servers, ["not json", "{broken", "still not json"])
    assert not tasks and rej[0].reason == "generation_failed" and provider.calls == 3


@pytest.mark.parametrize("reply,reason", [
    (_weather_reply(tools=("geocode_city", "get_weather_now")), "hallucinated_tool"),
    (_weather_reply(tools=("get_current_weather", "geocode_city")), "chain_mismatch"),
    (_weather_reply(query="Call geocode_city for Tokyo and then get the current weather."), "names_tool"),
    (_weather_reply(query="How do I find the current weather in Tokyo?"), "not_execution_request"),
    (_weather_reply(query="What's the weather like where I am right now?"), "missing_value"),
    (_weather_reply(query="What's the weather like in Paris right now?", city="Paris"), "unsolvable"),
], ids=["hallucinated", "mismatch", "names_tool", "how_to", "missing_value", "unsolvable"])
async def test_scripted_llm_generation_rejections(servers, reply, reason):
    tasks, rej, _ = await _llm_chain(servers, [reply])
    assert not tasks and rej[0].reason == reason, rej


async def test_scripted_llm_server_mode(servers):
    ok = {"query": "Show me the balance of account ACC-1002.", "target_tools": ["get_balance"], "language": "en",
          "steps": [{"tool": "get_balance", "arguments": {"account_id": "ACC-1002"}}]}
    too_many = {**ok, "target_tools": ["list_accounts", "get_balance", "get_account", "list_transactions"]}
    ghost = {**ok, "target_tools": ["get_balance", "wire_money_abroad"]}
    client, _ = scripted_client([ok, too_many, ghost])
    tasks, rej = await LLMGenerator(client, OfflineGenerator()).for_server(servers["bank"], n=3)
    assert [t.target_tools for t in tasks] == [["get_balance"]] and tasks[0].mode == "server"
    assert [r.reason for r in rej] == ["bad_tool_count", "hallucinated_tool"]


# ---------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------


def test_personas_bundled_set():
    personas = load_personas()
    assert len(personas) >= 50
    assert len({p.id for p in personas}) == len(personas)
    assert {p.expertise for p in personas} == {"novice", "intermediate", "expert"}
    assert {p.style for p in personas} == {"concise", "verbose", "casual", "formal"}
    assert all(p.language == "en" and p.description and p.occupation for p in personas)


@pytest.fixture(scope="module")
def shop_task(servers, generator) -> Task:
    tasks, _ = generator.for_chain(servers["shop"], Chain(server="shop", tools=CHAINS["shop"][0]), n=1)
    return tasks[0]


async def test_offline_augmentation_keeps_original_and_adds_variants(servers, shop_task):
    out, rej = await augment_task(shop_task, ["diversity", "complexity", "persona"], 2,
                                  offline=OfflineAugmenter(seed=0), llm=None,
                                  tool_names=[t.name for t in servers["shop"].tools])
    assert out[0] == shop_task and out[0].augmentation is None
    variants = out[1:]
    assert {v.augmentation for v in variants} == {"diversity", "complexity", "persona"}
    assert len(variants) + len(rej) == 6
    for v in variants:
        assert v.parent_id == shop_task.id and v.id.startswith(shop_task.id + ".")
        assert v.target_tools == shop_task.target_tools and v.chain == shop_task.chain
        assert v.arguments == shop_task.arguments and v.language == shop_task.language
        assert v.query != shop_task.query
        assert all(value_mentioned(m, v.query) for m in shop_task.arguments["mentions"])
        assert (v.persona is not None) == (v.augmentation == "persona")
    # deterministic
    again, _ = await augment_task(shop_task, ["diversity", "complexity", "persona"], 2,
                                  offline=OfflineAugmenter(seed=0), llm=None)
    assert [v.query for v in again] == [v.query for v in out]


async def test_scripted_llm_augmentation_checks_variants(shop_task):
    values = " and ".join(f'"{m}"' for m in shop_task.arguments["mentions"])
    good = {"query": f"My old one broke. Look up {values} in the catalogue, check the details of the best "
                     f"match and put it in my cart.", "language": "en"}
    replies = {
        "diversity": [good, {"query": "Find something nice and put it in my cart, please.", "language": "en"}],
        "complexity": [{"query": f"Use search_products for {values}, then add the top one to my cart.",
                        "language": "en"},
                       {"query": f"Busca {values} en el catálogo y añade el primero al carrito, por favor.",
                        "language": "es"}],
        "persona": ["{not json", "{not json", "{not json", good],
    }
    order = {"diversity": 0, "complexity": 0, "persona": 0}

    def script(request):
        text = _prompt(request)
        mode = "persona" if "Persona:" in text else "complexity" if "more demanding" in text else "diversity"
        item = replies[mode][order[mode]]
        order[mode] += 1
        return item

    client, _ = scripted_client(script)
    out, rej = await augment_task(shop_task, ["diversity", "complexity", "persona"], 2, offline=None,
                                  llm=LLMAugmenter(client, seed=0))
    reasons = sorted(r.reason for r in rej)
    assert reasons == ["augmentation_failed", "language_changed", "lost_value", "names_tool", "unchanged"]
    assert [v.augmentation for v in out[1:]] == ["diversity"]
    assert out[1].meta["augmenter"] == "llm"


# ---------------------------------------------------------------------------------
# Scoring and near duplicates
# ---------------------------------------------------------------------------------


def test_offline_scores_are_heuristics_with_reasons(shop_task):
    s = offline_scores(shop_task)
    assert s["scorer"] == "offline" and set(s["reasons"]) >= {"quality", "realism", "necessity"}
    assert s["quality"] >= 4 and s["necessity"] >= 4
    bad = shop_task.model_copy(update={"query": "How do I use search_products?"})
    b = offline_scores(bad, ["search_products"])
    assert b["quality"] <= 2 and b["necessity"] < s["necessity"]
    assert not Thresholds().failures(s) and Thresholds().failures(b)


def _task(i: str, query: str, aug: str | None = None, score: int = 4) -> Task:
    return Task(id=i, server="shop", query=query, target_tools=["view_cart"], augmentation=aug,
                scores={"quality": score, "realism": score, "necessity": score})


def test_near_duplicates_dropped_distinct_kept():
    tasks = [
        _task("a", "Search the catalogue for wireless earbuds, then add the first one to my cart."),
        _task("b", "search the catalogue for wireless earbuds -- then add the first one to my cart!", aug="diversity"),
        _task("c", "Find a cast iron skillet under $50 and tell me whether it is in stock."),
        _task("d", "List my accounts and show me the balance of the savings account."),
    ]
    dups = near_duplicates(tasks, 0.9)
    assert set(dups) == {"b"} and dups["b"][0] == "a"
    shuffled = tasks[:]
    random.Random(1).shuffle(shuffled)
    assert near_duplicates(shuffled, 0.9) == dups  # independent of order
    decisions = select_tasks(tasks + [_task("e", "Show me the cart.", score=2)], Thresholds(), 0.9)
    assert decisions["b"].reason == "near_duplicate" and decisions["e"].reason == "low_quality"
    assert [k for k, v in decisions.items() if v is None] == ["a", "c", "d"]


SCORE_OK = {"quality": {"score": 4, "reason": "clear"}, "realism": {"score": 5, "reason": "plausible"},
            "necessity": {"score": 5, "reason": "needs data"}, "difficulty": {"score": 3, "reason": "two tools"},
            "uniqueness": {"score": 4, "reason": "clear order"}}


def test_scripted_llm_scoring_failures_and_thresholds(tmp_path, shop_task):
    low = {**SCORE_OK, "quality": {"score": 2, "reason": "vague"}}
    t1 = shop_task
    t2 = shop_task.model_copy(update={"id": "t-second", "query": "Find the cheapest desk lamp and add it to my cart."})
    t3 = shop_task.model_copy(update={"id": "t-third", "query": "Search for a skillet and tell me if it is in stock."})
    replies = {t1.query: [SCORE_OK], t2.query: ["no idea", "{bad", "really no idea"],
               t3.query: [{**SCORE_OK, "quality": {"score": 9, "reason": "out of range"}}, low]}

    def script(request):
        text = _prompt(request)
        for q, items in replies.items():
            if q in text:
                return items.pop(0)
        raise AssertionError("unexpected request")

    client, _ = scripted_client(script)
    out = tmp_path / "scored.jsonl"
    m_score, m_sel = score_tasks([t1, t2, t3], out, scorer="llm", client=client, progress=False,
                                 thresholds=Thresholds(quality=3, realism=3, necessity=3))
    assert m_score.rejections_by_reason == {"score_unusable": 1} and m_score.failed == 0
    judged = list(read_records(judged_path(out), Task))
    assert {t.id for t in judged} == {t1.id, "t-third"}
    assert m_sel.rejections_by_reason == {"low_quality": 1}
    kept = list(read_outputs(out, Task))
    assert [t.id for t in kept] == [t1.id] and kept[0].scores["scorer"] == "llm"
    assert kept[0].scores["reasons"]["realism"] == "plausible"


# ---------------------------------------------------------------------------------
# Stages end to end
# ---------------------------------------------------------------------------------


def _sample_chains() -> list[Chain]:
    return [Chain(server=s, tools=c) for s, cs in CHAINS.items() for c in cs[:2]] + [
        Chain(server="recipes", tools=["search_recipes", "get_recipe"]),
        Chain(server="nowhere", tools=["a", "b"])]


def test_offline_stages_end_to_end_and_rerun(tmp_path, servers):
    srv = list(servers.values())
    requests = generation_requests(_sample_chains(), srv, ["chain", "server"])
    gen_out, aug_out, sc_out = tmp_path / "tasks.jsonl", tmp_path / "aug.jsonl", tmp_path / "scored.jsonl"
    m = run_stage(GenerateStage(srv, per_chain=2, per_server=3), requests, gen_out, progress=False)
    assert m.failed == 0 and m.rejections_by_reason.get("unknown_server") == 1
    tasks = list(read_outputs(gen_out, Task))
    assert len(tasks) >= 30 and {t.mode for t in tasks} == {"chain", "server"}
    assert len({t.id for t in tasks}) == len(tasks)
    m = run_stage(AugmentStage(per_mode=1), gen_out, aug_out, progress=False)
    aug = list(read_outputs(aug_out, Task))
    assert len([t for t in aug if t.augmentation is None]) == len(tasks) and len(aug) > len(tasks)
    m1, m2 = score_tasks(aug_out, sc_out, progress=False)
    kept = list(read_outputs(sc_out, Task))
    assert 0 < len(kept) <= len(aug) and m2.outputs == len(kept)
    first = [p.read_text() for p in (gen_out, aug_out, sc_out)]
    # rerun: everything is already in the ledgers; same records
    run_stage(GenerateStage(srv, per_chain=2, per_server=3), requests, gen_out, progress=False)
    run_stage(AugmentStage(per_mode=1), gen_out, aug_out, progress=False)
    score_tasks(aug_out, sc_out, progress=False)
    assert [p.read_text() for p in (gen_out, aug_out, sc_out)] == first
    # a fresh run from scratch gives the same records too
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run_stage(GenerateStage(srv, per_chain=2, per_server=3), requests, fresh / "tasks.jsonl", progress=False)
    assert (fresh / "tasks.jsonl").read_text() == first[0]
    # changing the thresholds re-selects from the judged set without rescoring
    _, m3 = score_tasks(aug_out, sc_out, thresholds=Thresholds(quality=5, realism=5, necessity=5),
                        progress=False)
    assert m3.outputs <= len(kept)


def test_scripted_llm_stages_rerun_is_zero_call(tmp_path, servers):
    """Generation and scoring through the runner with the scripted chat-API test double and a
    response cache: a rerun (even from scratch, on the same cache) makes no provider call."""

    def script(request):
        text = _prompt(request)
        if "You judge synthetic user requests" in text:
            return SCORE_OK
        return _weather_reply()

    srv = [servers["weather"]]
    requests = generation_requests([WEATHER_CHAIN], srv, ["chain"])

    def run_all(client, root):
        root.mkdir(exist_ok=True)
        run_stage(GenerateStage(srv, generator="llm", per_chain=1, client=client), requests,
                  root / "tasks.jsonl", progress=False)
        score_tasks(root / "tasks.jsonl", root / "scored.jsonl", scorer="llm", client=client, progress=False)
        return [(root / n).read_text() for n in ("tasks.jsonl", "scored.jsonl")]

    client, provider = scripted_client(script, tmp_path)
    first = run_all(client, tmp_path / "a")
    assert provider.calls == 2 and first[1].strip()
    client2, provider2 = scripted_client([], tmp_path)  # an exhausted script: any call would fail
    assert run_all(client2, tmp_path / "a") == first  # resume: nothing to do
    assert run_all(client2, tmp_path / "b") == first  # from scratch: all from the cache
    assert provider2.calls == 0


def test_score_stage_rejects_unparseable_judgement(servers, shop_task):
    client, _ = scripted_client(["nope", "nope", "nope"])
    stage = ScoreStage(scorer="llm", client=client)
    stage.setup()
    import asyncio

    result = asyncio.run(stage.process(shop_task))
    assert not result.outputs and result.rejections[0].reason == "score_unusable"


# ---------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------


def test_cli_generate_augment_score(tmp_path, servers, monkeypatch):
    monkeypatch.delenv("ASTRA_LLM", raising=False)  # the default backends follow the embedded default
    tools = tmp_path / "tools.jsonl"
    write_jsonl(tools, list(servers.values()))
    chains = tmp_path / "verified.jsonl"
    write_jsonl(chains, _sample_chains()[:6])
    runner = CliRunner()
    cmds = [
        ["generate", str(chains), "-o", str(tmp_path / "tasks.jsonl"), "--mode", "chain,server", "--llm", "offline"],
        ["augment", str(tmp_path / "tasks.jsonl"), "-o", str(tmp_path / "aug.jsonl"),
         "--modes", "diversity,persona", "--per-mode", "1"],
        ["score", str(tmp_path / "aug.jsonl"), "-o", str(tmp_path / "scored.jsonl"), "--min-quality", "3",
         "--min-realism", "3", "--min-necessity", "3", "--dedup-threshold", "0.9"],
    ]
    for cmd in cmds:  # tools.jsonl next to the chains file is found without --tools
        r = runner.invoke(app, cmd)
        assert r.exit_code == 0, r.output
    scored = (tmp_path / "scored.jsonl").read_text()
    assert scored.strip()
    first = json.loads(scored.splitlines()[0])
    assert set(first["scores"]) >= {"quality", "realism", "necessity", "difficulty", "uniqueness"}
    for cmd in cmds:
        assert runner.invoke(app, cmd).exit_code == 0
    assert (tmp_path / "scored.jsonl").read_text() == scored
    r = runner.invoke(app, ["score", str(tmp_path / "aug.jsonl"), "-o", str(tmp_path / "x.jsonl"),
                            "--min-quality", "9"])
    assert r.exit_code == 1 and "--min-quality" in r.output
    r = runner.invoke(app, ["generate", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "t.jsonl")])
    assert r.exit_code == 1
