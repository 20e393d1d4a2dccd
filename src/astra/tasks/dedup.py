"""Selecting the scored tasks to keep: thresholds, then near-duplicate removal.

Near duplicates: two tasks are near duplicates when the **character 5-shingle Jaccard
similarity** of their normalized queries (lower-case, accents folded, punctuation removed,
whitespace collapsed) is >= the threshold (default **0.9**: identical up to punctuation,
case or a word or two in a typical request). Tasks are visited in a fixed order --
originals before variants, then by descending total score, then by id -- and a task is
dropped (``near_duplicate``) when it is that similar to one already kept; so the kept set
is a function of the set of scored tasks alone, not of file order or concurrency, and a
rerun yields the same set.

Candidate pairs come from prefix filtering (the AllPairs method): with shingles ordered by
global rarity, two sets with Jaccard >= t must share one of the first
``|x| - ceil(t*|x|) + 1`` shingles of each, so only tasks sharing such a shingle are
compared, exactly -- no approximation, and far fewer than all pairs.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from astra.tasks.score import SCORE_KEYS, Thresholds
from astra.tasks.text import jaccard, shingles
from astra.types import Rejection, Task

DEFAULT_DEDUP_THRESHOLD = 0.9
SHINGLE_K = 5


def _total(task: Task) -> float:
    return float(sum(v for k, v in task.scores.items() if k in SCORE_KEYS and isinstance(v, int | float)))


def rank_key(task: Task) -> tuple[Any, ...]:
    return (task.augmentation is not None, -_total(task), task.id)


def near_duplicates(tasks: list[Task], threshold: float = DEFAULT_DEDUP_THRESHOLD, k: int = SHINGLE_K
                    ) -> dict[str, tuple[str, float]]:
    """``{dropped id: (id of the kept task it duplicates, similarity)}``."""
    if not 0 < threshold <= 1:
        raise ValueError(f"the near-duplicate threshold must be in (0, 1], got {threshold}")
    ordered = sorted(tasks, key=rank_key)
    sets = {t.id: shingles(t.query, k) for t in ordered}
    freq: Counter[str] = Counter()
    for s in sets.values():
        freq.update(s)
    index: dict[str, list[str]] = {}
    kept_sets: dict[str, frozenset[str]] = {}
    dropped: dict[str, tuple[str, float]] = {}
    for t in ordered:
        s = sets[t.id]
        toks = sorted(s, key=lambda x: (freq[x], x))
        plen = len(toks) - math.ceil(threshold * len(toks)) + 1 if toks else 0
        prefix = toks[:plen]
        best: tuple[str, float] | None = None
        seen: set[str] = set()
        for tok in prefix:
            for cid in index.get(tok, ()):
                if cid in seen:
                    continue
                seen.add(cid)
                cs = kept_sets[cid]
                if not (threshold * len(s) <= len(cs) and threshold * len(cs) <= len(s)):
                    continue
                sim = jaccard(s, cs)
                if sim >= threshold and (best is None or sim > best[1]):
                    best = (cid, sim)
        if not toks:  # an empty query duplicates an earlier empty one
            empty = next((cid for cid, cs in kept_sets.items() if not cs), None)
            best = (empty, 1.0) if empty else None
        if best is not None:
            dropped[t.id] = best
            continue
        kept_sets[t.id] = s
        for tok in prefix:
            index.setdefault(tok, []).append(t.id)
    return dropped


def select_tasks(tasks: list[Task], thresholds: Thresholds, dedup_threshold: float | None = DEFAULT_DEDUP_THRESHOLD
                 ) -> dict[str, Rejection | None]:
    """For every task, ``None`` (kept) or why not: the first failing gate
    (``Task.scores["gates"]``, :mod:`astra.tasks.gates`), the first failing score
    (``low_quality``, ``low_realism``, ``low_necessity``, ``low_difficulty``,
    ``low_uniqueness``; the detail lists every failing aspect), or ``near_duplicate``
    among the tasks that pass the thresholds (``dedup_threshold=None`` turns it off)."""
    decisions: dict[str, Rejection | None] = {}
    passing = []
    for t in tasks:
        gates = t.scores.get("gates") if isinstance(t.scores, dict) else None
        if gates:
            detail = "; ".join(f"{g['reason']}: {g['detail']}" for g in gates)
            decisions[t.id] = Rejection(key=t.id, reason=str(gates[0]["reason"]), detail=detail[:500])
            continue
        fails = thresholds.failures(t.scores)
        if fails:
            detail = "; ".join(f"{k} {v} < {m}" for k, v, m in fails)
            decisions[t.id] = Rejection(key=t.id, reason=f"low_{fails[0][0]}", detail=detail)
        else:
            passing.append(t)
    dups = near_duplicates(passing, dedup_threshold) if dedup_threshold else {}
    for t in passing:
        if t.id in dups:
            other, sim = dups[t.id]
            decisions[t.id] = Rejection(key=t.id, reason="near_duplicate",
                                        detail=f"{sim:.2f} similar to {other}")
        else:
            decisions[t.id] = None
    return decisions


__all__ = ["DEFAULT_DEDUP_THRESHOLD", "near_duplicates", "rank_key", "select_tasks"]
