"""The rollout engine on real synthesized environments: the reward is gated on the final
answer, so every episode must end with one — also when it reaches the turn cap.

The policy is scripted (``ScriptedPolicy`` replaces ``RolloutEngine.generate`` with the
token ids of fixed replies: the environment's gold calls, then an answer or more calls);
the environments, the sandboxed tool calls and the reward are the real ones.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from astra.envs.runtime import EnvSession
from astra.envsynth.compose import compose
from astra.envsynth.synth import synthesize_environment
from astra.envsynth.worlds import load_worlds
from astra.sandbox import SandboxPool, parse_call_statement
from astra.train.rl_rollout import RolloutEngine


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(size=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def film_envs(pool):
    insts = compose(load_worlds(["film"]), n=1, seed=0)

    async def build():
        return [await synthesize_environment(i, pool=pool) for i in insts]

    return {e.instance.scenario: e for e in asyncio.run(build())}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from astra.llm.embedded import ensure_default_model, ensure_tool_chat_template

    try:
        path = ensure_default_model()
    except Exception as e:  # pragma: no cover - machine without the bundled weights
        pytest.skip(f"needs the embedded model's tokenizer: {e}")
    tok = AutoTokenizer.from_pretrained(path)
    ensure_tool_chat_template(tok)
    return tok


def tiny_model(tok):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).float()


def gold_call_texts(env) -> list[str]:
    """One ``<tool_call>`` block per gold call, in sub-task order."""
    out = []
    for t in env.tools:
        for sid, stmt in t.calls.items():
            c = parse_call_statement(stmt)
            out.append((int(sid[1:]), json.dumps({"name": c.name, "arguments": c.kwargs})))
    return [f"<tool_call>\n{body}\n</tool_call>" for _, body in sorted(out)]


class ScriptedPolicy:
    """Reply ``calls[k]`` on the turn after ``k`` tool results, then ``final`` (a test double
    of the model's sampling: it only sees the token sequence, like the model)."""

    def __init__(self, engine: RolloutEngine, calls: list[str], final: str):
        self.engine, self.calls, self.final = engine, calls, final
        self.replies: list[str] = []
        engine.generate = self.generate

    def generate(self, seqs, max_new_tokens):
        out = []
        tok = self.engine.tok
        for s in seqs:
            k = tok.decode(s).count("<tool_response>")
            reply = (self.calls[k] if k < len(self.calls) else self.final) + "<|im_end|>"
            self.replies.append(reply)
            ids = tok(reply, add_special_tokens=False)["input_ids"][:max_new_tokens]
            out.append((ids, ids[-1] in self.engine.codec.stop_ids))
        return out


def run(engine: RolloutEngine, session: EnvSession):
    (e,) = engine.run([session])
    return e, session.reward()


def test_answer_after_the_session_turn_cap_is_rewarded(tokenizer, film_envs, pool):
    env = film_envs["single_hop"]
    engine = RolloutEngine(tiny_model(tokenizer), tokenizer, max_new_tokens=256)
    ScriptedPolicy(engine, gold_call_texts(env), f"The answer is {env.instance.answer}.")
    session = EnvSession(env, max_turns=1, pool=pool)  # the one tool turn reaches the cap
    e, info = run(engine, session)
    assert session.turns == 1 and session.finished
    assert e.end_reason == "answer" and e.turns == 2
    assert info.answer_ok and info.reward > 0.9
    assert "<tool_response>" in tokenizer.decode(e.ids)  # the last results were shown before the answer


def test_answer_after_the_engine_turn_cap_is_rewarded(tokenizer, film_envs, pool):
    env = film_envs["multi_hop"]
    calls = gold_call_texts(env)
    assert len(calls) >= 2
    engine = RolloutEngine(tiny_model(tokenizer), tokenizer, max_new_tokens=256, max_turns=len(calls))
    ScriptedPolicy(engine, calls, f"The answer is {env.instance.answer}.")
    session = EnvSession(env, max_turns=8, pool=pool)
    e, info = run(engine, session)
    assert e.end_reason == "answer" and e.turns == len(calls) + 1
    assert info.success and info.reward > 0.9


def test_tool_calls_after_the_turn_cap_are_not_run_and_earn_nothing(tokenizer, film_envs, pool):
    env = film_envs["single_hop"]
    call = gold_call_texts(env)[0]
    engine = RolloutEngine(tiny_model(tokenizer), tokenizer, max_new_tokens=256)
    policy = ScriptedPolicy(engine, [call], call)  # never answers: calls again on the last turn
    session = EnvSession(env, max_turns=1, pool=pool)
    e, info = run(engine, session)
    assert len(policy.replies) == 2  # it was asked once more after the cap
    assert session.calls == 1 and session.finished  # ... and its calls were not executed
    assert e.end_reason == "max_turns"
    assert info.reward == 0.0 and not info.answer_ok


def test_wrong_answer_after_the_cap_earns_nothing(tokenizer, film_envs, pool):
    env = film_envs["single_hop"]
    engine = RolloutEngine(tiny_model(tokenizer), tokenizer, max_new_tokens=256)
    ScriptedPolicy(engine, gold_call_texts(env), "I could not find it.")
    session = EnvSession(env, max_turns=1, pool=pool)
    _, info = run(engine, session)
    assert session.finished and info.reward == 0.0
