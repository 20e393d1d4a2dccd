"""The judge stage (``judge``): Trajectory -> Trajectory with ``judgement`` set, kept when
``overall >= min_score``.

Rejection reasons: ``judge_unusable`` (the judge model answered, but its reply could not
be parsed or used even after the repair rounds: the trajectory is not kept on its
strength), ``below_min_score`` (detail: the seven scores). A judge endpoint that does not
answer is a *failure*, not a rejection: the trajectory is judged again on a rerun.

Mode: ``offline`` (heuristics, no LLM) or ``llm``. Left unset it is ``offline`` when the
judge LLM is the tiny embedded default (``embedded`` without a path: SmolLM2-135M cannot
judge) and ``llm`` for any other provider.
"""

from __future__ import annotations

from typing import Any

from astra.errors import ConfigError
from astra.judge.judge import Judge, JudgeMode, judgement_summary
from astra.llm import LLMClient, LLMSettings
from astra.pipeline import StageResult
from astra.pipeline.llm_stage import LLMStage, settings_config
from astra.tasks.gates import trajectory_gates
from astra.types import Trajectory

DEFAULT_MIN_SCORE = 0.7


def resolve_mode(mode: str | None, settings: LLMSettings | None) -> JudgeMode:
    """The judge mode: explicit, else offline for the tiny embedded default, else llm."""
    if mode is not None:
        if mode not in ("offline", "llm"):
            raise ConfigError(f"--judge must be 'offline' or 'llm', got {mode!r}")
        return mode  # type: ignore[return-value]
    spec = (settings.spec if settings is not None else LLMSettings.from_env().spec).strip()
    return "offline" if spec == "embedded" else "llm"


class JudgeStage(LLMStage[Trajectory, Trajectory]):
    name = "judge"
    _NOT_PICKLED = ("_client", "_judge")
    input_model = Trajectory
    output_model = Trajectory

    def __init__(self, *, min_score: float = DEFAULT_MIN_SCORE, mode: str | None = None,
                 settings: LLMSettings | None = None, client: LLMClient | None = None,
                 max_tokens: int = 400, temperature: float = 0.0):
        if not 0.0 <= min_score <= 1.0:
            raise ConfigError(f"--min-score must be in [0, 1], got {min_score}")
        self.settings = settings
        # an injected client means an LLM judge unless the mode says otherwise
        self.mode: JudgeMode = "llm" if mode is None and client is not None else resolve_mode(mode, settings)
        self.min_score = min_score
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._client = client
        self._judge: Judge | None = None

    def setup(self) -> None:
        client = None
        if self.mode == "llm":
            client = self.build_client(self.settings, self._client)
            self._client = client
        self._judge = Judge(self.mode, client, max_tokens=self.max_tokens, temperature=self.temperature)

    def config(self) -> dict[str, Any]:
        return {"mode": self.mode, "min_score": self.min_score,
                "llm": None if self.mode == "offline" else settings_config(self.settings),
                "temperature": self.temperature}

    async def process(self, record: Trajectory) -> StageResult:
        if self._judge is None:
            self.setup()
        assert self._judge is not None
        gates = trajectory_gates(record.messages)
        if gates:  # a trajectory of a non-task (or contradicting its own tool results) is never kept
            return StageResult.reject(record.id, gates[0]["reason"],
                                      "; ".join(f"{g['reason']}: {g['detail']}" for g in gates)[:500])
        j = await self._judge.judge(record, min_score=self.min_score)
        if j.failed:
            return StageResult.reject(record.id, "judge_unusable", judgement_summary(j))
        if not j.passed:
            return StageResult.reject(record.id, "below_min_score", judgement_summary(j))
        return StageResult.accept(record.model_copy(update={"judgement": j.model_dump(mode="json")}))
