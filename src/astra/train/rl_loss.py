"""Per-token log-probs and the clipped policy-gradient loss of the ASTRA method §3.2 (DAPO-style GRPO).

* Only policy-generated tokens carry loss: ``loss_mask`` is 1 on them and 0 on prompt,
  system, user and tool-response tokens (and on padding).
* The ratio ``r = exp(logp_new - logp_old)`` is clipped to ``[1 - eps_low, 1 + eps_high]``
  (DAPO's decoupled "clip-higher", defaults 0.2 / 0.28).
* The loss has **no KL term and no entropy bonus**; nothing here computes either for the
  gradient (``approx_kl`` in the stats is a detached diagnostic).
* **Token-level aggregation**: the per-token losses are summed over every policy token of
  the (mini-)batch and divided by their total count, so a long trajectory weighs more
  than a short one (``"token-mean"``). ``"seq-mean-token-mean"`` (GRPO's original
  per-sequence mean, then mean over sequences) exists for comparison and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from astra.train.rl_config import LossAgg


def _hidden_and_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder, lm_head) for the efficient path, or None when the model needs full logits."""
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "final_logit_softcapping", None):
        return None
    try:
        decoder = model.get_decoder()
        head = model.get_output_embeddings()
    except Exception:
        return None
    if decoder is None or head is None or decoder is model:
        return None
    return decoder, head


def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   loss_mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-prob of each masked token given its prefix, ``[B, L]``, zero where ``loss_mask`` is 0.

    Token ``t`` is scored from the logits at position ``t - 1``. Only the rows of the LM
    head needed for masked tokens are computed (the vocabulary projection of prompt and tool
    tokens is skipped), which saves most of the memory of a full ``[B, L, V]`` logits tensor.
    Logits are divided by ``temperature`` so the log-probs are those of the sampling
    distribution.
    """
    tgt = loss_mask[:, 1:].bool()
    targets = input_ids[:, 1:][tgt]
    parts = _hidden_and_head(model)
    if parts is not None:
        decoder, head = parts
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        logits = head(hidden[:, :-1][tgt])
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1][tgt]
    logits = logits.float()
    if temperature and temperature != 1.0:
        logits = logits / temperature
    lp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(tgt.shape, dtype=lp.dtype, device=lp.device).masked_scatter(tgt, lp)
    return torch.nn.functional.pad(out, (1, 0))


@dataclass
class LossStats:
    loss: float
    clip_fraction: float
    ratio_mean: float
    approx_kl: float
    tokens: int


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: LossAgg = "token-mean",
              num_tokens: float | None = None, num_seqs: float | None = None) -> torch.Tensor:
    """Reduce a ``[B, L]`` per-token loss.

    ``token-mean``: sum over all masked tokens / ``num_tokens`` (default: the masked tokens
    here; pass the whole mini-batch's count when accumulating over micro-batches).
    ``seq-mean-token-mean``: mean over each sequence's tokens, summed / ``num_seqs``.
    """
    mask = mask.to(per_token.dtype)
    if mode == "token-mean":
        denom = float(num_tokens) if num_tokens is not None else mask.sum().clamp(min=1.0)
        return (per_token * mask).sum() / denom
    if mode == "seq-mean-token-mean":
        per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        denom = float(num_seqs) if num_seqs is not None else per_seq.shape[0]
        return per_seq.sum() / denom
    raise ValueError(f"unknown loss aggregation {mode!r}")


def policy_loss(new_logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, *, eps_low: float = 0.2, eps_high: float = 0.28,
                agg: LossAgg = "token-mean", num_tokens: float | None = None,
                num_seqs: float | None = None) -> tuple[torch.Tensor, LossStats]:
    """Clipped surrogate loss (PPO/GRPO) with decoupled clip range; no KL, no entropy.

    ``advantages`` is ``[B]`` (one trajectory-level advantage, broadcast to every token) or
    ``[B, L]``. Returns the loss (to ``backward``) and detached statistics.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(new_logps)
    mask_f = mask.to(new_logps.dtype)
    log_ratio = (new_logps - old_logps) * mask_f
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = aggregate(per_token, mask, agg, num_tokens=num_tokens, num_seqs=num_seqs)
    with torch.no_grad():
        m = mask.bool()
        n = int(m.sum())
        if n:
            clip_frac = float((clipped > unclipped)[m].float().mean())
            ratio_mean = float(ratio[m].mean())
            approx_kl = float((0.5 * log_ratio[m] ** 2).mean())
        else:
            clip_frac = ratio_mean = approx_kl = 0.0
    return loss, LossStats(loss=float(loss.detach()), clip_fraction=clip_frac, ratio_mean=ratio_mean,
                           approx_kl=approx_kl, tokens=n)
