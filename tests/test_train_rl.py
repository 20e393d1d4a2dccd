"""Online multi-turn RL (ASTRA §3.2): advantages, zero-std filtering, adaptive batch filling,
loss masks, token-level averaging, clipping, no KL / entropy, and end-to-end steps on a
tiny randomly initialized model against a scripted stand-in of the environment runtime.

``FakeSession`` is a test double of ``astra.envs.runtime.EnvSession`` (same interface): its
tools return their sub-task's gold answer, and its reward is the method's trajectory F1 /
recall / precision. ``scripted_generate`` replaces the model's sampling with token ids of
fixed replies (a correct tool call, a wrong one, or a direct answer), so groups have mixed
rewards and tool turns happen although a random model would never write a tool call.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from astra.train.metrics import MetricsLogger, moving_average, read_metrics
from astra.train.rl import RLConfig, RLTrainer
from astra.train.rl_buffer import (
    Group,
    RolloutBuffer,
    Sample,
    fill_batch,
    group_advantages,
    is_degenerate,
)
from astra.train.rl_loss import aggregate, policy_loss, token_logprobs
from astra.train.rl_rollout import ChatCodec, RolloutEngine
from astra.types import Environment, EnvTool, QAInstance, SubTask, Tool

# -- test doubles ---------------------------------------------------------------------------


@dataclass
class FakeRewardInfo:
    reward: float
    kind: str
    recall: float
    precision: float
    f1: float
    solved: list[str] = field(default_factory=list)
    n_subtasks: int = 0
    calls: int = 0


def fake_reward(n_solved: int, n: int, calls: int, kind: str = "f1", eps: float = 1e-6) -> float:
    r = n_solved / n if n else 0.0
    p = n_solved / (calls + eps)
    if kind == "recall":
        return r
    if kind == "precision":
        return p
    return 0.0 if n_solved == 0 else 2 * p * r / (p + r)


class FakeSession:
    """Stand-in for ``EnvSession``: each env tool answers its sub-task with the gold answer."""

    instances: list[FakeSession] = []

    def __init__(self, env: Environment, *, max_turns: int = 8, reward: str = "f1", distractors=None,
                 pool=None, seed: int = 0, system_prompt: str | None = None):
        self.env, self.max_turns, self.kind = env, max_turns, reward
        self.distractors = list(distractors or [])
        self.seed = seed
        self.done = False
        self.finished = False
        self.turns = 0
        self.calls = 0
        self.solved: set[str] = set()
        self.final_answer: str | None = None
        FakeSession.instances.append(self)

    def reset(self):
        msgs = [{"role": "system", "content": "Solve it with the tools."},
                {"role": "user", "content": self.env.instance.question}]
        tools = [t.tool.openai() for t in self.env.tools] + [d.tool.openai() for d in self.distractors]
        return msgs, tools

    async def astep(self, tool_calls):
        out = []
        by_name = {t.tool.name: t for t in self.env.tools}
        for tc in tool_calls:
            name = tc.name if hasattr(tc, "name") else tc["function"]["name"]
            cid = tc.id if hasattr(tc, "id") else tc.get("id", "")
            self.calls += 1
            tool = by_name.get(name)
            if tool is None:
                content = json.dumps({"error": f"unknown tool {name}"})
            else:
                sub = next(s for s in self.env.instance.sub_tasks if s.id in tool.serves)
                self.solved.add(sub.id)
                content = json.dumps({"result": sub.sub_answer})
            out.append({"role": "tool", "tool_call_id": cid, "content": content})
        self.turns += 1
        if self.turns >= self.max_turns or len(self.solved) == len(self.env.instance.sub_tasks):
            self.done = True
        return out

    def step(self, tool_calls):
        return asyncio.run(self.astep(tool_calls))

    def finish(self, final_answer):
        if not self.finished:
            self.final_answer = final_answer
        self.finished = self.done = True

    def reward(self) -> FakeRewardInfo:
        n, k, c = len(self.env.instance.sub_tasks), len(self.solved), self.calls
        r = k / n
        p = k / (c + 1e-6)
        f1 = 0.0 if k == 0 else 2 * p * r / (p + r)
        return FakeRewardInfo(reward=fake_reward(k, n, c, self.kind), kind=self.kind, recall=r, precision=p,
                              f1=f1, solved=sorted(self.solved), n_subtasks=n, calls=c)


def fake_env(i: int) -> Environment:
    sub = SubTask(id="s1", sub_question=f"What is the code of item {i}?", sub_answer=f"CODE-{i}")
    inst = QAInstance(id=f"q{i}", domain="test", scenario="single_hop", question=f"What is the code of item {i}?",
                      answer=f"CODE-{i}", sub_tasks=[sub])
    tool = Tool(name=f"get_code_{i}", description="Look up an item's code.",
                parameters={"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]})
    return Environment(id=f"env{i}", instance=inst, tools=[EnvTool(tool=tool, code="def f(): pass", serves=["s1"])])


def fake_factory(cfg_max_turns: int = 3, kind: str = "f1"):
    def make(env, distractors, seed):
        return FakeSession(env, max_turns=cfg_max_turns, reward=kind, distractors=distractors, seed=seed)
    return make


def scripted_generate(engine: RolloutEngine, rng: random.Random):
    """Replace sampling with fixed replies: turn 1 = right tool / wrong tool / direct answer."""
    tok = engine.tok

    def gen(seqs, max_new_tokens):
        out = []
        for s in seqs:
            text = tok.decode(s)
            if "<tool_response>" in text:
                reply = "The code is in the result.<|im_end|>"
            else:
                i = text.split("item ")[-1].split("?")[0]
                choice = rng.choice(["right", "wrong", "answer"])
                if choice == "right":
                    reply = f'<tool_call>\n{{"name": "get_code_{i}", "arguments": {{"item": "{i}"}}}}\n</tool_call><|im_end|>'
                elif choice == "wrong":
                    reply = '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call><|im_end|>'
                else:
                    reply = "I do not know.<|im_end|>"
            ids = tok(reply, add_special_tokens=False)["input_ids"][:max_new_tokens]
            engine.stats.gen_tokens += len(ids)
            out.append((ids, ids[-1] in engine.codec.stop_ids))
        return out

    engine.generate = gen
    engine.kind = "hf-generate"  # the engine that calls generate() once per turn


# -- fixtures -------------------------------------------------------------------------------


def tiny_model(tok, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.bos_token_id)
    return LlamaForCausalLM(cfg).float()


def make_group(gid: str, rewards: list[float], step: int = 0) -> Group:
    samples = [Sample(env_id="e", group_id=gid, input_ids=[1, 2, 3], loss_mask=[0, 1, 1], reward=r,
                      policy_step=step, info={"i": i}) for i, r in enumerate(rewards)]
    return Group(env_id="e", group_id=gid, samples=samples)


# -- advantages and filtering ----------------------------------------------------------------


def test_group_advantages_normalize_within_group():
    adv = group_advantages([0.0, 0.5, 1.0, 0.5], eps=1e-6)
    assert abs(sum(adv)) < 1e-9
    sd = math.sqrt(sum(a * a for a in adv) / (len(adv) - 1))  # unbiased, as veRL / TRL
    assert sd == pytest.approx(1.0, abs=1e-5)
    assert adv[2] > adv[1] == adv[3] > adv[0]
    # same advantage for equal rewards; two-member group gives +-1/sqrt(2)
    assert group_advantages([0.0, 1.0]) == pytest.approx([-0.7071063, 0.7071063], abs=1e-6)


def test_zero_std_groups_are_dropped():
    assert is_degenerate([1.0, 1.0, 1.0])
    assert is_degenerate([0.3, 0.3 + 1e-9], delta=1e-6)
    assert not is_degenerate([0.0, 0.1])
    buf = RolloutBuffer()
    assert not buf.add_group(make_group("a", [0.0, 0.0, 0.0]))
    assert not buf.add_group(make_group("b", [1.0, 1.0]))
    assert buf.add_group(make_group("c", [0.0, 1.0]))
    assert len(buf) == 2 and {s.group_id for s in buf.samples} == {"c"}
    # the delta threshold is configurable
    loose = RolloutBuffer(delta=0.2)
    assert not loose.add_group(make_group("d", [0.0, 0.1]))


def test_adaptive_batch_filling_trains_exactly_n_and_carries_over():
    rounds = []

    def rollout_round():
        k = len(rounds)
        rounds.append(k)
        # per round: one degenerate group and one informative group of 4
        return [make_group(f"deg{k}", [0.0] * 4), make_group(f"ok{k}", [0.0, 1.0, 0.5, 0.25])]

    buf = RolloutBuffer()
    r1 = fill_batch(buf, 6, rollout_round, max_rounds=8)
    assert len(r1.samples) == 6 and r1.rounds == 2 and not r1.underfilled
    assert r1.groups_total == 4 and r1.groups_filtered == 2 and r1.filtered_share == 0.5
    assert [s.group_id for s in r1.samples] == ["ok0"] * 4 + ["ok1"] * 2
    assert len(buf) == 2 and all(s.group_id == "ok1" for s in buf.samples)  # the rest is kept
    leftover = list(buf.samples)
    r2 = fill_batch(buf, 6, rollout_round, max_rounds=8)
    assert len(r2.samples) == 6 and r2.rounds == 1 and r2.from_buffer == 2
    assert r2.samples[:2] == leftover  # buffered samples are trained first
    # advantages were computed over the whole group, before it was split across steps
    assert [s.advantage for s in r1.samples[4:]] + [s.advantage for s in leftover] == pytest.approx(
        group_advantages([0.0, 1.0, 0.5, 0.25]))


def test_batch_filling_round_cap_and_staleness():
    buf = RolloutBuffer()
    res = fill_batch(buf, 4, lambda: [make_group("z", [1.0, 1.0])], max_rounds=3)
    assert res.rounds == 3 and res.samples == [] and res.underfilled and res.groups_filtered == 3
    buf.add_group(make_group("old", [0.0, 1.0], step=0))
    assert buf.drop_stale(current_step=2, max_age=1) == 2 and len(buf) == 0


# -- loss -----------------------------------------------------------------------------------


def test_token_level_average_differs_from_sequence_mean():
    # two trajectories: 1 policy token with advantage +1, 3 policy tokens with advantage -1
    mask = torch.tensor([[0, 1, 0, 0], [0, 1, 1, 1]])
    lp = torch.zeros(2, 4)
    adv = torch.tensor([1.0, -1.0])
    tok_loss, _ = policy_loss(lp, lp, adv, mask, agg="token-mean")
    seq_loss, _ = policy_loss(lp, lp, adv, mask, agg="seq-mean-token-mean")
    # ratio = 1: per-token loss = -A. token mean: -(1 - 3) / 4 = 0.5; sequence mean: -(1 - 1) / 2 = 0
    assert float(tok_loss) == pytest.approx(0.5)
    assert float(seq_loss) == pytest.approx(0.0)
    # accumulated over micro-batches with the global token count = the full-batch token mean
    a, _ = policy_loss(lp[:1], lp[:1], adv[:1], mask[:1], num_tokens=4)
    b, _ = policy_loss(lp[1:], lp[1:], adv[1:], mask[1:], num_tokens=4)
    assert float(a + b) == pytest.approx(float(tok_loss))
    per_tok = torch.tensor([[9.0, 1.0, 9.0, 9.0], [9.0, 2.0, 2.0, 2.0]])
    assert float(aggregate(per_tok, mask, "token-mean")) == pytest.approx(7 / 4)


def test_clipping_uses_decoupled_range():
    mask = torch.ones(1, 4)
    old = torch.zeros(1, 4)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1, 0.9]])).requires_grad_(True)
    # positive advantage: ratio above 1 + eps_high is clipped (no gradient), below 1 - eps_low is not
    loss, st = policy_loss(new, old, torch.tensor([1.0]), mask, eps_low=0.2, eps_high=0.28)
    expected = -(1.28 + 0.5 + 1.1 + 0.9) / 4
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)
    loss.backward()
    g = new.grad[0]
    assert g[0] == 0.0 and g[1] != 0.0 and g[2] != 0.0
    assert st.clip_fraction == pytest.approx(0.25)
    # negative advantage: ratio below 1 - eps_low is clipped
    new2 = new.detach().clone().requires_grad_(True)
    loss2, st2 = policy_loss(new2, old, torch.tensor([-1.0]), mask, eps_low=0.2, eps_high=0.28)
    assert float(loss2.detach()) == pytest.approx((1.5 + 0.8 + 1.1 + 0.9) / 4, abs=1e-6)
    loss2.backward()
    assert new2.grad[0][1] == 0.0 and new2.grad[0][0] != 0.0
    assert st2.clip_fraction == pytest.approx(0.25)


def test_loss_has_no_kl_or_entropy_term():
    torch.manual_seed(0)
    mask = torch.tensor([[0, 1, 1, 0, 1], [0, 0, 1, 1, 1]])
    old = -torch.rand(2, 5)
    new = (old + 0.05 * torch.randn(2, 5)).requires_grad_(True)
    adv = torch.tensor([0.7, -1.3])
    loss, st = policy_loss(new, old, adv, mask, eps_low=0.2, eps_high=0.28)
    ratio = torch.exp(new - old)
    a = adv.unsqueeze(-1)
    surrogate = torch.maximum(-a * ratio, -a * ratio.clamp(0.8, 1.28))
    assert float(loss.detach()) == pytest.approx(float(((surrogate * mask).sum() / mask.sum()).detach()), abs=1e-7)
    loss.backward()
    # unclipped tokens: d loss / d logp = -A * ratio / N exactly (an entropy or KL term would add to it)
    expected = (-a * ratio / mask.sum()).detach() * mask
    assert torch.allclose(new.grad, expected, atol=1e-7)
    assert not any(k for k in RLConfig.model_fields if "kl" in k or "entropy" in k)


def test_token_logprobs_match_full_logits(tokenizer):
    model = tiny_model(tokenizer)
    ids = torch.randint(0, len(tokenizer), (2, 7))
    attn = torch.ones_like(ids)
    attn[1, 5:] = 0
    mask = torch.tensor([[0, 0, 1, 1, 0, 1, 1], [0, 1, 1, 0, 1, 0, 0]])
    lp = token_logprobs(model, ids, attn, mask, temperature=0.7)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn).logits / 0.7
        ref = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    ref = torch.nn.functional.pad(ref, (1, 0)) * mask
    assert torch.allclose(lp, ref, atol=1e-5)
    assert (lp[mask == 0] == 0).all()


# -- rollouts -------------------------------------------------------------------------------


def test_rollout_masks_tool_response_tokens(tokenizer):
    model = tiny_model(tokenizer)
    engine = RolloutEngine(model, tokenizer, max_new_tokens=64, temperature=1.0, max_turns=4)
    rng = random.Random(1)
    scripted_generate(engine, rng)
    rng.choice = lambda seq: "right"  # every episode: right tool call, then an answer
    sessions = [FakeSession(fake_env(i), max_turns=4) for i in range(3)]
    # keep the session open after its tool call, so the episode goes on to a final answer
    for s in sessions:
        s.env.instance.sub_tasks.append(SubTask(id="s2", sub_question="x", sub_answer="y", needs_tool=False))
    eps = engine.run(sessions)
    codec = ChatCodec(tokenizer)
    for e in eps:
        assert len(e.ids) == len(e.mask)
        assert e.mask[: e.prompt_len] == [0] * e.prompt_len
        policy_text = tokenizer.decode([t for t, m in zip(e.ids, e.mask, strict=True) if m])
        other_text = tokenizer.decode([t for t, m in zip(e.ids, e.mask, strict=True) if not m])
        assert "<tool_call>" in policy_text and "The code is in the result." in policy_text
        assert "<tool_response>" not in policy_text and "CODE-" not in policy_text  # tool output is masked
        assert "<tool_response>" in other_text and "CODE-" in other_text
        assert e.turns == 2 and e.end_reason == "answer" and e.session.calls == 1
        # tokens are exactly what the chat template renders for the conversation
        full = tokenizer.apply_chat_template(e.messages, tools=e.tools, tokenize=False)
        assert tokenizer.decode(e.ids) == full.rstrip("\n")
        assert codec.stop_ids == engine.codec.stop_ids


def test_rollout_generation_is_batched_across_sessions(tokenizer):
    model = tiny_model(tokenizer)
    engine = RolloutEngine(model, tokenizer, max_new_tokens=6, temperature=1.0, engine="hf-generate")
    calls = []
    real = engine._generate_chunk

    def spy(seqs, n):
        calls.append(len(seqs))
        return real(seqs, n)

    engine._generate_chunk = spy
    eps = engine.run([FakeSession(fake_env(i)) for i in range(4)])
    assert calls[0] == 4  # all live sessions in one generate call
    assert all(e.done for e in eps) and all(e.gen_tokens <= 6 for e in eps)


# -- end to end -----------------------------------------------------------------------------


def test_rl_steps_end_to_end_and_resume(tokenizer, tmp_path):
    envs = [fake_env(i) for i in range(5)]
    cfg = RLConfig(output_dir=tmp_path / "rl", group_size=3, batch_size=4, micro_batch_size=2, max_steps=2,
                   lr=1e-3, max_new_tokens=48, max_turns=3, distractors="none", save_every=1,
                   max_rollout_rounds=6, log_samples=1, tensorboard=False, seed=3)
    model = tiny_model(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = RLTrainer(cfg, envs, session_factory=fake_factory(3), model=model, tokenizer=tokenizer)
    scripted_generate(trainer.engine, random.Random(0))
    summary = trainer.train()
    recs = read_metrics(tmp_path / "rl" / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        for key in ("reward_mean", "reward_std", "recall", "precision", "f1", "turns", "tool_calls",
                    "filtered_group_share", "buffer_size", "rollout_rounds", "rollout_tokens_per_s", "loss",
                    "clip_fraction"):
            assert key in r, key
        assert r["batch_size"] == 4  # exactly n samples trained
        if r["from_buffer"] == 0:  # on-policy: old log-probs are the rollout policy's, ratio 1
            assert r["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert recs[0]["from_buffer"] == 0
    assert (tmp_path / "rl" / "curves.png").stat().st_size > 0
    assert (tmp_path / "rl" / "model.safetensors").exists()
    assert summary["steps"] == 2
    changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert changed
    buffered = len(trainer.buffer)

    # resume: continues at step 2 with the saved buffer and optimizer
    cfg2 = cfg.model_copy(update={"max_steps": 3, "resume": True})
    t2 = RLTrainer(cfg2, envs, session_factory=fake_factory(3), model=tiny_model(tokenizer, seed=5),
                   tokenizer=tokenizer)
    scripted_generate(t2.engine, random.Random(1))
    ck = t2.latest_checkpoint()
    assert ck is not None and ck.name == "step-000002"
    t2.load_checkpoint(ck)
    assert t2.step == 2 and len(t2.buffer) == buffered
    assert all(torch.equal(model.state_dict()[k], v) for k, v in t2.model.state_dict().items()
               if k in model.state_dict())
    t2.cfg = cfg2.model_copy(update={"resume": False})  # already loaded
    t2.train()
    assert [r["step"] for r in read_metrics(tmp_path / "rl")] == [1, 2, 3]


def test_rl_reward_switch_changes_rewards(tokenizer, tmp_path):
    envs = [fake_env(i) for i in range(2)]
    out = {}
    for kind in ("recall", "precision"):
        FakeSession.instances.clear()
        cfg = RLConfig(output_dir=tmp_path / kind, group_size=4, batch_size=4, max_steps=1, reward=kind,
                       max_new_tokens=48, distractors="none", tensorboard=False, log_samples=0)
        tr = RLTrainer(cfg, envs, session_factory=fake_factory(2, kind), model=tiny_model(tokenizer),
                       tokenizer=tokenizer)
        scripted_generate(tr.engine, random.Random(7))
        groups = tr.rollout_round()
        out[kind] = [(s.reward, s.info["recall"], s.info["precision"]) for g in groups for s in g.samples]
    for reward, recall, _ in out["recall"]:
        assert reward == pytest.approx(recall)
    for reward, _, precision in out["precision"]:
        assert reward == pytest.approx(precision)


def test_rl_real_sampling_on_tiny_model(tokenizer, tmp_path):
    """No scripting: the tiny model samples (no tool calls); the step runs and logs."""
    cfg = RLConfig(output_dir=tmp_path / "rl", group_size=2, batch_size=2, max_steps=1, max_new_tokens=5,
                   distractors="none", tensorboard=False, max_rollout_rounds=1, log_samples=0)
    tr = RLTrainer(cfg, [fake_env(0)], session_factory=fake_factory(2), model=tiny_model(tokenizer),
                   tokenizer=tokenizer)
    tr.train()
    rec = read_metrics(tmp_path / "rl")[0]
    assert rec["rollouts"] == 2 and rec["rollout_rounds"] == 1
    assert rec["reward_mean"] == 0.0 and rec["filtered_group_share"] == 1.0 and rec["underfilled"] is True


def test_distractors_are_shared_within_a_group(tokenizer, tmp_path):
    envs = [fake_env(i) for i in range(3)]

    class Sampler:
        def sample(self, env):
            other = envs[(int(env.id[3:]) + 1) % len(envs)]
            return [other.tools[0]]

    FakeSession.instances.clear()
    cfg = RLConfig(output_dir=tmp_path, group_size=2, batch_size=4, max_steps=1, max_new_tokens=8,
                   distractors="banded", tensorboard=False)
    tr = RLTrainer(cfg, envs, session_factory=fake_factory(2), model=tiny_model(tokenizer), tokenizer=tokenizer,
                   distractor_sampler=Sampler())
    scripted_generate(tr.engine, random.Random(0))
    tr.rollout_round()
    s = FakeSession.instances
    assert len(s) == 4
    assert [d.tool.name for d in s[0].distractors] == [d.tool.name for d in s[1].distractors]
    assert s[0].env.id == s[1].env.id and s[0].seed == s[1].seed  # same prompt (tool order) in a group


# -- metrics --------------------------------------------------------------------------------


def test_metrics_logger_writes_jsonl_and_png(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False, plot_every=100) as lg:
        for step in range(1, 6):
            lg.log(step, {"reward_mean": step / 10, "reward_std": 0.1, "loss": torch.tensor(0.5), "note": "x"})
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert len(recs) == 5 and recs[0]["loss"] == 0.5 and recs[-1]["reward_mean"] == 0.5
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert moving_average([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5]


def test_lazy_old_logps_equal_rollout_time_logps(tokenizer, tmp_path):
    """'lazy' takes the update's detached log-probs for fresh on-policy samples: the same
    values a separate forward right after the rollout gives ('rollout')."""
    cfg = RLConfig(output_dir=tmp_path, group_size=2, batch_size=4, max_steps=1, max_new_tokens=48,
                   distractors="none", tensorboard=False, old_logps="rollout", lr=1e-3)
    tr = RLTrainer(cfg, [fake_env(i) for i in range(2)], session_factory=fake_factory(2),
                   model=tiny_model(tokenizer), tokenizer=tokenizer)
    scripted_generate(tr.engine, random.Random(3))
    samples = [s for g in tr.rollout_round() for s in g.samples]
    for i, s in enumerate(samples):
        s.advantage = 1.0 if i % 2 else -1.0
    at_rollout = [list(s.old_logps) for s in samples]
    for s in samples:
        s.old_logps = []
    stats = tr.update(samples)
    for s, ref in zip(samples, at_rollout, strict=True):
        assert s.old_logps == pytest.approx(ref, abs=1e-5)
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-6)


def test_cli_maps_options_to_config(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    import astra.train.rl as rl
    from astra.envs import write_environment
    from astra.train.rl_cli import rl_command

    for i in range(3):
        write_environment(fake_env(i), tmp_path / "envs")
    seen = {}

    def fake_train(cfg, *, envs, on_step=None, **kw):
        seen["cfg"], seen["n"] = cfg, len(envs)
        on_step(1, {"reward_mean": 0.5, "loss": 0.1})
        return {"steps": 1, "resumed_from": None, "reward_first": 0.5, "reward_last": 0.5,
                "reward_first_quarter_mean": 0.5, "reward_last_quarter_mean": 0.5,
                "metrics": "m", "curves": "c", "model_dir": "d"}

    monkeypatch.setattr(rl, "train_rl", fake_train)
    app = typer.Typer()
    app.command()(rl_command)
    res = CliRunner().invoke(app, ["--envs", str(tmp_path / "envs"), "-o", str(tmp_path / "out"), "--group-size", "6",
                                   "--batch", "12", "--reward", "precision", "--distractors", "random",
                                   "--distractor-k", "2", "--max-steps", "7", "--lr", "3e-6", "--max-turns", "5",
                                   "--max-new-tokens", "64", "--temperature", "0.9", "--seed", "4", "--limit", "2"])
    assert res.exit_code == 0, res.output
    c = seen["cfg"]
    assert seen["n"] == 2
    assert (c.group_size, c.batch_size, c.reward, c.distractors, c.distractor_k) == (6, 12, "precision", "random", 2)
    assert (c.max_steps, c.lr, c.max_turns, c.max_new_tokens, c.temperature, c.seed) == (7, 3e-6, 5, 64, 0.9, 4)
    assert (c.clip_eps_low, c.clip_eps_high, c.std_threshold) == (0.2, 0.28, 1e-6)
    assert (c.rollout_engine, c.precision, c.gradient_checkpointing) == ("hf", "auto", False)
    res = CliRunner().invoke(app, ["--envs", str(tmp_path / "envs"), "-o", str(tmp_path / "out"),
                                   "--rollout-engine", "hf-generate", "--precision", "bf16",
                                   "--gradient-checkpointing"])
    assert res.exit_code == 0, res.output
    c = seen["cfg"]
    assert (c.rollout_engine, c.precision, c.gradient_checkpointing) == ("hf-generate", "bf16", True)
    for opt, val in (("--rollout-engine", "sglang"), ("--precision", "fp16")):  # sglang: veRL only
        bad = CliRunner().invoke(app, ["--envs", str(tmp_path / "envs"), "-o", str(tmp_path / "o"), opt, val])
        assert bad.exit_code == 1 and opt in bad.output
    bad = CliRunner().invoke(app, ["--envs", str(tmp_path / "envs"), "-o", str(tmp_path / "o"), "--reward", "acc"])
    assert bad.exit_code == 1 and "--reward" in bad.output
    bad = CliRunner().invoke(app, ["--envs", str(tmp_path / "envs"), "-o", str(tmp_path / "o"), "--temperature", "0"])
    assert bad.exit_code == 1 and "temperature" in bad.output

# -- slow: SFT -> RL on real synthesized environments ---------------------------------------


@pytest.mark.slow
def test_sft_then_rl_on_synthesized_envs(tmp_path):
    """SFT on gold demonstrations of two environments, then RL on two others (a few steps)."""
    try:
        from astra.envs.runtime import EnvSession  # noqa: F401
        from astra.train.sft import SFTRunConfig, train_sft
    except ImportError as e:
        pytest.skip(f"the environment runtime or SFT is not available: {e}")
    envs_dir = _real_envs_dir() or _synthesize_envs(tmp_path)
    if envs_dir is None:
        pytest.skip("no synthesized environments (set ASTRA_TEST_ENVS or make `astra envs synthesize` work)")
    from astra.train.rl import load_envs, train_rl
    from astra.train.rl_demos import write_demonstrations

    envs = sorted(load_envs(envs_dir), key=lambda e: (len(e.instance.sub_tasks), e.id))[:4]
    if len(envs) < 4:
        pytest.skip(f"need 4 environments, {envs_dir} has {len(envs)}")
    demos = tmp_path / "demos.jsonl"
    assert write_demonstrations(envs[:2], demos)["kept"] == 2
    sft = train_sft(SFTRunConfig(data=demos, output_dir=tmp_path / "sft", max_steps=2, learning_rate=1e-4,
                                 batch_size=2, eval_fraction=0.0, format_check_prompts=0, save_steps=100,
                                 device="cpu"))
    cfg = RLConfig(model=str(sft.model_path), output_dir=tmp_path / "rl", group_size=2, batch_size=2,
                   max_steps=2, max_new_tokens=48, max_turns=2, distractors="none", lr=1e-5,
                   tensorboard=False, max_rollout_rounds=2, device="cpu")
    summary = train_rl(cfg, envs=envs[2:])
    assert summary["steps"] == 2
    recs = read_metrics(tmp_path / "rl")
    assert [r["step"] for r in recs] == [1, 2]
    assert all(r["rollouts"] >= 2 for r in recs)
    assert (tmp_path / "rl" / "model.safetensors").exists()


def _real_envs_dir() -> Path | None:
    import os

    cand = os.environ.get("ASTRA_TEST_ENVS")
    return Path(cand) if cand and Path(cand).exists() else None


def _synthesize_envs(tmp_path: Path) -> Path | None:
    """Offline decompose -> validate -> synthesize through the CLI."""
    from typer.testing import CliRunner

    from astra.cli import app

    r = CliRunner()
    qa, valid, envs = tmp_path / "qa.jsonl", tmp_path / "valid.jsonl", tmp_path / "envs"
    for args in (["envs", "decompose", "-o", str(qa), "--limit", "6", "--scenarios", "single_hop,multi_hop",
                  "--no-progress"],
                 ["envs", "validate", str(qa), "-o", str(valid), "--no-progress"],
                 ["envs", "synthesize", str(valid), "-o", str(envs), "--no-progress"]):
        res = r.invoke(app, args)
        if res.exit_code != 0:
            return None
    return envs if envs.exists() else None



# -- precision and gradient checkpointing -----------------------------------------------------


def _fixed_batch(tok, n: int = 4) -> list[Sample]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        ids = [rng.randrange(100, 2000) for _ in range(24 + 3 * i)]
        mask = [0] * 10 + [1] * (len(ids) - 10)
        out.append(Sample(env_id="e", group_id="g", input_ids=ids, loss_mask=mask, reward=float(i % 2),
                          advantage=1.0 if i % 2 else -1.0))
    return out


def _update_once(tok, tmp_path, **cfg_kw):
    import copy

    model = copy.deepcopy(_BASE_MODELS.setdefault("m", tiny_model(tok, seed=11)))
    cfg = RLConfig(output_dir=tmp_path / "rl", group_size=2, batch_size=4, micro_batch_size=2, lr=1e-2,
                   distractors="none", tensorboard=False, device="cpu", **cfg_kw)
    tr = RLTrainer(cfg, [fake_env(0)], session_factory=fake_factory(2), model=model, tokenizer=tok)
    stats = tr.update(_fixed_batch(tok))
    return tr, stats, {k: v.detach().clone() for k, v in model.named_parameters()}


_BASE_MODELS: dict = {}


def test_gradient_checkpointing_gives_the_same_update(tokenizer, tmp_path):
    plain, s1, w1 = _update_once(tokenizer, tmp_path / "a")
    ckpt, s2, w2 = _update_once(tokenizer, tmp_path / "b", gradient_checkpointing=True)
    assert ckpt.model.is_activation_checkpointing and not plain.model.is_activation_checkpointing
    assert s2["loss"] == pytest.approx(s1["loss"], rel=1e-5, abs=1e-7)
    assert s1["grad_norm"] > 0
    assert s2["grad_norm"] == pytest.approx(s1["grad_norm"], rel=1e-4)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-6), k


def test_precision_auto_is_fp32_on_cpu_and_bf16_autocasts(tokenizer, tmp_path):
    fp32, s1, w1 = _update_once(tokenizer, tmp_path / "a")
    assert fp32.precision == "fp32"
    bf16, s2, w2 = _update_once(tokenizer, tmp_path / "b", precision="bf16")
    assert bf16.precision == "bf16"
    # the forward and backward ran in bf16 (close, not equal gradients); weights stay fp32
    assert s2["grad_norm"] != s1["grad_norm"] and s2["grad_norm"] == pytest.approx(s1["grad_norm"], rel=0.1)
    assert all(v.dtype == torch.float32 for v in w2.values())
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)
    seen = []
    with bf16._autocast():
        seen.append(torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype)
    with fp32._autocast():
        seen.append(torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype)
    assert seen == [torch.bfloat16, torch.float32]


def test_rollouts_of_a_group_share_the_prompt(tokenizer, tmp_path):
    envs = [fake_env(i) for i in range(2)]
    FakeSession.instances.clear()
    cfg = RLConfig(output_dir=tmp_path / "rl", group_size=3, batch_size=6, max_steps=1, max_new_tokens=8,
                   distractors="none", tensorboard=False, log_samples=0)
    tr = RLTrainer(cfg, envs, session_factory=fake_factory(2), model=tiny_model(tokenizer), tokenizer=tokenizer)
    scripted_generate(tr.engine, random.Random(0))
    groups = tr.rollout_round()
    for g in groups:
        assert len({tuple(s.input_ids[: s.prompt_len]) for s in g.samples}) == 1
    seeds = [s.seed for s in FakeSession.instances]
    assert seeds[:3] == [seeds[0]] * 3 and seeds[3] != seeds[0]


def test_hop_curriculum_orders_each_pass_by_hops_and_shuffles_within():
    from types import SimpleNamespace as NS

    from astra.train.rl import env_hops, epoch_order

    def env(name: str, levels: list[int]) -> NS:
        subs = [NS(id=f"s{i}", hop_level=lv, needs_tool=True) for i, lv in enumerate(levels)]
        return NS(id=name, instance=NS(sub_tasks=subs), tools=[])

    envs = [env(f"e{i}", lv) for i, lv in enumerate([[1, 2, 3], [1], [1, 1], [1, 2], [1], [1, 2, 3, 4], [1]] * 3)]
    assert [env_hops(e) for e in envs[:7]] == [3, 1, 1, 2, 1, 4, 1]  # parallel sub-tasks of a level: one hop
    plain = epoch_order(envs, seed=0, epoch=0)
    hops = epoch_order(envs, seed=0, epoch=0, curriculum="hops")
    assert sorted(plain) == sorted(hops) == list(range(len(envs)))
    assert [env_hops(envs[i]) for i in hops] == sorted(env_hops(e) for e in envs)
    assert [env_hops(envs[i]) for i in plain] != sorted(env_hops(e) for e in envs)
    # within a hop count, the pass's seeded shuffle decides: another pass, another order
    ones = [i for i in hops if env_hops(envs[i]) == 1]
    again = [i for i in epoch_order(envs, seed=0, epoch=1, curriculum="hops") if env_hops(envs[i]) == 1]
    assert sorted(ones) == sorted(again) and ones != again
