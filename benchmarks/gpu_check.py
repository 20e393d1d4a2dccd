"""One GPU check of astra's training paths: JSON lines on stdout (see benchmarks/gpu_check.sh).

    python benchmarks/gpu_check.py [--cpu-smoke] [--size 1.5b|0.5b|135m|tiny] [--seconds-budget 330]

Every line is one JSON object with a ``check`` key:

* ``env``: device, torch / transformers versions, model shape;
* ``matmul_peak``: the measured dense matmul throughput, bf16 (and fp32), TFLOP/s: the
  denominator of every MFU below (not the datasheet number);
* ``rl_update``: :meth:`astra.train.rl.RLTrainer.update` (astra's own GRPO update: token
  log-probs of the policy tokens, clipped loss, backward, AdamW) on a fixed batch of
  synthetic trajectories, in fp32 and bf16 autocast; tokens/s, TFLOP/s, MFU, peak memory;
* ``sft_step``: a causal-LM training step as ``astra train sft`` runs it (TRL's SFTTrainer:
  full logits, cross-entropy on assistant tokens, backward, AdamW), bf16 autocast, with and
  without gradient checkpointing; tokens/s, MFU, peak memory;
* ``rollout``: :class:`astra.train.rl_rollout.RolloutEngine`, ``hf`` (KV cache across turns,
  shared prefixes once) against ``hf-generate`` (HF ``generate`` per turn), greedy, so both
  do exactly the same work (their tokens are compared): generated tokens/s, seconds, peak
  memory; then ``vllm`` (``--rollout-engine vllm``, when vLLM is importable and there is a
  GPU, else a ``vllm_skipped`` line with the reason): start-up seconds, tokens/s, the
  seconds of one weight sync, episodes with the ``hf`` tokens. Prompts are real environment prompts (system prompt + tool list of environments
  synthesized offline from the film world); the model has random weights and writes no
  tool calls, so every reply is *treated as* one tool call answered by a fixed tool
  result, to measure multi-turn rollouts (``turns`` per episode);
* ``done``: wall seconds.

FLOPs: ``6·N·T`` for training (N = parameters without the embedding, the LM head counted
for the tokens it is computed on) plus causal attention ``6·L·d·Σ T_seq²/2``; forward-only
``2·N·T``. Models are built from a config with random weights (nothing is downloaded):
``1.5b`` is Qwen2.5-1.5B's shape, ``0.5b`` Qwen2.5-0.5B's, ``135m`` SmolLM2-135M's.
``--cpu-smoke`` shrinks everything (tiny model, short sequences) so the script runs on a
CPU in a few minutes; its numbers only show that the code paths run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, int]] = {
    "1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
             "num_key_value_heads": 2},
    "0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
             "num_key_value_heads": 2},
    "135m": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
             "num_key_value_heads": 3},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2},
}

T0 = time.perf_counter()


def emit(check: str, **kw: Any) -> None:
    print(json.dumps({"check": check, **kw}, default=str), flush=True)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # process RSS peak (Linux: KiB)
    except Exception:
        return None


# -- matmul peak ---------------------------------------------------------------------------

def matmul_peak(device: str, n: int, reps: int) -> dict[str, float]:
    import torch

    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        out[name] = 2 * n**3 * reps / (time.perf_counter() - t) / 1e12
        del a, b
    return out


# -- model ---------------------------------------------------------------------------------

def build_model(size: str, vocab: int, device: str, max_pos: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, max_position_embeddings=max_pos, tie_word_embeddings=True,
                      attn_implementation="sdpa", **SIZES[size])
    with torch.device(device):
        model = LlamaForCausalLM(cfg)
    return model.float()


def counts(model: Any) -> tuple[int, int, int, int]:
    """(parameters without the embedding, hidden size, layers, vocabulary)."""
    cfg = model.config
    emb = model.get_input_embeddings().weight.numel()
    n = sum(p.numel() for p in model.parameters()) - emb
    return n, cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size


def train_flops(model: Any, lengths: list[int], head_tokens: int) -> float:
    n, d, layers, vocab = counts(model)
    tokens = sum(lengths)
    return 6 * n * tokens + 6 * d * vocab * head_tokens + 6 * layers * d * sum(t * t / 2 for t in lengths)


# -- RL update -----------------------------------------------------------------------------

def rl_update(model: Any, tok: Any, device: str, *, batch: int, seq: int, micro: int, steps: int,
              peak: dict[str, float], out_dir: Path) -> None:
    import random

    from astra.train.rl import RLConfig, RLTrainer
    from astra.train.rl_buffer import Sample

    rng = random.Random(0)
    vocab = model.config.vocab_size
    samples = []
    for i in range(batch):
        n = seq - (i % 4) * (seq // 16)
        ids = [rng.randrange(10, vocab) for _ in range(n)]
        prompt = n // 2
        samples.append(Sample(env_id="e", group_id="g", input_ids=ids, loss_mask=[0] * prompt + [1] * (n - prompt),
                              reward=float(i % 2), advantage=1.0 if i % 2 else -1.0))
    head = sum(s.n_policy_tokens for s in samples)
    flops = train_flops(model, [len(s.input_ids) for s in samples], head)
    env = _dummy_env()
    for precision in ("fp32", "bf16"):
        _reset_peak(device)
        cfg = RLConfig(output_dir=out_dir / f"rl-{precision}", group_size=2, batch_size=batch, micro_batch_size=micro,
                       distractors="none", tensorboard=False, device=device, precision=precision, lr=1e-6)
        tr = RLTrainer(cfg, [env], session_factory=lambda *a: None, model=model, tokenizer=tok)
        tr.update(samples)  # warm-up (kernels, optimizer state)
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            tr.update(samples)
        _sync(device)
        dt = (time.perf_counter() - t) / steps
        emit("rl_update", precision=precision, batch=batch, seq=seq, micro_batch=micro,
             tokens_per_s=round(sum(len(s.input_ids) for s in samples) / dt, 1), seconds_per_update=round(dt, 3),
             tflops=round(flops / dt / 1e12, 3), mfu_vs_bf16_peak=round(flops / dt / 1e12 / peak["bf16"], 4),
             mfu_vs_fp32_peak=round(flops / dt / 1e12 / peak["fp32"], 4), peak_mem_gib=_peak_gib(device))
        del tr
        model.zero_grad(set_to_none=True)


def _dummy_env() -> Any:
    from astra.types import Environment, EnvTool, QAInstance, SubTask, Tool

    sub = SubTask(id="s1", sub_question="q", sub_answer="a")
    inst = QAInstance(id="q", domain="d", scenario="single_hop", question="q", answer="a", sub_tasks=[sub])
    tool = Tool(name="t", description="d", parameters={"type": "object", "properties": {}})
    return Environment(id="e", instance=inst, tools=[EnvTool(tool=tool, code="def t(): pass", serves=["s1"])])


# -- SFT step ------------------------------------------------------------------------------

def sft_step(model: Any, device: str, *, batch: int, seq: int, steps: int, peak: dict[str, float]) -> None:
    import torch

    from astra.train.precision import autocast

    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab, (batch, seq), generator=g).to(device)
    labels = ids.clone()
    labels[:, : seq // 3] = -100  # prompt/tool tokens are masked in SFT
    flops = train_flops(model, [seq] * batch, batch * seq)  # full logits: the LM head on every token
    for gc in (False, True):
        _reset_peak(device)
        if gc:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)

        def one(opt: Any) -> None:
            with autocast(device, "bf16"):
                loss = model(input_ids=ids, labels=labels, use_cache=False).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        one(opt)
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            one(opt)
        _sync(device)
        dt = (time.perf_counter() - t) / steps
        emit("sft_step", precision="bf16", gradient_checkpointing=gc, batch=batch, seq=seq,
             tokens_per_s=round(batch * seq / dt, 1), seconds_per_step=round(dt, 3),
             tflops=round(flops / dt / 1e12, 3), mfu_vs_bf16_peak=round(flops / dt / 1e12 / peak["bf16"], 4),
             peak_mem_gib=_peak_gib(device))
        del opt
        if gc:
            model.activation_checkpointing_disable()
    model.zero_grad(set_to_none=True)


# -- rollouts ------------------------------------------------------------------------------

class _EchoSession:
    """A real environment prompt; every reply counts as one tool call answered by ``result``."""

    def __init__(self, messages: list[dict], tools: list[dict], result: str, max_turns: int):
        self.messages, self.tool_list, self.result, self.max_turns = messages, tools, result, max_turns
        self.turns = self.calls = 0
        self.done = self.finished = False

    def reset(self) -> tuple[list[dict], list[dict]]:
        return [dict(m) for m in self.messages], list(self.tool_list)

    async def astep(self, calls: list[Any]) -> list[dict]:
        self.turns += 1
        self.calls += len(calls)
        self.done = self.turns >= self.max_turns
        return [{"role": "tool", "tool_call_id": getattr(c, "id", "c") or "c", "content": self.result} for c in calls]

    def finish(self, answer: Any) -> None:
        self.finished = self.done = True


def env_prompts(n: int) -> list[tuple[list[dict], list[dict]]]:
    import asyncio

    from astra.envs.runtime import EnvSession
    from astra.envsynth.compose import compose
    from astra.envsynth.synth import synthesize_environment
    from astra.envsynth.worlds import load_worlds
    from astra.sandbox import SandboxPool

    insts = compose(load_worlds(["film"]), n=2, seed=0)
    with SandboxPool(size=2) as pool:
        async def build() -> list[Any]:
            return [await synthesize_environment(i, pool=pool) for i in insts]
        envs = asyncio.run(build())
    prompts = [EnvSession(e).reset() for e in envs]
    return [prompts[i % len(prompts)] for i in range(n)]


def rollouts(model: Any, tok: Any, device: str, *, groups: int, group_size: int, new_tokens: int, turns: int,
             precision: str, out_dir: Path) -> None:
    import astra.train.rl_rollout as rr
    from astra.llm.toolparse import ParsedReply
    from astra.llm.types import ToolCall
    from astra.train.precision import autocast

    prompts = env_prompts(groups)
    result = json.dumps({"film": "Blue Harbor", "director": "Ana Ruiz", "year": 1994, "rating": 7.1})
    real_parse = rr.parse_tool_calls
    rr.parse_tool_calls = lambda text, *a, **k: ParsedReply(  # every reply is one tool call (see the doc)
        content=text, tool_calls=[ToolCall(id="c", name="lookup", arguments="{}")], errors=[])
    runs: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    try:
        for kind in ("hf", "hf-generate"):
            _reset_peak(device)
            sessions = [_EchoSession(m, t, result, turns) for (m, t) in prompts for _ in range(group_size)]
            eng = rr.RolloutEngine(model, tok, max_new_tokens=new_tokens, temperature=0.0, engine=kind,
                                   autocast=(lambda: autocast(device, precision)))
            _sync(device)
            t = time.perf_counter()
            eps = eng.run(sessions)
            _sync(device)
            dt = time.perf_counter() - t
            runs[kind], seconds[kind] = eps, dt
            emit("rollout", engine=kind, precision=precision, sessions=len(sessions), groups=groups,
                 max_new_tokens=new_tokens, turns=round(sum(e.turns for e in eps) / len(eps), 2),
                 prompt_tokens_mean=round(sum(e.prompt_len for e in eps) / len(eps), 1),
                 generated_tokens=eng.stats.gen_tokens, seconds=round(dt, 3),
                 tokens_per_s=round(eng.stats.gen_tokens / dt, 1), peak_mem_gib=_peak_gib(device))
    finally:
        rr.parse_tool_calls = real_parse
    same = all(a.ids == b.ids for a, b in zip(runs["hf"], runs["hf-generate"], strict=True))
    emit("rollout_engines", identical_tokens=same,
         speedup_hf_vs_hf_generate=round(seconds["hf-generate"] / seconds["hf"], 2))
    vllm_rollouts(model, tok, device, prompts, result, group_size=group_size, new_tokens=new_tokens, turns=turns,
                  precision=precision, hf_run=runs["hf"], hf_seconds=seconds["hf"], out_dir=out_dir)


def vllm_rollouts(model: Any, tok: Any, device: str, prompts: list[Any], result: str, *, group_size: int,
                  new_tokens: int, turns: int, precision: str, hf_run: list[Any], hf_seconds: float,
                  out_dir: Path) -> None:
    """The ``vllm`` engine on the same sessions (greedy): start-up seconds (vLLM built on the
    policy's config, then the first weight sync), rollout tokens/s, a weight sync's seconds,
    and how many episodes have the ``hf`` engine's tokens (bf16 kernels differ: not all need
    to). Skipped, with a ``vllm_skipped`` line saying why, where vLLM cannot run."""
    import astra.train.rl_rollout as rr
    from astra.llm.toolparse import ParsedReply
    from astra.llm.types import ToolCall
    from astra.train import rl_vllm

    reason = rl_vllm.unavailable(device)
    if reason is not None:
        emit("vllm_skipped", reason=reason)
        return
    _reset_peak(device)
    codec = rr.ChatCodec(tok)
    t = time.perf_counter()
    gen = rl_vllm.VLLMGenerator(model, tok, stop_ids=codec.stop_ids, eos_id=tok.eos_token_id, max_model_len=8192,
                                temperature=0.0, top_p=1.0, workdir=out_dir / "vllm_model",
                                gpu_memory_utilization=float(os.environ.get("GPU_CHECK_VLLM_MEM", "0.3")),
                                dtype=rl_vllm.vllm_dtype(precision))
    start_s = time.perf_counter() - t
    real_parse = rr.parse_tool_calls
    rr.parse_tool_calls = lambda text, *a, **k: ParsedReply(  # as in rollouts(): every reply is one tool call
        content=text, tool_calls=[ToolCall(id="c", name="lookup", arguments="{}")], errors=[])
    try:
        sessions = [_EchoSession(m, tl, result, turns) for (m, tl) in prompts for _ in range(group_size)]
        eng = rr.RolloutEngine(model, tok, max_new_tokens=new_tokens, temperature=0.0, engine="vllm", generator=gen)
        t = time.perf_counter()
        eps = eng.run(sessions)
        dt = time.perf_counter() - t
    finally:
        rr.parse_tool_calls = real_parse
    sync_s = gen.sync_weights(model)
    emit("rollout", engine="vllm", precision=precision, sessions=len(sessions), max_new_tokens=new_tokens,
         turns=round(sum(e.turns for e in eps) / len(eps), 2), generated_tokens=eng.stats.gen_tokens,
         seconds=round(dt, 3), tokens_per_s=round(eng.stats.gen_tokens / dt, 1), start_seconds=round(start_s, 1),
         weight_sync_seconds=round(sync_s, 3), peak_mem_gib=_peak_gib(device),
         episodes_equal_to_hf=sum(a.ids == b.ids for a, b in zip(eps, hf_run, strict=True)),
         speedup_vs_hf=round(hf_seconds / dt, 2) if dt > 0 else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes, on the CPU (shows the paths run)")
    ap.add_argument("--size", choices=sorted(SIZES), default=None, help="model shape (default 1.5b; tiny with --cpu-smoke)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "astra_gpu_check")
    ap.add_argument("--skip", default="", help="comma-separated checks to skip: rl,sft,rollout")
    a = ap.parse_args(argv)

    import torch
    import transformers
    from transformers import AutoTokenizer

    from astra.llm.embedded import ensure_tool_chat_template

    smoke = a.cpu_smoke
    device = "cpu" if smoke or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not smoke:
        emit("error", message="no CUDA device: run with --cpu-smoke on a CPU")
        return 2
    size = a.size or ("tiny" if smoke else "1.5b")
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if smoke:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    tok = _tokenizer(AutoTokenizer)
    ensure_tool_chat_template(tok)
    model = build_model(size, len(tok), device, 8192)
    n, d, layers, vocab = counts(model)
    emit("env", device=torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
         torch=torch.__version__, transformers=transformers.__version__, python=sys.version.split()[0],
         size=size, params_nonembedding=n, hidden=d, layers=layers, vocab=vocab, cpu_smoke=smoke)

    peak = matmul_peak(device, 512 if smoke else 8192, 5 if smoke else 50)
    emit("matmul_peak", device=device, n=512 if smoke else 8192,
         bf16_tflops=round(peak["bf16"], 3), fp32_tflops=round(peak["fp32"], 3))
    if "rl" not in skip:
        rl_update(model, tok, device, batch=2 if smoke else 8, seq=96 if smoke else 1024,
                  micro=2 if smoke else 4, steps=1 if smoke else 3, peak=peak, out_dir=a.out)
    if "sft" not in skip:
        sft_step(model, device, batch=2 if smoke else 4, seq=96 if smoke else 2048, steps=1 if smoke else 3,
                 peak=peak)
    if "rollout" not in skip:
        rollouts(model, tok, device, groups=2 if smoke else 2, group_size=2 if smoke else 4,
                 new_tokens=12 if smoke else 128, turns=2 if smoke else 3, precision="fp32" if smoke else "bf16",
                 out_dir=a.out)
    emit("done", seconds=round(time.perf_counter() - T0, 1))
    return 0


def _tokenizer(auto: Any) -> Any:
    """The embedded model's tokenizer (its 49k vocabulary sizes the LM head)."""
    from astra.llm.embedded import ensure_default_model

    return auto.from_pretrained(ensure_default_model())


if __name__ == "__main__":
    raise SystemExit(main())
