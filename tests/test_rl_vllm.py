"""The ``vllm`` rollout engine (astra.train.rl_vllm) on the CPU, against a small stand-in for
the ``vllm`` package injected in ``sys.modules``.

vLLM cannot be installed on a CPU-only machine, so :class:`FakeLLM` implements the part of
its API the adapter uses (``LLM(...)``, ``LLM.generate`` over ``TokensPrompt`` dicts with
``SamplingParams``, ``RequestOutput.outputs[0].token_ids / finish_reason / stop_reason``,
``LLM.apply_model`` with the model's ``load_weights``, ``sleep`` / ``wake_up`` /
``reset_prefix_cache``). It is a real generator: a Hugging Face model built from the config
directory it is given (random weights, like ``load_format="dummy"``) that only produces the
policy's tokens once the adapter has loaded the policy's weights into it, so equal tokens
show the weight sync works. ``benchmarks/gpu_check.sh`` runs the real vLLM on a GPU.
"""

from __future__ import annotations

import logging
import random
import sys
import types

import pytest
import torch

from astra.errors import ConfigError
from astra.train import rl_vllm
from astra.train.metrics import read_metrics
from astra.train.rl import RLConfig, RLTrainer
from astra.train.rl_rollout import RolloutEngine
from tests.test_train_rl import FakeSession, fake_env, fake_factory, tiny_model

# -- the stand-in vllm package ---------------------------------------------------------------


class SamplingParams:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def TokensPrompt(**kw):  # vLLM's TokensPrompt is a TypedDict: a dict
    return dict(kw)


class Completion:
    def __init__(self, token_ids, finish_reason, stop_reason):
        self.token_ids, self.finish_reason, self.stop_reason = token_ids, finish_reason, stop_reason


class RequestOutput:
    def __init__(self, prompt_token_ids, completion):
        self.prompt_token_ids, self.outputs = prompt_token_ids, [completion]


class WeightsModel:
    """What ``apply_model`` hands over: the engine's model with vLLM's ``load_weights``."""

    def __init__(self, hf):
        self.hf = hf
        self.params = dict(hf.named_parameters())
        self.loads: list[dict[str, torch.Tensor]] = []

    def load_weights(self, weights):
        got = {}
        for name, t in weights:
            if name not in self.params:
                raise KeyError(f"unknown weight {name}")
            self.params[name].data.copy_(t)
            got[name] = t.detach().clone()
        missing = set(self.params) - set(got)
        if missing:
            raise AssertionError(f"weights not sent: {sorted(missing)[:3]}")
        self.loads.append(got)


class FakeLLM:
    instances: list[FakeLLM] = []
    #: drop the stop token from token_ids (vLLM may, for special tokens), keep it as stop_reason
    hide_stop = False
    #: prompt ids -> reply ids: replaces sampling where a test scripts the policy's choices
    script = None

    def __init__(self, model, **kw):
        from transformers import AutoConfig, AutoModelForCausalLM

        self.kwargs = {"model": model, **kw}
        torch.manual_seed(1234)  # "dummy" weights, unrelated to the policy's
        self.weights = WeightsModel(AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).eval())
        self.calls: list[tuple] = []
        self.prompts: list[list[int]] = []
        self.params: list[SamplingParams] = []
        FakeLLM.instances.append(self)

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True):
        self.calls.append(("generate", len(prompts)))
        out = []
        for p, sp in zip(prompts, sampling_params, strict=True):
            ids = list(p["prompt_token_ids"])
            self.prompts.append(ids)
            self.params.append(sp)
            new = FakeLLM.script(ids) if FakeLLM.script is not None else self._decode(ids, sp)
            new = new[: sp.max_tokens]
            stop = next((j for j, t in enumerate(new) if t in sp.stop_token_ids), None)
            if stop is None:
                out.append(RequestOutput(ids, Completion(new, "length", None)))
            elif FakeLLM.hide_stop:
                out.append(RequestOutput(ids, Completion(new[:stop], "stop", new[stop])))
            else:
                out.append(RequestOutput(ids, Completion(new[: stop + 1], "stop", new[stop])))
        return out

    def _decode(self, ids, sp):
        g = torch.Generator().manual_seed(sp.seed)
        x = torch.tensor([ids])
        new = []
        with torch.no_grad():
            for _ in range(sp.max_tokens):
                logits = self.weights.hf(input_ids=x).logits[0, -1].float()
                if sp.temperature > 0:
                    t = int(torch.multinomial(torch.softmax(logits / sp.temperature, -1), 1, generator=g))
                else:
                    t = int(logits.argmax())
                new.append(t)
                if t in sp.stop_token_ids:
                    break
                x = torch.cat([x, torch.tensor([[t]])], 1)
        return new

    def apply_model(self, func):
        self.calls.append(("apply_model",))
        return [func(self.weights)]

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags) if tags else None))

    def reset_prefix_cache(self, reset_running_requests=False, reset_connector=False):
        self.calls.append(("reset_prefix_cache",))
        return True


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams, mod.TokensPrompt = FakeLLM, SamplingParams, TokensPrompt
    monkeypatch.setitem(sys.modules, "vllm", mod)
    for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"),
                 ("MASTER_PORT", "29555")):  # restored after the test (the adapter sets them for vLLM)
        monkeypatch.setenv(k, v)
    FakeLLM.instances.clear()
    FakeLLM.hide_stop, FakeLLM.script = False, None
    yield mod
    FakeLLM.hide_stop, FakeLLM.script = False, None


def _generator(model, tok, tmp_path, **kw):
    codec = RolloutEngine(model, tok).codec
    return rl_vllm.VLLMGenerator(model, tok, stop_ids=codec.stop_ids, eos_id=tok.eos_token_id, max_model_len=512,
                                 temperature=kw.pop("temperature", 0.0), top_p=1.0, workdir=tmp_path / "vm", **kw)


def _seqs(tok):
    texts = ["<|im_start|>user\nWhat is the code of item 3?<|im_end|>\n<|im_start|>assistant\n",
             "<|im_start|>system\nSolve it with the tools.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
             "<|im_start|>assistant\n", "Hello"]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


# -- generation ------------------------------------------------------------------------------


def test_vllm_tokens_equal_hf_generate_after_the_weight_sync(fake_vllm, tokenizer, tmp_path):
    model = tiny_model(tokenizer, seed=3)
    seqs = _seqs(tokenizer)
    hf = RolloutEngine(model, tokenizer, temperature=0.0, engine="hf-generate").generate(seqs, 12)
    gen = _generator(model, tokenizer, tmp_path)
    llm = FakeLLM.instances[-1]
    # built from the policy's config, no weights from disk, in-process worker, our memory share
    assert llm.kwargs["load_format"] == "dummy" and llm.kwargs["skip_tokenizer_init"] is True
    assert llm.kwargs["distributed_executor_backend"] == "external_launcher"
    assert llm.kwargs["gpu_memory_utilization"] == 0.3 and llm.kwargs["max_model_len"] == 512
    assert (tmp_path / "vm" / "config.json").exists()
    assert gen.syncs == 1 and len(llm.weights.loads) == 1  # the policy's weights loaded at start
    eng = RolloutEngine(model, tokenizer, temperature=0.0, engine="vllm", generator=gen)
    out = eng.generate(seqs, 12)
    assert out == hf
    assert llm.prompts == [list(s) for s in seqs]  # the token ids, unchanged
    assert all(p.stop_token_ids == eng.codec.stop_ids and p.n == 1 for p in llm.params)
    assert eng.stats.generate_calls == 1 and eng.stats.gen_tokens == sum(len(o[0]) for o in out)


def test_dummy_weights_are_not_the_policy(fake_vllm, tokenizer, tmp_path):
    """Without the sync the stand-in generates other tokens: the equality above is the sync's."""
    model = tiny_model(tokenizer, seed=3)
    seqs = _seqs(tokenizer)
    hf = RolloutEngine(model, tokenizer, temperature=0.0, engine="hf-generate").generate(seqs, 12)
    gen = _generator(model, tokenizer, tmp_path)
    with torch.no_grad():  # undo the sync: back to other weights
        for p in FakeLLM.instances[-1].weights.params.values():
            p.normal_(0, 0.5)
    assert gen.generate(seqs, 12) != hf


def test_stop_handling_matches_the_hf_engine(fake_vllm, tokenizer, tmp_path):
    model = tiny_model(tokenizer)
    gen = _generator(model, tokenizer, tmp_path)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    hello = tokenizer("Hello there", add_special_tokens=False)["input_ids"]
    FakeLLM.script = lambda ids: hello + [im_end] + hello
    assert gen.generate([[1, 2]], 20) == [(hello + [im_end], True)]
    FakeLLM.hide_stop = True  # vLLM left the stop token out of token_ids: it is put back
    assert gen.generate([[1, 2]], 20) == [(hello + [im_end], True)]
    FakeLLM.hide_stop = False
    FakeLLM.script = lambda ids: hello * 10
    assert gen.generate([[1, 2]], 5) == [((hello * 10)[:5], False)]  # cut at the budget: not stopped
    # the model's EOS (stop_reason None) also ends a reply as a stop
    c = Completion(hello, "stop", None)
    assert gen._reply(c) == (hello + [tokenizer.eos_token_id], True)


def test_per_sequence_budgets_reach_vllm(fake_vllm, tokenizer, tmp_path):
    model = tiny_model(tokenizer)
    gen = _generator(model, tokenizer, tmp_path, temperature=1.0)
    eng = RolloutEngine(model, tokenizer, temperature=1.0, engine="vllm", generator=gen, max_new_tokens=9)
    out = eng.generate(_seqs(tokenizer), [3, 7, 1])
    llm = FakeLLM.instances[-1]
    assert [p.max_tokens for p in llm.params] == [3, 7, 1]
    assert [len(o[0]) <= b for o, b in zip(out, [3, 7, 1], strict=True)] == [True] * 3
    assert len({p.seed for p in llm.params}) == 3  # each request samples with its own seed
    with pytest.raises(ValueError, match="budgets"):
        gen.generate(_seqs(tokenizer), [1, 2])


def test_engine_needs_its_generator(tokenizer):
    model = tiny_model(tokenizer)
    with pytest.raises(ValueError, match="generator"):
        RolloutEngine(model, tokenizer, engine="vllm")
    with pytest.raises(ValueError, match="generator"):
        RolloutEngine(model, tokenizer, engine="hf", generator=object())


# -- training: the sync after every update ---------------------------------------------------


def _scripted_policy(tok, rng):
    """Turn 1: the right tool, a wrong tool or a direct answer (the groups get reward spread)."""

    def script(ids):
        text = tok.decode(ids)
        if "<tool_response>" in text:
            reply = "The code is in the result.<|im_end|>"
        else:
            i = text.split("item ")[-1].split("?")[0]
            reply = rng.choice([f'<tool_call>\n{{"name": "get_code_{i}", "arguments": {{"item": "{i}"}}}}\n'
                                "</tool_call><|im_end|>", '<tool_call>\n{"name": "nope", "arguments": {}}\n'
                                "</tool_call><|im_end|>", "I do not know.<|im_end|>"])
        return tok(reply, add_special_tokens=False)["input_ids"]

    return script


@pytest.mark.parametrize("sleep", [False, True])
def test_weights_are_synced_after_every_update(fake_vllm, tokenizer, tmp_path, monkeypatch, sleep):
    monkeypatch.setattr(rl_vllm, "cuda_available", lambda device: True)
    FakeLLM.script = _scripted_policy(tokenizer, random.Random(0))
    cfg = RLConfig(output_dir=tmp_path / "rl", group_size=3, batch_size=4, micro_batch_size=2, max_steps=3,
                   lr=1e-2, max_new_tokens=48, max_turns=3, distractors="none", save_every=0,
                   max_rollout_rounds=6, log_samples=0, tensorboard=False, seed=3, device="cpu",
                   rollout_engine="vllm", vllm_sleep=sleep)
    model = tiny_model(tokenizer)
    tr = RLTrainer(cfg, [fake_env(i) for i in range(4)], session_factory=fake_factory(3), model=model,
                   tokenizer=tokenizer)
    llm = FakeLLM.instances[-1]
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    seen = []

    def on_step(step, m):
        assert m["optimizer_steps"] == 1
        last = llm.weights.loads[-1]
        assert all(torch.equal(last[k], v.detach()) for k, v in model.named_parameters())  # the current weights
        assert any(not torch.equal(last[k], initial[k]) for k in initial)  # ... which the update changed
        seen.append((step, len(llm.weights.loads), m["weight_sync_seconds"], m["weight_syncs"]))

    summary = tr.train(on_step=on_step)
    assert [s[:2] for s in seen] == [(1, 2), (2, 3), (3, 4)]  # one sync at start, one after each update
    assert all(s[2] > 0 and s[3] == s[1] for s in seen)
    assert summary["rollout_engine"] == "vllm" and summary["weight_syncs"] == 4
    assert "rollout_engine_fallback" not in summary
    names = [c[0] for c in llm.calls]
    assert names.count("reset_prefix_cache") == 4  # the KV of old weights dropped at every sync
    if sleep:  # asleep during the update, woken for the load, KV cache back before the next rollout
        i = names.index("sleep")
        assert llm.calls[i] == ("sleep", 1)
        assert llm.calls[i + 1:i + 5] == [("wake_up", ("weights",)), ("apply_model",), ("wake_up", ("kv_cache",)),
                                          ("reset_prefix_cache",)]
        assert names.count("sleep") == 3
    else:
        assert "sleep" not in names and "wake_up" not in names
    recs = read_metrics(tmp_path / "rl")
    assert [r["step"] for r in recs] == [1, 2, 3] and all("weight_sync_seconds" in r for r in recs)


def test_resume_syncs_the_loaded_checkpoint(fake_vllm, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(rl_vllm, "cuda_available", lambda device: True)
    FakeLLM.script = _scripted_policy(tokenizer, random.Random(1))
    cfg = RLConfig(output_dir=tmp_path / "rl", group_size=3, batch_size=4, max_steps=1, lr=1e-2, max_new_tokens=48,
                   max_turns=3, distractors="none", save_every=1, max_rollout_rounds=6, log_samples=0,
                   tensorboard=False, device="cpu", rollout_engine="vllm")
    envs = [fake_env(i) for i in range(3)]
    trained = tiny_model(tokenizer)
    RLTrainer(cfg, envs, session_factory=fake_factory(3), model=trained, tokenizer=tokenizer).train()
    t2 = RLTrainer(cfg, envs, session_factory=fake_factory(3), model=tiny_model(tokenizer, seed=9),
                   tokenizer=tokenizer)
    t2.load_checkpoint(t2.latest_checkpoint())
    last = FakeLLM.instances[-1].weights.loads[-1]
    assert all(torch.equal(last[k], v.detach()) for k, v in trained.named_parameters())


# -- where vLLM cannot run -------------------------------------------------------------------


def test_missing_vllm_is_a_clear_error(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    cfg = RLConfig(output_dir=tmp_path / "rl", rollout_engine="vllm", device="cpu", distractors="none",
                   tensorboard=False)
    with pytest.raises(ConfigError) as e:
        RLTrainer(cfg, [fake_env(0)], session_factory=fake_factory(2), model=tiny_model(tokenizer),
                  tokenizer=tokenizer)
    msg = str(e.value)
    assert "\n" not in msg and "pip install 'astra[vllm]'" in msg and "--rollout-engine hf" in msg


def test_a_broken_vllm_install_is_named(tokenizer, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def imp(name, *a, **k):
        if name == "vllm":
            raise OSError("libcudart.so.13: cannot open shared object file\nmore detail")
        return real_import(name, *a, **k)

    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setattr(builtins, "__import__", imp)
    reason = rl_vllm.unavailable("cuda")
    assert reason is not None and "OSError: libcudart.so.13" in reason and "\n" not in reason
    assert "pip install 'astra[vllm]'" in reason


def test_no_cuda_is_a_clear_error(fake_vllm, tokenizer, tmp_path):
    cfg = RLConfig(output_dir=tmp_path / "rl", rollout_engine="vllm", device="cpu", distractors="none",
                   tensorboard=False)
    with pytest.raises(ConfigError, match="CUDA device"):
        RLTrainer(cfg, [fake_env(0)], session_factory=fake_factory(2), model=tiny_model(tokenizer),
                  tokenizer=tokenizer)
    assert not FakeLLM.instances


def test_fallback_to_hf_is_warned_and_recorded(tokenizer, tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "vllm", None)
    cfg = RLConfig(output_dir=tmp_path / "rl", rollout_engine="vllm", vllm_fallback="hf", device="cpu",
                   distractors="none", tensorboard=False, group_size=2, batch_size=2, max_steps=1,
                   max_new_tokens=4, max_rollout_rounds=1, log_samples=0)
    with caplog.at_level(logging.WARNING, logger="astra.train.rl"):
        tr = RLTrainer(cfg, [fake_env(0)], session_factory=fake_factory(2), model=tiny_model(tokenizer),
                       tokenizer=tokenizer)
    assert tr.engine.kind == "hf" and tr.vllm is None
    assert any("rolling out with the hf engine instead" in r.getMessage() for r in caplog.records)
    summary = tr.train()
    assert summary["rollout_engine"] == "hf" and summary["rollout_engine_requested"] == "vllm"
    assert "pip install 'astra[vllm]'" in summary["rollout_engine_fallback"]
    assert read_metrics(tmp_path / "rl")[0]["rollout_engine_fallback"] == 1


# -- configuration ---------------------------------------------------------------------------


def test_config_accepts_vllm_locally_and_checks_its_options():
    assert RLConfig(rollout_engine="vllm").rollout_engine == "vllm"
    assert RLConfig(backend="verl").rollout_engine == "vllm"
    with pytest.raises(ValueError, match="sglang"):
        RLConfig(rollout_engine="sglang")  # veRL only
    with pytest.raises(ValueError, match="backend verl"):
        RLConfig(backend="verl", rollout_engine="hf")
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="vllm_gpu_memory_utilization"):
            RLConfig(rollout_engine="vllm", vllm_gpu_memory_utilization=bad)
    with pytest.raises(ValueError, match="vllm_fallback"):
        RLConfig(vllm_fallback="sglang")
    assert rl_vllm.vllm_dtype("bf16") == "bfloat16" and rl_vllm.vllm_dtype("fp32") == "float32"


# -- the CLI on the embedded model -----------------------------------------------------------


@pytest.mark.model
def test_cli_train_rl_with_the_vllm_engine_on_the_embedded_model(fake_vllm, tokenizer, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from astra.cli import app
    from astra.envs import write_environment

    monkeypatch.setattr(rl_vllm, "cuda_available", lambda device: True)
    FakeSession.instances.clear()
    for i in range(2):
        write_environment(fake_env(i), tmp_path / "envs")
    out = tmp_path / "rl"
    res = CliRunner().invoke(app, ["train", "rl", "--envs", str(tmp_path / "envs"), "-o", str(out),
                                   "--rollout-engine", "vllm", "--vllm-gpu-memory-utilization", "0.4",
                                   "--max-steps", "1", "--group-size", "2", "--batch", "2",
                                   "--max-new-tokens", "8", "--max-turns", "1", "--max-rollout-rounds", "1",
                                   "--distractors", "none", "--device", "cpu", "--no-tensorboard",
                                   "--save-every", "0"])
    assert res.exit_code == 0, res.output
    assert "rollout engine" in res.output and "weight syncs" in res.output
    llm = FakeLLM.instances[-1]
    assert llm.kwargs["gpu_memory_utilization"] == 0.4
    assert llm.weights.loads and llm.prompts  # the embedded model's weights went in; it generated
    rec = read_metrics(out)[0]
    assert rec["rollouts"] == 2 and "weight_sync_seconds" in rec
    import json

    summary = json.loads((out / "rl_summary.json").read_text())
    assert summary["rollout_engine"] == "vllm" and summary["weight_syncs"] >= 1
