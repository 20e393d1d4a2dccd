"""Candidate chains by seeded, weight-biased random walks.

Each of ``walks`` attempts picks a start tool with probability proportional to its
out-degree (by default among the *entry* tools -- node attribute ``entry`` -- that need no
identifier from an earlier call, since a chain starting elsewhere cannot pass the argument
check; ``start="any"`` draws from every tool, as the reference does), a target length uniformly in ``[min_len, max_len]``, and then repeatedly steps
to a successor chosen with probability proportional to the edge weight, until the target
length is reached or no successor is allowed (by default a walk never revisits a tool:
simple paths; ``allow_cycles`` lifts that). Walks shorter than ``min_len`` are discarded;
the rest are deduplicated and, with ``max_chains``, the most frequently walked are kept.
Not an exhaustive enumeration. The same graph, seed and settings give the same chains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from astra.types import Chain


@dataclass
class Walk:
    tools: tuple[str, ...]
    hits: int  # attempts that produced this chain
    weight: float  # mean edge weight along the chain


@dataclass
class WalkResult:
    walks: list[Walk] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _rng(seed: int | str, server: str) -> random.Random:
    # str seeds are hashed with SHA-512 by random.seed: stable across runs and processes
    return random.Random(f"{seed}:{server}")


def random_walks(G: nx.DiGraph, *, walks: int = 200, min_len: int = 2, max_len: int = 5,
                 seed: int | str = 0, allow_cycles: bool = False, max_chains: int | None = None,
                 start: str = "entry") -> WalkResult:
    """Weight-biased random walks over ``G`` (edge attribute ``weight``, default 1).
    ``start``: ``entry`` (nodes whose ``entry`` attribute is true or absent) or ``any``."""
    if min_len < 2:
        raise ValueError(f"min_len must be >= 2 (single-tool tasks come from task generation), got {min_len}")
    if max_len < min_len:
        raise ValueError(f"max_len ({max_len}) must be >= min_len ({min_len})")
    if walks < 0:
        raise ValueError(f"walks must be >= 0, got {walks}")
    if start not in ("entry", "any"):
        raise ValueError(f"start must be 'entry' or 'any', got {start!r}")
    rng = _rng(seed, str(G.graph.get("server", "")))
    starts = [v for v, d in G.nodes(data=True)
              if G.out_degree(v) > 0 and (start == "any" or d.get("entry", True))]
    start_w = [G.out_degree(v) for v in starts]
    found: dict[tuple[str, ...], int] = {}
    short = 0
    if starts:
        for _ in range(walks):
            target = rng.randint(min_len, max_len)
            path = [rng.choices(starts, weights=start_w)[0]]
            while len(path) < target:
                cur = path[-1]
                nxt = [v for v in G.successors(cur) if v != cur and (allow_cycles or v not in path)]
                weights = [max(float(G[cur][v].get("weight", 1.0)), 0.0) for v in nxt]
                if not nxt or sum(weights) <= 0:
                    break
                path.append(rng.choices(nxt, weights=weights)[0])
            if len(path) < min_len:
                short += 1
                continue
            key = tuple(path)
            found[key] = found.get(key, 0) + 1
    order = {k: i for i, k in enumerate(found)}
    ranked = sorted(found, key=lambda k: (-found[k], order[k]))
    capped = ranked if max_chains is None else ranked[:max_chains]
    out = []
    for k in capped:
        ws = [float(G[a][b].get("weight", 1.0)) for a, b in zip(k, k[1:], strict=False)]
        out.append(Walk(tools=k, hits=found[k], weight=round(sum(ws) / len(ws), 4)))
    stats = {"attempts": walks if starts else 0, "start_nodes": len(starts), "too_short": short, "distinct": len(found),
             "kept": len(out), "capped": len(found) - len(out)}
    return WalkResult(walks=out, stats=stats)


def walk_chains(server: str, result: WalkResult) -> list[Chain]:
    """The walks as :class:`~astra.types.Chain` records (``source="walk"``; ``weight`` =
    share of attempts that produced the chain)."""
    attempts = max(result.stats.get("attempts", 0), 1)
    return [Chain(server=server, tools=list(w.tools), source="walk", weight=round(w.hits / attempts, 6))
            for w in result.walks]
