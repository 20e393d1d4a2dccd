"""Environment synthesis (ASTRA §2.3-2.4): typed answer matching, the offline (template)
synthesizer, the LLM synthesizer through the *scripted chat-API test double*
(:class:`astra.llm.testing.ScriptedChatProvider`, never a real model), sandbox
verification, merging, the bundle and the CLI (decompose -> validate -> synthesize -> verify)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from astra.envs.bundle import (
    EnvIndexEntry,
    load_environment,
    load_environments,
    verify_environment,
    write_environment,
)
from astra.envs.match import answer_equals, answer_in_output, dates_in, numbers_in, tokens
from astra.envs.verify import call_problems, mock_data_of
from astra.envsynth.cli import app
from astra.envsynth.compose import compose
from astra.envsynth.decompose import Rejected
from astra.envsynth.merge import MergeError, deep_merge, extend_mock_data
from astra.envsynth.synth import (
    forbidden_imports,
    salient_values,
    scaling_problems,
    signature_problems,
    spec_leaks,
    synthesize_environment,
)
from astra.envsynth.synth_stages import SynthesizeStage, choose_synthesizer
from astra.envsynth.templates import render_plan_tool
from astra.llm import LLMClient, LLMSettings
from astra.llm.testing import ScriptedChatProvider, last_user_text
from astra.llm.usage import UsageBook
from astra.pipeline import load_manifest, read_outputs, run_stage
from astra.sandbox import SandboxPool, run_call_statement
from astra.types import QAInstance, SubTask, Tool


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(size=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def composed() -> list[QAInstance]:
    return compose(n=1, seed=0)  # 6 worlds x 4 scenario types, interleaved


def scripted(script) -> tuple[LLMClient, ScriptedChatProvider]:
    provider = ScriptedChatProvider(script)
    return LLMClient(provider, usage=UsageBook(), max_retries=0, cache=None, timeout=None), provider


# ---------------------------------------------------------------------------------
# Typed answer matching
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gold, output", [
    ("3", {"moons": 3}),
    ("3", "There are 3 moons."),
    ("3", "3."),
    ("1200", "population: 1,200"),
    ("1,200", 1200),
    ("1,200", "1200.0"),
    ("25.87", {"budget_musd": 25.87}),
    ("0.5", "0.505"),  # absolute tolerance 0.01
    ("1986598", {"population": 1986598.0}),
    ("-4", "it was -4 degrees"),
    ("45", "45%"),
])
def test_numbers_match_by_value(gold, output):
    assert answer_in_output(gold, output, "int" if "." not in gold else "float")
    assert answer_in_output(gold, output)  # inferred from the gold


@pytest.mark.parametrize("gold, output", [
    ("3", "13"), ("3", "2023"), ("3", "3.5"), ("3", {"moons": 13, "year": 2023}), ("3", "-3"),
    ("3", "2023-03-01"), ("3", "room 3b"), ("3", "v3"), ("12", "1200"), ("1200", "11200"), ("1,200", "1,2005"), ("1.5", "1.56"),
    ("36", "362"), ("2008", "2008-05-01"),
])
def test_numbers_near_misses_a_substring_check_accepts_are_rejected(gold, output):
    text = output if isinstance(output, str) else json.dumps(output)
    assert gold in text  # a raw substring check would accept every one of these
    assert not answer_in_output(gold, output, "int")


def test_dates_in_common_formats():
    gold = "2025-03-02"
    for out in ["2025-03-02", "released 2025-03-02T10:00:00Z", "March 2, 2025", "2 March 2025", "Mar 2 2025",
                "2025/03/02", "02.03.2025", {"release": {"date": "2025-03-02"}}]:
        assert answer_in_output(gold, out, "date"), out
    for out in ["2025-03-20", "2025-03-12", "March 20, 2025", "2024-03-02", "20250302x"]:
        assert not answer_in_output(gold, out, "date"), out
    assert answer_in_output("March 2, 2025", "on 2025-03-02")  # the gold may be written any way
    assert dates_in("from 1999-12-31 to 2000-01-01") and numbers_in("1999-12-31 and 7") == [7.0]


def test_text_and_entities_match_whole_tokens():
    assert answer_in_output("Ilse Marrow", "Directed by ILSE  MARROW.")
    assert answer_in_output("Ilse Marrow", {"director": "Ilse Marrow"}, "entity")
    assert answer_in_output("Café Noir", "cafe noir")  # unicode accents, case
    assert answer_in_output("O'Brien", "o’brien")
    assert not answer_in_output("Ann", "Annabel Price")
    assert not answer_in_output("Ann", {"name": "Annabel"}, "entity")
    assert not answer_in_output("Route 9", "Route 9.5")
    assert not answer_in_output("Marrow", "marrowfield")
    assert answer_in_output("1984", {"title": 1984}, "entity")
    assert tokens("Saint-Étienne, 9.5!") == ["saint", "etienne", "9.5"]


def test_structures_keys_are_ignored_and_json_strings_are_walked():
    assert not answer_in_output("director", {"director": "Ilse Marrow"})
    assert answer_in_output("Ilse", json.dumps({"people": [{"name": "Ilse"}]}))
    assert answer_in_output("3", [[{"a": [1, 2, {"b": 3}]}]])
    assert not answer_in_output("3", {"3": "x"})
    assert not answer_in_output("x", None) and not answer_in_output("", "anything")


def test_echoed_arguments_do_not_count():
    out = {"currency": "kharvost mark", "count": 1, "matches": [{"country": "Kharvost"}]}
    assert answer_in_output("Kharvost", out, "entity", exclude={"currency": "kharvost mark"})
    assert not answer_in_output("Kharvost", {"currency": "kharvost mark", "count": 0}, "entity",
                                exclude={"currency": "kharvost mark"})
    assert not answer_in_output("Ilse Marrow", "The mentor of Ilse Marrow is Odalys Fenn.",
                                exclude={"person": "Ilse Marrow"})
    assert answer_in_output("Odalys Fenn", "The mentor of Ilse Marrow is Odalys Fenn.",
                            exclude={"person": "Ilse Marrow"})
    assert not answer_in_output("10", {"limit": 10, "count": 2}, "int", exclude={"limit": 10})
    assert answer_in_output("2", {"limit": 10, "count": 2}, "int", exclude={"limit": 10})


def test_yes_no_and_equality():
    assert answer_in_output("yes", True) and answer_in_output("no", False) and not answer_in_output("yes", False)
    assert answer_in_output("no", "No, they differ.") and not answer_in_output("no", "Yes, no doubt")
    assert answer_equals("1,200", "1200.0") and not answer_equals("3", "13")
    assert answer_equals("Ilse Marrow", "ilse marrow") and not answer_equals("Ilse", "Ilse Marrow")


# ---------------------------------------------------------------------------------
# Static rules
# ---------------------------------------------------------------------------------

TOOL = Tool(name="get_moons", description="Number of moons of a planet.",
            parameters={"type": "object", "properties": {"planet": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["count"]}},
                        "required": ["planet"]})


def test_forbidden_imports_and_signature_rules():
    assert forbidden_imports("import json, datetime\nfrom collections import Counter\n") == []
    assert forbidden_imports("import requests\nimport numpy as np\nfrom os import path\n") == ["requests", "numpy",
                                                                                              "os"]
    assert forbidden_imports("import subprocess") == ["subprocess"]
    assert forbidden_imports("from . import x") == ["."]
    assert forbidden_imports("m = __import__('json')") == ["__import__(...)"]
    assert signature_problems("def get_moons(planet, unit='count'):\n    return 1\n", TOOL) == []
    assert signature_problems("def get_moons(planet):\n    return 1\n", TOOL)  # missing optional
    assert signature_problems("def get_moons(planet='x', unit='c'):\n    return 1\n", TOOL)  # required w/ default
    assert signature_problems("def moons(planet, unit='c'):\n    return 1\n", TOOL)
    assert signature_problems("def get_moons(**kw):\n    return 1\n", TOOL)


def test_call_statement_and_scaling_rules():
    assert call_problems('get_moons(planet="Kel")', TOOL) == []
    assert call_problems('get_moons(planet=3)', TOOL)
    assert call_problems('get_moons(unit="count")', TOOL)
    assert call_problems('moons(planet="Kel")', TOOL)
    assert call_problems('get_moons(planet=x)', TOOL)  # not a literal
    bigger = TOOL.model_copy(deep=True)
    bigger.parameters["properties"]["verbose"] = {"type": "boolean"}
    assert scaling_problems(TOOL, bigger) == []
    worse = TOOL.model_copy(deep=True)
    worse.parameters["required"] = ["planet", "unit"]
    del worse.parameters["properties"]["unit"]["enum"]
    assert scaling_problems(TOOL, worse)


def test_spec_leak_rule():
    leaky = TOOL.model_copy(update={"description": "Number of moons, e.g. for the planet Kel Vantor (1,234 km)."})
    assert spec_leaks(leaky, [("Kel Vantor", None)]) == ["Kel Vantor"]
    assert spec_leaks(leaky, [("1234", "int")]) == ["1234"]
    assert spec_leaks(TOOL, [("Kel Vantor", None), ("3", "int"), ("yes", None)]) == []
    assert "Velmora" in salient_values('What is the population of Velmora in 2024?')
    assert "Quiet Harbor Nights" in salient_values('Who directed the film "Quiet Harbor Nights"?')


# ---------------------------------------------------------------------------------
# Offline (template) synthesis
# ---------------------------------------------------------------------------------


def test_template_tool_is_a_table_lookup_with_defensive_errors(composed, pool):
    inst = next(i for i in composed if i.scenario == "single_hop" and i.meta["plan"]["s1"]["operation"] == "lookup")
    entry = inst.meta["plan"]["s1"]
    r = render_plan_tool(entry)
    assert r.tool.name == entry["tool_intent"] and r.call.startswith(entry["tool_intent"] + "(")
    assert entry["entity"] not in json.dumps(r.tool.openai()) and inst.answer not in r.tool.description
    data = mock_data_of(r.code)
    from astra.envsynth.worlds import load_world

    assert len(data) == len(load_world(entry["world"]).names(entry["entity_type"])) > 3  # the whole table
    ok = run_call_statement(r.code, r.call, pool=pool)
    assert ok.ok and answer_in_output(inst.answer, ok.value, entry["answer_type"])
    sentence = run_call_statement(r.code, r.call[:-1] + ', response_format="sentence")', pool=pool)
    assert isinstance(sentence.value, str) and answer_in_output(inst.answer, sentence.value, entry["answer_type"])
    bad = run_call_statement(r.code, f'{r.tool.name}({r.tool.required[0]}="No Such Thing")', pool=pool)
    assert bad.outcome == "raised" and bad.error_type == "ValueError" and "unknown" in bad.error_message
    wrong_type = run_call_statement(r.code, f'{r.tool.name}({r.tool.required[0]}=3)', pool=pool)
    assert wrong_type.error_type == "ValueError"


async def test_offline_synthesis_covers_all_scenarios_and_merges(composed, pool):
    picked = {}
    for inst in composed:
        picked.setdefault(inst.scenario, inst)
    for inst in picked.values():
        env = await synthesize_environment(inst, pool=pool)
        assert env.verification["ok"] and env.provenance["generator"] == "template"
        tool_ids = {s.id for s in inst.sub_tasks if s.needs_tool}
        assert {sid for t in env.tools for sid in t.serves} == tool_ids  # leaf non-tool steps skipped
        intents = {inst.meta["plan"][sid]["tool_intent"] for sid in tool_ids}
        assert len(env.tools) == len(intents)  # one tool per same-intent cluster
        for rec in env.verification["merges"]:
            if len(rec["members"]) > 1:
                assert rec["status"] == "merged"
        for t in env.tools:  # every member's call was re-verified against the merged code
            assert [c["sub_id"] for c in env.verification["tools"][t.tool.name]["calls"]] == t.serves


async def test_offline_synthesis_needs_a_plan(composed, pool):
    inst = composed[0].model_copy(update={"meta": {}})
    with pytest.raises(Rejected) as e:
        await synthesize_environment(inst, pool=pool)
    assert e.value.reason == "no_plan"
    assert choose_synthesizer(inst, None, LLMSettings(spec="embedded")) == "llm"
    assert choose_synthesizer(composed[0], None, LLMSettings(spec="embedded")) == "offline"
    assert choose_synthesizer(composed[0], None, LLMSettings(spec="openai:gpt")) == "llm"


# ---------------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------------

BASE_CODE = '''"""weather"""
import json

MOCK_DATA = {"oslo": {"2025-03-02": -3}}


def get_temp(city, date):
    key = city.lower()
    if key not in MOCK_DATA or date not in MOCK_DATA[key]:
        raise ValueError("unknown city or date")
    return {"city": city, "temp_c": MOCK_DATA[key][date]}
'''


def test_extend_mock_data_changes_only_the_data():
    member = BASE_CODE.replace('{"oslo": {"2025-03-02": -3}}', '{"oslo": {"2025-03-03": 1}, "bergen": {"2025-03-02": 5}}')
    merged = extend_mock_data(BASE_CODE, member)
    assert mock_data_of(merged) == {"oslo": {"2025-03-02": -3, "2025-03-03": 1}, "bergen": {"2025-03-02": 5}}
    assert merged.split("MOCK_DATA")[0] == BASE_CODE.split("MOCK_DATA")[0]
    assert merged.endswith(BASE_CODE[BASE_CODE.index("\n\ndef get_temp"):])
    with pytest.raises(MergeError, match="conflicting"):
        extend_mock_data(BASE_CODE, BASE_CODE.replace("-3", "7"))
    with pytest.raises(MergeError, match="no module-level"):
        extend_mock_data(BASE_CODE, "def get_temp(city, date):\n    return 1\n")
    assert deep_merge([1, 2], [2, 3]) == [1, 2, 3]


# ---------------------------------------------------------------------------------
# LLM synthesis through the scripted chat-API test double
# ---------------------------------------------------------------------------------


def _inst(sub_q: str, answer: str, *, question: str | None = None, extra: list[SubTask] | None = None,
          scenario: str = "single_hop") -> QAInstance:
    subs = [SubTask(id="s1", sub_question=sub_q, sub_answer=answer)] + list(extra or [])
    return QAInstance(id="astro.q.1", domain="astronomy", scenario=scenario, question=question or sub_q,
                      answer=answer, sub_tasks=subs)


SPEC = {"name": "get_planet_moons", "description": "Look up how many moons a planet has.",
        "parameters": [{"name": "planet", "type": "string", "description": "Planet name.", "required": True}]}
SCALED = {**SPEC, "parameters": SPEC["parameters"] + [
    {"name": "include_names", "type": "boolean", "description": "Also list moon names.", "required": False,
     "default": False}]}
CALL = {"call": 'get_planet_moons(planet="Kelvar")'}


def code(body: str, data: str = '{"Kelvar": 3, "Ostra": 12}') -> dict:
    return {"code": f"MOCK_DATA = {data}\n\n\ndef get_planet_moons(planet, include_names=False):\n{body}\n"}


GOOD = code('    if planet not in MOCK_DATA:\n        raise ValueError(f"unknown planet {planet!r}")\n'
            '    return {"planet": planet, "moons": MOCK_DATA[planet]}')


async def test_scripted_llm_failing_code_is_retried_with_the_error_fed_back(pool):
    failing = code('    return {"moons": MOCK_DATA[planet.upper()]}')  # KeyError: 'KELVAR'
    client, provider = scripted([SPEC, SCALED, CALL, failing, CALL, GOOD])
    env = await synthesize_environment(_inst("How many moons does Kelvar have?", "3"), synthesizer="llm",
                                       client=client, pool=pool, max_attempts=3)
    assert provider.calls == 6
    retry_call_prompt = last_user_text(provider.requests[4])
    assert "KeyError" in retry_call_prompt and "KELVAR" in retry_call_prompt  # the error, fed back
    assert "Attempt 1 failed (code_error)" in last_user_text(provider.requests[5])
    (tool,) = env.tools
    assert tool.tool.name == "get_planet_moons" and "include_names" in tool.tool.properties  # scaled
    sub = env.verification["tools"]["get_planet_moons"]["sub_envs"]["s1"]
    assert sub["attempts"] == 2 and sub["scaling"] == "applied"
    assert sub["defensive"]["outcome"] == "raised"
    assert env.provenance["generator"] == "llm" and env.provenance["model"] == "scripted"


async def test_scripted_llm_code_that_prints_the_answer_but_returns_another_is_rejected(pool):
    prints = code('    print(f"{planet} has {MOCK_DATA[planet]} moons")\n    return {"planet": planet, "moons": 4}')
    client, _ = scripted([SPEC, SCALED, CALL, prints])
    with pytest.raises(Rejected) as e:
        await synthesize_environment(_inst("How many moons does Kelvar have?", "3"), synthesizer="llm",
                                     client=client, pool=pool, max_attempts=1)
    assert e.value.reason == "wrong_answer" and "printed" in e.value.detail


async def test_scripted_llm_near_miss_answer_is_rejected_by_typed_matching(pool):
    near = code('    return {"planet": planet, "moons": 13, "catalogued": 2023, "ratio": 3.5}')
    client, provider = scripted([SPEC, SCALED, CALL, near, CALL, near])
    with pytest.raises(Rejected) as e:
        await synthesize_environment(_inst("How many moons does Kelvar have?", "3"), synthesizer="llm",
                                     client=client, pool=pool, max_attempts=2)
    assert e.value.reason == "wrong_answer"
    out = '{"planet": "Kelvar", "moons": 13, "catalogued": 2023, "ratio": 3.5}'
    assert "3" in out  # what a substring check would have accepted
    assert "does not contain the expected answer" in last_user_text(provider.requests[4])


async def test_scripted_llm_forbidden_import_is_rejected(pool):
    bad = {"code": "import requests\n\nMOCK_DATA = {}\n\n\ndef get_planet_moons(planet, include_names=False):\n"
                   "    return requests.get('http://x').json()\n"}
    client, _ = scripted([SPEC, SCALED, CALL, bad])
    with pytest.raises(Rejected) as e:
        await synthesize_environment(_inst("How many moons does Kelvar have?", "3"), synthesizer="llm",
                                     client=client, pool=pool, max_attempts=1)
    assert e.value.reason == "forbidden_import" and "requests" in e.value.detail


async def test_scripted_llm_spec_leak_is_retried_then_rejected(pool):
    leaky = {**SPEC, "description": "Look up how many moons a planet such as Kelvar has."}
    client, provider = scripted([leaky, leaky])
    with pytest.raises(Rejected) as e:
        await synthesize_environment(_inst("How many moons does Kelvar have?", "3"), synthesizer="llm",
                                     client=client, pool=pool, max_attempts=2)
    assert e.value.reason == "spec_leak"
    assert "leaks values" in last_user_text(provider.requests[1]) and "Kelvar" in last_user_text(provider.requests[1])
    answer_leak = {**SPEC, "description": "Moon counts, e.g. returns 1,234 for big planets."}
    client, _ = scripted([answer_leak])
    with pytest.raises(Rejected) as e:
        await synthesize_environment(_inst("How many moons does Kelvar have?", "1234"), synthesizer="llm",
                                     client=client, pool=pool, max_attempts=1)
    assert e.value.reason == "spec_leak"


async def test_scripted_llm_unparseable_replies_are_llm_failed(pool):
    client, _ = scripted(["not json at all"] * 3)
    with pytest.raises(Rejected) as e:
        await synthesize_environment(_inst("How many moons does Kelvar have?", "3"), synthesizer="llm",
                                     client=client, pool=pool)
    assert e.value.reason == "llm_failed"


async def test_scripted_llm_same_intent_sub_tasks_are_merged_by_inserting_mock_data(pool):
    s2 = SubTask(id="s2", sub_question="How many moons does Ostra have?", sub_answer="12", is_parallel=True)
    s3 = SubTask(id="s3", hop_level=2, sub_question="What is the sum of 3 and 12?", sub_answer="15",
                 dependency=["s1", "s2"], needs_tool=False)
    inst = _inst("How many moons does Kelvar have?", "3", question="How many moons do Kelvar and Ostra have together?",
                 extra=[s2, s3], scenario="parallel_single_hop").model_copy(update={"answer": "15"})
    inst.sub_tasks[0].is_parallel = True
    body = GOOD["code"].split("\n\n\n", 1)[1]
    c1 = {"code": 'MOCK_DATA = {"Kelvar": 3}\n\n\n' + body}
    c2 = {"code": 'MOCK_DATA = {"Ostra": 12}\n\n\n' + body}
    call2 = {"call": 'get_planet_moons(planet="Ostra")'}
    client, provider = scripted([SPEC, SCALED, CALL, c1, SPEC, SCALED, call2, c2])
    env = await synthesize_environment(inst, synthesizer="llm", client=client, pool=pool)
    assert "get_planet_moons(" in last_user_text(provider.requests[4])  # the second spec sees the first tool
    (tool,) = env.tools
    assert tool.serves == ["s1", "s2"] and mock_data_of(tool.code) == {"Kelvar": 3, "Ostra": 12}
    assert env.verification["merges"] == [{"tool": "get_planet_moons", "members": ["s1", "s2"], "insertions": 1,
                                           "status": "merged"}]
    assert (await verify_environment(env, pool=pool)).ok


async def test_scripted_llm_unmergeable_cluster_drop_or_keep(pool):
    s2 = SubTask(id="s2", sub_question="How many moons does Ostra have?", sub_answer="12", is_parallel=True)
    inst = _inst("How many moons does Kelvar have?", "3", extra=[s2], scenario="parallel_single_hop")
    inst.sub_tasks[0].is_parallel = True
    c2 = code('    if planet not in MOCK_DATA:\n        raise ValueError(f"unknown planet {planet!r}")\n'
              '    return {"planet": planet, "moons": MOCK_DATA[planet]}', data='{"Kelvar": 4, "Ostra": 12}')
    call2 = {"call": 'get_planet_moons(planet="Ostra")'}
    script = [SPEC, SCALED, CALL, GOOD, SPEC, SCALED, call2, c2]
    client, _ = scripted(script)
    with pytest.raises(Rejected) as e:
        await synthesize_environment(inst, synthesizer="llm", client=client, pool=pool)
    assert e.value.reason == "merge_failed" and "conflicting" in e.value.detail
    client, _ = scripted(script)
    env = await synthesize_environment(inst, synthesizer="llm", client=client, pool=pool, on_merge_fail="keep")
    assert [t.tool.name for t in env.tools] == ["get_planet_moons", "get_planet_moons_2"]
    assert env.tools[1].calls == {"s2": "get_planet_moons_2(planet='Ostra')"}
    assert {r["status"] for r in env.verification["merges"]} == {"kept_unmerged"}
    assert (await verify_environment(env, pool=pool)).ok


def test_scripted_llm_stage_writes_bundle_and_records_rejections(tmp_path, pool):
    client, _ = scripted([SPEC, SCALED, CALL, GOOD])
    good = _inst("How many moons does Kelvar have?", "3")
    no_tool = good.model_copy(update={"id": "astro.q.2", "sub_tasks": [good.sub_tasks[0].model_copy(
        update={"needs_tool": False})]})
    stage = SynthesizeStage(tmp_path / "envs", synthesizer="llm", client=client, pool=pool)
    m = run_stage(stage, [good, no_tool], tmp_path / "envs" / "index.jsonl", progress=False, concurrency=1)
    assert (m.accepted, m.rejected) == (1, 1) and m.rejections_by_reason == {"no_tool_step": 1}
    (entry,) = read_outputs(tmp_path / "envs" / "index.jsonl", EnvIndexEntry)
    env = load_environment(tmp_path / "envs" / "astro.q.1")
    assert entry.path == "astro.q.1.json" and env.id == "astro.q.1" and entry.verified


# ---------------------------------------------------------------------------------
# Bundle + CLI: decompose -> validate -> synthesize -> verify (offline, ~12 environments)
# ---------------------------------------------------------------------------------


def test_cli_offline_pipeline_synthesizes_and_verifies_environments(tmp_path):
    runner = CliRunner()
    qa, valid, out = tmp_path / "qa.jsonl", tmp_path / "valid.jsonl", tmp_path / "envs"
    for args in (["decompose", "-o", str(qa), "--n", "1", "--limit", "12", "--no-progress"],
                 ["validate", str(qa), "-o", str(valid), "--no-progress"],
                 ["synthesize", str(valid), "-o", str(out), "--no-progress"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    m = load_manifest(out / "index.manifest.json")
    assert m.accepted == 12 and m.rejected == 0
    envs = load_environments(out)
    assert len(envs) == 12 and {e.instance.scenario for e in envs} == {
        "single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop"}
    env = envs[0]
    data = json.loads((out / f"{env.id}.json").read_text())
    assert data["schema_version"] == 1 and data["provenance"]["prompts_version"]
    assert data["tools"][0]["code"] and data["instance"]["sub_tasks"][0]["sub_answer"]
    assert data["verification"]["tools"][env.tools[0].tool.name]["calls"][0]["output_excerpt"]
    r = runner.invoke(app, ["verify", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.count("PASS ") == 12
    # resumable: a rerun synthesizes nothing new
    r = runner.invoke(app, ["synthesize", str(valid), "-o", str(out), "--no-progress"])
    assert r.exit_code == 0 and load_manifest(out / "index.manifest.json").skipped_done == 12
    # a broken gold call makes verify fail with a non-zero exit code
    broken = env.model_copy(deep=True)
    broken.tools[0].code = broken.tools[0].code.replace("return {", "return {'x': 0} or {")
    write_environment(broken, out)
    r = runner.invoke(app, ["verify", str(out)])
    assert r.exit_code == 1 and f"FAIL {env.id}" in r.output


def test_load_environment_refuses_newer_schema(tmp_path, composed):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"schema_version": 99, "id": "x"}))
    from astra.errors import SchemaVersionError

    with pytest.raises(SchemaVersionError):
        load_environment(p)
    assert Path(p).exists()
