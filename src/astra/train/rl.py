"""Online multi-turn RL in synthesized environments: a compact GRPO/DAPO trainer.

::

    from astra.train.rl import RLConfig, train_rl
    summary = train_rl(RLConfig(envs="envs/", model="ckpt/sft", output_dir="ckpt/rl",
                                group_size=4, batch_size=8, max_steps=30))

One optimizer step:

1. **Adaptive batch filling** (:func:`astra.train.rl_buffer.fill_batch`): while the buffer
   holds fewer than ``batch_size`` samples, run a *rollout round*: pick
   ``groups_per_round`` environments, open ``group_size`` isolated sessions on each (same
   tools and distractors within a group), roll them all out together
   (:class:`~astra.train.rl_rollout.RolloutEngine`: one batched ``generate`` per turn),
   score each trajectory with the environment's trajectory reward (F1 / recall /
   precision), compute the old log-probs (the rollout policy's, before any update), set
   group-normalized advantages and drop groups with ``Std(R) <= std_threshold``. At most
   ``max_rollout_rounds`` rounds per step. Train on the first ``batch_size`` samples, keep
   the rest for the next step.
2. **Update**: the clipped surrogate loss (``eps_low``/``eps_high``), no KL, no entropy,
   averaged over all policy tokens of the mini-batch (:mod:`astra.train.rl_loss`); only
   policy-generated tokens carry loss. ``mini_batch_size`` defaults to ``batch_size``: one
   optimizer step per batch, on-policy.
3. **Log** (:class:`astra.train.metrics.MetricsLogger`) and checkpoint every
   ``save_every`` steps (model, optimizer, buffer, RNG, environment cursor) for resume.
   Every rollout round is also journaled as it is made (:mod:`astra.train.rl_journal`,
   ``rollouts.jsonl``, fsync'd), so a resume reuses the rollouts made after the checkpoint.

Why not TRL's ``GRPOTrainer``: see ``docs/training.md`` ("RL: design"). In short, its
``environment_factory`` derives one fixed tool set per environment *class* from Python
method signatures, while every ASTRA environment carries its own synthesized tools plus
per-group distractors; and its generation batch is tied to a fixed-size
``RepeatSampler``/dataloader, which adaptive batch filling (a variable number of rollout
rounds per step, a buffer carried across steps and across resume) does not fit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from astra.errors import ConfigError, InputError
from astra.train.metrics import MetricsLogger
from astra.train.precision import autocast, resolve_precision
from astra.train.rl_buffer import FillResult, Group, RolloutBuffer, Sample, fill_batch
from astra.train.rl_config import RLConfig
from astra.train.rl_journal import RolloutJournal
from astra.train.rl_loss import policy_loss, token_logprobs
from astra.train.rl_rollout import ChatCodec, Episode, RolloutEngine, RolloutStats

STATE_FILE = "trainer_state.pt"
#: session_factory(env, distractors, seed) -> an EnvSession-like object.
SessionFactory = Callable[[Any, list[Any] | None, int], Any]

log = logging.getLogger(__name__)

# -- model -------------------------------------------------------------------------------------

def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_policy(model_ref: str | None, *, device: str = "cpu", threads: int | None = None) -> tuple[Any, Any]:
    """Load a causal LM (fp32) + tokenizer with the project's tool chat template if needed.

    ``embedded``/``default``/None: the bundled SmolLM2-135M. A directory with
    ``adapter_config.json`` (a LoRA SFT output) is loaded with PEFT and merged.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from astra.llm.embedded import ensure_tool_chat_template, resolve_model_path

    if device == "cpu":
        torch.set_num_threads(threads or max(1, min(2, os.cpu_count() or 1)))
    ref = None if model_ref in (None, "", "embedded", "default") else model_ref
    if ref and ref.startswith("embedded:"):  # the form `astra train sft` prints
        ref = ref.split(":", 1)[1]
    path = resolve_model_path(ref)
    try:
        if (Path(path) / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=torch.float32).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ConfigError(f"cannot load model {model_ref!r} ({path}): {e}") from e
    ensure_tool_chat_template(tok)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(device)
    return model, tok


# -- trainer -----------------------------------------------------------------------------------

def default_session_factory(cfg: RLConfig, pool: Any = None) -> SessionFactory:
    from astra.envs.runtime import EnvSession

    def make(env: Any, distractors: list[Any] | None, seed: int) -> Any:
        return EnvSession(env, max_turns=cfg.max_turns, reward=cfg.reward, distractors=distractors,
                          pool=pool, seed=seed)

    return make


def env_hops(env: Any) -> int:
    """Hop count of an environment: the number of dependency levels of its tool sub-tasks (a
    QA environment: its instance's hop levels; a stateful one: the gold plan's steps); 1 at
    least."""
    return max(1, len({s.hop_level for s in env.instance.sub_tasks if s.needs_tool}))


def epoch_order(envs: Sequence[Any], *, seed: int, epoch: int, curriculum: str = "none") -> list[int]:
    """The order of one pass over ``envs``: a seeded shuffle; with the ``hops`` curriculum,
    sorted by :func:`env_hops` (stable, so shuffled within each hop count)."""
    order = list(range(len(envs)))
    random.Random(seed * 7919 + epoch).shuffle(order)
    if curriculum == "hops":
        order.sort(key=lambda i: env_hops(envs[i]))
    return order


def _env_id(env: Any) -> str:
    return str(getattr(env, "id", None) or getattr(getattr(env, "instance", None), "id", "env"))


class RLTrainer:
    """GRPO with adaptive batch filling over environment sessions. See the module docstring."""

    def __init__(self, config: RLConfig, envs: Sequence[Any], *, session_factory: SessionFactory | None = None,
                 model: Any = None, tokenizer: Any = None, distractor_sampler: Any = None):
        import torch

        if not envs:
            raise InputError("no environments to train on")
        self.cfg = config
        self.envs = list(envs)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        if model is None or tokenizer is None:
            model, tokenizer = load_policy(config.model, device=self.device, threads=config.threads)
        else:
            model.to(self.device)
        self.model, self.tok = model, tokenizer
        self.session_factory = session_factory or default_session_factory(config)
        if distractor_sampler is None and config.distractors != "none" and config.distractor_k > 0:
            from astra.envs.distractors import DistractorSampler

            distractor_sampler = DistractorSampler(self.envs, mode=config.distractors, k=config.distractor_k,
                                                   seed=config.seed)
        self.distractors = distractor_sampler if config.distractors != "none" else None
        try:
            self.precision = resolve_precision(config.precision, self.device)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if config.gradient_checkpointing:
            if not getattr(model, "supports_gradient_checkpointing", False):
                raise ConfigError(f"--gradient-checkpointing: {type(model).__name__} does not support it")
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.engine_fallback: str | None = None  # why --rollout-engine vllm runs as hf here
        engine = str(config.rollout_engine)
        if engine == "vllm":
            engine = self._check_vllm()
        self.engine = RolloutEngine(model, tokenizer, max_new_tokens=config.max_new_tokens,
                                    temperature=config.temperature, top_p=config.top_p,
                                    max_total_tokens=config.max_total_tokens, max_batch=config.max_batch,
                                    max_turns=config.max_turns, engine=engine, autocast=self._autocast,
                                    generator=self._vllm_generator(tokenizer) if engine == "vllm" else None)
        self.vllm = self.engine.generator  # a VLLMGenerator with --rollout-engine vllm, else None
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.buffer = RolloutBuffer(eps=config.adv_eps, delta=config.std_threshold)
        self.step = 0
        self.rounds_done = 0  # rollout rounds over the whole run (seeds each round)
        self._order: list[int] = []
        self._cursor = 0
        self._epoch = 0
        self.logger: MetricsLogger | None = None
        self._step_stats = RolloutStats()
        self.journal = RolloutJournal(self.out) if config.journal else None
        self._replay: dict[int, list[Group]] = {}
        self._replayed = 0  # samples taken from the journal instead of rolled out (this step)

    def _autocast(self) -> Any:
        return autocast(self.device, self.precision)

    # -- the vllm engine -----------------------------------------------------------------
    def _check_vllm(self) -> str:
        """``vllm`` where it can run; else ``hf`` with ``--vllm-fallback hf`` (warned, recorded), or
        a ConfigError naming the reason, the install command and the other engine."""
        from astra.train import rl_vllm

        reason = rl_vllm.unavailable(self.device)
        if reason is None:
            return "vllm"
        if self.cfg.vllm_fallback == "hf":
            self.engine_fallback = reason
            log.warning("--rollout-engine vllm: %s; rolling out with the hf engine instead (--vllm-fallback hf)",
                        reason)
            return "hf"
        raise ConfigError(f"--rollout-engine vllm: {reason}; or train with --rollout-engine hf "
                          "(or --vllm-fallback hf)")

    def _vllm_generator(self, tokenizer: Any) -> Any:
        from astra.train.rl_vllm import VLLMGenerator, vllm_dtype

        cfg = self.cfg
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None) or 4096
        return VLLMGenerator(self.model, tokenizer, stop_ids=ChatCodec(tokenizer).stop_ids, eos_id=tokenizer.eos_token_id,
                             max_model_len=min(cfg.max_total_tokens, limit), temperature=cfg.temperature,
                             top_p=cfg.top_p, workdir=self.out / "vllm_model",
                             gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, sleep=cfg.vllm_sleep,
                             dtype=vllm_dtype(self.precision), seed=cfg.seed,
                             enforce_eager=cfg.vllm_enforce_eager)

    def sync_rollout_weights(self) -> float | None:
        """Load the policy's current weights into the vllm engine (None without one): after every
        update and after a checkpoint is loaded."""
        return self.vllm.sync_weights(self.model) if self.vllm is not None else None

    # -- environments --------------------------------------------------------------------
    def _next_envs(self, k: int) -> list[Any]:
        picked = []
        for _ in range(k):
            if self._cursor >= len(self._order):
                self._order = epoch_order(self.envs, seed=self.cfg.seed, epoch=self._epoch,
                                          curriculum=self.cfg.curriculum)
                self._epoch += 1
                self._cursor = 0
            picked.append(self.envs[self._order[self._cursor]])
            self._cursor += 1
        return picked

    # -- rollouts ------------------------------------------------------------------------
    def rollout_round(self) -> list[Group]:
        """Roll out ``groups_per_round`` groups of ``group_size`` sessions in one batch."""
        import torch

        cfg = self.cfg
        envs = self._next_envs(cfg.rounds_groups)
        round_id = self.rounds_done
        self.rounds_done += 1
        replay = self._replay.pop(round_id, None)
        if replay is not None:
            if [g.env_id for g in replay] == [_env_id(e) for e in envs]:
                self._replayed += sum(len(g.samples) for g in replay)
                return replay
            log.warning("the journal's round %d is not the round this run makes now (other environments or "
                        "settings): rolling out again", round_id)
            self._replay.clear()
        sessions, owners = [], []
        for gi, env in enumerate(envs):
            distractors = self.distractors.sample(env) if self.distractors is not None else None
            gid = f"r{round_id}-g{gi}"
            # one session seed per group: the G rollouts of a group see the same prompt (the
            # seed orders the tool list); their sampling differs
            seed = (cfg.seed * 1_000_003 + round_id * 1009 + gi * 31) % (2**31)
            for _ in range(cfg.group_size):
                sessions.append(self.session_factory(env, distractors, seed))
                owners.append((env, gid))
        torch.manual_seed((cfg.seed * 1_000_003 + round_id) % (2**31))
        before = RolloutStats()
        before.add(self.engine.stats)
        episodes = self.engine.run(sessions)
        delta = RolloutStats(
            gen_tokens=self.engine.stats.gen_tokens - before.gen_tokens,
            gen_seconds=self.engine.stats.gen_seconds - before.gen_seconds,
            tool_seconds=self.engine.stats.tool_seconds - before.tool_seconds,
            generate_calls=self.engine.stats.generate_calls - before.generate_calls,
            sequences=len(sessions))
        self._step_stats.add(delta)
        samples = [self._to_sample(e, env, gid) for e, (env, gid) in zip(episodes, owners, strict=True)]
        if self.cfg.old_logps == "rollout":
            self.score_old_logps(samples)
        groups: dict[str, Group] = {}
        for s in samples:
            groups.setdefault(s.group_id, Group(env_id=s.env_id, group_id=s.group_id, samples=[])).samples.append(s)
        out = list(groups.values())
        if self.journal is not None:
            self.journal.append_round(round_id, self.step, out)
        return out

    def _to_sample(self, e: Episode, env: Any, gid: str) -> Sample:
        r = e.session.reward()
        info = {
            "recall": float(getattr(r, "recall", 0.0)), "precision": float(getattr(r, "precision", 0.0)),
            "f1": float(getattr(r, "f1", 0.0)), "n_subtasks": int(getattr(r, "n_subtasks", 0)),
            "solved": len(getattr(r, "solved", []) or []), "tool_calls": int(getattr(e.session, "calls", 0)),
            "turns": e.turns, "end_reason": e.end_reason, "gen_tokens": e.gen_tokens,
            "parse_errors": e.parse_errors, "length": len(e.ids),
        }
        if e.error:
            info["error"] = e.error
        return Sample(env_id=_env_id(env), group_id=gid, input_ids=e.ids, loss_mask=e.mask,
                      reward=float(r.reward), policy_step=self.step, prompt_len=e.prompt_len, info=info,
                      messages=e.messages)

    def _collate(self, samples: Sequence[Sample]) -> dict[str, Any]:
        import torch

        width = max(len(s.input_ids) for s in samples)
        pad = self.engine.codec.pad_id
        ids = torch.full((len(samples), width), pad, dtype=torch.long)
        attn = torch.zeros((len(samples), width), dtype=torch.long)
        mask = torch.zeros((len(samples), width), dtype=torch.long)
        old = torch.zeros((len(samples), width), dtype=torch.float32)
        for r, s in enumerate(samples):
            n = len(s.input_ids)
            ids[r, :n] = torch.tensor(s.input_ids)
            attn[r, :n] = 1
            mask[r, :n] = torch.tensor(s.loss_mask)
            if s.old_logps:
                old[r, :n] = torch.tensor(s.old_logps, dtype=torch.float32)
        adv = torch.tensor([s.advantage for s in samples], dtype=torch.float32)
        d = self.device
        return {"input_ids": ids.to(d), "attention_mask": attn.to(d), "loss_mask": mask.to(d),
                "old_logps": old.to(d), "advantages": adv.to(d)}

    def score_old_logps(self, samples: Sequence[Sample]) -> None:
        """Log-probs of the sampled tokens under the current (rollout) policy, before any update."""
        import torch

        was_training = self.model.training
        self.model.eval()
        mb = max(1, self.cfg.micro_batch_size * 2)
        with torch.no_grad():
            for i in range(0, len(samples), mb):
                chunk = samples[i:i + mb]
                b = self._collate(chunk)
                with self._autocast():
                    lp = token_logprobs(self.model, b["input_ids"], b["attention_mask"], b["loss_mask"],
                                        self.cfg.temperature)
                for r, s in enumerate(chunk):
                    s.old_logps = lp[r, :len(s.input_ids)].float().cpu().tolist()
        if was_training:
            self.model.train()

    # -- update --------------------------------------------------------------------------
    def update(self, samples: Sequence[Sample]) -> dict[str, float]:
        """One pass over the batch: ``batch / mini_batch`` optimizer steps (1 when on-policy)."""
        import torch

        cfg = self.cfg
        self.model.train()
        mbs = cfg.mini_batch_size or len(samples)
        totals = {"loss": 0.0, "clip_fraction": 0.0, "ratio_mean": 0.0, "approx_kl": 0.0, "grad_norm": 0.0}
        n_updates, tokens, t0 = 0, 0, time.perf_counter()
        for start in range(0, len(samples), mbs):
            mini = samples[start:start + mbs]
            num_tokens = sum(s.n_policy_tokens for s in mini)
            if num_tokens == 0:
                continue
            self.optimizer.zero_grad(set_to_none=True)
            agg = {"loss": 0.0, "clip": 0.0, "ratio": 0.0, "kl": 0.0}
            for i in range(0, len(mini), cfg.micro_batch_size):
                micro = mini[i:i + cfg.micro_batch_size]
                b = self._collate(micro)
                with self._autocast():  # bf16 matmuls on CUDA; the weights and the loss stay fp32
                    new = token_logprobs(self.model, b["input_ids"], b["attention_mask"], b["loss_mask"],
                                         cfg.temperature)
                old = b["old_logps"]
                fresh = [r for r, s in enumerate(micro) if not s.old_logps]
                if fresh:  # on-policy, weights unchanged since the rollout: old = current (detached)
                    if start > 0:
                        raise RuntimeError("old log-probs missing after the first mini-batch update")
                    old = old.clone()
                    old[fresh] = new.detach()[fresh]
                    for r in fresh:
                        micro[r].old_logps = new[r, :len(micro[r].input_ids)].detach().float().cpu().tolist()
                loss, st = policy_loss(new, old, b["advantages"], b["loss_mask"],
                                       eps_low=cfg.clip_eps_low, eps_high=cfg.clip_eps_high, agg=cfg.loss_agg,
                                       num_tokens=num_tokens, num_seqs=len(mini))
                loss.backward()
                agg["loss"] += st.loss
                agg["clip"] += st.clip_fraction * st.tokens
                agg["ratio"] += st.ratio_mean * st.tokens
                agg["kl"] += st.approx_kl * st.tokens
            params = [p for p in self.model.parameters() if p.requires_grad]
            gn = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            self.optimizer.step()
            n_updates += 1
            tokens += num_tokens
            totals["loss"] += agg["loss"]
            totals["clip_fraction"] += agg["clip"] / num_tokens
            totals["ratio_mean"] += agg["ratio"] / num_tokens
            totals["approx_kl"] += agg["kl"] / num_tokens
            totals["grad_norm"] += float(gn)
        dt = time.perf_counter() - t0
        out = {k: v / max(1, n_updates) for k, v in totals.items()}
        out.update(optimizer_steps=n_updates, train_tokens=tokens,
                   train_tokens_per_s=sum(len(s.input_ids) for s in samples) / dt if dt > 0 else 0.0,
                   train_seconds=dt)
        return out

    # -- one step ------------------------------------------------------------------------
    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        self._step_stats = RolloutStats()
        self._replayed = 0
        fill: FillResult = fill_batch(self.buffer, cfg.batch_size, self.rollout_round,
                                      max_rounds=cfg.max_rollout_rounds, current_step=self.step,
                                      max_staleness=cfg.max_staleness)
        if cfg.old_logps == "lazy":
            # still the rollout policy: score what will be trained later (buffer) or in later mini-batches
            pending = [s for s in self.buffer.samples if not s.old_logps]
            single_update = (cfg.mini_batch_size or len(fill.samples)) >= len(fill.samples)
            if not single_update:
                pending += [s for s in fill.samples if not s.old_logps]
            if pending:
                self.score_old_logps(pending)
        if self.vllm is not None:
            self.vllm.sleep()  # --vllm-sleep: the update gets vLLM's KV cache memory (no-op otherwise)
        stats = self.update(fill.samples) if fill.samples else {}
        sync_s: float | None = None
        if self.vllm is not None:
            if stats.get("optimizer_steps"):
                sync_s = self.sync_rollout_weights()
            else:
                self.vllm.wake()  # the weights did not change
        self.step += 1
        fresh = [s for g in fill.groups for s in g.samples]
        m = _mean
        rewards = [s.reward for s in fresh]
        metrics: dict[str, Any] = {
            "reward_mean": m(rewards), "reward_std": _std(rewards),
            "recall": m([s.info["recall"] for s in fresh]), "precision": m([s.info["precision"] for s in fresh]),
            "f1": m([s.info["f1"] for s in fresh]), "turns": m([s.info["turns"] for s in fresh]),
            "tool_calls": m([s.info["tool_calls"] for s in fresh]),
            "solved_all": m([float(s.info["solved"] >= s.info["n_subtasks"] > 0) for s in fresh]),
            "response_tokens": m([s.info["gen_tokens"] for s in fresh]),
            "seq_length": m([s.info["length"] for s in fresh]),
            "batch_reward_mean": m([s.reward for s in fill.samples]),
            "batch_size": len(fill.samples), "underfilled": fill.underfilled,
            "from_buffer": fill.from_buffer, "groups": fill.groups_total,
            "filtered_groups": fill.groups_filtered, "filtered_group_share": fill.filtered_share,
            "buffer_size": len(self.buffer), "stale_dropped": fill.stale_dropped,
            "rollout_rounds": fill.rounds, "rollouts": len(fresh), "replayed_rollouts": self._replayed,
            "rollout_tokens": self._step_stats.gen_tokens,
            "rollout_tokens_per_s": self._step_stats.tokens_per_s,
            "rollout_seconds": self._step_stats.gen_seconds, "tool_seconds": self._step_stats.tool_seconds,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        if self.vllm is not None:
            metrics["weight_sync_seconds"] = sync_s or 0.0
            metrics["weight_syncs"] = self.vllm.syncs
        if self.engine_fallback is not None:
            metrics["rollout_engine_fallback"] = 1
        metrics.update(stats)
        metrics["step_seconds"] = time.perf_counter() - t0
        if cfg.log_samples and fresh:
            self._write_samples(fresh[: cfg.log_samples])
        return metrics

    def _write_samples(self, samples: Sequence[Sample]) -> None:
        with (self.out / "samples.jsonl").open("a", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps({"step": self.step, "env_id": s.env_id, "group": s.group_id,
                                    "reward": s.reward, "advantage": s.advantage, "info": s.info,
                                    "messages": s.messages}, ensure_ascii=False, default=str) + "\n")

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_dir(self, step: int) -> Path:
        return self.out / "checkpoints" / f"step-{step:06d}"

    def save_checkpoint(self) -> Path:
        import torch

        d = self.checkpoint_dir(self.step)
        tmp = d.with_name(d.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(tmp)
        self.tok.save_pretrained(tmp)
        state = {
            "step": self.step, "rounds_done": self.rounds_done, "order": self._order, "cursor": self._cursor,
            "epoch": self._epoch, "optimizer": self.optimizer.state_dict(), "buffer": self.buffer.state_dict(),
            "torch_rng": torch.get_rng_state(), "config": self.cfg.model_dump(mode="json"),
        }
        torch.save(state, tmp / STATE_FILE)
        if d.exists():
            shutil.rmtree(d)
        os.replace(tmp, d)
        ckpts = sorted((self.out / "checkpoints").glob("step-*[0-9]"))
        for old in ckpts[: max(0, len(ckpts) - max(1, self.cfg.keep_checkpoints))]:
            shutil.rmtree(old, ignore_errors=True)
        return d

    def latest_checkpoint(self) -> Path | None:
        ckpts = sorted(p for p in (self.out / "checkpoints").glob("step-*[0-9]") if (p / STATE_FILE).exists())
        return ckpts[-1] if ckpts else None

    def load_checkpoint(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file

        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            raise InputError(f"checkpoint {path} has no safetensors weights")
        sd: dict[str, Any] = {}
        for w in weights:
            sd.update(load_file(str(w), device=str(self.device)))
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        real_missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied embeddings
        if real_missing or unexpected:
            raise InputError(f"checkpoint {path} does not match the model: missing {real_missing[:3]}, "
                             f"unexpected {list(unexpected)[:3]}")
        state = torch.load(path / STATE_FILE, map_location=self.device, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.step, self.rounds_done = state["step"], state["rounds_done"]
        self._order, self._cursor, self._epoch = state["order"], state["cursor"], state["epoch"]
        torch.set_rng_state(state["torch_rng"])
        self.sync_rollout_weights()
        log.info("resumed from %s (step %d)", path, self.step)

    # -- run -----------------------------------------------------------------------------
    def train(self, *, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        cfg = self.cfg
        resumed_from = None
        journal: dict[str, int] = {}
        if cfg.resume:
            ck = self.latest_checkpoint()
            if ck is not None:
                self.load_checkpoint(ck)
                resumed_from = str(ck)
            if self.journal is not None:  # no checkpoint: the rounds of step 0 (the initial weights) replay
                rep = self.journal.load_replay(rounds_done=self.rounds_done, policy_step=self.step)
                self._replay = rep.rounds
                journal = {"replayable": rep.replayable_samples, "discarded": rep.discarded_samples}
                if rep.replayable_samples:
                    log.info("journal: %d rollouts of %d rounds made after the checkpoint are reused",
                             rep.replayable_samples, len(rep.rounds))
                if rep.discarded_samples:
                    log.warning("journal: %d rollouts were made by weights no checkpoint holds (steps after "
                                "%d) and are not reused; --save-every 1 keeps every rollout", rep.discarded_samples,
                                self.step + 1)
        elif self.journal is not None:
            self.journal.reset()
        (self.out / "rl_config.json").write_text(cfg.model_dump_json(indent=2), "utf-8")
        self.logger = MetricsLogger(self.out, primary="reward_mean", plot_every=cfg.plot_every,
                                    tensorboard=cfg.tensorboard,
                                    wandb_project=cfg.wandb_project, config=cfg.model_dump(mode="json"),
                                    title=f"RL ({cfg.reward} reward, distractors {cfg.distractors})")
        history: list[dict[str, Any]] = []
        t0 = time.time()
        try:
            while self.step < cfg.max_steps:
                metrics = self.train_step()
                self.logger.log(self.step, metrics)
                history.append({"step": self.step, **metrics})
                if on_step is not None:
                    on_step(self.step, metrics)
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                    self.save_checkpoint()
        finally:
            self.logger.close()
        self.save_checkpoint()
        self.model.save_pretrained(self.out)
        self.tok.save_pretrained(self.out)
        rewards = [h["reward_mean"] for h in history if h.get("reward_mean") is not None]
        k = max(1, len(rewards) // 4)
        summary = {
            "steps": self.step, "resumed_from": resumed_from, "seconds": round(time.time() - t0, 1),
            "reward_first": rewards[0] if rewards else None, "reward_last": rewards[-1] if rewards else None,
            "reward_first_quarter_mean": _mean(rewards[:k]), "reward_last_quarter_mean": _mean(rewards[-k:]),
            "metrics": str(self.out / "metrics.jsonl"), "curves": str(self.out / "curves.png"),
            "model_dir": str(self.out), "journal": journal,
            "rollout_engine": self.engine.kind, "rollout_engine_requested": str(cfg.rollout_engine),
        }
        if self.engine_fallback is not None:
            summary["rollout_engine_fallback"] = self.engine_fallback
        if self.vllm is not None:
            summary["weight_syncs"] = self.vllm.syncs
            summary["weight_sync_seconds"] = round(self.vllm.sync_seconds, 3)
        (self.out / "rl_summary.json").write_text(json.dumps(summary, indent=2), "utf-8")
        return summary


def _mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _std(xs: Sequence[float]) -> float | None:
    if not xs:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def load_envs(path: Path | str) -> list[Any]:
    from astra.envs.bundle import load_environments

    p = Path(path)
    if not p.exists():
        raise InputError(f"environments not found: {p}")
    envs = load_environments(p)
    if not envs:
        raise InputError(f"no environments in {p}")
    return envs


def train_rl(config: RLConfig, *, envs: Sequence[Any] | None = None, session_factory: SessionFactory | None = None,
             model: Any = None, tokenizer: Any = None, distractor_sampler: Any = None,
             on_step: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run RL from a config; returns the summary (also written to ``<output_dir>/rl_summary.json``)."""
    if envs is None:
        if config.envs is None:
            raise ConfigError("RLConfig.envs (an environments directory) is required")
        envs = load_envs(config.envs)
    trainer = RLTrainer(config, envs, session_factory=session_factory, model=model, tokenizer=tokenizer,
                        distractor_sampler=distractor_sampler)
    return trainer.train(on_step=on_step)
