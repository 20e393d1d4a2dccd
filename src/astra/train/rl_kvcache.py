"""Multi-turn generation with one batched KV cache kept across the turns of a rollout.

HF ``generate`` starts from nothing at every call: each turn of a multi-turn rollout
prefills the whole conversation again (system prompt, tool list, every earlier turn and
tool result). :class:`KVCacheBatch` keeps the key/value cache of every live episode
between turns instead, so a turn only runs the model on what is new: the tool results and
the next assistant header (plus the last token of the previous reply). The prompts are
prefilled once, and **a prefix shared by the prompts is prefilled once**: the longest
common prefix of the distinct prompts (the system prompt; within a group, G sessions of
one environment have the same prompt) runs at batch 1 and is copied into every row, then
each *distinct* prompt's remainder runs once and is copied to the rows that share it.

Layout: one row per episode, every row as wide as the widest. Chunks fed to the model are
left-padded within the chunk, so rows of different lengths leave *holes* (masked columns)
in the middle of a row. A 2-D attention mask marks the holes and ``position_ids`` count
only real tokens, so every token sees exactly the tokens of its own conversation at their
own positions: the result is the one an unpadded run gives (up to float rounding).

Invariant: the cache of a row holds a prefix of that episode's token ids; a turn feeds
``ids[fed:]`` first. Rows of finished episodes are dropped from the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    if not seqs:
        return 0
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


class KVCacheBatch:
    """The KV cache of a fixed set of episodes (rows), kept across their turns."""

    def __init__(self, model: Any, *, pad_id: int, stop_ids: Sequence[int],
                 sample: Callable[[Any], Any], autocast: Callable[[], Any] | None = None):
        self.model = model
        self.pad_id = int(pad_id)
        self.stop_ids = set(int(i) for i in stop_ids)
        self.sample = sample
        self.autocast = autocast
        self.cache: Any = None
        self.mask: Any = None  # [rows, columns] 1 = real token, 0 = hole
        self.rows: list[int] = []  # the episode keys of the cache's rows, in order
        self.fed: dict[int, int] = {}  # episode key -> tokens of its ids in the cache
        self.stats = {"prefill_tokens": 0, "shared_prefix_tokens": 0, "forward_calls": 0, "seconds": 0.0}

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    # -- the model -----------------------------------------------------------------------
    def _forward(self, chunk: list[list[int]]) -> Any:
        """Feed one chunk per cache row (left-padded within the chunk); return the logits of
        each row's last chunk position ``[rows, V]`` (the next-token distribution)."""
        import contextlib

        import torch

        width = max(len(c) for c in chunk)
        n = len(chunk)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        cmask = torch.zeros((n, width), dtype=torch.long)
        for r, c in enumerate(chunk):
            if c:
                ids[r, width - len(c):] = torch.tensor(c, dtype=torch.long)
                cmask[r, width - len(c):] = 1
        dev = self.device
        ids, cmask = ids.to(dev), cmask.to(dev)
        past = self.mask.sum(-1, keepdim=True) if self.mask is not None else torch.zeros((n, 1), dtype=torch.long,
                                                                                           device=dev)
        pos = (past + cmask.cumsum(-1) - 1).clamp(min=0)
        full = cmask if self.mask is None else torch.cat([self.mask, cmask], dim=-1)
        if self.cache is None:
            from transformers import DynamicCache

            self.cache = DynamicCache()
        ctx = self.autocast() if self.autocast is not None else contextlib.nullcontext()
        t0 = time.perf_counter()
        with ctx:
            # the DynamicCache is updated in place (``cache=`` is transformers 5's name of ``past_key_values``)
            out = self.model(input_ids=ids, attention_mask=full, position_ids=pos, cache=self.cache,
                             use_cache=True, logits_to_keep=1)
        self.stats["seconds"] += time.perf_counter() - t0
        self.stats["forward_calls"] += 1
        self.mask = full
        return out.logits[:, -1, :].float()

    def _select(self, index: list[int]) -> None:
        """Keep (or repeat) cache rows: row ``i`` of the result is row ``index[i]`` now."""
        import torch

        idx = torch.tensor(index, dtype=torch.long, device=self.device)
        if self.cache is not None:
            self.cache.reorder_cache(idx)
        if self.mask is not None:
            self.mask = self.mask.index_select(0, idx)

    # -- rows ----------------------------------------------------------------------------
    def drop(self, keys: Sequence[int]) -> None:
        """Remove the rows of finished episodes."""
        gone = set(keys)
        keep = [i for i, k in enumerate(self.rows) if k not in gone]
        if len(keep) == len(self.rows):
            return
        self._select(keep)
        self.rows = [self.rows[i] for i in keep]
        for k in gone:
            self.fed.pop(k, None)

    def _prefill(self, keys: Sequence[int], seqs: Sequence[Sequence[int]]) -> Any:
        """Start the cache from the prompts; returns the next-token logits of every row."""
        distinct: list[tuple[int, ...]] = list(dict.fromkeys(tuple(s) for s in seqs))
        # a shared prefix, leaving every distinct prompt at least one token of its own
        common = min(_common_prefix(distinct), min(len(s) for s in distinct) - 1)
        if common > 0 and len(seqs) > 1:
            self.rows = [-1]
            self._forward([list(distinct[0][:common])])
            self.stats["shared_prefix_tokens"] += common
            self.stats["prefill_tokens"] += common
            self._select([0] * len(distinct))
        else:
            common = 0
        logits = self._forward([list(d[common:]) for d in distinct])
        self.stats["prefill_tokens"] += sum(len(d) - common for d in distinct)
        where = {d: i for i, d in enumerate(distinct)}
        index = [where[tuple(s)] for s in seqs]
        self._select(index)
        self.rows = list(keys)
        for k, s in zip(keys, seqs, strict=True):
            self.fed[k] = len(s)
        return logits.index_select(0, self._tensor(index))

    def _tensor(self, index: list[int]) -> Any:
        import torch

        return torch.tensor(index, dtype=torch.long, device=self.device)

    # -- one turn ------------------------------------------------------------------------
    def generate(self, keys: Sequence[int], seqs: Sequence[Sequence[int]],
                 budgets: Sequence[int]) -> list[tuple[list[int], bool]]:
        """Continue each episode ``keys[i]`` (token ids ``seqs[i]``) by up to ``budgets[i]``
        tokens; returns (new ids up to and including a stop id, stopped) per episode.

        ``keys`` must be exactly the rows in the cache (drop finished ones first)."""
        import torch

        with torch.inference_mode():
            if self.cache is None:
                logits = self._prefill(keys, seqs)
            else:
                if list(keys) != self.rows:
                    raise RuntimeError("KV cache rows and live episodes differ (drop finished episodes first)")
                chunk = []
                for k, s in zip(keys, seqs, strict=True):
                    fed = self.fed[k]
                    if fed >= len(s):
                        raise RuntimeError("an episode has no new tokens to feed since its last turn")
                    chunk.append(list(s[fed:]))
                    self.fed[k] = len(s)
                self.stats["prefill_tokens"] += sum(len(c) for c in chunk)
                logits = self._forward(chunk)
            n = len(keys)
            out: list[list[int]] = [[] for _ in range(n)]
            live = [b > 0 for b in budgets]
            stopped = [False] * n
            while True:
                tok = self.sample(logits).tolist()
                feed: list[list[int]] = []
                for r in range(n):
                    if not live[r]:
                        feed.append([])
                        continue
                    t = int(tok[r])
                    out[r].append(t)
                    if t in self.stop_ids:
                        live[r], stopped[r] = False, True
                    elif len(out[r]) >= budgets[r]:
                        live[r] = False
                    feed.append([t] if live[r] else [])
                if not any(live):
                    break
                for r in range(n):
                    if feed[r]:
                        self.fed[keys[r]] += 1
                logits = self._forward(feed)
        return [(o, s) for o, s in zip(out, stopped, strict=True)]


def make_sampler(temperature: float, top_p: float) -> Callable[[Any], Any]:
    """Next-token choice from ``[rows, V]`` logits: greedy for temperature 0, else sampling
    from ``softmax(logits / temperature)`` restricted to the top-p nucleus."""
    import torch

    def sample(logits: Any) -> Any:
        if temperature <= 0:
            return logits.argmax(-1)
        scores = logits / temperature
        if top_p < 1.0:
            sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
            cum = torch.softmax(sorted_scores, dim=-1).cumsum(-1)
            remove = cum - torch.softmax(sorted_scores, dim=-1) > top_p  # keep the token that crosses top_p
            sorted_scores = sorted_scores.masked_fill(remove, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
        return torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(-1)

    return sample
