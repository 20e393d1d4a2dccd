"""The ``vllm`` rollout engine: an in-process vLLM colocated with the trained policy.

``astra train rl --rollout-engine vllm`` (local backend, one CUDA GPU) generates the rollouts
with vLLM instead of Hugging Face ``generate``; training (log-probs, loss, AdamW) stays on the
Hugging Face model. Both live in this process, on the same GPU:

* **Start**: the policy's config and tokenizer are written to ``<output>/vllm_model/`` and
  ``vllm.LLM`` is built on it with ``load_format="dummy"`` (no weights read from disk),
  ``distributed_executor_backend="external_launcher"`` (vLLM's worker runs in this process,
  so the weights go to it without serialization) and ``gpu_memory_utilization`` (the share of
  the GPU vLLM takes for its weights and KV cache; the rest is the trainer's). The policy's
  weights are then loaded into it (the first :meth:`VLLMGenerator.sync_weights`).
* **Generation** (:meth:`VLLMGenerator.generate`): one ``LLM.generate`` call per turn over the
  live episodes, each a ``TokensPrompt`` of the episode's token ids (never re-tokenized),
  with ``SamplingParams(n=1, max_tokens=<the episode's budget>, temperature, top_p,
  stop_token_ids=<the chat template's stop ids>, seed=<drawn from torch's RNG>)``. vLLM's
  prefix cache keeps the KV of the conversation so far across turns. The result is the same
  as :meth:`astra.train.rl_rollout.RolloutEngine.generate`: the new ids up to and including
  the first stop id, and whether a stop id ended the reply.
* **Weight sync** (:meth:`VLLMGenerator.sync_weights`, after every update of the policy and
  after a checkpoint is loaded): every ``named_parameters()`` tensor of the policy goes to
  the vLLM model's ``load_weights`` through ``LLM.apply_model`` (in place, on the GPU; vLLM
  maps the Hugging Face names onto its fused layers and casts to its dtype), then
  ``LLM.reset_prefix_cache()`` drops the KV computed with the old weights.
* **Sleep mode** (``--vllm-sleep``): vLLM is put to sleep (level 1: its KV cache freed, its
  weights offloaded to CPU memory) for the update, so the backward pass and AdamW get that
  GPU memory, and woken up by the next sync.

The old log-probs of the loss are the Hugging Face model's (as with the ``hf`` engines); vLLM's
kernels and the Hugging Face forward differ slightly in numerics, so the sampled tokens are
off-policy by that gap, which the loss does not correct. vLLM is an optional dependency (``pip install 'astra[vllm]'``): :func:`unavailable`
says why the engine cannot run here, and ``--vllm-fallback hf`` trains with the ``hf`` engine
instead (counted in the metrics and the run summary, and warned about on the console).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install 'astra[vllm]'"


def cuda_available(device: str) -> bool:
    """Whether ``device`` is a CUDA device this process can use."""
    import torch

    return str(device).startswith("cuda") and torch.cuda.is_available()


def unavailable(device: str) -> str | None:
    """Why the ``vllm`` engine cannot run with the policy on ``device`` (None: it can)."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        return f"vllm is not importable ({_one_line(e)}); install it with {INSTALL_HINT}"
    except Exception as e:  # a broken install (e.g. a CUDA torch that does not load here)
        return f"vllm fails to import ({type(e).__name__}: {_one_line(e)}); reinstall it with {INSTALL_HINT}"
    if not cuda_available(device):
        return f"vllm needs a CUDA device and the policy is on {device!r}"
    return None


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _single_process_group_env() -> None:
    """The torch.distributed variables vLLM's external-launcher worker reads (one process)."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))


def write_model_dir(model: Any, tokenizer: Any, path: Path) -> Path:
    """The policy's config (with its architecture named) and tokenizer, without weights."""
    path.mkdir(parents=True, exist_ok=True)
    cfg = model.config.to_dict()
    cfg["architectures"] = list(getattr(model.config, "architectures", None) or [type(model).__name__])
    (path / "config.json").write_text(json.dumps(cfg, indent=2, default=str), "utf-8")
    tokenizer.save_pretrained(str(path))
    return path


def vllm_dtype(precision: str) -> str:
    """vLLM's weight dtype for the trainer's resolved precision (``bf16`` or ``fp32``)."""
    return "bfloat16" if precision == "bf16" else "float32"


class VLLMGenerator:
    """Token-id generation with an in-process ``vllm.LLM`` and weight sync from the policy."""

    def __init__(self, model: Any, tokenizer: Any, *, stop_ids: Sequence[int], eos_id: int | None,
                 max_model_len: int, temperature: float, top_p: float, workdir: Path,
                 gpu_memory_utilization: float = 0.3, sleep: bool = False, dtype: str = "bfloat16",
                 seed: int = 0, enforce_eager: bool = False):
        import vllm

        self._vllm = vllm
        self.stop_ids = [int(i) for i in stop_ids]
        self._stops = set(self.stop_ids)
        self.eos_id = int(eos_id) if eos_id is not None else (self.stop_ids[0] if self.stop_ids else None)
        self.temperature, self.top_p = temperature, top_p
        self.sleep_enabled = sleep
        self.asleep = False
        self.syncs = 0
        self.sync_seconds = 0.0
        path = write_model_dir(model, tokenizer, Path(workdir))
        _single_process_group_env()
        self.llm = vllm.LLM(
            model=str(path), tokenizer=str(path), skip_tokenizer_init=True, load_format="dummy", dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            enable_sleep_mode=sleep, enable_prefix_caching=True, enforce_eager=enforce_eager, seed=seed,
            distributed_executor_backend="external_launcher",
        )
        self.sync_weights(model)

    # -- generation ----------------------------------------------------------------------
    def _sampling(self, max_tokens: int, seed: int) -> Any:
        sample = self.temperature > 0
        return self._vllm.SamplingParams(
            n=1, max_tokens=max(1, int(max_tokens)), temperature=self.temperature if sample else 0.0,
            top_p=self.top_p if sample else 1.0, stop_token_ids=list(self.stop_ids), seed=seed,
            detokenize=False, skip_special_tokens=False)

    def generate(self, seqs: Sequence[Sequence[int]],
                 max_new_tokens: int | Sequence[int]) -> list[tuple[list[int], bool]]:
        """Continue every sequence; returns (new ids up to and including a stop id, stopped).

        ``max_new_tokens``: one budget for all, or one per sequence. Each request's sampling
        seed is drawn from torch's RNG, so a run is reproducible from its seed."""
        import torch

        if not seqs:
            return []
        budgets = [int(max_new_tokens)] * len(seqs) if isinstance(max_new_tokens, int) else [
            int(b) for b in max_new_tokens]
        if len(budgets) != len(seqs):
            raise ValueError(f"{len(budgets)} budgets for {len(seqs)} sequences")
        if self.asleep:
            self.wake()
        seeds = torch.randint(0, 2**31 - 1, (len(seqs),)).tolist()
        prompts = [self._vllm.TokensPrompt(prompt_token_ids=[int(t) for t in s]) for s in seqs]
        params = [self._sampling(b, int(sd)) for b, sd in zip(budgets, seeds, strict=True)]
        outs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        if len(outs) != len(seqs):
            raise RuntimeError(f"vllm returned {len(outs)} outputs for {len(seqs)} prompts")
        return [self._reply(o.outputs[0]) for o in outs]

    def _reply(self, c: Any) -> tuple[list[int], bool]:
        """The reply as the ``hf`` engine gives it: cut after the first stop id, ``stopped``
        when one ended it. vLLM may leave the sampled stop token out of ``token_ids``
        (``finish_reason == "stop"``; ``stop_reason`` is the stop id, or None for the
        model's EOS): it is put back, so the episode holds the token the policy emitted."""
        ids = [int(t) for t in c.token_ids]
        for j, t in enumerate(ids):
            if t in self._stops:
                return ids[: j + 1], True
        if getattr(c, "finish_reason", None) == "stop":
            reason = getattr(c, "stop_reason", None)
            tail = reason if isinstance(reason, int) and not isinstance(reason, bool) else self.eos_id
            if tail is None:
                raise RuntimeError("vllm stopped a reply on a token that is not a stop id (no EOS id known)")
            return ids + [int(tail)], True
        return ids, False

    # -- memory and weights --------------------------------------------------------------
    def sleep(self) -> None:
        """Free the KV cache and offload the weights to CPU memory (``--vllm-sleep`` only)."""
        if self.sleep_enabled and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def sync_weights(self, model: Any) -> float:
        """Load the policy's current weights into vLLM; returns the seconds it took."""
        import torch

        t0 = time.perf_counter()
        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        weights = [(name, p.detach()) for name, p in model.named_parameters()]

        def load(vllm_model: Any) -> None:
            vllm_model.load_weights(iter(weights))

        self.llm.apply_model(load)
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        self.syncs += 1
        self.sync_seconds += dt
        return dt


__all__ = ["INSTALL_HINT", "VLLMGenerator", "cuda_available", "unavailable", "vllm_dtype", "write_model_dir"]
