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
from astra.sandbox import parse_call_statement
from astra.train.rl_rollout import RolloutEngine


@pytest.fixture(scope="module")
def film_envs(pool):
    insts = compose(load_worlds(["film"]), n=1, seed=0)

    async def build():
        return [await synthesize_environment(i, pool=pool) for i in insts]

    return {e.instance.scenario: e for e in asyncio.run(build())}


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
        engine.kind = "hf-generate"  # the engine that calls generate() once per turn

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


# -- the KV-cache engine against HF generate ---------------------------------------------------


def _sharp_tiny_model(tok, seed: int = 0):
    """A random 2-layer model with large logits (few near-ties, so greedy choices are stable)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      initializer_range=0.5)
    return LlamaForCausalLM(cfg).float().eval()


class EchoSession:
    """A session whose every reply counts as one tool call (see ``always_a_call``); its tool
    results differ in length by session, so the KV rows get holes of different sizes."""

    def __init__(self, i: int, question: str, max_turns: int = 3):
        self.i, self.question, self.max_turns = i, question, max_turns
        self.turns = self.calls = 0
        self.done = self.finished = False
        self.answer = None

    def reset(self):
        return ([{"role": "system", "content": "You answer with tools."}, {"role": "user", "content": self.question}],
                [{"type": "function", "function": {"name": "lookup", "description": "Look a word up.",
                                                   "parameters": {"type": "object", "properties": {
                                                       "word": {"type": "string"}}, "required": ["word"]}}}])

    async def astep(self, calls):
        self.turns += 1
        self.calls += len(calls)
        self.done = self.turns >= self.max_turns
        return [{"role": "tool", "tool_call_id": c.id or "c", "content": "result " * (1 + self.i + self.turns)}
                for c in calls]

    def finish(self, answer):
        if not self.finished:
            self.answer = answer
        self.finished = self.done = True


@pytest.fixture
def always_a_call(monkeypatch):
    """Every reply parses as one tool call, so a random model runs several turns."""
    from astra.llm.toolparse import ParsedReply
    from astra.llm.types import ToolCall

    def parse(text, *a, **kw):
        return ParsedReply(content=text, tool_calls=[ToolCall(id="c", name="lookup", arguments='{"word": "x"}')],
                           errors=[])

    monkeypatch.setattr("astra.train.rl_rollout.parse_tool_calls", parse)


def _sessions():
    qs = ["What is a cat?", "What is a cat?", "Define the word river, please.", "What is a cat?", "Why?"]
    return [EchoSession(i, q) for i, q in enumerate(qs)]


@pytest.mark.parametrize("max_batch", [None, 2])
def test_kv_cache_engine_gives_the_greedy_tokens_of_hf_generate(tokenizer, always_a_call, max_batch):
    model = _sharp_tiny_model(tokenizer)
    runs = {}
    for kind in ("hf", "hf-generate"):
        engine = RolloutEngine(model, tokenizer, max_new_tokens=7, temperature=0.0, engine=kind, max_batch=max_batch)
        runs[kind] = engine.run(_sessions())
    for a, b in zip(runs["hf"], runs["hf-generate"], strict=True):
        assert a.turns == b.turns == 4  # three tool turns, then the last turn after the cap
        assert a.ids == b.ids and a.mask == b.mask
        assert a.end_reason == b.end_reason and a.final_answer == b.final_answer


def test_kv_cache_engine_prefills_shared_prefixes_once_and_only_new_tokens_later(tokenizer, always_a_call):
    from astra.train import rl_kvcache

    fed: list[list[int]] = []  # real tokens per row of every forward call
    real = rl_kvcache.KVCacheBatch._forward

    def spy(self, chunk):
        fed.append([len(c) for c in chunk])
        return real(self, chunk)

    rl_kvcache.KVCacheBatch._forward = spy
    try:
        engine = RolloutEngine(_sharp_tiny_model(tokenizer), tokenizer, max_new_tokens=5, temperature=1.0)
        eps = engine.run(_sessions())
    finally:
        rl_kvcache.KVCacheBatch._forward = real
    prompts = [tuple(e.ids[: e.prompt_len]) for e in eps]
    distinct = list(dict.fromkeys(prompts))
    assert len(distinct) == 3
    shared = min(len(p) for p in distinct) - 1
    while any(p[:shared] != distinct[0][:shared] for p in distinct):
        shared -= 1
    assert shared > 10  # the system prompt and tool list
    assert fed[0] == [shared]  # the shared prefix at batch 1
    assert sorted(fed[1]) == sorted(len(p) - shared for p in distinct)  # each distinct prompt's remainder once
    # after that, every token of an episode enters the model exactly once: its replies (but
    # the last token of the last one, and the end-of-turn token closing a cut reply) and
    # the tool results between them
    unfed = sum(1 + (e.end_reason == "length") for e in eps)
    expected = shared + sum(len(p) - shared for p in distinct) + sum(len(e.ids) - e.prompt_len for e in eps) - unfed
    assert sum(map(sum, fed)) == expected
    generate_prefill = sum(len(e.ids) for e in eps)  # at least what hf-generate prefills in the last turn alone
    assert expected < generate_prefill


def test_sampling_is_seeded_and_respects_top_p():
    import torch

    from astra.train.rl_kvcache import make_sampler

    logits = torch.tensor([[5.0, 4.0, -10.0, -10.0]] * 2000)
    torch.manual_seed(0)
    picks = make_sampler(1.0, 0.5)(logits)
    assert set(picks.tolist()) == {0}  # the nucleus of p=0.5 is the top token alone
    picks = make_sampler(1.0, 1.0)(logits)
    assert set(picks.tolist()) == {0, 1}
    assert make_sampler(0.0, 1.0)(logits).eq(0).all()
