"""Tool-call graphs per server, candidate chains and chain verification.

- :mod:`astra.graph.dataflow` -- data-flow edges from schemas, no LLM;
- :mod:`astra.graph.propose` -- LLM-proposed (task, chain) pairs, validated;
- :mod:`astra.graph.graph` -- the merged transition graph (:class:`ToolGraph`, networkx);
- :mod:`astra.graph.walks` -- seeded, weight-biased random walks;
- :mod:`astra.graph.verify` -- the args / vote / backtranslate checks that filter;
- :mod:`astra.graph.stages` -- the pipeline stages; :mod:`astra.graph.cli` -- ``astra graph``.
"""

from astra.graph.dataflow import EDGE_THRESHOLD, STRONG_THRESHOLD, dataflow_edges, is_opaque, output_fields
from astra.graph.graph import (
    Binding,
    GraphEdge,
    ToolGraph,
    build_graph,
    from_networkx,
    graph_stats,
    load_graphs,
    load_networkx,
    to_networkx,
    transition_counts,
)
from astra.graph.propose import ChainProposals, ProposalResult, propose_chains, validate_chain
from astra.graph.stages import BuildGraphStage, ChainsStage, VerifyChainsStage, load_servers
from astra.graph.verify import (
    CHECKS,
    CheckOutcome,
    backtranslate_check,
    compare_chains,
    parse_checks,
    resolve_args,
    vote_check,
)
from astra.graph.walks import Walk, WalkResult, random_walks, walk_chains

__all__ = [
    "EDGE_THRESHOLD", "STRONG_THRESHOLD", "dataflow_edges", "is_opaque", "output_fields",
    "Binding", "GraphEdge", "ToolGraph", "build_graph", "from_networkx", "graph_stats", "load_graphs",
    "load_networkx", "to_networkx", "transition_counts",
    "ChainProposals", "ProposalResult", "propose_chains", "validate_chain",
    "BuildGraphStage", "ChainsStage", "VerifyChainsStage", "load_servers",
    "CHECKS", "CheckOutcome", "backtranslate_check", "compare_chains", "parse_checks", "resolve_args",
    "vote_check",
    "Walk", "WalkResult", "random_walks", "walk_chains",
]
