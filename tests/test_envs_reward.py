"""Reward integrity: the final-answer check (typed, one value), the answer gate and its
combination with the sub-task F1, the runtime on hostile arguments, and the exploit suite
(every exploit earns <= 0.05 while the gold plan earns 1) — on hand-made and synthesized
environments, through `astra envs verify` too."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from astra.envs import EnvSession, write_environment
from astra.envs.arguments import argument_problem, parse_arguments
from astra.envs.exploits import (
    DIAGNOSTICS,
    EXPLOIT_MAX,
    EXPLOITS,
    GOLD_MIN,
    exploit_table,
    probe_environment,
)
from astra.envs.match import check_final_answer, value_runs
from astra.envs.reward import episode_reward, reward_parts
from astra.envsynth.cli import app
from astra.envsynth.compose import compose
from astra.envsynth.synth import synthesize_environment
from astra.envsynth.worlds import load_worlds
from astra.sandbox import SandboxPool
from astra.types import Environment, EnvTool, QAInstance, SubTask, Tool
from tests.test_envs_runtime import MOONS, call, gold_calls, moons_env


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(size=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def synth_envs(pool) -> list[Environment]:
    """Two composed instances per scenario type from two worlds, synthesized."""
    insts = compose(load_worlds(["film", "geo"]), n=2, seed=3)

    async def build():
        return [await synthesize_environment(i, pool=pool) for i in insts]

    return asyncio.run(build())


# ---------------------------------------------------------------------------------
# The final-answer check
# ---------------------------------------------------------------------------------

VALUES = value_runs({"Rosalind Achebe": 5, "Marisol Ketteridge": 2, "Blotter Monitor": "Marisol Ketteridge",
                     "Ostra": 12}, keys=True)


@pytest.mark.parametrize("answer,ok,reason", [
    ("Marisol Ketteridge", True, "ok"),
    ("The answer is Marisol Ketteridge.", True, "ok"),
    ("**marisol   KETTERIDGE**", True, "ok"),
    ('{"answer": "Marisol Ketteridge"}', True, "ok"),
    ("Marisol Ketteridge or Rosalind Achebe", False, "several_values"),
    ("Rosalind Achebe, Marisol Ketteridge", False, "several_values"),
    ('{"a": "Marisol Ketteridge", "b": "Rosalind Achebe"}', False, "several_values"),
    ("Marisol Ketteridge (salary band 2)", False, "several_values"),  # another known value
    ("Marisol Ketteridge leads Blotter Monitor", False, "several_values"),
    ("Rosalind Achebe", False, "missing"),
    ("Marisol", False, "missing"),
    ("", False, "empty"),
    (None, False, "empty"),
    ("The answer, after a long and careful look at every tool result, is Marisol Ketteridge.", False, "too_long"),
    ("Marisol Ketteridge " * 400, False, "too_long"),
])
def test_final_answer_names_the_gold_and_nothing_else(answer, ok, reason):
    v = check_final_answer("Marisol Ketteridge", answer, "entity", values=VALUES)
    assert (v.ok, v.reason) == (ok, reason), v


@pytest.mark.parametrize("gold,atype,answer,ok", [
    ("15", "int", "15", True), ("15", "int", "It is 15.", True), ("15", "int", "15.0 moons", True),
    ("15", "int", "１５", True),  # full-width digits are digits
    ("15", "int", "3 + 12 = 15", False), ("15", "int", "15 or 16", False), ("15", "int", "14-16", False),
    ("15", "int", "150", False), ("15", "int", "fifteen", False), ("1200", "int", "1,200", True),
    ("15", "int", "15 (Ostra has 12)", False),
    ("3.5", "float", "3.50", True), ("3.5", "float", "3.5 or 4", False),
    ("1962-03-02", "date", "2 March 1962", True), ("1962-03-02", "date", "02/03/1962", True),
    ("1962-03-02", "date", "1962-03-02 or 1962-03-03", False), ("1962-03-02", "date", "1962", False),
    ("yes", None, "Yes.", True), ("yes", None, "yes and no", False), ("no", None, "No, they differ.", True),
    ("no", None, "not sure", False), ("yes", None, "true", True),
])
def test_final_answer_is_typed(gold, atype, answer, ok):
    assert check_final_answer(gold, answer, atype, values=VALUES).ok is ok


def test_final_answer_check_survives_hostile_answers():
    deep = "[" * 50_000 + "]" * 50_000
    assert check_final_answer("15", deep, "int").reason == "too_long"
    assert check_final_answer("15", "[" * 900 + "15" + "]" * 900, "int").ok in (True, False)  # no RecursionError
    assert check_final_answer("15", "x" * 10_000_000, "int").reason == "too_long"
    assert check_final_answer("15", {"answer": 15}, "int").ok  # a non-string answer is read as text
    assert value_runs([[[[["deep"]]]]]) == frozenset({("deep",)})
    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    assert value_runs(nested) == frozenset()  # bounded walk, no recursion


# ---------------------------------------------------------------------------------
# The gated reward
# ---------------------------------------------------------------------------------


def test_episode_reward_is_the_method_formula_times_the_gate():
    assert episode_reward(3, 3, 2, True) == pytest.approx(reward_parts(3, 3, 2)[2])
    assert episode_reward(3, 3, 2, False) == 0.0
    assert episode_reward(3, 3, 3, True, "recall") == 1.0
    assert episode_reward(3, 3, 6, True, "precision") == pytest.approx(0.5, abs=1e-6)
    assert episode_reward(0, 3, 0, True) == 0.0  # nothing solved: 0 whatever the answer


async def test_worked_examples_of_the_reward(pool):
    """The examples of docs/environments.md, on the moons environment (s1, s2 tool steps; s3 = s1 + s2)."""
    env = moons_env()
    both = [call("get_moons", {"planet": "Kelvar"}, "a"), call("get_moons", {"planet": "Ostra"}, "b")]

    async def play(turns, answer, kind="f1"):
        s = EnvSession(env, pool=pool, reward=kind, max_turns=20)
        s.reset()
        for t in turns:
            await s.astep(t)
        s.finish(answer)
        return s.reward()

    gold = await play([both], "15")  # n = 3, n̂ = 3, c = 2: p = min(1, 3/2) = 1, r = 1
    assert gold.reward == 1.0 and gold.success and gold.solved == ["s1", "s2", "s3"]
    wasteful = await play([both, [call("get_star", {"planet": "Ostra"}, "c"), call("tick", {}, "d")]], "15")
    assert wasteful.reward == pytest.approx(2 * 0.75 / 1.75, abs=1e-5)  # c = 4: p = 3/4
    assert wasteful.recall == 1.0 and wasteful.precision == pytest.approx(0.75, abs=1e-5)
    rec = await play([both, [call("get_star", {"planet": "Ostra"}, "c"), call("tick", {}, "d")]], "15", "recall")
    assert rec.reward == 1.0  # recall ignores the cost of calls
    hedge = await play([both], "15 or 3 or 12")
    assert hedge.reward == 0.0 and hedge.answer_check == "several_values" and hedge.solved == ["s1", "s2"]
    wrong = await play([both], "16")
    assert wrong.reward == 0.0 and wrong.answer_check == "missing" and wrong.f1 == 0.0
    ungrounded = await play([[both[0]]], "15")  # right answer, Ostra never looked up
    assert ungrounded.answer_ok and not ungrounded.grounded and ungrounded.reward == 0.0
    guessed = await play([], "15")
    assert guessed.reward == 0.0 and guessed.solved == []
    nothing = await play([], None)
    assert nothing.reward == 0.0 and nothing.answer_check == "empty"


async def test_one_sub_task_per_distinct_call(pool):
    """Two sub-tasks with the same gold answer: one call solves one of them; repeating it
    solves nothing more (only a different call does)."""
    code = MOONS.replace('"Ostra": 12', '"Ostra": 3')
    env = moons_env()
    env.tools[0] = env.tools[0].model_copy(update={"code": code})
    env.instance.sub_tasks[1] = env.instance.sub_tasks[1].model_copy(update={"sub_answer": "3"})
    env.instance.sub_tasks[2] = env.instance.sub_tasks[2].model_copy(update={"sub_answer": "6"})
    s = EnvSession(env, pool=pool)
    s.reset()
    await s.astep([call("get_moons", {"planet": "Ostra"}, "a")])
    assert s.solved == ["s2"]  # the gold call of s2, not s1 (which also has the answer 3)
    await s.astep([call("get_moons", {"planet": " ostra "}, "b")])  # the same call, up to case and spaces
    assert s.solved == ["s2"]
    await s.astep([call("get_moons", {"planet": "Kelvar"}, "c")])
    assert s.solved == ["s1", "s2"]


# ---------------------------------------------------------------------------------
# Hostile arguments: an error message to the agent and a counted call, never an exception
# ---------------------------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("raw,needle", [
    ('{"planet": ' + DEEP + "}", "nested deeper"),
    (DEEP, "nested deeper"),
    ({"planet": json.loads("[" * 900 + "]" * 900)}, "nested deeper"),
    (json.dumps({"planet": "A" * 1_000_000}), "longer than"),
    ({"planet": "A" * 1_000_000}, "longer than"),
    ("[1, 2]", "JSON object"), ("7", "JSON object"), ("null", "JSON object"), (42, "JSON object"),
    (["planet"], "JSON object"), ('{"planet": ', "not valid JSON"), ("9" * 5000, "not valid JSON"),
    ('{"planet": NaN}', "finite number"),
    ({"planet": 3}, "must be string"), ({"planet": ["Kelvar"]}, "must be string"),
    ({}, "missing required argument 'planet'"), ({"planet": "Kelvar", "extra": 1}, "unexpected argument 'extra'"),
])
async def test_hostile_arguments_become_error_messages(pool, raw, needle):
    env = moons_env()
    strict = env.tools[0].tool.model_copy(update={"parameters": {**env.tools[0].tool.parameters,
                                                                 "additionalProperties": False}})
    env.tools[0] = env.tools[0].model_copy(update={"tool": strict})
    s = EnvSession(env, pool=pool)
    s.reset()
    msgs = await s.astep([{"id": "x", "function": {"name": "get_moons", "arguments": raw}}])
    assert len(msgs) == 1 and msgs[0]["content"].startswith("Error:") and needle in msgs[0]["content"], msgs
    assert len(msgs[0]["content"]) < 400 and s.calls == 1 and s.solved == [] and s.log[0]["status"] == "bad_arguments"


async def test_bad_calls_unknown_tools_and_floods_are_counted(pool):
    s = EnvSession(moons_env(), pool=pool)
    s.reset()
    msgs = await s.astep([{"function": {"name": None}}, {"function": {"name": "x" * 100_000}}, "not a call", 17,
                          {"id": ["bad id"], "function": {"name": "get_moons", "arguments": '{"planet": "Kelvar"}'}}])
    assert [m["content"][:6] for m in msgs] == ["Error:"] * 4 + ['{"plan']
    assert "must be a string" in msgs[0]["content"] and "unknown tool" in msgs[1]["content"]
    assert len(msgs[1]["content"]) < 400 and "must be an object" in msgs[2]["content"]
    assert s.calls == 5 and s.solved == ["s1"] and msgs[4]["tool_call_id"] == "call_0_4"
    flood = [call("get_star", {"planet": "Ostra"}, f"f{i}") for i in range(EnvSession.max_calls_per_turn + 8)]
    msgs = await s.astep(flood)
    assert len(msgs) == len(flood) and s.calls == 5 + len(flood)
    assert sum("more than" in m["content"] for m in msgs) == 8
    single = await s.astep(call("get_star", {"planet": "Ostra"}, "one"))  # one call, not a list
    assert len(single) == 1 and "Vega" in single[0]["content"]


def test_argument_messages_name_the_argument():
    schema = {"type": "object", "properties": {"star": {"type": "string"}, "limit": {"type": "integer"},
                                               "mode": {"type": "string", "enum": ["fast", "slow"]}},
              "required": ["star"], "additionalProperties": False}
    assert argument_problem(schema, {"star": "Vega"}) is None
    assert argument_problem(schema, {}) == "missing required argument 'star' (required: star)"
    assert argument_problem(schema, {"star": "Vega", "limit": "5"}) == "argument 'limit' must be integer, got string"
    assert "must be one of" in argument_problem(schema, {"star": "Vega", "mode": "x"})
    assert argument_problem(schema, {"star": "Vega", "colour": 1}).startswith("unexpected argument 'colour'")
    assert parse_arguments("") == ({}, None) and parse_arguments(None) == ({}, None)


async def test_broken_schema_is_recorded_and_the_code_still_decides(pool):
    env = moons_env()
    broken = env.tools[0].tool.model_copy(update={"parameters": {"type": "object", "properties": {
        "planet": {"type": "planet-name"}}}})
    env.tools[0] = env.tools[0].model_copy(update={"tool": broken})
    s = EnvSession(env, pool=pool)
    s.reset()
    msgs = await s.astep([call("get_moons", {"planet": "Kelvar"})])
    assert json.loads(msgs[0]["content"])["moons"] == 3 and "not valid JSON Schema" in s.log[0]["schema_check"]


# ---------------------------------------------------------------------------------
# The exploit suite
# ---------------------------------------------------------------------------------


async def test_exploits_earn_nothing_and_the_gold_plan_earns_one(pool, synth_envs):
    envs = [moons_env(), *synth_envs]
    assert {e.instance.scenario for e in synth_envs} == {"single_hop", "parallel_single_hop", "multi_hop",
                                                          "parallel_multi_hop"}
    reports = [await probe_environment(e, pool=pool) for e in envs]
    for r in reports:
        assert r.gold >= GOLD_MIN, (r.id, r.gold)
        assert set(r.exploits) == set(EXPLOITS) and set(r.diagnostics) == set(DIAGNOSTICS) and not r.errors, r
        assert all(v <= EXPLOIT_MAX for v in r.exploits.values()), (r.id, r.exploits)
        assert r.ok and r.reason is None
        assert 0 < r.diagnostics["gold_repeated"] < r.gold  # a wasteful agent earns less
    table = exploit_table(reports)
    assert table["probes"]["list_candidates"]["over_threshold"] == 0 and table["rejected"]["exploitable"] == 0


class _ContainsOnly(EnvSession):
    """The earlier, lenient rule: the answer is right when it *contains* the gold, and calls
    alone are paid. The suite must catch it."""

    def reward(self):
        from astra.envs.match import answer_in_output

        info = super().reward()
        ok = self.final_answer is not None and answer_in_output(self.env.instance.answer, self.final_answer)
        n_hat = len([s for s in self._solved if s in self._tool_ids]) + (1 if ok else 0) * len(self._inputs)
        r, p, f1 = reward_parts(min(n_hat, self.n_subtasks), self.n_subtasks, self.calls)
        return info.model_copy(update={"reward": f1})


async def test_the_suite_catches_a_lenient_reward(pool, synth_envs):
    r = await probe_environment(synth_envs[0], pool=pool, session_factory=_ContainsOnly)
    assert not r.ok and r.reason == "exploitable"
    assert {"list_candidates", "dump_outputs", "echo_question"} & set(r.paid)
    assert "earns" in r.describe()


def _trivial_env() -> Environment:
    """A tool that returns the bare answer: pasting its output *is* the answer, so the suite
    flags the environment (dump_outputs is paid)."""
    inst = QAInstance(id="toy.sh.1", domain="toy", scenario="single_hop", question="What is the value of Zed?",
                      answer="42", sub_tasks=[SubTask(id="s1", sub_question="What is the value of Zed?",
                                                      sub_answer="42")],
                      meta={"answer_types": {"s1": "int"}})
    tool = Tool(name="get_value", description="The value.", parameters={"type": "object", "properties": {}})
    return Environment(id=inst.id, instance=inst, tools=[
        EnvTool(tool=tool, code="def get_value():\n    return {'value': 42}\n", serves=["s1"],
                calls={"s1": "get_value()"})])


async def test_the_suite_rejects_an_environment_whose_output_is_the_answer(pool):
    r = await probe_environment(_trivial_env(), pool=pool)
    assert r.gold >= GOLD_MIN and "dump_outputs" in r.paid and r.reason == "exploitable"


def test_verify_cli_runs_the_suite_and_writes_the_counts(tmp_path, synth_envs):
    for e in synth_envs[:4]:
        write_environment(e, tmp_path)
    r = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.output.count("PASS ") == 4 and "best exploit 0.000" in r.output and "list_candidates" in r.output
    man = json.loads((tmp_path / "verify.manifest.json").read_text())
    assert man["passed"] == 4 and man["failed"] == [] and set(EXPLOITS) <= set(man["exploits"]["probes"])
    assert all(man["exploits"]["probes"][k]["over_threshold"] == 0 for k in EXPLOITS)
    write_environment(_trivial_env(), tmp_path)
    r = CliRunner().invoke(app, ["verify", str(tmp_path), "--json"])
    assert r.exit_code == 1
    rows = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    bad = next(x for x in rows if x["id"] == "toy.sh.1")
    assert not bad["ok"] and "dump_outputs" in bad["exploits"]["paid"]
    man = json.loads((tmp_path / "verify.manifest.json").read_text())
    assert man["failed"] == ["toy.sh.1"] and man["exploits"]["probes"]["dump_outputs"]["over_threshold"] == 1
    assert "dump_outputs earns" in man["exploit_failures"]["toy.sh.1"]


async def test_gold_calls_of_the_runtime_tests_still_pay(pool, synth_envs):
    env = synth_envs[-1]
    s = EnvSession(env, pool=pool, max_turns=20)
    s.reset()
    await s.astep(gold_calls(env))
    s.finish(env.instance.answer)
    assert s.reward().reward == pytest.approx(1.0, abs=1e-5)


def test_same_questions_are_not_a_constant_no():
    """A constant "no" must not be the answer to almost every "Do A and B have the same …?"."""
    from astra.envsynth.compose import check_gold

    insts = compose(load_worlds(), n=20, seed=1)
    same = [i for i in insts if (i.meta.get("aggregate") or {}).get("op") == "same"]
    yes = [i for i in same if i.answer == "yes"]
    assert len(same) >= 10 and len(yes) / len(same) >= 0.2, (len(yes), len(same))
    assert {i.scenario for i in yes} == {"parallel_single_hop", "parallel_multi_hop"}
    assert all(check_gold(i) == [] for i in same)
