"""The stage runner: resumable, concurrent, crash-safe stages over JSONL records.

- :mod:`~astra.pipeline.stage` -- the :class:`Stage` protocol a stage implements;
- :mod:`~astra.pipeline.runner` -- :func:`run_stage`: the on-disk layout, the resume protocol
  and the driver loop;
- :mod:`~astra.pipeline.manifest` / :mod:`~astra.pipeline.ledger` -- a stage output's
  manifest and ledger;
- :mod:`~astra.pipeline.outcome` -- processing one record into an outcome;
- :mod:`~astra.pipeline.executors` -- local and Ray (:mod:`~astra.pipeline.ray_executor`)
  executors; :mod:`~astra.pipeline.failures` -- endpoint failure or error;
  :mod:`~astra.pipeline.progress` -- the progress bar.
"""

from astra.pipeline.ledger import read_outputs
from astra.pipeline.manifest import Manifest, StagePaths, collect_manifests, load_manifest
from astra.pipeline.runner import arun_stage, run_stage
from astra.pipeline.stage import Stage, StageResult

__all__ = [
    "Manifest",
    "Stage",
    "StagePaths",
    "StageResult",
    "arun_stage",
    "collect_manifests",
    "load_manifest",
    "read_outputs",
    "run_stage",
]
