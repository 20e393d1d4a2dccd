"""Held-out environment evaluation: a scripted perfect agent on real synthesized environments
scores success 1.0 and the runtime's F1; an empty agent scores 0; per-scenario breakdown;
the held-out split is stable and disjoint; the CLI writes JSON."""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

from astra.envs import write_environment
from astra.envs.reward import reward_parts
from astra.envs.split import split_environments
from astra.envsynth.compose import compose
from astra.envsynth.synth import synthesize_environment
from astra.envsynth.worlds import load_worlds
from astra.eval.envs import eval_envs_command, evaluate_envs, write_report
from astra.llm import LLMClient
from astra.llm.testing import ScriptedChatProvider, last_user_text, reply
from astra.sandbox import SandboxPool, parse_call_statement
from astra.types import Environment


@pytest.fixture(scope="module")
def envs() -> list[Environment]:
    """One synthesized environment per scenario type (film world)."""
    pool = SandboxPool(size=2)
    try:
        insts = compose(load_worlds(["film"]), n=1, seed=0)

        async def build():
            return [await synthesize_environment(i, pool=pool) for i in insts]

        return asyncio.run(build())
    finally:
        pool.close()


def gold_calls(env: Environment) -> list[tuple[str, dict]]:
    out = []
    for t in env.tools:
        for sid, stmt in t.calls.items():
            c = parse_call_statement(stmt)
            out.append((sid, (c.name, c.kwargs)))
    return [c for _, c in sorted(out, key=lambda x: int(x[0][1:]))]


def perfect_agent(envs: list[Environment]) -> LLMClient:
    """First turn: every gold call at once; then the final answer."""
    by_q = {e.instance.question: e for e in envs}

    def script(req):
        env = by_q[last_user_text(req)]
        if not any(m.get("role") == "tool" for m in req.messages):
            return reply(None, tool_calls=gold_calls(env))
        return reply(f"The answer is {env.instance.answer}.")

    return LLMClient(ScriptedChatProvider(script), cache=None)


def test_perfect_agent_scores_success_and_runtime_f1(envs):
    rep = evaluate_envs(envs, [perfect_agent(envs)], max_turns=8, concurrency=4)
    [m] = rep.models
    assert rep.n_envs == len(envs) == m.overall.n
    assert m.overall.success_rate == 1.0
    for ep in m.episodes:
        env = next(e for e in envs if e.id == ep.env_id)
        n = len(env.instance.sub_tasks)
        _, _, f1 = reward_parts(n, n, len(gold_calls(env)))
        assert ep.success and ep.error is None
        assert ep.calls == len(gold_calls(env))
        assert ep.f1 == pytest.approx(f1)
    assert set(m.by_scenario) == {e.instance.scenario for e in envs}
    assert len(m.by_scenario) >= 2
    assert all(x.success_rate == 1.0 for x in m.by_scenario.values())


def test_empty_agent_scores_zero_and_models_compare(envs):
    empty = LLMClient(ScriptedChatProvider(lambda req: reply("I don't know.")), cache=None)
    rep = evaluate_envs(envs, [empty, perfect_agent(envs)], limit=2)
    assert rep.n_envs == 2 and len(rep.models) == 2
    e = rep.models[0]
    assert e.overall.success_rate == 0 and e.overall.f1 == 0 and e.overall.calls == 0 and e.overall.turns == 0
    assert rep.models[1].overall.success_rate == 1.0
    table = rep.table()
    assert table.row_count >= 4


def test_split_heldout_is_stable_and_disjoint(envs, tmp_path):
    src = tmp_path / "envs"
    for e in envs:
        write_environment(e, src)
    train, held = split_environments(src, 0.5, seed=1)
    from astra.envs.bundle import load_environments

    a, b = {e.id for e in load_environments(train)}, {e.id for e in load_environments(held)}
    assert a | b == {e.id for e in envs} and not a & b
    train2, held2 = split_environments(src, 0.5, seed=1, out_dir=tmp_path / "again")
    assert {e.id for e in load_environments(held2)} == b
    _, all_held = split_environments(src, 1.0, out_dir=tmp_path / "all")
    assert len(load_environments(all_held)) == len(envs)
    # the index lists environments in the order they were written (completion order for
    # synthesis); loading sorts them so every run sees the same order
    from astra.envs.bundle import INDEX_NAME, environment_paths

    index = all_held / INDEX_NAME
    lines = index.read_text().splitlines(keepends=True)
    index.write_text("".join(reversed(lines)))
    paths = environment_paths(all_held)
    assert paths == sorted(paths) and len(paths) == len(envs) > 1


def test_split_mixes_several_sources_by_id(envs, tmp_path):
    from astra.envs.bundle import load_environments

    half = len(envs) // 2
    a, b = tmp_path / "qa", tmp_path / "stateful"
    for e in envs[:half]:
        write_environment(e, a)
    for e in envs[half:]:
        write_environment(e, b)
    train, held = split_environments([a, b], 0.5, seed=1, out_dir=tmp_path / "mixed")
    one_train, one_held = split_environments(a, 0.5, seed=1, out_dir=tmp_path / "one")
    mixed = {e.id for e in load_environments(train)} | {e.id for e in load_environments(held)}
    assert mixed == {e.id for e in envs}
    # each environment lands on the same side as when its source is split alone
    assert {e.id for e in load_environments(one_held)} <= {e.id for e in load_environments(held)}
    with pytest.raises(ValueError, match="in both"):
        split_environments([a, a], 0.5, out_dir=tmp_path / "dup")
    with pytest.raises(ValueError, match="output directory"):
        split_environments([a, b], 0.5)


def test_stratified_split_holds_out_every_scenario_type(envs):
    from astra.envs.split import _rank, heldout_ids

    envs = [e.model_copy(update={"id": f"{e.id}.{k}"}) for e in envs for k in range(3)]  # 3 per scenario
    by_scenario: dict[str, list] = {}
    for e in envs:
        by_scenario.setdefault(e.instance.scenario, []).append(e)
    assert len(by_scenario) >= 2 and all(len(v) >= 2 for v in by_scenario.values())
    # a fraction so small that the hash holds out nothing: each scenario then gives its lowest-hash env
    tiny = min(_rank(e.id, 0) for e in envs) / 2
    assert heldout_ids(envs, tiny, 0, stratify=False) == set()
    held = heldout_ids(envs, tiny, 0)
    assert held == {min(v, key=lambda e: _rank(e.id, 0)).id for v in by_scenario.values()}
    # otherwise the hash decides alone, and what it holds out stays held out
    plain = heldout_ids(envs, 0.5, 0, stratify=False)
    assert plain <= heldout_ids(envs, 0.5, 0)
    assert heldout_ids(envs, 0.0, 0) == set()


def test_cli_writes_json(envs, tmp_path, monkeypatch):
    src = tmp_path / "held"
    for e in envs[:1]:
        write_environment(e, src)
    import astra.eval.envs as mod

    real = mod.evaluate_envs

    def fake(envs_arg, models, **kw):  # the CLI's model specs → the scripted agent
        assert models == ["embedded"]
        return real(envs_arg, [perfect_agent(envs)], **kw)

    monkeypatch.setattr(mod, "evaluate_envs", fake)
    app = typer.Typer()
    app.command()(eval_envs_command)
    out = tmp_path / "res.json"
    r = CliRunner().invoke(app, [str(src), "-o", str(out), "--max-turns", "4"])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["kind"] == "envs" and data["n_envs"] == 1 and data["max_turns"] == 4
    assert data["models"][0]["overall"]["success_rate"] == 1.0
    assert data["models"][0]["by_scenario"]
    write_report(mod.EnvEvalReport.model_validate(data), tmp_path / "copy.json")


@pytest.mark.model
def test_hf_engine_plays_like_the_chat_client(envs, tmp_path):
    """``--engine hf`` (the RL rollout loop, KV cache across turns) gives the embedded
    model's greedy replies and the same scores as its chat client, and records the engine."""
    hf = evaluate_envs(envs, ["embedded"], max_turns=2, max_tokens=24, engine="hf")
    chat = evaluate_envs(envs, ["embedded"], max_turns=2, max_tokens=24, engine="chat")
    assert hf.engine == "hf" and chat.engine == "chat"
    a, b = hf.models[0].episodes, chat.models[0].episodes
    assert [e.env_id for e in a] == [e.id for e in envs] == [e.env_id for e in b]
    assert all(e.error is None for e in a)
    assert [e.final_answer for e in a] == [e.final_answer for e in b]
    assert [e.f1 for e in a] == [e.f1 for e in b]


def test_unknown_engine_is_a_config_error(envs):
    from astra.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown evaluation engine"):
        evaluate_envs(envs, ["embedded"], engine="vllm")


@pytest.mark.model
def test_identical_checkpoints_are_played_once(envs, tmp_path):
    """A second model directory with the same weights (an RL run that made no update) reuses
    the first one's greedy episodes, marked; a changed weight file is played again."""
    from pathlib import Path

    from astra.eval.local import weights_digest
    from astra.llm.embedded import resolve_model_path

    base = Path(resolve_model_path(None))
    same = tmp_path / "same"
    same.mkdir()
    for f in base.iterdir():
        if f.is_file():
            (same / f.name).symlink_to(f)
    tok = json.loads((base / "tokenizer_config.json").read_text())
    tok["padding_side"] = "left"  # saved tokenizer state that generation ignores
    (same / "tokenizer_config.json").unlink()
    (same / "tokenizer_config.json").write_text(json.dumps(tok))
    assert weights_digest("embedded") == weights_digest(f"embedded:{same}")
    r = evaluate_envs(envs[:2], ["embedded", str(same)], max_turns=1, max_tokens=8)
    first, second = r.models
    assert second.same_weights_as == "embedded" and first.same_weights_as is None
    assert second.model == str(same) and second.episodes == first.episodes and second.seconds == 0.0
    assert "the same weights as embedded" in str(r.table().caption)
    other = tmp_path / "other"
    other.mkdir()
    for f in same.iterdir():
        (other / f.name).symlink_to(f.resolve())
    (other / "model.safetensors").unlink()
    data = (base / "model.safetensors").read_bytes()
    (other / "model.safetensors").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert weights_digest(f"embedded:{other}") != weights_digest("embedded")
    assert weights_digest("openai:gpt-x") is None


def test_subtask_share_counts_tool_calls_whatever_the_answer():
    from astra.eval.envs import EpisodeResult, Metrics

    eps = [EpisodeResult(env_id="a", solved=["s1"], n_subtasks=2, f1=0.0),
           EpisodeResult(env_id="b", solved=["s1", "s2"], n_subtasks=2, f1=1.0, success=True),
           EpisodeResult(env_id="c", solved=[], n_subtasks=0)]
    m = Metrics.of(eps, with_ci=True)
    assert m.subtasks == 0.5 and m.f1 == round(1 / 3, 4) and "subtasks" in m.ci


def test_limit_spreads_over_kinds_and_scenario_types(envs):
    from types import SimpleNamespace as NS

    from astra.eval.envs import spread_sample

    fake = [NS(id=f"bank.stateful.{i}", kind="stateful", instance=NS(scenario="multi_hop")) for i in range(6)]
    mixed = fake + list(envs)  # a bundle sorted by name puts all of one server first
    picked = spread_sample(mixed, 5)
    assert len(picked) == 5 and len({(getattr(e, "kind", "qa"), e.instance.scenario) for e in picked}) == 5
    assert spread_sample(mixed, None) == mixed and spread_sample(mixed, 99) == mixed
    seven = spread_sample(mixed, 7)  # a second round starts again from the first group
    assert len(seven) == 7 and len(set(map(id, seven))) == 7 and seven[:5] == picked
