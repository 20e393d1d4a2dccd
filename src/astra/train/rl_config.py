"""The configuration of an RL run (:class:`RLConfig`), in a module light enough for the CLI
to import (pydantic only): ``astra train rl`` derives its options from these fields."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from astra.cli_config import Flag

LossAgg = Literal["token-mean", "seq-mean-token-mean"]
RewardKind = Literal["f1", "recall", "precision"]
DistractorMode = Literal["banded", "random", "none"]


class RLConfig(BaseModel):
    """Every knob of an RL run, declared once: ``astra train rl`` derives its options from
    these fields (:func:`astra.cli_config.takes_config`: flag, help, default, choices) and
    the veRL export reads the same object."""

    model_config = ConfigDict(extra="forbid")

    envs: Annotated[Path | None, Flag(short="-e")] = Field(None, description=(
        "Environments: an `astra envs synthesize` output directory (or one environment file)."))
    model: Annotated[str, Flag(short="-m")] = Field("embedded", description=(
        "'embedded' (SmolLM2-135M-Instruct), an SFT output directory ('embedded:PATH' accepted), "
        "a local model directory or a Hugging Face id."))
    output_dir: Annotated[Path, Flag("--output", "-o")] = Field(Path("ckpt/rl"), description=(
        "Output directory: checkpoints, final model, metrics.jsonl, curves.png, samples.jsonl."))
    backend: Literal["local", "verl"] = Field("local", description=(
        "local (train here) | verl (write a veRL job to --export instead)."))
    group_size: Annotated[int, Flag(short="-G")] = Field(4, ge=2, description="Rollouts per environment (GRPO group).")
    batch_size: Annotated[int, Flag("--batch", "-n")] = Field(8, ge=1, description=(
        "Samples from learning-active groups per optimizer step (batch = mini-batch: on-policy)."))
    mini_batch_size: Annotated[int | None, Flag("--mini-batch")] = Field(None, description=(
        "Samples per optimizer update (default = --batch: one on-policy update per step)."))
    micro_batch_size: Annotated[int, Flag("--micro-batch")] = Field(2, ge=1, description=(
        "Sequences per forward/backward (gradient accumulation)."))
    groups_per_round: int | None = Field(None, description=(
        "Environments per rollout round (default ceil(batch / group size))."))
    max_rollout_rounds: int = Field(4, ge=1, description="Cap on rollout rounds per step while filling the batch.")
    reward: RewardKind = Field("f1", description="Trajectory reward.")
    distractors: DistractorMode = Field("banded", description=(
        "Irrelevant tools mixed in: banded (similarity bands), random or none."))
    distractor_k: int = Field(1, ge=0, description="Distractors per band (banded) or K·3 in total (random).")
    max_steps: int = Field(20, ge=0, description="Optimizer steps.")
    lr: float = Field(2e-6, description="Learning rate (constant, AdamW).")
    weight_decay: float = Field(0.0, description="AdamW weight decay.")
    grad_clip: float = Field(1.0, description="Gradient norm clip.")
    max_turns: int = Field(8, ge=1, description="Tool-calling turns per episode (<= 32).")
    max_new_tokens: int = Field(128, ge=1, description="Tokens per assistant turn.")
    max_total_tokens: int = Field(4096, ge=64, description="Context budget of an episode (prompt + all turns).")
    temperature: float = Field(1.0, description="Sampling temperature (> 0).")
    top_p: float = Field(1.0, description="Nucleus sampling.")
    clip_eps_low: Annotated[float, Flag("--clip-low")] = Field(0.2, description="Ratio clip epsilon below 1.")
    clip_eps_high: Annotated[float, Flag("--clip-high")] = Field(0.28, description=(
        "Ratio clip epsilon above 1 (DAPO clip-higher)."))
    std_threshold: float = Field(1e-6, description="delta: groups whose reward std is <= delta are dropped.")
    adv_eps: float = Field(1e-6, description="Added to the group reward std before dividing the advantages.")
    loss_agg: LossAgg = Field("token-mean", description="Loss aggregation over the batch.")
    max_staleness: int | None = Field(1, description=(
        "Drop buffered samples older than this many steps (unset: keep them)."))
    save_every: int = Field(10, description="Checkpoint every N steps.")
    keep_checkpoints: int = Field(2, description="Checkpoints kept.")
    resume: bool = Field(False, description=(
        "Continue from the newest checkpoint in -o, reusing the journaled rollouts made after it."))
    curriculum: Literal["none", "hops"] = Field("none", description=(
        "Environment order within each pass: none (seeded shuffle) | hops (fewest hops first: "
        "single-hop environments, then two-hop, ...; shuffled within a hop count)."))
    seed: int = Field(0, description="Seed (environment order, sampling, distractors).")
    device: str = Field("auto", description="auto (CUDA when available) | cpu | cuda[:N].")
    threads: int | None = Field(None, description="torch CPU threads (default: min(2, cores)).")
    max_batch: int | None = Field(None, description=(
        "Cap on sequences per generate call (default: all live sessions)."))
    #: hf: KV cache kept across turns, shared prompt prefixes prefilled once (astra.train.rl_kvcache);
    #: hf-generate: one HF ``generate`` call per turn over the whole conversations; vllm: an
    #: in-process vLLM on the policy's GPU, weights synced after every update (astra.train.rl_vllm).
    rollout_engine: Literal["hf", "hf-generate", "vllm", "sglang"] | None = Field(None, description=(
        "local: hf (KV cache kept across turns, shared prompt prefixes prefilled once; default) | "
        "hf-generate (one HF generate call per turn) | vllm (vLLM on the policy's GPU, weights synced "
        "after every update; pip install 'astra[vllm]'). veRL: vllm (default) | sglang."), validate_default=True)
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, lt=1, description=(
        "--rollout-engine vllm: share of the GPU's memory vLLM takes (weights + KV cache); the rest is "
        "the trainer's."))
    vllm_sleep: bool = Field(False, description=(
        "--rollout-engine vllm: put vLLM to sleep during the update (KV cache freed, weights offloaded "
        "to CPU memory), woken by the weight sync."))
    vllm_enforce_eager: bool = Field(False, description=(
        "--rollout-engine vllm: no CUDA graphs (faster start, slower decoding)."))
    #: What --rollout-engine vllm does where vLLM cannot run (not installed, no CUDA device):
    #: error (stop with the reason) or hf (train with the hf engine; warned on the console and
    #: recorded as rollout_engine_fallback in every step's metrics and in rl_summary.json).
    vllm_fallback: Literal["error", "hf"] = Field("error", description=(
        "--rollout-engine vllm where vLLM cannot run: error (stop) | hf (use the hf engine; recorded "
        "in the metrics and the summary)."))
    #: auto: bf16 autocast on a CUDA device that supports it, fp32 elsewhere (astra.train.precision).
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description=(
        "auto (bf16 autocast on a CUDA GPU that supports it, else fp32) | fp32 | bf16."))
    gradient_checkpointing: bool = Field(False, description=(
        "Recompute activations in the update's backward pass (less memory, more compute)."))
    #: Append every rollout round to ``rollouts.jsonl`` (fsync'd); --resume replays the rounds made
    #: after the last checkpoint by its weights instead of rolling them out again (astra.train.rl_journal).
    journal: bool = Field(True, description="Journal every rollout round to rollouts.jsonl (fsync'd).")
    log_samples: int = Field(2, description="Trajectories per step written to samples.jsonl.")
    plot_every: int = Field(5, description="Redraw curves.png every N steps (and at the end).")
    #: When the old (rollout-policy) log-probs are computed. "rollout": one no-grad forward
    #: after each rollout round. "lazy" (same values, one forward pass less per step): the
    #: samples trained in the step they were rolled out, in a single on-policy update, take
    #: the update's own log-probs (detached; the weights have not changed since the rollout);
    #: samples carried over in the buffer, and every sample when there are several mini-batches,
    #: are scored before the update, i.e. still under the policy that generated them.
    old_logps: Literal["rollout", "lazy"] = Field("lazy", description=(
        "When the rollout policy's log-probs are computed (see docs/training.md)."))
    tensorboard: bool | None = Field(None, description="Also log to TensorBoard (default: when installed).")
    wandb_project: str | None = Field(None, description="Also log to this W&B project.")

    @field_validator("rollout_engine")
    @classmethod
    def _engine(cls, v: str | None, info: ValidationInfo) -> str:
        backend = info.data.get("backend", "local")
        engines = ("hf", "hf-generate", "vllm") if backend == "local" else ("vllm", "sglang")
        if v is None:
            return engines[0]
        if v not in engines:
            raise ValueError(f"{v!r} with backend {backend}: use {', '.join(engines[:-1])} or {engines[-1]}")
        return v

    @field_validator("temperature")
    @classmethod
    def _temp(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("RL needs sampling: temperature must be > 0 (greedy groups are all alike)")
        return v

    @property
    def rounds_groups(self) -> int:
        return self.groups_per_round or max(1, math.ceil(self.batch_size / self.group_size))


class VerlJob(BaseModel):
    """What only a veRL job needs beyond :class:`RLConfig` (``astra train rl --backend verl``)."""

    model_config = ConfigDict(extra="forbid")

    n_gpus_per_node: Annotated[int, Flag("--n-gpus")] = Field(8, ge=1, description="veRL: GPUs per node.")
    nnodes: int = Field(1, ge=1, description="veRL: nodes.")
    max_response_length: int = Field(8192, ge=1, description="veRL: response tokens per episode (all turns).")
    max_prompt_length: int | None = Field(None, description=(
        "veRL: prompt tokens (default: the longest prompt, rounded up to 256 with room to spare)."))
    max_gen_batches: int = Field(8, ge=1, description="veRL: generation batches per step while filling the batch.")
    val_fraction: float = Field(0.05, ge=0, lt=1, description="veRL: share of environments in the validation set.")


__all__ = ["DistractorMode", "LossAgg", "RLConfig", "RewardKind", "VerlJob"]
