"""Environment synthesis: multi-hop QA instances -> validated -> executable environments.

This package so far holds the QA half:

- :mod:`~astra.envsynth.worlds` — bundled *knowledge worlds* (small relational data per
  domain) and their lookups;
- :mod:`~astra.envsynth.compose` — the offline generator: QA instances with gold
  decompositions and per-sub-task tool plans (``meta["plan"]``), composed by rules;
- :mod:`~astra.envsynth.decompose` — the decomposition contract (hop budgets, DAG checks,
  scenario classification) and LLM decomposition (question-conditional / unconditional);
- :mod:`~astra.envsynth.validate` — tool necessity, the leaf rule, DC/SA/SR/TC, QS and
  the percentile gate;
- :mod:`~astra.envsynth.qa_stages` — the pipeline stages, incl. the two-pass validation;
- :mod:`~astra.envsynth.cli` — ``astra envs decompose | validate``.

See docs/environments.md.
"""

from astra.envsynth.compose import (
    apply_aggregate,
    check_gold,
    compose,
    compose_world,
    counts_by_scenario,
    execute_plan_entry,
    feasible_hops,
)
from astra.envsynth.decompose import (
    SCENARIOS,
    DecomposeRequest,
    HopBudget,
    Rejected,
    answers_match,
    build_requests,
    check_decomposition,
    check_structure,
    classify_scenario,
    decompose_request,
    hop_levels,
    is_placeholder,
    load_corpus,
    load_questions,
    parse_scenarios,
)
from astra.envsynth.qa_stages import (
    ComposeStage,
    DecomposeStage,
    GateStage,
    ScoreStage,
    ValidateResult,
    default_validator,
    run_validate,
    scored_path,
)
from astra.envsynth.validate import (
    gate_cutoff,
    is_linguistic,
    offline_scores,
    percentile,
    score_instance,
    tool_necessity,
)
from astra.envsynth.worlds import World, bundled_domains, format_value, load_world, load_worlds

__all__ = [
    "SCENARIOS", "ComposeStage", "DecomposeRequest", "DecomposeStage", "GateStage", "HopBudget", "Rejected",
    "ScoreStage", "ValidateResult", "World", "answers_match", "apply_aggregate", "build_requests", "bundled_domains",
    "check_decomposition", "check_gold", "check_structure", "classify_scenario", "compose", "compose_world",
    "counts_by_scenario", "decompose_request", "default_validator", "execute_plan_entry", "feasible_hops",
    "format_value", "gate_cutoff", "hop_levels", "is_linguistic", "is_placeholder", "load_corpus", "load_questions",
    "load_world", "load_worlds", "offline_scores", "parse_scenarios", "percentile", "run_validate",
    "score_instance", "scored_path", "tool_necessity",
]
