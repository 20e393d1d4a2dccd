"""The tool-call transition graph of one server.

Nodes are the server's tools; an edge f_i -> f_j carries

- ``weight``: the sum over its sources -- each LLM-proposed chain in which f_i is directly
  followed by f_j adds 1 (``llm_count``), and a data-flow match adds its best binding
  score in (0, 1] times ``dataflow_weight`` (``dataflow_score``);
- ``provenance``: the sources that found it (``dataflow``, ``llm``);
- ``bindings``: which output fields of f_i fill which required inputs of f_j
  (``{from_field, to_param, score, how}``), from the data-flow analysis.

Tools are never chained across servers: a graph holds one server's tools only.
:class:`ToolGraph` is the persisted record (one JSONL line per server);
:func:`to_networkx` / :func:`from_networkx` convert to and from ``networkx.DiGraph``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from astra.errors import InputError
from astra.graph.dataflow import EDGE_THRESHOLD, dataflow_edges, is_opaque
from astra.types import Record, ToolServer

DATAFLOW = "dataflow"
LLM = "llm"
SOURCES = (DATAFLOW, LLM)


class Binding(BaseModel):
    """An output field of the edge's source tool that fills a parameter of its target."""

    model_config = ConfigDict(extra="forbid")

    from_field: str
    to_param: str
    score: float
    how: str = ""


class GraphEdge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    weight: float
    provenance: list[str] = Field(default_factory=list)
    bindings: list[Binding] = Field(default_factory=list)
    llm_count: int = 0
    dataflow_score: float = 0.0


class ToolGraph(Record):
    """The transition graph of one server's tools, with its statistics."""

    server: str
    nodes: list[str]
    edges: list[GraphEdge] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    #: Tools that can start a chain: no required input is an opaque identifier that only
    #: an earlier call could produce. None when unknown (every node may start).
    entry_nodes: list[str] | None = None
    #: What the LLM proposals did: requested/ok/failed samples, chains, dropped names.
    proposals: dict[str, Any] = Field(default_factory=dict)

    def record_key(self) -> str:
        return self.server

    def edge(self, source: str, target: str) -> GraphEdge:
        for e in self.edges:
            if e.source == source and e.target == target:
                return e
        raise KeyError(f"graph {self.server!r} has no edge {source} -> {target}")


# ---------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------


def transition_counts(chains: Iterable[list[str]]) -> Counter[tuple[str, str]]:
    """How often each tool directly follows another over a multiset of chains
    (self-transitions are ignored)."""
    counts: Counter[tuple[str, str]] = Counter()
    for chain in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            if a != b:
                counts[(a, b)] += 1
    return counts


def build_graph(server: ToolServer, *, sources: Iterable[str] = (DATAFLOW,),
                proposed_chains: Iterable[list[str]] = (), dataflow_weight: float = 1.0,
                threshold: float = EDGE_THRESHOLD, proposals: dict[str, Any] | None = None) -> ToolGraph:
    """Merge the data-flow edges of ``server`` (when ``dataflow`` is in ``sources``) with
    the transitions of ``proposed_chains`` (when ``llm`` is; names must already be
    validated against the server) into one :class:`ToolGraph`."""
    sources = list(sources)
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown graph source(s) {sorted(unknown)}; use {', '.join(SOURCES)}")
    names = [t.name for t in server.tools]
    known = set(names)
    edges: dict[tuple[str, str], GraphEdge] = {}
    if DATAFLOW in sources:
        for de in dataflow_edges(server, threshold=threshold):
            edges[(de.source, de.target)] = GraphEdge(
                source=de.source, target=de.target, weight=0.0, provenance=[DATAFLOW],
                bindings=[Binding(**b) for b in de.bindings], dataflow_score=de.score)
    if LLM in sources:
        for (a, b), n in transition_counts(proposed_chains).items():
            if a not in known or b not in known:
                raise ValueError(f"proposed chain uses a tool {a if a not in known else b!r} "
                                 f"that server {server.name!r} does not have")
            e = edges.get((a, b))
            if e is None:
                e = edges[(a, b)] = GraphEdge(source=a, target=b, weight=0.0)
            e.llm_count += n
            if LLM not in e.provenance:
                e.provenance.append(LLM)
    for e in edges.values():
        e.weight = round(e.llm_count + dataflow_weight * e.dataflow_score, 6)
        e.provenance.sort()
    ordered = sorted(edges.values(), key=lambda e: (names.index(e.source), names.index(e.target)))
    g = ToolGraph(server=server.name, nodes=names, edges=ordered, proposals=proposals or {},
                  entry_nodes=entry_tools(server))
    g.stats = graph_stats(g, sources=sources)
    return g


def entry_tools(server: ToolServer) -> list[str]:
    """The tools of ``server`` whose required inputs a user can give (no opaque identifier)."""
    names = [t.name for t in server.tools]
    return [t.name for t in server.tools
            if not any(is_opaque(p, t.param_schema(p), names)
                       for p in t.required)]


def graph_stats(g: ToolGraph, *, sources: Iterable[str] | None = None) -> dict[str, Any]:
    """nodes, edges, density, weakly connected components, isolated nodes, edges by
    provenance (``dataflow``, ``llm``, ``both``), sources used."""
    G = to_networkx(g)
    by: Counter[str] = Counter()
    for e in g.edges:
        prov = set(e.provenance)
        by["both" if prov >= {DATAFLOW, LLM} else next(iter(prov), "none")] += 1
    n = G.number_of_nodes()
    return {
        "nodes": n,
        "edges": G.number_of_edges(),
        "density": round(nx.density(G), 4) if n > 1 else 0.0,
        "weakly_connected_components": nx.number_weakly_connected_components(G) if n else 0,
        "isolated_nodes": sum(1 for v in G.nodes if G.degree(v) == 0),
        "entry_nodes": len(g.entry_nodes) if g.entry_nodes is not None else n,
        "edges_by_provenance": {k: by.get(k, 0) for k in (DATAFLOW, LLM, "both")},
        "sources": list(sources) if sources is not None else g.stats.get("sources", []),
    }


# ---------------------------------------------------------------------------------
# networkx and files
# ---------------------------------------------------------------------------------


def to_networkx(g: ToolGraph) -> nx.DiGraph:
    """A ``DiGraph`` (graph attr ``server``; node attr ``entry`` (can start a chain); edge
    attrs ``weight``, ``provenance`` (set), ``bindings`` (list of dicts), ``llm_count``,
    ``dataflow_score``)."""
    G = nx.DiGraph(server=g.server)
    entry = set(g.nodes if g.entry_nodes is None else g.entry_nodes)
    G.add_nodes_from((v, {"entry": v in entry}) for v in g.nodes)
    for e in g.edges:
        G.add_edge(e.source, e.target, weight=e.weight, provenance=set(e.provenance),
                   bindings=[b.model_dump() for b in e.bindings], llm_count=e.llm_count,
                   dataflow_score=e.dataflow_score)
    return G


def from_networkx(G: nx.DiGraph, *, server: str | None = None, proposals: dict[str, Any] | None = None) -> ToolGraph:
    """The inverse of :func:`to_networkx` (stats recomputed)."""
    name = server or G.graph.get("server")
    if not name:
        raise ValueError("the graph has no 'server' attribute; pass server=")
    edges = [GraphEdge(source=a, target=b, weight=float(d.get("weight", 1.0)),
                       provenance=sorted(d.get("provenance") or []),
                       bindings=[Binding(**x) for x in d.get("bindings") or []],
                       llm_count=int(d.get("llm_count", 0)), dataflow_score=float(d.get("dataflow_score", 0.0)))
             for a, b, d in G.edges(data=True)]
    entry = [v for v, d in G.nodes(data=True) if d.get("entry", True)]
    g = ToolGraph(server=name, nodes=list(G.nodes), edges=edges, proposals=proposals or {}, entry_nodes=entry)
    g.stats = graph_stats(g, sources=sorted({p for e in edges for p in e.provenance}))
    return g


GRAPHS_FILE = "graphs.jsonl"


def graphs_path(path: str | Path) -> Path:
    """``graphs/`` -> ``graphs/graphs.jsonl``; a file path is returned as is."""
    p = Path(path)
    return p / GRAPHS_FILE if p.is_dir() or (not p.suffix and not p.exists()) else p


def load_graphs(path: str | Path) -> dict[str, ToolGraph]:
    """The graphs written by ``astra graph build`` (a directory or its ``graphs.jsonl``),
    by server name. Reads only records the stage ledger accounts for."""
    from astra.pipeline import read_outputs

    p = graphs_path(path)
    if not p.exists():
        raise InputError("graph file not found (run `astra graph build` first)", path=str(p))
    return {g.server: g for g in read_outputs(p, ToolGraph)}


def load_networkx(path: str | Path) -> dict[str, nx.DiGraph]:
    """Like :func:`load_graphs`, as ``networkx.DiGraph`` objects."""
    return {name: to_networkx(g) for name, g in load_graphs(path).items()}
