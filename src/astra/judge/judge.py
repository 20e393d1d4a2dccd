"""The 7-dimension trajectory reward of the ASTRA method §1.5.

=============================  ==================================  =========================
dimension                      scale                               decided by
=============================  ==================================  =========================
1 ``query_understanding``      {0, 0.5, 1}, first assistant turn   LLM (offline: heuristic)
2 ``initial_plan``             {0, 0.5, 1}, first assistant turn   LLM (offline: heuristic)
3 ``tool_response_understanding`` mean over rounds j = 2..J        LLM (offline: heuristic);
                                                                    rule: 0 without rounds
4 ``round_planning``           mean over rounds j = 2..J           same as 3
5 ``tool_call_status``         share of calls with a valid result  rule
6 ``conciseness``              mean over calls of {0, 1}           rules (undefined tool,
                                                                    malformed / schema-invalid
                                                                    arguments, exact repeats,
                                                                    blind retries) + LLM
                                                                    necessity of the rest
7 ``final_answer``             mean(relevance, faithfulness)       rules (no answer -> 0;
                                                                    other language ->
                                                                    relevance 0) + LLM
=============================  ==================================  =========================

Overall = the arithmetic mean of the seven. In ``llm`` mode the LLM parts are asked with
structured output (one request for the first turn, one per later round, one for the
necessity of the calls the rules left open, one for the final answer). **If the judge's
reply is unusable** (:class:`~astra.llm.errors.StructuredOutputError` after the repair
rounds, or a reply that skips calls) **the judgement is failed**: ``overall`` is None,
``failed`` says why, and the trajectory is never kept on its strength. An endpoint that
does not answer (timeouts, connection errors, 5xx, rate limits, refused requests: see
:mod:`astra.pipeline.failures`) is not a judgement at all: :meth:`Judge.judge` raises it,
and the stage runner counts the trajectory as *failed* and judges it again on a rerun. In
``offline`` mode the LLM parts are scored by :mod:`astra.judge.heuristics` and labelled
``heuristic``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from astra.judge import heuristics as H
from astra.judge.rules import CallVerdict, answer_language_rule, call_status, conciseness_rules
from astra.judge.transcript import TranscriptView, read_transcript, render_rounds, render_tools
from astra.llm import LLMClient, LLMError
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.types import Trajectory

JUDGE_VERSION = "astra.judge/v1"
DIMENSIONS = ("query_understanding", "initial_plan", "tool_response_understanding", "round_planning",
              "tool_call_status", "conciseness", "final_answer")
OFFLINE_JUDGE = "offline-heuristics"
OFFLINE_NOTE = ("offline mode: dimensions 1-4, the necessity part of 6 and the LLM part of 7 are "
                "transparent heuristics (astra.judge.heuristics), not an LLM judgement")

JudgeMode = Literal["offline", "llm"]


# ---------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------


class DimensionResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float | None
    method: str  # rule | llm | heuristic | rule+llm | rule+heuristic
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)


class Judgement(BaseModel):
    """What :class:`Judge` stores in ``Trajectory.judgement``."""

    model_config = ConfigDict(extra="forbid")

    version: str = JUDGE_VERSION
    mode: str
    judge: str
    dimensions: dict[str, DimensionResult] = Field(default_factory=dict)
    overall: float | None = None
    min_score: float | None = None
    passed: bool | None = None
    failed: dict[str, str] | None = None
    note: str = ""


# -- structured replies of the LLM judge


class Scored(BaseModel):
    score: float
    reason: str = ""

    @field_validator("score")
    @classmethod
    def _scale(cls, v: float) -> float:
        if v not in (0, 0.5, 1):
            raise ValueError("score must be 0, 0.5 or 1")
        return float(v)


class FirstTurnVerdict(BaseModel):
    query_understanding: Scored
    initial_plan: Scored


class RoundVerdict(BaseModel):
    understanding: Scored
    planning: Scored


class NecessityItem(BaseModel):
    index: int
    necessary: bool
    reason: str = ""


class NecessityVerdict(BaseModel):
    calls: list[NecessityItem]


class FinalAnswerVerdict(BaseModel):
    relevance: Scored
    faithfulness: Scored


class JudgeFailed(LLMError):
    """A judge reply that parsed but cannot be used (e.g. it skips calls)."""


# ---------------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------------


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class Judge:
    """Judge trajectories in ``mode`` ``"offline"`` (no LLM) or ``"llm"`` (``client``)."""

    def __init__(self, mode: JudgeMode = "offline", client: LLMClient | None = None, *,
                 max_tokens: int = 400, temperature: float = 0.0, result_chars: int = 1200,
                 max_repairs: int = 2):
        if mode not in ("offline", "llm"):
            raise ValueError(f"judge mode must be 'offline' or 'llm', got {mode!r}")
        if mode == "llm" and client is None:
            raise ValueError("the llm judge needs a client")
        self.mode = mode
        self.client = client
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.result_chars = result_chars
        self.max_repairs = max_repairs

    @property
    def judge_id(self) -> str:
        return OFFLINE_JUDGE if self.mode == "offline" else f"llm:{self.client.provider_id}"  # type: ignore[union-attr]

    async def judge(self, traj: Trajectory, *, min_score: float | None = None) -> Judgement:
        """Score ``traj``. An unusable judge reply comes back as a judgement with
        ``failed`` set and ``overall`` None; an endpoint failure raises."""
        view = read_transcript(traj)
        verdicts = conciseness_rules(view)
        try:
            if self.mode == "offline":
                parts = self._offline(view, verdicts)
            else:
                parts = await self._llm(view, verdicts)
        except LLMError as e:
            if is_endpoint_failure(e):
                raise
            return Judgement(mode=self.mode, judge=self.judge_id, min_score=min_score, passed=False,
                             failed={"error_type": type(e).__name__, "message": str(e)[:500],
                                     "part": str(getattr(e, "judge_part", ""))})
        dims = self._assemble(view, verdicts, parts)
        overall = round(_mean([d.score for d in dims.values() if d.score is not None]), 4)
        return Judgement(mode=self.mode, judge=self.judge_id, dimensions=dims, overall=overall,
                         min_score=min_score, passed=None if min_score is None else overall >= min_score,
                         note=OFFLINE_NOTE if self.mode == "offline" else "")

    # -- the parts a model (or the heuristics) decides ----------------------------------

    def _offline(self, view: TranscriptView, verdicts: list[CallVerdict]) -> dict[str, Any]:
        redundant = {v.call.id for v in verdicts if v.score == 0.0}
        parts: dict[str, Any] = {
            "query_understanding": H.query_understanding(view),
            "initial_plan": H.initial_plan(view),
            "rounds": [],
            "necessity": {},
            "relevance": None,
            "faithfulness": None,
        }
        for prev, r in zip(view.rounds, view.rounds[1:], strict=False):
            parts["rounds"].append((r.index, H.round_understanding(view, r, prev), H.round_planning(view, r, redundant)))
        for v in verdicts:
            if v.score is None:
                parts["necessity"][v.call.id] = H.necessity(view, v.call, v.retry)
        if view.final_answer:
            parts["relevance"] = H.final_relevance(view)
            parts["faithfulness"] = H.final_faithfulness(view)
        return parts

    async def _ask(self, prompt: str, schema: type[BaseModel]) -> Any:
        assert self.client is not None
        return await self.client.structured([{"role": "user", "content": prompt}], schema,
                                            max_repairs=self.max_repairs, max_tokens=self.max_tokens,
                                            temperature=self.temperature)

    async def _llm(self, view: TranscriptView, verdicts: list[CallVerdict]) -> dict[str, Any]:
        tools = render_tools(view)
        jobs: dict[str, Any] = {}
        if view.rounds:
            first = "\n".join(line for line in render_rounds(view, upto=1).splitlines()
                              if not line.startswith("  RESULT"))
            jobs["first"] = self._ask(render("judge_first_turn", tools=tools, query=view.query, first_turn=first),
                                      FirstTurnVerdict)
        for r in view.rounds[1:]:
            jobs[f"round:{r.index}"] = self._ask(
                render("judge_round", tools=tools, query=view.query, index=r.index,
                       transcript=render_rounds(view, upto=r.index, result_chars=self.result_chars)),
                RoundVerdict)
        open_calls = [v.call for v in verdicts if v.score is None]
        full = render_rounds(view, result_chars=self.result_chars)
        if open_calls:
            jobs["necessity"] = self._ask(
                render("judge_necessity", query=view.query, transcript=full,
                       calls=[{"id": c.id, "name": c.name, "arguments": c.raw_arguments[:400]} for c in open_calls]),
                NecessityVerdict)
        if view.final_answer:
            jobs["final"] = self._ask(render("judge_final_answer", query=view.query, transcript=full,
                                             answer=view.final_answer), FinalAnswerVerdict)
        names = list(jobs)
        results = await asyncio.gather(*jobs.values(), return_exceptions=True)
        errors = [(name, res) for name, res in zip(names, results, strict=True) if isinstance(res, BaseException)]
        if errors:  # an outage in any part wins: the judgement is retried, not rejected
            name, res = next(((n, r) for n, r in errors if is_endpoint_failure(r)), errors[0])
            res.judge_part = name  # type: ignore[attr-defined]
            raise res
        got: dict[str, Any] = dict(zip(names, results, strict=True))
        parts: dict[str, Any] = {"rounds": [], "necessity": {}, "relevance": None, "faithfulness": None}
        if "first" in got:
            f: FirstTurnVerdict = got["first"]
            parts["query_understanding"] = (f.query_understanding.score, f.query_understanding.reason)
            parts["initial_plan"] = (f.initial_plan.score, f.initial_plan.reason)
        else:
            parts["query_understanding"] = (0.0, "no assistant turn")
            parts["initial_plan"] = (0.0, "no assistant turn")
        for r in view.rounds[1:]:
            rv: RoundVerdict = got[f"round:{r.index}"]
            parts["rounds"].append((r.index, (rv.understanding.score, rv.understanding.reason),
                                    (rv.planning.score, rv.planning.reason)))
        if open_calls:
            nv: NecessityVerdict = got["necessity"]
            by_index = {item.index: item for item in nv.calls}
            missing = [i for i in range(len(open_calls)) if i not in by_index]
            if missing:
                raise JudgeFailed(f"the necessity reply skips calls {missing}")
            for i, c in enumerate(open_calls):
                item = by_index[i]
                parts["necessity"][c.id] = (1.0 if item.necessary else 0.0, f"{c.id}: {item.reason}")
        if "final" in got:
            fa: FinalAnswerVerdict = got["final"]
            parts["relevance"] = (fa.relevance.score, fa.relevance.reason)
            parts["faithfulness"] = (fa.faithfulness.score, fa.faithfulness.reason)
        return parts

    # -- putting the seven together --------------------------------------------------------

    def _assemble(self, view: TranscriptView, verdicts: list[CallVerdict], parts: dict[str, Any]
                  ) -> dict[str, DimensionResult]:
        soft = "llm" if self.mode == "llm" else "heuristic"
        dims: dict[str, DimensionResult] = {}
        no_turn = not view.rounds
        for name in ("query_understanding", "initial_plan"):
            score, reason = parts[name]
            dims[name] = DimensionResult(score=score, method="rule" if no_turn else soft, reason=reason)

        rounds = parts["rounds"]
        if not view.tool_rounds():
            for name in ("tool_response_understanding", "round_planning"):
                dims[name] = DimensionResult(score=0.0, method="rule",
                                             reason="no tool-response rounds: the assistant never called a tool")
        elif not rounds:
            for name in ("tool_response_understanding", "round_planning"):
                dims[name] = DimensionResult(score=0.0, method="rule",
                                             reason="no assistant turn after the tool responses")
        else:
            for name, k in (("tool_response_understanding", 1), ("round_planning", 2)):
                per = [{"round": r[0], "score": r[k][0], "reason": r[k][1]} for r in rounds]
                score = _mean([p["score"] for p in per])
                low = [p for p in per if p["score"] < 1]
                reason = f"mean over rounds 2..{rounds[-1][0]}: {score:.2f}"
                if low:
                    reason += "; " + " | ".join(p["reason"] for p in low[:3])
                dims[name] = DimensionResult(score=score, method=soft, reason=reason, details={"rounds": per})

        s, why, det = call_status(view)
        dims["tool_call_status"] = DimensionResult(score=s, method="rule", reason=why, details=det)

        if not verdicts:
            dims["conciseness"] = DimensionResult(score=0.0, method="rule", reason="no tool calls were made")
        else:
            per_call: list[dict[str, Any]] = []
            for v in verdicts:
                if v.score is not None:
                    per_call.append({"id": v.call.id, "score": v.score, "by": "rule", "reason": v.reason})
                else:
                    sc, rs = parts["necessity"][v.call.id]
                    per_call.append({"id": v.call.id, "score": sc, "by": soft, "reason": rs})
            score = _mean([p["score"] for p in per_call])
            low_reasons = [p["reason"] for p in per_call if p["score"] < 1]
            by_rule = sum(1 for p in per_call if p["by"] == "rule")
            method = "rule" if by_rule == len(per_call) else f"rule+{soft}"
            reason = (f"{sum(p['score'] for p in per_call):g}/{len(per_call)} calls necessary and non-redundant"
                      + ("; " + " | ".join(low_reasons[:4]) if low_reasons else ""))
            dims["conciseness"] = DimensionResult(score=score, method=method, reason=reason,
                                                  details={"calls": per_call})

        if not view.final_answer:
            dims["final_answer"] = DimensionResult(
                score=0.0, method="rule", reason="no final answer (the trajectory ends without an assistant answer)",
                details={"relevance": 0.0, "faithfulness": 0.0})
        else:
            rel, rel_why = parts["relevance"]
            fai, fai_why = parts["faithfulness"]
            same, lang_why = answer_language_rule(view)
            method = soft
            if same is False:
                rel, rel_why, method = 0.0, f"rule: {lang_why}", f"rule+{soft}"
            dims["final_answer"] = DimensionResult(
                score=(rel + fai) / 2, method=method,
                reason=f"relevance {rel:g} ({rel_why}); faithfulness {fai:g} ({fai_why})",
                details={"relevance": rel, "faithfulness": fai, "language": lang_why})
        return {name: dims[name] for name in DIMENSIONS}


def judgement_summary(j: Judgement | dict[str, Any]) -> str:
    """One line: overall and the seven scores (for rejection details and logs)."""
    if isinstance(j, dict):
        j = Judgement.model_validate(j)
    if j.failed:
        return f"judge failed: {j.failed.get('error_type')}: {j.failed.get('message')}"
    scores = ", ".join(f"{k}={v.score:.2f}" for k, v in j.dimensions.items() if v.score is not None)
    return f"overall={j.overall:.3f} ({scores})"


def dumps_judgement(j: Judgement) -> dict[str, Any]:
    return json.loads(j.model_dump_json())
