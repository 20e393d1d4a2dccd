"""User tasks: generation from verified chains and servers (offline or with an
LLM), augmentation (diversity, complexity, persona) and scoring with near-duplicate removal.

- :mod:`astra.tasks.plan` -- plans (``Task.arguments``): format, execution, argument resolution,
  the value pool and plan search, a module each;
- :mod:`astra.tasks.generate` -- chain-conditioned and server-only generation;
- :mod:`astra.tasks.render` -- the offline generator's query writer;
- :mod:`astra.tasks.augment` -- variants and the bundled persona set;
- :mod:`astra.tasks.score` -- LLM and offline scoring, thresholds;
- :mod:`astra.tasks.dedup` -- selection: thresholds then near duplicates;
- :mod:`astra.tasks.stages` / :mod:`astra.tasks.cli` -- runner stages and ``astra tasks``.
"""

from astra.tasks.augment import AUGMENT_MODES, Persona, augment_task, load_personas
from astra.tasks.dedup import DEFAULT_DEDUP_THRESHOLD, near_duplicates, select_tasks
from astra.tasks.generate import LLMGenerator, OfflineGenerator, default_backend, task_id
from astra.tasks.plan import PLAN_FORMAT, Plan, PlanError, execute_plan, resolve_steps
from astra.tasks.score import SCORE_KEYS, Thresholds, offline_scores
from astra.tasks.stages import (
    AugmentStage,
    GenerateStage,
    GenerationRequest,
    ScoreStage,
    SelectStage,
    augment_tasks,
    generate_tasks,
    load_servers,
    score_tasks,
)

__all__ = [
    "AUGMENT_MODES", "AugmentStage", "DEFAULT_DEDUP_THRESHOLD", "GenerateStage", "GenerationRequest",
    "LLMGenerator", "OfflineGenerator", "PLAN_FORMAT", "Persona", "Plan", "PlanError", "SCORE_KEYS", "ScoreStage",
    "SelectStage", "Thresholds", "augment_task", "augment_tasks", "default_backend", "execute_plan",
    "generate_tasks", "load_personas", "load_servers", "near_duplicates", "offline_scores", "resolve_steps",
    "score_tasks", "select_tasks", "task_id",
]
