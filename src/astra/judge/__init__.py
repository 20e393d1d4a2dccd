"""The 7-dimension trajectory reward for SFT filtering.

- :class:`~astra.judge.judge.Judge` -- rules + LLM (or offline heuristics) per dimension;
- :class:`~astra.judge.stages.JudgeStage` -- the ``judge`` stage (keep >= ``min_score``);
- :func:`~astra.judge.cli.judge_command` -- ``astra judge``.
"""

from astra.judge.judge import DIMENSIONS, DimensionResult, Judge, Judgement, judgement_summary
from astra.judge.language import detect_language
from astra.judge.stages import DEFAULT_MIN_SCORE, JudgeStage, resolve_mode

__all__ = ["DEFAULT_MIN_SCORE", "DIMENSIONS", "DimensionResult", "Judge", "JudgeStage", "Judgement",
           "detect_language", "judgement_summary", "resolve_mode"]
