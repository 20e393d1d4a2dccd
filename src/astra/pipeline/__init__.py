"""The stage runner: resumable, concurrent, crash-safe stages over JSONL records.

See :mod:`astra.pipeline.runner` for the on-disk layout and the resume protocol.
"""

from astra.pipeline.runner import (
    Manifest,
    StagePaths,
    arun_stage,
    collect_manifests,
    load_manifest,
    read_outputs,
    run_stage,
)
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
