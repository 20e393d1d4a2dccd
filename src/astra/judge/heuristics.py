"""Offline judge: transparent heuristics for the dimensions an LLM would judge.

Used by ``astra judge --judge offline`` (the default with the tiny embedded model, which
cannot judge). Every score is labelled ``heuristic`` in the judgement, with the reason
spelled out. They check grounding and form, not meaning:

- **query understanding** (round 1): the first calls are well-formed, use one of the task's
  target tools (when the trajectory records them), and their argument values appear in the
  query. 1 both, 0.5 one, 0 none / no call.
- **initial plan** (round 1): a stated plan (>= 6 words of text) and valid first calls
  consistent with the target tools. 1 both, 0.5 one, 0 none.
- **tool-response understanding** (round j >= 2): round j uses values that round j-1's
  successful results returned (and that were not already in the query), and reacts to
  failures (a transient failure is retried or worked around; a hard error is not repeated).
- **planning per round** (round j >= 2): a call round with a sentence of reasoning and only
  valid, non-redundant calls -> 1 (one of the two -> 0.5); the final round -> 1 when every
  target tool has returned a valid result by then, else 0.5.
- **necessity** (conciseness, calls the rules left open): a retry after a transient error,
  a call to a target tool, or a call whose result values are used later -> necessary;
  otherwise not (0.5 when the trajectory records no target tools).
- **final answer**: relevance = the answer states values of the last successful results
  and covers the query's salient terms (numbers, names, quoted strings) -> 1, one of the two
  -> 0.5; faithfulness = the share of the answer's numbers and identifiers found in the
  tool results or the query (all -> 1, >= 70 % -> 0.5, else 0; none stated -> 0.5).
"""

from __future__ import annotations

import re

from astra.judge.transcript import (
    CallView,
    RoundView,
    TranscriptView,
    informative,
    mentions,
    numbers_in,
    scalars,
)

Score = tuple[float, str]

_WORDS = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")


def _n_words(text: str) -> int:
    return len(_WORDS.findall(text or "")) + len(_CJK.findall(text or "")) // 2


def _both(a: bool, b: bool) -> float:
    """The score of two checks: 1 when both pass, 0.5 when one does, 0 when none."""
    return 1.0 if a and b else 0.5 if (a or b) else 0.0


def _mentioned(text: str, values: list, share: float, found: str, nothing: str) -> tuple[bool, str]:
    """Whether ``text`` states at least ``share`` of ``values``, and why: ``found`` formatted
    with ``hit`` and ``n``, or ``nothing`` when there are no values (which passes)."""
    if not values:
        return True, nothing
    hit = sum(1 for v in values if mentions(text, v))
    return hit / len(values) >= share, found.format(hit=hit, n=len(values))


def _arg_values(calls: list[CallView]) -> list:
    vals = []
    for c in calls:
        if c.args:
            vals.extend(scalars(c.args))
    return vals


def _targets_ok(view: TranscriptView, calls: list[CallView]) -> tuple[bool, str]:
    if not view.target_tools:
        return True, "no target tools recorded"
    used = [c.name for c in calls if c.name in view.target_tools]
    if used:
        return True, f"uses target tool(s) {', '.join(dict.fromkeys(used))}"
    return False, f"none of the first calls ({', '.join(c.name for c in calls)}) is a target tool"


def query_understanding(view: TranscriptView) -> Score:
    if not view.rounds:
        return 0.0, "no assistant turn"
    r1 = view.rounds[0]
    if not r1.calls:
        return 0.0, "the first turn answers without calling any tool"
    bad = [c for c in r1.calls if c.malformed]
    if bad:
        return 0.0, f"first call(s) malformed: {', '.join(f'{c.name}:{c.status}' for c in bad)}"
    tool_ok, tool_why = _targets_ok(view, r1.calls)
    vals = [v for v in _arg_values(r1.calls) if informative(v)]
    grounded, g_why = _mentioned(view.query, vals, 0.5, "{hit}/{n} argument values appear in the query",
                                 "no informative argument values to check")
    return _both(tool_ok, grounded), f"{tool_why}; {g_why}"


def initial_plan(view: TranscriptView) -> Score:
    if not view.rounds:
        return 0.0, "no assistant turn"
    r1 = view.rounds[0]
    has_plan = _n_words(r1.text) >= 6
    valid = bool(r1.calls) and not any(c.malformed for c in r1.calls)
    order_ok, order_why = _targets_ok(view, r1.calls) if r1.calls else (False, "no first call")
    act = valid and order_ok
    score = _both(has_plan, act)
    plan_why = "states a plan" if has_plan else "states no plan before calling"
    act_why = "first calls valid" if valid else "first calls missing or malformed"
    return score, f"{plan_why}; {act_why}; {order_why}"


def _fresh_values(view: TranscriptView, results: list[CallView]) -> list:
    """Informative values of successful results that were not already in the query."""
    out = []
    for c in results:
        for v in scalars(c.value):
            if informative(v) and not mentions(view.query, v):
                out.append(v)
    return out


def round_understanding(view: TranscriptView, r: RoundView, prev: RoundView) -> Score:
    ok_prev = [c for c in prev.calls if c.ok]
    failed_prev = [c for c in prev.calls if not c.ok]
    keys_ok = {c.key for c in ok_prev}
    hard_keys = {c.key for c in failed_prev if not c.transient}
    if any(c.key in keys_ok for c in r.calls):
        return 0.0, f"round {r.index} repeats a call whose result it already has"
    if any(c.key in hard_keys for c in r.calls):
        return 0.0, f"round {r.index} repeats a call that failed with a non-transient error"
    parts, good = [], 0
    checks = 0
    if ok_prev:
        checks += 1
        fresh = _fresh_values(view, ok_prev)
        text = r.text + " " + " ".join(c.raw_arguments for c in r.calls)
        if not fresh:
            good += 1
            parts.append("previous results hold no new values to use")
        elif any(mentions(text, v) for v in fresh[:300]):
            good += 1
            parts.append("uses values returned in the previous round")
        else:
            parts.append("does not use any value the previous round returned")
    if failed_prev:
        checks += 1
        transient_keys = {c.key for c in failed_prev if c.transient}
        cur = {c.key for c in r.calls}
        if transient_keys & cur:
            good += 1
            parts.append("retries the call that failed transiently")
        elif r.calls or r.text:
            good += 1
            parts.append("reacts to the failed call(s) without repeating them blindly")
        else:
            parts.append("ignores the failed call(s)")
    if checks == 0:
        return 0.5, f"round {r.index}: nothing to check"
    score = 1.0 if good == checks else 0.5 if good else 0.0
    return score, f"round {r.index}: " + "; ".join(parts)


def round_planning(view: TranscriptView, r: RoundView, redundant: set[str]) -> Score:
    if r.is_answer:
        if not view.target_tools:
            return (1.0, f"round {r.index}: stops and answers after valid results") if any(
                c.ok for c in view.calls) else (0.5, f"round {r.index}: answers without any valid result")
        done = {c.name for c in view.calls if c.ok and c.round < r.index}
        missing = [t for t in view.target_tools if t not in done]
        if not missing:
            return 1.0, f"round {r.index}: answers once every target tool returned a valid result"
        return 0.5, f"round {r.index}: answers although {', '.join(missing)} never returned a valid result"
    has_text = _n_words(r.text) >= 3
    valid = not any(c.malformed or c.id in redundant for c in r.calls)
    score = _both(has_text, valid)
    return score, (f"round {r.index}: " + ("states its next step" if has_text else "no reasoning text")
                   + "; " + ("calls valid and non-redundant" if valid else "malformed or redundant calls"))


def necessity(view: TranscriptView, call: CallView, retry_of_transient: bool) -> Score:
    if retry_of_transient:
        return 1.0, f"{call.id}: retry after a transient error"
    if view.target_tools and call.name in view.target_tools:
        return 1.0, f"{call.id}: {call.name} is a target tool of the task"
    later_text = []
    seen = False
    for c in view.calls:
        if seen:
            later_text.append(c.raw_arguments)
        if c is call:
            seen = True
    later_text.append(view.final_answer or "")
    later = " ".join(later_text)
    vals = [v for v in scalars(call.value) if informative(v) and not mentions(view.query, v)]
    if call.ok and vals and any(mentions(later, v) for v in vals[:300]):
        return 1.0, f"{call.id}: its result is used later"
    if not view.target_tools:
        return 0.5, f"{call.id}: necessity undetermined (no target tools recorded, result not reused)"
    return 0.0, f"{call.id}: {call.name} is not a target tool and its result is never used"


_QUOTED = re.compile(r"[\"“«']([^\"”»']{2,60})[\"”»']")
_CAPS = re.compile(r"\b[A-Z][\w-]*[A-Z0-9][\w-]*\b|\b[A-Z][a-z]{2,}\b")
_ID = re.compile(r"\b[A-Za-z]{1,6}-\d{2,}\b")
_SENT_START = re.compile(r"(^|[.!?:]\s+)([A-Z][a-z]+)")


def _salient_terms(query: str) -> list[str]:
    terms = [m.group(1) for m in _QUOTED.finditer(query)]
    starts = {m.group(2) for m in _SENT_START.finditer(query)}
    terms += [w for w in _CAPS.findall(query) if w not in starts]
    terms += [m.group(0) for m in _ID.finditer(query)]
    terms += [str(n) for n in numbers_in(query)]
    seen, out = set(), []
    for t in terms:
        k = t.lower()
        if k not in seen:
            seen.add(k)
            out.append(t)
    return out


def final_relevance(view: TranscriptView) -> Score:
    answer = view.final_answer or ""
    ok_calls = [c for c in view.calls if c.ok]
    if not ok_calls:
        grounded, g_why = False, "no valid tool result to report"
    else:
        last_round = max(c.round for c in ok_calls)
        vals = [v for c in ok_calls if c.round == last_round for v in scalars(c.value) if informative(v)]
        grounded = not vals or any(mentions(answer, v) for v in vals[:300])
        g_why = "states values of the last results" if grounded else "states none of the last results' values"
    terms = [_number_or_text(t) for t in _salient_terms(view.query)]
    covered, c_why = _mentioned(answer, terms, 0.3, "covers {hit}/{n} salient query terms",
                                "no salient query terms to check")
    return _both(grounded, covered), f"{g_why}; {c_why}"


def _number_or_text(term: str) -> float | str:
    try:
        return float(term)
    except ValueError:
        return term


_CLAIM_ID = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{3,}\b")


def final_faithfulness(view: TranscriptView) -> Score:
    answer = view.final_answer or ""
    evidence = " ".join([view.query, *(c.result or "" for c in view.calls if c.ok),
                         *(c.raw_arguments for c in view.calls)])
    ev_nums = numbers_in(evidence)
    claims: list[tuple[str, bool]] = []
    for n in numbers_in(answer):
        if n in (0.0, 1.0) or (1 <= n <= 20 and float(n).is_integer()):
            continue  # counts and list numbering
        claims.append((f"{n:g}", any(abs(n - e) <= 1e-6 * max(1.0, abs(e)) or round(e, 1) == n or round(e) == n
                                     for e in ev_nums)))
    ev_low = evidence.lower()
    for m in _CLAIM_ID.finditer(answer):
        tok = m.group(0)
        if re.fullmatch(r"[\d.,-]+", tok):
            continue
        claims.append((tok, tok.lower() in ev_low))
    if not claims:
        return 0.5, "the answer states no numbers or identifiers to check against the tool results"
    ok = sum(1 for _, s in claims if s)
    share = ok / len(claims)
    unsupported = [c for c, s in claims if not s][:5]
    score = 1.0 if share == 1.0 else 0.5 if share >= 0.7 else 0.0
    why = f"{ok}/{len(claims)} stated numbers/identifiers are found in the tool results or the query"
    if unsupported:
        why += f" (unsupported: {', '.join(unsupported)})"
    return score, why
