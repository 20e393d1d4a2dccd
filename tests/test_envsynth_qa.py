"""QA decomposition and validation (ASTRA §2.1-2.2): knowledge worlds, the offline composer,
LLM decomposition and LLM validation through the *scripted chat-API test double*
(:class:`astra.llm.testing.ScriptedChatProvider`, never a real model), the percentile gate
and the CLI."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from astra.envsynth.cli import app
from astra.envsynth.compose import check_gold, compose, counts_by_scenario, feasible_hops
from astra.envsynth.decompose import (
    SCENARIOS,
    CorpusLine,
    DecomposeRequest,
    HopBudget,
    QuestionLine,
    Rejected,
    build_requests,
    check_decomposition,
    classify_scenario,
    decompose_messages,
    is_placeholder,
)
from astra.envsynth.qa_stages import ComposeStage, DecomposeStage, ScoreStage, default_validator, run_validate
from astra.envsynth.validate import gate_cutoff, is_linguistic, percentile, score_instance, tool_necessity
from astra.envsynth.worlds import World, bundled_domains, format_value, load_world, load_worlds
from astra.errors import InputError
from astra.llm import LLMClient, LLMSettings
from astra.llm.errors import LLMRequestError
from astra.llm.testing import ScriptedChatProvider, last_user_text
from astra.llm.usage import UsageBook
from astra.pipeline import load_manifest, read_outputs, run_stage
from astra.types import QAInstance, SubTask


def scripted_client(script) -> LLMClient:
    """An LLM client over the scripted chat-API test double (no model, no network)."""
    return LLMClient(ScriptedChatProvider(script), usage=UsageBook(), max_retries=0, cache=None)


@pytest.fixture(scope="module")
def composed() -> list[QAInstance]:
    return compose(n=12, seed=0)


# ---------------------------------------------------------------------------------
# Knowledge worlds
# ---------------------------------------------------------------------------------


def test_bundled_worlds_load_and_validate():
    domains = bundled_domains()
    assert len(domains) >= 5
    all_types = set()
    for w in load_worlds():
        assert 20 <= w.size() <= 60, (w.domain, w.size())
        types = {spec.type for et in w.types.values() for spec in et.attributes.values()}
        assert {"str", "int"} <= types and types & {"date", "float"}
        all_types |= types
        assert any(et.relations for et in w.types.values())
        for etype in w.types:
            for name in w.names(etype):
                for rname, rel in w.types[etype].relations.items():
                    target = w.get(etype, name, rname)
                    assert target is None or w.entity(target).type == rel.target
    assert all_types == {"str", "int", "float", "date"}
    film = load_world("film")
    director = film.get("film", "Paper Lions", "director")
    assert film.entity(director).type == "person"
    assert film.search("film", "director", director)
    assert isinstance(film.get("person", director, "birth_year"), int)


def test_world_validation_names_the_problem(tmp_path):
    base = {"domain": "tiny", "types": {
        "a": {"attributes": {"size": {"type": "int", "label": "size"}},
              "relations": {"b": {"target": "b", "label": "b"}}},
        "b": {"attributes": {"day": {"type": "date", "label": "day"}}}},
        "entities": {"a": [{"name": "A1", "size": 3, "b": "B1"}], "b": [{"name": "B1", "day": "2020-01-02"}]}}
    assert World.model_validate(base).size() == 2
    bad = json.loads(json.dumps(base))
    bad["entities"]["a"][0]["b"] = "Nobody"
    with pytest.raises(ValueError, match="is not a b"):
        World.model_validate(bad)
    bad = json.loads(json.dumps(base))
    bad["entities"]["b"][0]["day"] = "02/01/2020"
    with pytest.raises(ValueError, match="not a valid date"):
        World.model_validate(bad)
    bad = json.loads(json.dumps(base))
    bad["entities"]["b"][0]["name"] = "A1"
    with pytest.raises(ValueError, match="used twice"):
        World.model_validate(bad)
    p = tmp_path / "tiny.json"
    bad = json.loads(json.dumps(base))
    bad["entities"]["a"][0]["size"] = "three"
    p.write_text(json.dumps(bad))
    with pytest.raises(InputError, match="tiny.json"):
        load_world(str(p))
    with pytest.raises(InputError, match="is not a valid int"):
        load_worlds(["tiny"], extra=[tmp_path])
    p.write_text(json.dumps(base))
    assert [w.domain for w in load_worlds(["tiny"], extra=[tmp_path])] == ["tiny"]


# ---------------------------------------------------------------------------------
# The offline composer
# ---------------------------------------------------------------------------------


def test_every_world_yields_all_four_scenarios(composed):
    per = Counter((i.domain, i.scenario) for i in composed)
    for dom in bundled_domains():
        for scen in SCENARIOS:
            assert per[(dom, scen)] > 0, (dom, scen)


def test_at_least_100_distinct_instances(composed):
    assert len({i.id for i in composed}) == len(composed)
    assert len({i.question for i in composed}) == len(composed)
    assert len(composed) >= 100
    assert all(v >= 25 for v in counts_by_scenario(composed).values())


def _recompute(world: World, entry: dict) -> str:
    """An independent solver of one plan entry (not the module's own)."""
    etype, field, key = entry["entity_type"], entry["attribute"], entry["entity"]
    if entry["operation"] == "lookup":
        return format_value(world.entity(key).values[field])
    hits = [n for n in world.names(etype) if format_value(world.entity(n).values.get(field)) == key]
    assert len(hits) == 1, entry
    return hits[0]


def _recompute_final(inst: QAInstance) -> str:
    answers = {s.id: s.sub_answer for s in inst.sub_tasks}
    agg = inst.meta["aggregate"]
    if agg is None:
        (last,) = [s for s in inst.sub_tasks if not any(s.id in (t.dependency or []) for t in inst.sub_tasks)]
        return last.sub_answer
    vals = [answers[i] for i in agg["inputs"]]
    op = agg["op"]
    if op == "same":
        return "yes" if vals[0] == vals[1] else "no"
    nums = [float(v) if re.fullmatch(r"-?\d+(\.\d+)?", v) else v for v in vals]
    if op in ("max", "min"):
        i = nums.index(max(nums) if op == "max" else min(nums))
        return agg["entities"][i]
    total = sum(nums) if op == "sum" else abs(nums[0] - nums[1])
    return format_value(round(total, 2))


def test_gold_decompositions_are_correct_against_the_world(composed):
    worlds = {w.domain: w for w in load_worlds()}
    for inst in composed:
        world = worlds[inst.meta["world"]]
        plan = inst.meta["plan"]
        answers = {s.id: s.sub_answer for s in inst.sub_tasks}
        for s in inst.sub_tasks:
            if s.needs_tool:
                entry = plan[s.id]
                assert set(entry) >= {"world", "operation", "entity_type", "entity", "attribute", "arg_from",
                                      "tool_intent", "answer_type", "target_type"}
                if entry["arg_from"]:
                    assert s.dependency == [entry["arg_from"]]
                    assert entry["entity"] == answers[entry["arg_from"]]
                    assert entry["entity"] in s.sub_question  # q_{i+1} states a_i
                else:
                    assert s.dependency is None
                assert _recompute(world, entry) == s.sub_answer, (inst.id, s.id)
            else:
                assert s.id not in plan
        assert _recompute_final(inst) == inst.answer, inst.id
        assert check_gold(inst, world) == []


def test_dag_shape_of_composed_instances(composed):
    for inst in composed:
        ids = [s.id for s in inst.sub_tasks]
        assert ids == [f"s{k + 1}" for k in range(len(ids))]
        for k, s in enumerate(inst.sub_tasks):
            assert all(ids.index(d) < k for d in s.dependency or [])
            if not s.needs_tool:  # aggregation: the last step, nothing depends on it
                assert k == len(ids) - 1
        assert classify_scenario(inst.sub_tasks) == inst.scenario
        n = len(inst.sub_tasks)
        assert n in {"single_hop": [1], "parallel_single_hop": [3, 4], "multi_hop": [2, 3, 4, 5],
                     "parallel_multi_hop": [4, 5]}[inst.scenario]
        if inst.scenario in ("parallel_single_hop", "parallel_multi_hop"):
            assert inst.meta["aggregate"]["sub_id"] == ids[-1]


def test_same_intent_clusters_exist(composed):
    clustered = 0
    for inst in composed:
        intents = Counter(e["tool_intent"] for e in inst.meta["plan"].values())
        clustered += any(c > 1 for c in intents.values())
        for e in inst.meta["plan"].values():
            assert re.fullmatch(r"(get_\w+_of_\w+|find_\w+_by_\w+)", e["tool_intent"])
    assert clustered >= 40


def test_composer_is_deterministic_with_a_seed():
    a = compose(n=3, seed=7)
    b = compose(n=3, seed=7)
    assert [i.model_dump() for i in a] == [i.model_dump() for i in b]
    c = compose(n=3, seed=8)
    assert [i.id for i in a] != [i.id for i in c]
    # ids depend on the question only: an instance found under two seeds has one id
    ids_c = {i.question: i.id for i in c}
    assert all(ids_c[i.question] == i.id for i in a if i.question in ids_c)


def test_hop_budgets():
    fixed = compose(n=3, hops="3")
    assert fixed and all(len(i.sub_tasks) == 3 for i in fixed)
    assert set(counts_by_scenario(fixed)) and counts_by_scenario(fixed)["single_hop"] == 0
    assert counts_by_scenario(fixed)["parallel_multi_hop"] == 0
    ranged = compose(n=3, hops="4-6", scenarios="multi_hop,parallel_multi_hop")
    assert all(4 <= len(i.sub_tasks) <= 6 for i in ranged)
    assert {len(i.sub_tasks) for i in ranged if i.scenario == "parallel_multi_hop"} >= {4, 5}
    assert feasible_hops("single_hop", HopBudget.parse("3-5")) == []
    assert feasible_hops("parallel_multi_hop", HopBudget.parse("auto")) == [4, 5]
    b = HopBudget.parse("auto")
    assert (b.mode, b.lo, b.hi) == ("auto", 1, 5)
    assert HopBudget.parse("3").mode == "fixed" and HopBudget.parse("3-5").spec == "3-5"


# ---------------------------------------------------------------------------------
# LLM decomposition (scripted chat-API test double)
# ---------------------------------------------------------------------------------

Q = "In what year was the director of the film Orchid Lane born?"


def _sub(i, level, q, ans, dep=None, tool=True, par=False):
    return {"id": i, "hop_level": level, "sub_question": q, "is_parallel": par, "dependency": dep,
            "sub_answer": ans, "needs_tool": tool}


def _draft(subs, scenario="multi_hop", answer="1962"):
    return {"scenario": scenario, "question": Q, "answer": answer, "sub_questions": subs}


VALID = _draft([_sub("s1", 1, "Who directed the film Orchid Lane?", "Vera Lindqvist"),
                _sub("s2", 2, "In what year was Vera Lindqvist born?", 1962, dep=["s1"])])


def _request(**kw) -> DecomposeRequest:
    base = dict(id="film.q.1", domain="film", mode="conditional", question=Q, answer="1962",
                knowledge="Orchid Lane was directed by Vera Lindqvist (born 1962).", hops="2-4")
    return DecomposeRequest(**(base | kw))


def _decompose(reply, **kw) -> tuple[list[QAInstance], dict]:
    """Run the decompose stage on one request whose LLM reply is scripted."""
    import tempfile

    client = scripted_client(reply if isinstance(reply, list) else [reply])
    stage = DecomposeStage(client=client, temperature=0.0, max_repairs=kw.pop("max_repairs", 0))
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "qa.jsonl"
        m = run_stage(stage, [_request(**kw)], out, progress=False)
        ledger = [json.loads(x) for x in out.with_name("qa.ledger.jsonl").read_text().splitlines()]
        return list(read_outputs(out, QAInstance)), {"manifest": m, "ledger": ledger}


def test_scripted_llm_valid_conditional_decomposition():
    insts, info = _decompose(VALID)
    assert info["manifest"].accepted == 1
    (inst,) = insts
    assert inst.question == Q and inst.answer == "1962" and inst.scenario == "multi_hop"
    assert [s.dependency for s in inst.sub_tasks] == [None, ["s1"]]
    assert inst.sub_tasks[1].sub_answer == "1962"  # a number in the reply becomes a string
    assert inst.meta["source"] == "llm" and inst.meta["mode"] == "conditional"


def test_scripted_llm_scenario_is_corrected_from_the_dag():
    insts, _ = _decompose(_draft(VALID["sub_questions"], scenario="parallel_single_hop"))
    (inst,) = insts
    assert inst.scenario == "multi_hop"
    assert inst.meta["scenario_declared"] == "parallel_single_hop"
    assert any("scenario" in c for c in inst.meta["corrections"])


@pytest.mark.parametrize("subs,reason", [
    ([_sub("s1", 2, "Who directed Orchid Lane?", "Vera Lindqvist", dep=["s2"]),
      _sub("s2", 3, "When was Vera Lindqvist born?", "1962", dep=["s1"])], "cyclic_dependency"),
    ([_sub("s1", 2, "When was the director born?", "1962", dep=["s2"]),
      _sub("s2", 1, "Who directed Orchid Lane?", "Vera Lindqvist")], "forward_dependency"),
    ([_sub("s1", 1, "Who directed Orchid Lane?", "Vera Lindqvist"),
      _sub("s2", 2, "When was Vera Lindqvist born?", "1962", dep=["s9"])], "unknown_dependency"),
    ([_sub("s1", 1, "Who directed Orchid Lane?", "unknown"),
      _sub("s2", 2, "When was the director born?", "1962", dep=["s1"])], "placeholder_answer"),
    ([_sub("s1", 1, "Who directed Orchid Lane?", "Vera Lindqvist"),
      _sub("s1", 2, "When was Vera Lindqvist born?", "1962", dep=["s1"])], "duplicate_id"),
    ([_sub("s1", 1, "Who directed Orchid Lane?", "Vera Lindqvist"),
      _sub("s2", 1, "When was Vera Lindqvist born?", "1962", dep=["s1"])], "hop_level_mismatch"),
])
def test_scripted_llm_invalid_dags_are_rejected_with_their_reason(subs, reason):
    insts, info = _decompose(_draft(subs))
    assert insts == []
    m = info["manifest"]
    assert m.rejected == 1 and m.rejections_by_reason == {reason: 1}


def test_scripted_llm_hop_count_out_of_budget_is_rejected():
    insts, info = _decompose(VALID, hops="3-5")
    assert insts == [] and info["manifest"].rejections_by_reason == {"hops_out_of_budget": 1}
    insts, info = _decompose(_draft(VALID["sub_questions"], answer="1963"))
    assert info["manifest"].rejections_by_reason == {"answer_mismatch": 1}


def test_scripted_llm_malformed_json_is_recorded_not_passed():
    insts, info = _decompose(["{not json", "still {broken"], max_repairs=1)
    assert insts == []
    m = info["manifest"]
    assert m.accepted == 0 and m.rejections_by_reason == {"unparseable_output": 1}
    # a transport error is a failure of the input (retryable with --retry-failed)
    insts, info = _decompose([LLMRequestError("HTTP 400")])
    assert insts == [] and info["manifest"].failed == 1
    assert info["ledger"][0]["error_type"] == "LLMRequestError"


def test_placeholders():
    for p in ["", "unknown", "N/A", "<answer>", "a1", "{answer_2}", "TBD", "[city]", " none "]:
        assert is_placeholder(p), p
    for ok in ["0", "1962", "Vera Lindqvist", "Unknown Pleasures Records", "2011-03-04", "no"]:
        assert not is_placeholder(ok), ok


def test_requests_and_prompts_unconditional_and_conditional():
    corpus = [CorpusLine(id=f"g{i}", domain="geo", text=f"Fact number {i} about Veyra.") for i in range(6)]
    corpus.append(CorpusLine(id="f1", domain="film", text="Orchid Lane premiered in 1999."))
    reqs = build_requests(corpus=corpus, domains=["geo"], scenarios=["multi_hop", "parallel_multi_hop"], n=2,
                          hops="auto", knowledge_chars=60)
    assert [r.id for r in reqs] == ["geo.u.multi_hop.000", "geo.u.multi_hop.001",
                                    "geo.u.parallel_multi_hop.000", "geo.u.parallel_multi_hop.001"]
    assert len({r.knowledge for r in reqs}) > 1  # successive requests see different corpus windows
    text = decompose_messages(reqs[2])[1]["content"]
    assert "parallel_multi_hop" in text and "Fact number" in text and "yourself" in text
    qs = [QuestionLine(id="7", question=Q, answer="1962", domain="film"), QuestionLine(id="8", question="x?")]
    creqs = build_requests(corpus=corpus, questions=qs, domains=["film"])
    assert [r.id for r in creqs] == ["film.q.7", "film.q.8"]
    assert creqs[0].knowledge.startswith("Orchid Lane")
    ctext = decompose_messages(creqs[0])[1]["content"]
    assert Q in ctext and "Known answer (a0): 1962" in ctext and "between 3 and 5" in ctext


async def test_scripted_llm_unconditional_request_is_grounded_and_checked():
    seen = []

    def script(req):
        seen.append(last_user_text(req))
        return _draft([_sub("s1", 1, "Which river flows through Arvel?", "Ashwater"),
                       _sub("s2", 1, "Which river flows through Quensey?", "Vellum", par=True),
                       _sub("s3", 2, "Which is longer: Ashwater (410 km) or Vellum (380 km)?", "Ashwater",
                            dep=["s1", "s2"], tool=False)], scenario="parallel_single_hop", answer="Ashwater")

    from astra.envsynth.decompose import decompose_request

    req = DecomposeRequest(id="geo.u.parallel_single_hop.000", domain="geo", mode="unconditional",
                           knowledge="Arvel lies on the Ashwater.", scenario="parallel_single_hop", hops="3")
    inst = await decompose_request(scripted_client(script), req)
    assert "Arvel lies on the Ashwater." in seen[0]
    assert inst.scenario == "parallel_single_hop"
    assert [s.is_parallel for s in inst.sub_tasks] == [True, True, False]  # s1's flag corrected
    with pytest.raises(Rejected) as r:
        await decompose_request(scripted_client(script), req.model_copy(update={"hops": "4-5"}))
    assert r.value.reason == "hops_out_of_budget"


# ---------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------


def test_offline_scores_on_composed_instances_are_high(composed):
    for inst in composed[:80]:
        out = asyncio.run(score_instance(inst))
        s = out.scores
        assert s["validator"] == "offline"
        assert s["qs"] == pytest.approx((s["dc"] + s["sa"] + s["sr"] + s["tc"]) / 4)
        assert s["qs"] == 1.0, (inst.id, s)
        assert set(s["per_sub_task"]) == {t.id for t in inst.sub_tasks}


def test_offline_rules_without_a_plan_detect_flaws(composed):
    inst = next(i for i in composed if i.scenario == "parallel_multi_hop")
    bare = inst.model_copy(update={"meta": {}})
    good = asyncio.run(score_instance(bare)).scores
    assert good["qs"] == 1.0
    assert all(v[1] in ("declared", "rule") for v in tool_necessity(bare).values())
    agg = bare.sub_tasks[-1]
    assert tool_necessity(bare)[agg.id] == (False, "rule") and is_linguistic(agg, {s.id: s.sub_answer
                                                                                 for s in bare.sub_tasks})
    # a compound first step, and a second step that declares s1 but uses nothing of it
    flawed = QAInstance(id="x", domain="film", scenario="multi_hop", question="Who directed A, and when was B born?",
                        answer="1962", sub_tasks=[
                            SubTask(id="s1", hop_level=1, sub_question="Who directed A, and when was B born?",
                                    sub_answer="Vera Lindqvist"),
                            SubTask(id="s2", hop_level=2, sub_question="In what year was Ruth Maple born?",
                                    dependency=["s1"], sub_answer="1962")])
    s = asyncio.run(score_instance(flawed)).scores
    assert s["per_sub_task"]["s2"]["dc"] == 0.0  # declared s1, uses nothing of it
    assert s["per_sub_task"]["s2"]["sr"] == 0.5  # forced serialization
    assert s["per_sub_task"]["s1"]["sa"] < 1.0  # two requests in one
    assert s["qs"] < 0.9


def test_non_tool_step_with_dependents_is_rejected():
    inst = QAInstance(id="nt", domain="geo", scenario="multi_hop", question="How long is the longer river?",
                      answer="410", sub_tasks=[
                          SubTask(id="s1", hop_level=1, sub_question="How long is the Ashwater?", sub_answer="410"),
                          SubTask(id="s2", hop_level=1, sub_question="How long is the Vellum?", sub_answer="380",
                                  is_parallel=True),
                          SubTask(id="s3", hop_level=2, sub_question="Which is longer: 410 or 380?", sub_answer="410",
                                  dependency=["s1", "s2"], needs_tool=False),
                          SubTask(id="s4", hop_level=3, sub_question="What is 410 in kilometres?",
                                  sub_answer="410", dependency=["s3"])])
    with pytest.raises(Rejected) as r:
        asyncio.run(score_instance(inst))
    assert r.value.reason == "non_tool_dependency"
    # an offline instance whose plan says the middle step is not a tool step: same verdict
    comp = next(i for i in compose(n=2, scenarios="multi_hop") if len(i.sub_tasks) >= 3)
    plan = dict(comp.meta["plan"])
    plan.pop("s1")
    with pytest.raises(Rejected) as r:
        asyncio.run(score_instance(comp.model_copy(update={"meta": {**comp.meta, "plan": plan}})))
    assert r.value.reason == "non_tool_dependency"


def _judgement(inst: QAInstance, score: float, tc: float = 1.0) -> dict:
    return {"sub_questions": [{"id": s.id, "needs_tool": s.needs_tool, "dependency_consistency": score,
                               "atomicity": score, "sequential_rationality": score, "reason": "ok"}
                              for s in inst.sub_tasks], "task_completeness": tc}


async def test_scripted_llm_validation(composed):
    inst = composed[1]
    out = await score_instance(inst, validator="llm", client=scripted_client([_judgement(inst, 0.5, 1.0)]))
    s = out.scores
    assert s["validator"] == "llm" and (s["dc"], s["sa"], s["sr"], s["tc"]) == (0.5, 0.5, 0.5, 1.0)
    assert s["qs"] == pytest.approx(0.625)
    with pytest.raises(Rejected) as r:  # unparseable -> validation_failed, never a pass
        await score_instance(inst, validator="llm", client=scripted_client(["no json here", "{", "nope"]))
    assert r.value.reason == "validation_failed"
    partial = _judgement(inst, 1.0)
    partial["sub_questions"] = partial["sub_questions"][:-1]
    with pytest.raises(Rejected) as r:  # a judgement that skips a sub-question
        await score_instance(inst, validator="llm", client=scripted_client([partial]))
    assert r.value.reason == "validation_failed"
    # an LLM-made instance: the judge's necessity counts; a non-tool middle step is rejected
    bare = next(i for i in composed if i.scenario == "multi_hop" and len(i.sub_tasks) >= 3)
    bare = bare.model_copy(update={"meta": {}})
    j = _judgement(bare, 1.0)
    j["sub_questions"][0]["needs_tool"] = False
    with pytest.raises(Rejected) as r:
        await score_instance(bare, validator="llm", client=scripted_client([j]))
    assert r.value.reason == "non_tool_dependency"


def test_scripted_llm_validation_stage_records_failures(tmp_path, composed):
    insts = composed[:3]
    replies = [_judgement(insts[0], 1.0), "garbage", "garbage", "garbage", _judgement(insts[2], 0.0, 0.0)]
    stage = ScoreStage(validator="llm", client=scripted_client(replies))
    m = run_stage(stage, insts, tmp_path / "scored.jsonl", concurrency=1, progress=False)
    assert (m.accepted, m.rejected) == (2, 1)
    assert m.rejections_by_reason == {"validation_failed": 1}
    scores = [i.scores["qs"] for i in read_outputs(tmp_path / "scored.jsonl", QAInstance)]
    assert scores == [1.0, 0.0]


def test_percentile():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([0.0, 1.0], 90) == pytest.approx(0.9)
    assert percentile([], 90) is None
    g = gate_cutoff([0.5, 1.0, 1.0, 1.0], pct=90)
    assert g["cutoff"] == 1.0 and g["scored"] == 4


def _qs_script(instances: list[QAInstance]):
    """A scripted judge whose score for an instance is fixed by its position in the batch."""
    by_q = {i.question: k / (len(instances) - 1) for k, i in enumerate(instances)}

    def script(req):
        text = last_user_text(req)
        q = re.search(r"Main question \(q0\): (.*)", text).group(1).strip()
        inst = next(i for i in instances if i.question == q)
        return json.dumps(_judgement(inst, by_q[q], by_q[q]))

    return script


def test_percentile_gate_keeps_the_top_share_and_records_the_cutoff(tmp_path, composed):
    batch = composed[:20]
    stage = ScoreStage(validator="llm", client=scripted_client(_qs_script(batch)))
    out = tmp_path / "valid.jsonl"
    res = run_validate(batch, out, stage=stage, percentile=75)
    qs = sorted(i.scores["qs"] for i in read_outputs(res.scored_output, QAInstance))
    cut = percentile(qs, 75)
    kept = list(read_outputs(out, QAInstance))
    assert len(kept) == sum(q >= cut - 1e-9 for q in qs) == 5
    assert all(i.scores["qs"] >= cut - 1e-9 for i in kept)
    m = load_manifest(out)
    assert m.rejections_by_reason == {"below_percentile": 15}
    data = json.loads(out.with_name("valid.manifest.json").read_text())
    assert data["gate"]["cutoff"] == pytest.approx(cut) and data["gate"]["kept"] == 5
    ledger = [json.loads(x) for x in out.with_name("valid.ledger.jsonl").read_text().splitlines()]
    details = [r["detail"] for e in ledger for r in e.get("rejections", [])]
    assert details and all(f"{cut:.4f}" in d and "p75" in d for d in details)
    # an absolute floor on top of the percentile
    res2 = run_validate(batch, tmp_path / "v2.jsonl", stage=ScoreStage(validator="llm",
                        client=scripted_client(_qs_script(batch))), percentile=0, min_qs=0.5)
    assert res2.gate["cutoff"] is None and res2.gate["kept"] == sum(q >= 0.5 - 1e-9 for q in qs)


def test_two_pass_validate_resumes_to_the_same_output(tmp_path, composed):
    batch = composed[:24]

    def fresh_stage():
        return ScoreStage(validator="llm", client=scripted_client(_qs_script(batch)))

    ref = tmp_path / "ref" / "valid.jsonl"
    run_validate(batch, ref, stage=fresh_stage(), percentile=50)
    # interrupted: pass 1 got only part of the batch and pass 2 ran on that partial batch
    out = tmp_path / "run" / "valid.jsonl"
    run_validate(batch, out, stage=fresh_stage(), percentile=50, limit=10)
    partial = out.read_text()
    # resumed: pass 1 scores the rest (the first 10 are skipped), the gate is rebuilt
    provider_stage = fresh_stage()
    res = run_validate(batch, out, stage=provider_stage, percentile=50)
    assert res.score.skipped_done == 10 and res.score.processed == 14
    assert provider_stage._injected.provider.calls == 14
    assert out.read_text() == ref.read_text() != partial
    # a rerun of a finished validation changes nothing
    again = run_validate(batch, out, stage=fresh_stage(), percentile=50)
    assert again.score.processed == 0 and again.gate_manifest.processed == 0
    assert out.read_text() == ref.read_text()


def test_default_validator():
    assert default_validator(LLMSettings(spec="embedded")) == "offline"
    assert default_validator(LLMSettings(spec="openai:gpt-x")) == "llm"
    assert default_validator(LLMSettings(spec="embedded:/models/qwen")) == "llm"


def test_compose_stage_rejects_a_wrong_gold_answer(tmp_path, composed):
    inst = composed[2]
    subs = [s.model_copy(update={"sub_answer": "Somebody Else"}) if s.id == "s1" else s
            for s in inst.sub_tasks]
    broken = inst.model_copy(update={"id": inst.id + "-broken", "sub_tasks": subs})
    m = run_stage(ComposeStage(), [inst, broken], tmp_path / "qa.jsonl", progress=False)
    assert m.accepted == 1 and m.rejected == 1
    assert set(m.rejections_by_reason) <= {"gold_mismatch", "answer_mismatch"} and m.rejections_by_reason


# ---------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------


def test_cli_offline_decompose_then_validate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASTRA_LLM", raising=False)
    runner = CliRunner()
    res = runner.invoke(app, ["decompose", "-o", "qa.jsonl", "--limit", "24", "--seed", "3", "--no-progress"])
    assert res.exit_code == 0, res.output
    qa = list(read_outputs(tmp_path / "qa.jsonl", QAInstance))
    assert len(qa) == 24 and len({i.domain for i in qa}) >= 5 and {i.scenario for i in qa} == set(SCENARIOS)
    res = runner.invoke(app, ["validate", "qa.jsonl", "-o", "valid.jsonl", "--percentile", "90", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "validator: offline" in res.output and "kept 24 of 24" in res.output
    valid = list(read_outputs(tmp_path / "valid.jsonl", QAInstance))
    assert len(valid) == 24 and all(v.scores["qs"] == 1.0 for v in valid)
    assert (tmp_path / "valid.scored.jsonl").exists()
    res = runner.invoke(app, ["decompose", "-o", "x.jsonl", "--hops", "nine"])
    assert res.exit_code == 1 and "hop budget" in res.output
    res = runner.invoke(app, ["decompose", "-o", "x.jsonl", "--domains", "atlantis"])
    assert res.exit_code == 1 and "atlantis" in res.output


def test_cli_llm_decompose_with_scripted_double(tmp_path, monkeypatch):
    """The LLM path of the CLI, served by the scripted chat-API test double."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.jsonl").write_text(json.dumps({"id": "1", "question": Q, "answer": "1962", "domain": "film"})
                                      + "\n")
    client = scripted_client([VALID])
    import astra.pipeline.llm_stage as qs  # where the LLM stages build their clients

    monkeypatch.setattr(qs, "make_client", lambda settings: client)
    res = CliRunner().invoke(app, ["decompose", "--questions", "q.jsonl", "--hops", "2-3", "-o", "qa.jsonl",
                                   "--llm", "openai:scripted", "--no-progress"])
    assert res.exit_code == 0, res.output
    (inst,) = read_outputs(tmp_path / "qa.jsonl", QAInstance)
    assert inst.id == "film.q.1" and inst.scenario == "multi_hop"
    check_decomposition(inst, budget="2-3")
