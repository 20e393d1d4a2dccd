"""Tool-call graphs, random-walk chains and chain verification (ASTRA §1.2).

The LLM-based parts (proposals, vote, back-translation) are driven by
:class:`astra.llm.testing.ScriptedChatProvider`, a scripted chat-API test double -- no model
runs here.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest
from typer.testing import CliRunner

from astra.graph import (
    BuildGraphStage,
    ChainsStage,
    ToolGraph,
    VerifyChainsStage,
    build_graph,
    dataflow_edges,
    from_networkx,
    load_graphs,
    load_networkx,
    output_fields,
    propose_chains,
    random_walks,
    resolve_args,
    to_networkx,
    vote_check,
)
from astra.graph.cli import app
from astra.graph.verify import backtranslate_check, compare_chains, parse_checks
from astra.io import write_jsonl
from astra.llm import LLMClient, ResponseCache
from astra.llm.testing import ScriptedChatProvider
from astra.llm.types import ChatRequest
from astra.pipeline import load_manifest, read_outputs, run_stage
from astra.tools.ingest import ingest
from astra.types import Chain, Tool, ToolServer

FIXTURES = Path(__file__).parent / "fixtures" / "graph"
BFCL = FIXTURES / "bfcl_style_servers.jsonl"


@pytest.fixture(scope="module")
def sample() -> dict[str, ToolServer]:
    return {s.name: s for s in ingest(["sample"]).servers}


@pytest.fixture(scope="module")
def sample_edges(sample) -> dict[str, dict[tuple[str, str], list[dict]]]:
    return {name: {(e.source, e.target): e.bindings for e in dataflow_edges(s)} for name, s in sample.items()}


def _binding(edges, src, dst, param):
    return next(b for b in edges[(src, dst)] if b["to_param"] == param)


# ---------------------------------------------------------------------------------
# data flow
# ---------------------------------------------------------------------------------


def test_dataflow_edges_on_sample(sample_edges):
    shop, weather, travel, bank = (sample_edges[k] for k in ("shop", "weather", "travel", "bank"))
    for dst in ("get_product", "add_to_cart", "check_stock"):
        b = _binding(shop, "search_products", dst, "product_id")
        assert b["from_field"] == "[].product_id" and b["score"] == 1.0
    assert _binding(shop, "checkout", "get_order", "order_id")["from_field"] == "order_id"
    assert _binding(shop, "list_orders", "cancel_order", "order_id")["from_field"] == "[].order_id"
    assert {b["to_param"] for b in weather[("geocode_city", "get_current_weather")]} == {"latitude", "longitude"}
    # identifiers under other names
    assert _binding(travel, "list_airports", "search_flights", "origin")["from_field"] == "[].airport_code"
    assert _binding(travel, "list_airports", "search_flights", "destination")["from_field"] == "[].airport_code"
    assert _binding(travel, "get_flight", "search_hotels", "city")["from_field"] == "destination_city"
    assert _binding(bank, "list_accounts", "transfer_funds", "from_account_id")["from_field"] == "[].account_id"
    assert _binding(bank, "list_accounts", "transfer_funds", "to_account_id")["from_field"] == "[].account_id"
    assert _binding(sample_edges["recipes"], "search_recipes", "create_shopping_list", "recipe_ids")["how"] == "plural"
    # no edge into a tool without required inputs, no self loops, no nonsense lexical matches
    assert not any(dst == "search_products" for _, dst in shop)
    assert not any(a == b for a, b in shop)
    assert ("check_stock", "search_hotels") not in travel
    for edges in sample_edges.values():
        for bindings in edges.values():
            assert all(not (b["from_field"].endswith("check_in") and b["to_param"] == "check_out") for b in bindings)


def test_graphs_never_cross_servers(sample):
    for server in sample.values():
        g = build_graph(server)
        names = {t.name for t in server.tools}
        assert set(g.nodes) == names
        assert g.edges and all(e.source in names and e.target in names for e in g.edges)
        assert all(e.provenance == ["dataflow"] for e in g.edges)
        assert g.stats["nodes"] == len(names) and g.stats["edges"] == len(g.edges)
        assert g.stats["edges_by_provenance"]["dataflow"] == len(g.edges)
        assert g.stats["weakly_connected_components"] >= 1 and 0 < g.stats["density"] <= 1


def test_described_result_without_output_schema():
    server = ToolServer(name="s", tools=[
        Tool(name="open_case", description="Open a support case. Returns the new case with its case ID and status.",
             parameters={"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}),
        Tool(name="get_case", description="Get a case.",
             parameters={"type": "object", "properties": {"case_id": {"type": "string"}}, "required": ["case_id"]},
             output_schema={"description": "The case record (case_id, summary, status)."}),
    ])
    assert {f.name for f in output_fields(server.tools[0])} >= {"case_id"}
    edges = {(e.source, e.target): e for e in dataflow_edges(server)}
    assert ("open_case", "get_case") in edges
    assert edges[("open_case", "get_case")].bindings[0]["to_param"] == "case_id"
    # get_case's prose result lists (case_id, summary, status): 'summary' fills open_case
    assert edges[("get_case", "open_case")].bindings[0]["from_field"] == "summary"


def test_list_of_scalars_and_id_inside_object():
    server = ToolServer(name="s", tools=[
        Tool(name="list_recipe_ids", description="List the ids of all recipes.",
             output_schema={"type": "array", "items": {"type": "string"}}),
        Tool(name="create_order", description="Create an order.",
             output_schema={"type": "object", "properties": {"order": {"type": "object", "properties": {
                 "id": {"type": "integer"}, "total": {"type": "number"}}}}}),
        Tool(name="get_recipe", description="Get a recipe.", parameters={
            "type": "object", "properties": {"recipe_id": {"type": "string"}}, "required": ["recipe_id"]}),
        Tool(name="get_order", description="Get an order.", parameters={
            "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}),
    ])
    edges = {(e.source, e.target): e.bindings for e in dataflow_edges(server)}
    assert edges[("list_recipe_ids", "get_recipe")][0]["from_field"] == "[]"
    assert edges[("create_order", "get_order")][0] == {"from_field": "order.id", "to_param": "order_id",
                                                       "score": 1.0, "how": "identifier"}
    assert ("create_order", "get_recipe") not in edges  # an integer id is no string id of another noun


def test_graph_roundtrip_networkx_and_files(sample, tmp_path):
    g = build_graph(sample["shop"], sources=["dataflow", "llm"],
                    proposed_chains=[["search_products", "get_product"], ["search_products", "get_product"],
                                     ["view_cart", "checkout"]])
    e = g.edge("search_products", "get_product")
    assert e.provenance == ["dataflow", "llm"] and e.llm_count == 2 and e.weight == pytest.approx(3.0)
    assert g.edge("view_cart", "checkout").provenance == ["llm"]
    assert g.stats["edges_by_provenance"]["both"] >= 1 and g.stats["edges_by_provenance"]["llm"] == 1
    G = to_networkx(g)
    assert G["search_products"]["get_product"]["provenance"] == {"dataflow", "llm"}
    back = from_networkx(G)
    assert back.model_dump(exclude={"stats"}) == g.model_dump(exclude={"stats"})
    run_stage(_ListStage(), [g], tmp_path / "graphs" / "graphs.jsonl", progress=False)
    assert load_graphs(tmp_path / "graphs")["shop"] == g
    assert isinstance(load_networkx(tmp_path / "graphs")["shop"], nx.DiGraph)


class _ListStage(BuildGraphStage):
    """Passes ToolGraph records through (to write a graphs file with the runner)."""

    name = "test.graphs"
    input_model = ToolGraph

    def __init__(self):
        super().__init__()

    async def process(self, record):
        from astra.pipeline import StageResult

        return StageResult.accept(record)


# ---------------------------------------------------------------------------------
# walks
# ---------------------------------------------------------------------------------


def _toy(edges: list[tuple[str, str, float]]) -> nx.DiGraph:
    G = nx.DiGraph(server="toy")
    for a, b, w in edges:
        G.add_edge(a, b, weight=w)
    return G


def test_walks_are_deterministic_and_respect_bounds(sample):
    G = to_networkx(build_graph(sample["shop"]))
    r1 = random_walks(G, walks=300, min_len=2, max_len=4, seed=7)
    r2 = random_walks(G, walks=300, min_len=2, max_len=4, seed=7)
    r3 = random_walks(G, walks=300, min_len=2, max_len=4, seed=8)
    assert [w.tools for w in r1.walks] == [w.tools for w in r2.walks]
    assert [w.tools for w in r1.walks] != [w.tools for w in r3.walks]
    for w in r1.walks:
        assert 2 <= len(w.tools) <= 4
        assert len(set(w.tools)) == len(w.tools)  # simple paths
        assert all(G.has_edge(a, b) for a, b in zip(w.tools, w.tools[1:], strict=False))
    assert len({w.tools for w in r1.walks}) == len(r1.walks)  # deduplicated
    assert sum(w.hits for w in r1.walks) == 300 - r1.stats["too_short"]


def test_walks_follow_edge_weights():
    G = _toy([("a", "b", 9.0), ("a", "c", 1.0)])
    res = random_walks(G, walks=2000, min_len=2, max_len=2, seed=1)
    hits = {w.tools: w.hits for w in res.walks}
    share = hits[("a", "b")] / sum(hits.values())
    assert 0.86 < share < 0.94
    # start nodes are drawn by out-degree: b and c have none
    assert all(w.tools[0] == "a" for w in res.walks)


def test_walks_cap_cycles_and_dead_ends():
    G = _toy([("a", "b", 1.0), ("b", "a", 1.0), ("b", "c", 1.0)])
    simple = random_walks(G, walks=200, min_len=2, max_len=5, seed=3)
    assert all(len(set(w.tools)) == len(w.tools) for w in simple.walks)
    cyc = random_walks(G, walks=200, min_len=2, max_len=5, seed=3, allow_cycles=True)
    assert any(len(set(w.tools)) < len(w.tools) for w in cyc.walks)
    capped = random_walks(G, walks=200, min_len=2, max_len=5, seed=3, max_chains=2)
    assert len(capped.walks) == 2 and capped.stats["capped"] == simple.stats["distinct"] - 2
    assert [w.tools for w in capped.walks] == [w.tools for w in simple.walks[:2]]  # most walked first
    assert capped.walks[0].hits >= capped.walks[1].hits
    with pytest.raises(ValueError):
        random_walks(G, min_len=1)


def test_walks_start_at_entry_tools_by_default(sample):
    g = build_graph(sample["shop"])
    assert g.entry_nodes == ["search_products", "view_cart", "apply_coupon", "checkout", "list_orders"]
    G = to_networkx(g)
    entry = random_walks(G, walks=300, seed=0)
    assert entry.stats["start_nodes"] == 5
    assert {w.tools[0] for w in entry.walks} <= set(g.entry_nodes)
    anywhere = random_walks(G, walks=300, seed=0, start="any")
    assert {w.tools[0] for w in anywhere.walks} - set(g.entry_nodes)  # e.g. get_order first
    ok = sum(resolve_args(sample["shop"], list(w.tools)).ok for w in entry.walks) / len(entry.walks)
    ok_any = sum(resolve_args(sample["shop"], list(w.tools)).ok for w in anywhere.walks) / len(anywhere.walks)
    assert ok > ok_any


async def test_chains_stage_rejects_graph_without_entry(sample):
    g = build_graph(sample["recipes"]).model_copy(update={"entry_nodes": []})
    res = await ChainsStage().process(g)
    assert not res.outputs and res.rejections[0].reason == "no_chains" and "--start any" in res.rejections[0].detail
    res = await ChainsStage(start="any", walks=50).process(g)
    assert res.outputs


# ---------------------------------------------------------------------------------
# args check
# ---------------------------------------------------------------------------------


def test_args_check_accepts_and_resolves(sample):
    r = resolve_args(sample["shop"], ["search_products", "add_to_cart", "checkout", "get_order"])
    assert r.ok, r.detail
    steps = r.record["steps"]
    assert steps[1]["args"]["product_id"] == {"source": "step", "step": 0, "tool": "search_products",
                                              "field": "[].product_id", "score": 1.0, "how": "name"}
    addr = steps[2]["args"]["shipping_address"]
    assert addr["source"] == "user" and addr["kind"] == "text" and addr["example"].startswith("14 Alder Lane")
    assert steps[3]["args"]["order_id"]["tool"] == "checkout"
    assert r.record["dependencies"] == [[0, 1], [2, 3]]
    assert r.record["user_inputs"] == ["checkout.shipping_address"]
    t = resolve_args(sample["travel"], ["list_airports", "search_flights", "book_flight"])
    assert t.ok
    args = t.record["steps"][1]["args"]
    assert args["origin"]["source"] == "step" and args["date"]["kind"] == "date"
    assert t.record["steps"][2]["args"]["flight_id"]["tool"] == "search_flights"
    b = resolve_args(sample["bank"], ["list_accounts", "transfer_funds"])
    assert b.ok and b.record["steps"][1]["args"]["to_account_id"]["field"] == "[].account_id"


def test_args_check_rejects_missing_identifiers(sample):
    r = resolve_args(sample["shop"], ["get_order"])
    assert not r.ok and r.reason == "args"
    assert "get_order.order_id" in r.detail and "checkout" in r.detail
    r = resolve_args(sample["shop"], ["add_to_cart", "view_cart"])
    assert not r.ok and "add_to_cart.product_id" in r.detail and r.record["missing"] == ["add_to_cart.product_id"]
    r = resolve_args(sample["bank"], ["get_exchange_rate", "transfer_funds"])
    assert not r.ok and "from_account_id" in r.detail and "to_account_id" in r.detail


# ---------------------------------------------------------------------------------
# LLM checks, driven by the scripted chat-API test double
# ---------------------------------------------------------------------------------


def _kind(req: ChatRequest) -> str:
    props = set((req.json_schema or {}).get("properties", {}))
    if "verdict" in props:
        return "vote"
    if "query" in props:
        return "query"
    if "tools" in props:
        return "chain"
    if "chains" in props:
        return "propose"
    return "?"


def _client(script, cache: ResponseCache | None = None) -> tuple[LLMClient, ScriptedChatProvider]:
    provider = ScriptedChatProvider(script)
    return LLMClient(provider, cache=cache, max_retries=0, timeout=None), provider


def _voter(verdicts: list[str]):
    """Scripted double: sample i answers verdicts[i] ('yes', 'no' or 'bad' = malformed JSON)."""

    def script(req: ChatRequest):
        assert _kind(req) == "vote"
        v = verdicts[req.sample_index]
        return "sure, looks fine {" if v == "bad" else {"verdict": v, "reason": f"sample {req.sample_index}"}

    return script


CHAIN = ["search_products", "add_to_cart", "checkout"]


async def test_scripted_double_vote_valid(sample):
    client, provider = _client(_voter(["yes", "yes", "yes"]))
    out = await vote_check(client, sample["shop"], CHAIN, votes=3)
    assert out.ok and out.record["yes"] == 3 and out.record["failed"] == 0
    assert provider.calls == 3
    prompt = provider.requests[0].messages[-1]["content"]
    assert "search_products" in prompt and "checkout" in prompt


async def test_scripted_double_vote_split_rejects(sample):
    client, _ = _client(_voter(["yes", "no", "no"]))
    out = await vote_check(client, sample["shop"], CHAIN, votes=3)
    assert not out.ok and out.reason == "vote" and out.record["yes"] == 1 and out.record["no"] == 2


async def test_scripted_double_vote_malformed_json_is_a_failed_vote(sample):
    client, _ = _client(_voter(["yes", "bad", "no"]))
    out = await vote_check(client, sample["shop"], CHAIN, votes=3)
    assert not out.ok and out.reason == "vote"  # 1 yes of 3 is no majority; the bad one is not a yes
    assert out.record["failed"] == 1 and out.record["ballots"][1]["verdict"] is None
    assert "StructuredOutputError" in out.record["ballots"][1]["error"]
    client, _ = _client(_voter(["bad", "yes", "bad"]))
    out = await vote_check(client, sample["shop"], CHAIN, votes=3)
    assert not out.ok and out.reason == "vote_failed" and out.record["yes"] == 1
    client, _ = _client(_voter(["yes", "bad", "yes"]))
    out = await vote_check(client, sample["shop"], CHAIN, votes=3)
    assert out.ok and out.record["failed"] == 1


async def test_scripted_double_proposals_drop_hallucinated_names(sample):
    def script(req: ChatRequest):
        assert _kind(req) == "propose"
        if req.sample_index == 2:
            return "I cannot do that"  # malformed in every repair round
        if req.sample_index == 3:
            return {"chains": []}  # valid JSON, but no chain: a failed proposal
        return {"chains": [
            {"task": "buy earbuds", "tools": ["search_products", "buy_now", "add_to_cart"]},
            {"task": "look at one", "tools": ["search_products", "Get_Product"]},
            {"task": "all fake", "tools": ["teleport", "fly"]},
        ]}

    client, _ = _client(script)
    res = await propose_chains(client, sample["shop"], proposals=4, k=3)
    assert res.chains == [["search_products", "get_product"]] * 2
    assert res.stats["ok"] == 2 and res.stats["failed"] == 2
    assert res.stats["hallucinated_names"] == 6 and res.stats["hallucinated"] == ["buy_now", "fly", "teleport"]
    assert Counter(r.reason for r in res.rejections) == {"hallucinated_tool": 2, "proposal_failed": 2}
    g = build_graph(sample["shop"], sources=["llm"], proposed_chains=res.chains, proposals=res.stats)
    assert [(e.source, e.target, e.llm_count) for e in g.edges] == [("search_products", "get_product", 2)]
    assert g.proposals["failed"] == 2


def _bt_script(query_reply, chain_reply):
    def script(req: ChatRequest):
        k = _kind(req)
        if k == "query":
            return {"query": query_reply}
        assert k == "chain"
        return {"tools": chain_reply}

    return script


WEATHER = ["geocode_city", "get_current_weather", "get_forecast"]


@pytest.mark.parametrize(("recovered", "ok", "reason"), [
    (WEATHER, True, ""),
    (["geocode_city", "get_forecast", "get_current_weather"], True, ""),  # independent steps swapped
    (["get_forecast", "geocode_city", "get_current_weather"], False, "backtranslate"),  # needs coordinates first
    (["geocode_city", "get_current_weather"], False, "backtranslate"),  # not the same multiset
    (["geocode_city", "get_weather_now", "get_forecast"], False, "backtranslate"),  # hallucinated
])
async def test_scripted_double_backtranslation(sample, recovered, ok, reason):
    args = resolve_args(sample["weather"], WEATHER).record
    assert args["dependencies"] == [[0, 1], [0, 2]]
    client, provider = _client(_bt_script("What's the weather now in Oslo and the next days?", recovered))
    out = await backtranslate_check(client, sample["weather"], WEATHER, resolution=args)
    assert out.ok is ok and out.reason == reason
    if not ok:
        assert out.detail
    if "get_weather_now" in recovered:
        assert "hallucinated" in out.detail and "get_weather_now" in out.detail
    assert provider.calls == 2


async def test_scripted_double_backtranslation_across_models(sample):
    args = resolve_args(sample["weather"], WEATHER).record
    writer, wp = _client(_bt_script("Weather in Tokyo now and this week?", []))
    reader, rp = _client(_bt_script("unused", ["geocode_city", "get_forecast", "get_current_weather"]))
    out = await backtranslate_check(writer, sample["weather"], WEATHER, resolution=args, bt_client=reader)
    assert out.ok and wp.calls == 1 and rp.calls == 1
    assert out.record["query"] == "Weather in Tokyo now and this week?"
    # a query that names a tool is rejected
    namer, _ = _client(_bt_script("Call geocode_city for Oslo then the forecast", WEATHER))
    out = await backtranslate_check(namer, sample["weather"], WEATHER, resolution=args)
    assert not out.ok and "geocode_city" in out.detail


def test_compare_chains_with_repeated_tools():
    ok, _ = compare_chains(["a", "b", "a"], ["a", "a", "b"], [(0, 1)])
    assert ok
    ok, why = compare_chains(["a", "b", "a"], ["b", "a", "a"], [(0, 1)])
    assert not ok and "before" in why


def test_parse_checks():
    assert parse_checks("vote, args") == ["args", "vote"]
    with pytest.raises(ValueError):
        parse_checks("args,magic")


# ---------------------------------------------------------------------------------
# an unseen collection in BFCL style
# ---------------------------------------------------------------------------------


def test_bfcl_style_collection_gives_dataflow_edges_and_chains():
    res = ingest([str(BFCL)])
    assert not res.errors and not res.rejections
    servers = {s.name: s for s in res.servers}
    assert set(servers) == {"vehicle_rental", "project_tracker"}
    rental = {(e.source, e.target): e.bindings for e in dataflow_edges(servers["vehicle_rental"])}
    tracker = {(e.source, e.target): e.bindings for e in dataflow_edges(servers["project_tracker"])}
    assert _binding(rental, "find_rental_locations", "search_vehicles", "location_id")["from_field"] == "locations[].location_id"
    b = _binding(rental, "get_reservation", "cancel_reservation", "reservation_id")
    assert b["from_field"] == "reservation.id" and b["how"] == "identifier"  # id inside a reservation object
    assert _binding(rental, "search_vehicles", "upgrade_vehicle", "new_vehicle_id")["how"] == "role"
    assert _binding(tracker, "create_task", "assign_task", "task_id")["from_field"] == "task.id"
    assert _binding(tracker, "list_projects", "move_task", "target_project_id")["from_field"] == "projects[].project_id"
    assert ("close_task", "get_task") in tracker  # from the prose response "... task_id ..."
    for s in servers.values():
        g = build_graph(s)
        res = random_walks(to_networkx(g), walks=100, seed=0, max_chains=20)
        assert res.walks
        passed = [w for w in res.walks if resolve_args(s, list(w.tools)).ok]
        assert passed
    r = resolve_args(servers["vehicle_rental"], ["find_rental_locations", "search_vehicles", "reserve_vehicle"])
    assert r.ok and r.record["user_inputs"] == ["find_rental_locations.city", "search_vehicles.pickup_date",
                                                "search_vehicles.return_date", "reserve_vehicle.driver_name"]


# ---------------------------------------------------------------------------------
# stages end to end
# ---------------------------------------------------------------------------------


@pytest.fixture()
def tools_file(tmp_path, sample) -> Path:
    p = tmp_path / "tools.jsonl"
    write_jsonl(p, list(sample.values()))
    return p


def test_stages_end_to_end_on_sample(tmp_path, tools_file, sample):
    graphs = tmp_path / "graphs" / "graphs.jsonl"
    m = run_stage(BuildGraphStage(), tools_file, graphs, progress=False)
    assert m.accepted == 7 and m.failed == 0
    chains = tmp_path / "chains.jsonl"
    m = run_stage(ChainsStage(walks=100, seed=0, max_per_server=10), graphs, chains, progress=False)
    assert m.accepted == 7 and 0 < m.outputs <= 70
    verified = tmp_path / "verified.jsonl"
    m = run_stage(VerifyChainsStage(str(tools_file), checks="args"), chains, verified, progress=False)
    kept = list(read_outputs(verified, Chain))
    assert kept and m.outputs == len(kept) and m.rejected == m.rejections_by_reason.get("args", 0) > 0
    for c in kept:
        assert c.checks["args"]["ok"] and c.checks["passed"] == ["args"]
        assert resolve_args(sample[c.server], c.tools).ok
    # same seed, same chains
    again = tmp_path / "chains2.jsonl"
    run_stage(ChainsStage(walks=100, seed=0, max_per_server=10), graphs, again, progress=False)
    assert chains.read_text() == again.read_text()


def test_build_stage_with_scripted_double_records_failures(tmp_path, sample):
    def script(req: ChatRequest):
        if req.sample_index == 1:
            return "no json here"
        return {"chains": [{"task": "t", "tools": ["search_products", "check_stock", "made_up_tool"]}]}

    client, _ = _client(script)
    stage = BuildGraphStage(sources="dataflow,llm", proposals=2, client=client)
    m = run_stage(stage, [sample["shop"]], tmp_path / "g.jsonl", progress=False)
    assert m.accepted == 1 and m.rejections_by_reason == {"hallucinated_tool": 1, "proposal_failed": 1}
    (g,) = read_outputs(tmp_path / "g.jsonl", ToolGraph)
    assert g.edge("search_products", "check_stock").provenance == ["dataflow", "llm"]
    assert g.proposals["ok"] == 1 and g.proposals["failed"] == 1
    assert m.config["sources"] == ["dataflow", "llm"]


def test_verify_stage_with_vote_rerun_is_zero_call(tmp_path, sample):
    cache = tmp_path / "llm-cache.sqlite"
    chains = [Chain(server="shop", tools=CHAIN), Chain(server="shop", tools=["get_order", "cancel_order"]),
              Chain(server="weather", tools=WEATHER)]

    def script(req: ChatRequest):
        k = _kind(req)
        if k == "vote":
            return {"verdict": "yes", "reason": "fine"}
        if k == "query":
            return {"query": "please do it"}
        text = req.messages[-1]["content"]
        return {"tools": CHAIN if "search_products" in text else WEATHER}

    client, provider = _client(script, ResponseCache(cache))
    stage = VerifyChainsStage(list(sample.values()), checks="args,vote,backtranslate", votes=3, client=client)
    m = run_stage(stage, chains, tmp_path / "v.jsonl", progress=False)
    assert m.accepted == 2 and m.rejections_by_reason == {"args": 1}
    assert provider.calls == 2 * (3 + 2)
    kept = list(read_outputs(tmp_path / "v.jsonl", Chain))
    assert kept[0].checks["passed"] == ["args", "vote", "backtranslate"]
    assert kept[0].checks["vote"]["yes"] == 3 and kept[0].checks["backtranslate"]["recovered"] == CHAIN
    # rerun into the same output: everything is done
    m2 = run_stage(stage, chains, tmp_path / "v.jsonl", progress=False)
    assert m2.skipped_done == 3 and m2.processed == 0
    # rerun from scratch with a fresh provider on the same cache: zero provider calls
    client2, provider2 = _client(script, ResponseCache(cache))
    stage2 = VerifyChainsStage(list(sample.values()), checks="args,vote,backtranslate", votes=3, client=client2)
    m3 = run_stage(stage2, chains, tmp_path / "v2.jsonl", progress=False)
    assert provider2.calls == 0 and m3.accepted == 2
    assert m3.llm_usage["cache_hits"] == 10
    assert (tmp_path / "v.jsonl").read_text() == (tmp_path / "v2.jsonl").read_text()


def test_verify_stage_rejections_name_the_check(tmp_path, sample):
    client, _ = _client(_voter(["no", "no", "yes"]))
    stage = VerifyChainsStage(list(sample.values()), checks="args,vote", client=client)
    chains = [Chain(server="shop", tools=CHAIN), Chain(server="nowhere", tools=["x", "y"]),
              Chain(server="shop", tools=["search_products", "fly_away"])]
    m = run_stage(stage, chains, tmp_path / "v.jsonl", progress=False)
    assert m.rejections_by_reason == {"vote": 1, "unknown_server": 1, "unknown_tool": 1}
    led = [json.loads(x) for x in (tmp_path / "v.ledger.jsonl").read_text().splitlines()]
    vote = next(r for x in led for r in x["rejections"] if r["reason"] == "vote")
    assert vote["key"] == "shop:search_products>add_to_cart>checkout" and "1 yes / 2 no" in vote["detail"]


def test_stages_are_picklable(tools_file):
    v = VerifyChainsStage(str(tools_file), checks="args")
    v.setup()
    clone = pickle.loads(pickle.dumps(v))
    assert clone._servers is None and clone.tools_path == str(tools_file)
    clone.setup()
    assert "shop" in clone._servers
    pickle.loads(pickle.dumps(BuildGraphStage(sources="dataflow")))
    pickle.loads(pickle.dumps(ChainsStage()))


# ---------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------


def test_cli_build_chains_verify(tmp_path, tools_file, monkeypatch):
    monkeypatch.delenv("ASTRA_LLM", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["build", "tools.jsonl", "-o", "graphs", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "graphs" / "graphs.jsonl").exists()
    man = json.loads((tmp_path / "graphs" / "graphs.manifest.json").read_text())
    assert man["config"]["sources"] == ["dataflow"]  # no LLM configured
    assert man["graph_stats"]["shop"]["edges"] > 0
    r = runner.invoke(app, ["chains", "graphs", "-o", "chains.jsonl", "--walks", "50", "--seed", "3",
                            "--max-per-server", "5", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert load_manifest(tmp_path / "chains.jsonl").outputs <= 35
    # --tools defaults to the build stage's input, found through the manifests
    r = runner.invoke(app, ["verify", "chains.jsonl", "-o", "verified.jsonl", "--no-progress"])
    assert r.exit_code == 0, r.output
    m = load_manifest(tmp_path / "verified.jsonl")
    assert m.config["checks"] == ["args"] and m.config["tools"] == "tools.jsonl"
    assert m.accepted + m.rejected == m.done
    # verifying an already verified file finds the tools through two manifests
    r = runner.invoke(app, ["verify", "verified.jsonl", "-o", "again.jsonl", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert load_manifest(tmp_path / "again.jsonl").outputs == m.outputs
    # ... also from another working directory
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    r = runner.invoke(app, ["verify", "../chains.jsonl", "-o", "v.jsonl", "--no-progress"])
    assert r.exit_code == 0, r.output
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["verify", "chains.jsonl", "-o", "bad.jsonl", "--checks", "args,magic"])
    assert r.exit_code == 1
    r = runner.invoke(app, ["chains", "graphs", "-o", "c3.jsonl", "--min-len", "1"])
    assert r.exit_code == 1
