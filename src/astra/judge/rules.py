"""The parts of the seven dimensions that rules decide (no model involved).

- **tool-call status** (dimension 5): the share of calls whose response is valid
  (status ``ok``); environment failures (injected or real) count as not valid, as the ASTRA method §1.5
  defines it. No calls: 0.
- **conciseness** (dimension 6), per call: 0 for a call to an undefined tool, for
  malformed or schema-invalid arguments (unreadable blocks included), for an exact repeat
  of an earlier successful call with no state-changing call in between (re-fetching known
  data), and for an exact repeat of a call that failed with a non-transient error (a blind
  retry). Retrying after a transient error is fine. The remaining calls' necessity is
  judged by the LLM (or the offline heuristic). No calls: 0.
- **final answer** (dimension 7): no final answer -> relevance 0 and faithfulness 0; an
  answer in another language than the query (:mod:`astra.judge.language`) -> relevance 0.
- **rounds** (dimensions 3 and 4): a trajectory without any tool-response round (it never
  called a tool) scores 0 on both.
"""

from __future__ import annotations

from dataclasses import dataclass

from astra.judge.language import detect_language
from astra.judge.transcript import CallView, TranscriptView, is_read_only
from astra.rollout.phrases import normalize_language


@dataclass
class CallVerdict:
    call: CallView
    score: float | None  # None: necessity still to be judged
    reason: str
    retry: bool = False  # an exact repeat of a call that failed transiently


def call_status(view: TranscriptView) -> tuple[float, str, dict]:
    calls = view.calls
    if not calls:
        return 0.0, "no tool calls were made", {"calls": 0}
    ok = sum(1 for c in calls if c.ok)
    bad = [f"{c.name or '?'}:{c.status}" for c in calls if not c.ok]
    reason = f"{ok}/{len(calls)} calls returned a valid response"
    if bad:
        reason += " (not valid: " + ", ".join(bad[:8]) + (" …" if len(bad) > 8 else "") + ")"
    return ok / len(calls), reason, {"calls": len(calls), "ok": ok}


def conciseness_rules(view: TranscriptView) -> list[CallVerdict]:
    out: list[CallVerdict] = []
    succeeded: dict[str, int] = {}  # call key -> index in the flat list of its last success
    hard_failed: set[str] = set()
    transient_failed: set[str] = set()
    calls = view.calls
    for i, c in enumerate(calls):
        key = c.key
        if not c.defined:
            out.append(CallVerdict(c, 0.0, f"{c.id}: calls undefined tool {c.name!r}"))
        elif c.malformed:
            why = "; ".join(c.arg_errors) or c.status
            out.append(CallVerdict(c, 0.0, f"{c.id}: malformed arguments for {c.name} ({why[:200]})"))
        elif key in succeeded and not any(not is_read_only(calls[j].name) and calls[j].ok
                                          for j in range(succeeded[key] + 1, i)):
            out.append(CallVerdict(c, 0.0, f"{c.id}: repeats {c.name} with identical arguments; its data "
                                           "was already returned"))
        elif key in hard_failed:
            out.append(CallVerdict(c, 0.0, f"{c.id}: blind retry of {c.name} after a non-transient error"))
        else:
            retry = key in transient_failed
            out.append(CallVerdict(c, None, f"{c.id}: {c.name}" + (" (retry after a transient error)" if retry
                                                                   else ""), retry=retry))
        if c.ok:
            succeeded[key] = i
        elif c.transient:
            transient_failed.add(key)
        else:
            hard_failed.add(key)
    return out


def query_language(view: TranscriptView) -> str | None:
    lang = detect_language(view.query)
    if lang is None and view.language:
        lang = normalize_language(view.language)
    return lang


def answer_language_rule(view: TranscriptView) -> tuple[bool | None, str]:
    """``(same language?, reason)``; None when undecided."""
    if not view.final_answer:
        return None, "no final answer"
    q = query_language(view)
    a = detect_language(view.final_answer, strict=True)
    if q is None or a is None:
        return None, f"language check undecided (query: {q or '?'}, answer: {a or '?'})"
    if q != a:
        return False, f"the answer is in {a!r} but the query is in {q!r}"
    return True, f"answer language matches the query ({q})"
