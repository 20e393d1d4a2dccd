"""Quality validation of QA instances, before any environment code is written.

Per instance, in this order:

1. **Structure** (:func:`~astra.envsynth.decompose.check_structure`): unique ids, known,
   earlier, acyclic dependencies, consistent hop levels, concrete answers; a failure
   rejects with that check's reason.
2. **Tool necessity** per sub-question (:func:`tool_necessity`), from the first source
   that applies:

   - ``plan``: an offline-composed instance (``meta["plan"]``): a sub-task needs a tool
     iff it has a plan entry;
   - ``rule``: the linguistic pre-check (:func:`is_linguistic`): a sub-question that
     operates only on values it is given — it has dependencies, states every
     dependency's answer, and asks to compare / rank / sum / subtract / count / check
     equality / summarize / reformat — or one that only summarizes, rephrases or
     reformats — needs no tool;
   - ``llm``: the judge's ``needs_tool`` (LLM validator);
   - ``declared``: the instance's own ``needs_tool`` (offline validator, no plan).

3. **Leaf rule**: a sub-question that others depend on must need a tool, else the
   instance is rejected ``non_tool_dependency``; so non-tool steps exist only at leaves.
4. **Scores**, each in [0, 1]: DC, SA, SR are means over the sub-questions, TC is per
   instance; **QS = (DC + SA + SR + TC) / 4**. An LLM judgement that cannot be parsed or
   does not cover exactly the instance's sub-question ids rejects the instance
   ``validation_failed`` — never a pass, never a default score.

The offline scoring rules (:func:`offline_scores`)
--------------------------------------------------
Let ``D_i`` be the declared dependencies of sub-question i and ``U_i`` the answers it
actually uses: with a plan, ``{arg_from}`` when the call's key equals that step's answer
(else none) and, for the aggregation step, its ``inputs``; without a plan, every other
non-descendant sub-question j whose answer ``a_j`` occurs in the text of q_i (whole word or
number; yes/no answers, answers of ancestors of a declared dependency — available through
it — and, for undeclared j, answers that already occur in q0 are not evidence).

- **DC_i** (dependency consistency: necessary and sufficient) = 1 if ``D_i == U_i``, else
  the Jaccard overlap ``|D ∩ U| / |D ∪ U|``.
- **SA_i** (atomicity): with a plan, 1 for a tool step that is one lookup/search of one
  field of one key, and for an aggregation step with one known operation, else 0; without
  a plan, 1 minus 0.5 per sign of a compound request (more than one question mark, text
  after the question mark, "and what/who/which/when/where/how", "as well as", "along with"),
  floored at 0.
- **SR_i** (sequential rationality) = mean of two checks: no forced serialization (every
  declared dependency is used, ``D_i ⊆ U_i``) and ``is_parallel`` agreeing with the DAG
  (true iff another sub-question shares the hop level).
- **TC** (task completeness): with a plan, 1 if the aggregation recomputed from its inputs'
  answers (or the final step's answer) equals a0, else 0; without a plan, 1 if a0 equals
  the answer of the only final step (or a0 mentions the answers of all final steps), 0.5
  if a0 equals some other sub-answer, else 0.

The LLM path (:func:`llm_scores`) asks the judge (prompt ``qa_validate``) for per
sub-question ``needs_tool``, DC, SA, SR and an instance TC, all in [0, 1].

The percentile gate (:func:`gate_cutoff`): keep an instance iff ``QS >= cutoff`` where
cutoff is the ``p``-th percentile (linear interpolation between order statistics, as
``numpy.percentile``) of the QS of every scored instance of the batch, and ``QS >=
min_qs`` when that is given; ``p = 0`` disables the percentile part. Ties at the cutoff are
kept. See :mod:`astra.envsynth.qa_stages` for the two-pass, resumable stage.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from astra.envsynth.compose import apply_aggregate
from astra.envsynth.decompose import (
    Rejected,
    answers_match,
    check_structure,
    dependents,
    deps,
    mentions,
    norm_text,
    parallel_flags,
)
from astra.envsynth.worlds import AGG_OPS
from astra.llm import LLMClient, StructuredOutputError
from astra.prompts import render
from astra.types import QAInstance, SubTask

Validator = Literal["offline", "llm"]
SCORE_KEYS = ("dc", "sa", "sr", "tc")

# ---------------------------------------------------------------------------------
# Tool necessity
# ---------------------------------------------------------------------------------

_AGG_WORDS = re.compile(
    r"\b(?:compare|comparing|(?:which|who)\b.*\bor\b|sum of|the sum|total of|combined|add(?:ed)? up|plus|"
    r"difference|subtract|minus|how many years apart|average of|mean of|same|equal|identical|rank|sort|"
    r"order (?:them|these)|"
    r"(?:largest|smallest|highest|lowest|earliest|latest) of|how many of)\b", re.I)
_TEXT_OPS = re.compile(r"^\s*(summari[sz]e|rephrase|reword|rewrite|reformat|format|translate|convert .* into|"
                       r"express .* as|list the answers|combine the answers)\b", re.I)


def is_linguistic(sub: SubTask, answers: dict[str, str]) -> bool:
    """The rule pre-check: does this sub-question only operate on given values?

    True when it has dependencies, states each dependency's answer, and asks for a
    comparison / ranking / arithmetic / equality / count over them; or when it is a pure
    text operation (summarize, rephrase, reformat, translate, convert … into).
    """
    q = sub.sub_question
    if _TEXT_OPS.search(q):
        return True
    ds = deps(sub)
    if not ds:
        return False
    if not all(d in answers and mentions(q, answers[d]) for d in ds):
        return False
    return bool(_AGG_WORDS.search(q))


def tool_necessity(inst: QAInstance, judged: dict[str, bool] | None = None) -> dict[str, tuple[bool, str]]:
    """sub-task id -> (needs a tool, source) with source ``plan|rule|llm|declared``."""
    plan = inst.meta.get("plan")
    answers = {s.id: s.sub_answer for s in inst.sub_tasks}
    out: dict[str, tuple[bool, str]] = {}
    for s in inst.sub_tasks:
        if isinstance(plan, dict) and plan:
            out[s.id] = (s.id in plan, "plan")
        elif is_linguistic(s, answers):
            out[s.id] = (False, "rule")
        elif judged is not None and s.id in judged:
            out[s.id] = (judged[s.id], "llm")
        else:
            out[s.id] = (s.needs_tool, "declared")
    return out


def check_leaf_rule(inst: QAInstance, needs: dict[str, bool]) -> None:
    """Reject ``non_tool_dependency`` when a sub-question others depend on needs no tool."""
    for sid, ds in dependents(inst.sub_tasks).items():
        if ds and not needs.get(sid, True):
            raise Rejected("non_tool_dependency",
                           f"{sid} needs no tool but {', '.join(sorted(ds))} depend on it "
                           "(non-tool steps are allowed only at leaves)")


# ---------------------------------------------------------------------------------
# Offline scores
# ---------------------------------------------------------------------------------


def _descendants(inst: QAInstance) -> dict[str, set[str]]:
    down = dependents(inst.sub_tasks)
    out: dict[str, set[str]] = {}

    def walk(i: str) -> set[str]:
        if i not in out:
            acc: set[str] = set()
            for j in down.get(i, []):
                acc |= {j} | walk(j)
            out[i] = acc
        return out[i]

    for s in inst.sub_tasks:
        walk(s.id)
    return out


def used_dependencies(inst: QAInstance) -> dict[str, set[str]]:
    """``U_i``: the sub-questions whose answers each sub-question uses (see the module
    docstring)."""
    plan = inst.meta.get("plan") if isinstance(inst.meta.get("plan"), dict) else None
    agg = inst.meta.get("aggregate") if plan else None
    answers = {s.id: s.sub_answer for s in inst.sub_tasks}
    desc = _descendants(inst)
    anc = {s.id: {j for j, d in desc.items() if s.id in d} for s in inst.sub_tasks}
    out: dict[str, set[str]] = {}
    for s in inst.sub_tasks:
        if plan is not None:
            if s.id in plan:
                src = plan[s.id].get("arg_from")
                ok = src in answers and answers_match(answers[src], plan[s.id].get("entity"))
                out[s.id] = {src} if ok else set()
            elif agg and agg.get("sub_id") == s.id:
                out[s.id] = {i for i in agg.get("inputs", []) if i in answers}
            else:
                out[s.id] = set()
            continue
        used = set()
        covered = set().union(*(anc[d] for d in deps(s) if d in anc)) if deps(s) else set()
        for j, a in answers.items():
            if j == s.id or j in desc[s.id] or j in covered:
                continue
            if norm_text(a) in ("yes", "no") or (j not in deps(s) and mentions(inst.question, a)):
                continue
            if mentions(s.sub_question, a):
                used.add(j)
        out[s.id] = used
    return out


_COMPOUND = [re.compile(r"\?.*\?"), re.compile(r"\?\s*\S"),
             re.compile(r"\b(and|also|then)\s+(what|who|whom|which|when|where|how|why)\b", re.I),
             re.compile(r"\b(as well as|along with|together with)\b", re.I)]


def atomicity(sub: SubTask, plan: dict[str, Any] | None, agg: dict[str, Any] | None) -> float:
    if plan is not None:
        if sub.id in plan:
            e = plan[sub.id]
            ok = (e.get("operation") in ("lookup", "search") and isinstance(e.get("entity"), str)
                  and bool(e.get("entity")) and isinstance(e.get("attribute"), str)
                  and re.fullmatch(r"\w+", e.get("attribute") or "") is not None)
            return 1.0 if ok else 0.0
        return 1.0 if agg and agg.get("sub_id") == sub.id and agg.get("op") in AGG_OPS else 0.0
    hits = sum(1 for p in _COMPOUND if p.search(sub.sub_question.strip()))
    return max(0.0, 1.0 - 0.5 * hits)


def completeness(inst: QAInstance) -> float:
    plan = inst.meta.get("plan") if isinstance(inst.meta.get("plan"), dict) else None
    answers = {s.id: s.sub_answer for s in inst.sub_tasks}
    sinks = [i for i, ds in dependents(inst.sub_tasks).items() if not ds]
    if plan is not None:
        agg = inst.meta.get("aggregate")
        if agg:
            try:
                got = apply_aggregate(agg, answers)
            except (KeyError, ValueError, IndexError, TypeError):
                return 0.0
            return 1.0 if answers_match(got, answers.get(agg["sub_id"], "")) and answers_match(got, inst.answer) else 0.0
        return 1.0 if len(sinks) == 1 and answers_match(inst.answer, answers[sinks[0]]) else 0.0
    if len(sinks) == 1 and answers_match(inst.answer, answers[sinks[0]]):
        return 1.0
    if len(sinks) > 1 and all(mentions(inst.answer, answers[i]) for i in sinks):
        return 1.0
    if any(answers_match(inst.answer, a) for a in answers.values()):
        return 0.5
    return 0.0


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _jaccard(a: set[str], b: set[str]) -> float:
    return 1.0 if a == b else len(a & b) / len(a | b)


def _finish(per: dict[str, dict[str, Any]], tc: float, validator: str, extra: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    dc = _mean([p["dc"] for p in per.values()])
    sa = _mean([p["sa"] for p in per.values()])
    sr = _mean([p["sr"] for p in per.values()])
    qs = (dc + sa + sr + tc) / 4
    out = {"dc": round(dc, 4), "sa": round(sa, 4), "sr": round(sr, 4), "tc": round(tc, 4), "qs": round(qs, 4),
           "validator": validator, "per_sub_task": per}
    out.update(extra or {})
    return out


def offline_scores(inst: QAInstance, needs: dict[str, tuple[bool, str]]) -> dict[str, Any]:
    """The four scores and QS by the documented rules (``needs`` from :func:`tool_necessity`)."""
    plan = inst.meta.get("plan") if isinstance(inst.meta.get("plan"), dict) else None
    agg = inst.meta.get("aggregate") if plan else None
    used = used_dependencies(inst)
    flags = parallel_flags(inst.sub_tasks)
    per: dict[str, dict[str, Any]] = {}
    for s in inst.sub_tasks:
        d, u = set(deps(s)), used[s.id]
        sr_checks = [1.0 if d <= u else 0.0, 1.0 if s.is_parallel == flags[s.id] else 0.0]
        per[s.id] = {"dc": round(_jaccard(d, u), 4), "sa": atomicity(s, plan, agg), "sr": _mean(sr_checks),
                     "needs_tool": needs[s.id][0], "necessity": needs[s.id][1]}
    return _finish(per, completeness(inst), "offline")


# ---------------------------------------------------------------------------------
# LLM scores
# ---------------------------------------------------------------------------------


class SubJudgement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    needs_tool: bool
    dependency_consistency: float = Field(ge=0, le=1)
    atomicity: float = Field(ge=0, le=1)
    sequential_rationality: float = Field(ge=0, le=1)
    reason: str = ""

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class ValidationJudgement(BaseModel):
    """The judge's reply: one entry per sub-question, and the instance's completeness."""

    model_config = ConfigDict(extra="ignore")

    sub_questions: list[SubJudgement]
    task_completeness: float = Field(ge=0, le=1)
    reason: str = ""


def validate_messages(inst: QAInstance) -> list[dict[str, str]]:
    subs = [{"id": s.id, "hop_level": s.hop_level, "sub_question": s.sub_question, "dependency": s.dependency,
             "is_parallel": s.is_parallel, "sub_answer": s.sub_answer, "needs_tool": s.needs_tool}
            for s in inst.sub_tasks]
    content = render("qa_validate", question=inst.question, answer=inst.answer, domain=inst.domain,
                     scenario=inst.scenario, sub_questions=subs, knowledge=inst.knowledge)
    return [{"role": "system", "content": "You are a strict reviewer of multi-hop question decompositions. "
                                          "You answer with JSON only."},
            {"role": "user", "content": content}]


async def llm_judgement(client: LLMClient, inst: QAInstance, *, max_repairs: int = 2,
                        temperature: float = 0.0, max_tokens: int = 1200) -> ValidationJudgement:
    """The judge's verdict; ``Rejected("validation_failed")`` when unparseable or when it
    does not cover exactly the instance's sub-question ids."""
    try:
        j = await client.structured(validate_messages(inst), ValidationJudgement, max_repairs=max_repairs,
                                    temperature=temperature, max_tokens=max_tokens)
    except StructuredOutputError as e:
        raise Rejected("validation_failed", f"unparseable judgement: {str(e)[:240]}") from None
    got = [x.id.strip() for x in j.sub_questions]
    want = [s.id for s in inst.sub_tasks]
    if sorted(got) != sorted(want):
        raise Rejected("validation_failed", f"judgement covers {got}, the instance has {want}")
    return j


def llm_scores(inst: QAInstance, j: ValidationJudgement, needs: dict[str, tuple[bool, str]]) -> dict[str, Any]:
    by_id = {x.id.strip(): x for x in j.sub_questions}
    per = {s.id: {"dc": by_id[s.id].dependency_consistency, "sa": by_id[s.id].atomicity,
                  "sr": by_id[s.id].sequential_rationality, "needs_tool": needs[s.id][0],
                  "necessity": needs[s.id][1], "reason": by_id[s.id].reason}
           for s in inst.sub_tasks}
    return _finish(per, j.task_completeness, "llm", {"reason": j.reason} if j.reason else None)


# ---------------------------------------------------------------------------------
# One instance
# ---------------------------------------------------------------------------------


def _with_scores(inst: QAInstance, needs: dict[str, tuple[bool, str]], scores: dict[str, Any]) -> QAInstance:
    subs = [s.model_copy(update={"needs_tool": needs[s.id][0]}) for s in inst.sub_tasks]
    return inst.model_copy(update={"sub_tasks": subs, "scores": {**inst.scores, **scores}})


async def score_instance(inst: QAInstance, *, validator: Validator = "offline", client: LLMClient | None = None,
                         max_repairs: int = 2) -> QAInstance:
    """Validate and score one instance: the instance with ``needs_tool`` set to the judged
    necessity and ``scores`` = {dc, sa, sr, tc, qs, validator, per_sub_task}; raises
    :class:`~astra.envsynth.decompose.Rejected`."""
    check_structure(inst)
    if validator == "offline":
        needs = tool_necessity(inst)
        check_leaf_rule(inst, {k: v[0] for k, v in needs.items()})
        return _with_scores(inst, needs, offline_scores(inst, needs))
    if validator != "llm":
        raise ValueError(f"unknown validator {validator!r}")
    if client is None:
        raise ValueError("the llm validator needs a client")
    pre = tool_necessity(inst)
    if all(src in ("plan", "rule") for _, src in pre.values()):  # the judge cannot change necessity
        check_leaf_rule(inst, {k: v[0] for k, v in pre.items()})
    j = await llm_judgement(client, inst, max_repairs=max_repairs)
    needs = tool_necessity(inst, {x.id.strip(): x.needs_tool for x in j.sub_questions})
    check_leaf_rule(inst, {k: v[0] for k, v in needs.items()})
    return _with_scores(inst, needs, llm_scores(inst, j, needs))


# ---------------------------------------------------------------------------------
# The percentile gate
# ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """The ``p``-th percentile with linear interpolation (``numpy.percentile``'s default)."""
    if not values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


EPS = 1e-9


def gate_cutoff(qs: list[float], *, pct: float = 90.0, min_qs: float | None = None) -> dict[str, Any]:
    """The gate's thresholds for a batch: ``{"percentile", "cutoff", "min_qs", "scored"}``
    (cutoff None when ``pct`` is 0 or the batch is empty)."""
    cut = percentile(qs, pct) if pct > 0 else None
    return {"percentile": pct, "cutoff": None if cut is None else round(cut, 6), "min_qs": min_qs, "scored": len(qs)}


def gate_verdict(qs: float, gate: dict[str, Any]) -> tuple[str, str] | None:
    """None when the instance passes, else (reason, detail)."""
    cut, mn = gate.get("cutoff"), gate.get("min_qs")
    if cut is not None and qs < cut - EPS:
        return ("below_percentile", f"QS {qs:.4f} < cutoff {cut:.4f} (p{gate['percentile']:g} of "
                                    f"{gate['scored']} scored instances)")
    if mn is not None and qs < mn - EPS:
        return ("below_min_qs", f"QS {qs:.4f} < min-qs {mn:g}")
    return None


__all__ = [
    "SCORE_KEYS", "SubJudgement", "ValidationJudgement", "Validator", "atomicity", "check_leaf_rule", "completeness",
    "gate_cutoff", "gate_verdict", "is_linguistic", "llm_judgement", "llm_scores", "offline_scores", "percentile",
    "score_instance", "tool_necessity", "used_dependencies", "validate_messages",
]
