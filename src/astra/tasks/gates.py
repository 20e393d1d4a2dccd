"""Gates of meaning: checks that reject a task outright, each with a named reason.

Scores (:mod:`astra.tasks.score`) rate a task; a gate says it is not a task at all.
``astra tasks score`` runs every gate on every task (whichever scorer) and stores what
fails under ``Task.scores["gates"]``; selection rejects a task with any failing gate under
the gate's reason (before thresholds). The trajectory judge runs the same gates on the
task a trajectory answers (:mod:`astra.judge.heuristics`).

===========================  ==============================================================
reason                       the task ...
===========================  ==============================================================
``placeholder_value``        states a placeholder value ("example", "string", "foo", "<id>",
                             "your_email", "lorem ipsum", "TBD" ...)
``type_invented_value``      states a value invented from the parameter's type rather than
                             its meaning (a person's name as a file name, a URL-less "url")
``boilerplate_echo``         echoes tool-description boilerplate ("this tool belongs to",
                             "the agent needs to", "tool description")
``ungrammatical``            has a broken sentence: a modal without a verb ("Can you this
                             ..."), doubled words or articles, a capital in mid-sentence,
                             unbalanced quotes or brackets, an empty value slot
``unmet_constraint``         states a bound the tool outputs break ("under 100" when the
                             price is 180) or contradictory bounds (at least 5, at most 1)
``contradicts_outputs``      states an identifier for a later step that differs from the one
                             an earlier step of its own plan returned
===========================  ==============================================================

Pure functions of the task (its query, plan and the dry run's per-step results in
``meta["step_results"]``); no model.
"""

from __future__ import annotations

import json
import re
from typing import Any

from astra.tasks.text import boilerplate_echo

GATES = ("placeholder_value", "type_invented_value", "boilerplate_echo", "ungrammatical", "unmet_constraint",
         "contradicts_outputs")

PLACEHOLDER_WORDS = frozenset("""
example examples sample string str text value values placeholder foo bar baz qux test testing dummy
xxx xyz abc tbd tbc todo n/a na none null nil undefined lorem ipsum unknown something anything
your_name your_email your_id my_value some_value param arg argument input default
""".split())
_PLACEHOLDER_RE = re.compile(r"^(?:<[^<>]{1,40}>|\{[^{}]{1,40}\}|\[[A-Za-z _-]{1,40}\]|your[_ ][a-z_ ]+|"
                             r"(?:example|sample|test|dummy|placeholder)[\w.-]*|x{3,}|lorem ipsum.*|\.\.\.+|[?]+)$",
                             re.IGNORECASE)
_TYPE_NAMES = frozenset("string str integer int number float boolean bool object dict array list null".split())
_PERSON_HINT = re.compile(r"^(?:name|full_?name|first_?name|last_?name|user_?name|display_?name)$|(?:^|_)(?:person|user|"
                          r"customer|passenger|guest|author|recipient|contact|owner|holder|traveler|traveller|"
                          r"assignee|sender|employee|patient|student|member|by)(?:_|$)", re.I)
_PERSON_VALUE = re.compile(r"^[A-Z][a-z]+(?:\s+[A-Z][a-z'-]+){1,2}$")


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _scalars(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _scalars(v)]
    return [value]


def is_placeholder(value: Any) -> bool:
    """Whether a stated value is a placeholder rather than a value a person would give."""
    if not isinstance(value, str):
        return False
    v = value.strip()
    if not v:
        return True
    low = v.lower()
    return low in PLACEHOLDER_WORDS or low in _TYPE_NAMES or bool(_PLACEHOLDER_RE.match(v))


def _user_values(task: Any) -> list[tuple[str, str, Any]]:
    out = []
    for step in (task.arguments or {}).get("steps") or []:
        if not isinstance(step, dict):
            continue
        for p, v in (step.get("user_args") or {}).items():
            for x in _scalars(v):
                out.append((str(step.get("tool")), str(p), x))
    return out


def placeholder_gate(task: Any) -> str | None:
    bad = [f"{t}.{p}={v!r}" for t, p, v in _user_values(task) if is_placeholder(v)]
    quoted = [q for q in re.findall(r"\"([^\"]{1,40})\"|'([^']{1,40})'", task.query) for q in q if q]
    bad += [f"quoted {q!r}" for q in quoted if is_placeholder(q)]
    return "; ".join(bad) if bad else None


def type_invented_gate(task: Any) -> str | None:
    """A person's name stated for a parameter that is not about a person (a file name, a
    folder, a symbol ...)."""
    bad = []
    for t, p, v in _user_values(task):
        if isinstance(v, str) and _PERSON_VALUE.match(v) and not _PERSON_HINT.search(p) and (
                re.search(r"file|folder|dir|path|symbol|code|id$|key|url", p, re.I)):
            bad.append(f"{t}.{p}={v!r} (a person's name)")
        if isinstance(v, str) and _PERSON_VALUE.match(v) and re.search(r"(^|_)(first|last|given|family)_?name$", p, re.I):
            bad.append(f"{t}.{p}={v!r} (a full name for one part of a name)")
        if isinstance(v, str) and _PERSON_VALUE.match(v) and re.search(r"number|passport|phone", p, re.I):
            bad.append(f"{t}.{p}={v!r} (a person's name as a number)")
        if isinstance(v, str) and re.search(r"birth", p, re.I) and re.match(r"^20[2-9]\d-", v):
            bad.append(f"{t}.{p}={v!r} (a birth date in the future)")
        if isinstance(v, str) and v.strip().lower() in _TYPE_NAMES:
            bad.append(f"{t}.{p}={v!r} (a type name)")
    return "; ".join(bad) if bad else None


_MODAL_NO_VERB = re.compile(r"\b(?:can|could|would|will)\s+you\s+(?:this|that|these|the|a|an|it|its|to|of|for|with|"
                            r"and|or|which|who)\b", re.IGNORECASE)
_PLEASE_NO_VERB = re.compile(r"^\s*(?:please|i need you to|i'd like you to)\s+(?:this|the|a|an|of|to|with)\b",
                             re.IGNORECASE)
_DOUBLE = re.compile(r"\b(\w{2,})\s+\1\b", re.IGNORECASE)
_DOUBLE_ART = re.compile(r"\b(?:a|an|the)\s+(?:a|an|the)\b", re.IGNORECASE)
_EMPTY_SLOT = re.compile(r"\b(?:with|to|for|named|called|saying|of)\s*(?:[,.;:?!]|$)|\"\"|''|\(\s*\)", re.IGNORECASE)
_MID_CAPITAL = re.compile(r"(?<=[a-z,;]\s)(?:Of|The|And|With|To|For|In)\s+(?:the|a|an|user|its)\b|"
                          r"(?:^|[.!?]\s+)(?:Of|With|And)\s+the\s+\w+(?:'s)?\s+\w+\s*[.!?]")


_THIRD_PERSON = re.compile(r"\b(?:you|to|please|can|could|would|will)\s+([a-z]{3,}(?:es|s))\s+(?:the|a|an|all|one|"
                           r"two|current|your|each)\b", re.IGNORECASE)
_SINGULAR_S = ("ss", "us", "is", "ous")


def grammar_gate(query: str) -> str | None:
    """What is broken in the sentence, or None."""
    q = query.strip()
    problems = []
    for t in _THIRD_PERSON.finditer(q):
        if not t.group(1).lower().endswith(_SINGULAR_S) and t.group(1).lower() not in ("this", "access", "process"):
            problems.append(f"a verb in the third person after {t.group(0).split()[0]!r}: {t.group(0)!r}")
            break
    m: re.Match[str] | None = _MODAL_NO_VERB.search(q) or _PLEASE_NO_VERB.search(q)
    if m:
        problems.append(f"no verb after {m.group(0)!r}")
    for d in _DOUBLE.finditer(q):
        if d.group(1).lower() not in ("that", "had", "very", "bye", "no"):
            problems.append(f"doubled word {d.group(0)!r}")
            break
    m = _DOUBLE_ART.search(q)
    if m:
        problems.append(f"doubled article {m.group(0)!r}")
    m = _EMPTY_SLOT.search(re.sub(r"\"[^\"]*\"", "\"x\"", q))
    if m and not re.search(r"\b(?:with|to|for|of)\s*[?!.]$", q[:m.end()]):
        problems.append(f"empty value slot {m.group(0)!r}")
    m = _MID_CAPITAL.search(q)
    if m:
        problems.append(f"capital in mid-sentence {m.group(0)!r}")
    if q.count('"') % 2:
        problems.append("unbalanced quotes")
    if q.count("(") != q.count(")"):
        problems.append("unbalanced brackets")
    return "; ".join(problems) if problems else None


def _results(task: Any) -> list[Any]:
    out = []
    for r in task.meta.get("step_results") or []:
        if isinstance(r, str):
            try:
                out.append(json.loads(r))
            except ValueError:
                out.append(None)
        else:
            out.append(r)
    return out


_BOUND = re.compile(r"\b(?:the\s+)?([a-z][a-z _]{1,30}?)\s+(?:is\s+)?(under|below|less than|at most|no more than|"
                    r"over|above|more than|at least)\s+\$?(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def _find_numbers(obj: Any, words: list[str], depth: int = 0) -> list[float]:
    out: list[float] = []
    if depth > 5:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            kw = str(k).lower().replace("_", " ")
            if isinstance(v, int | float) and not isinstance(v, bool) and all(w in kw for w in words):
                out.append(float(v))
            else:
                out += _find_numbers(v, words, depth + 1)
    elif isinstance(obj, list):
        for v in obj[:20]:
            out += _find_numbers(v, words, depth + 1)
    return out


def constraint_gate(task: Any) -> str | None:
    """Bounds the query states that the dry run's results break, and contradictory
    ``min_*``/``max_*`` values in the plan."""
    problems = []
    for step in (task.arguments or {}).get("steps") or []:
        ua = step.get("user_args") or {} if isinstance(step, dict) else {}
        for p, v in ua.items():
            if p.lower().startswith("min_") and isinstance(v, int | float):
                hi = ua.get("max_" + p[4:])
                if isinstance(hi, int | float) and hi <= v:
                    problems.append(f"{p}={v} >= max_{p[4:]}={hi} (an empty or one-point range)")
    results = _results(task)
    if results:
        for m in _BOUND.finditer(task.query):
            words = [w for w in m.group(1).lower().split() if w not in ("the", "a", "an", "its", "total")][-1:]
            if not words:
                continue
            bound = float(m.group(3))
            op = m.group(2).lower()
            upper = op in ("under", "below", "less than", "at most", "no more than")
            values = [x for r in results for x in _find_numbers(r, words)]
            if not values:
                continue
            ok = any((x <= bound if op in ("at most", "no more than") else x < bound) if upper else
                     (x >= bound if op == "at least" else x > bound) for x in values)
            if not ok:
                problems.append(f"'{m.group(0)}' but the results have {words[0]} {values[:3]}")
    return "; ".join(problems) if problems else None


def _idish(p: str) -> bool:
    return bool(re.search(r"(^|_)(id|ids|uuid|key|code)$", p.lower()))


def contradiction_gate(task: Any) -> str | None:
    """An identifier the user states for step j although an earlier step of the plan
    returned a different one for it (a bare id result, or the same key in a result)."""
    steps = (task.arguments or {}).get("steps") or []
    results = _results(task)
    problems = []
    for j, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        for p, v in (step.get("user_args") or {}).items():
            if not _idish(p) or not isinstance(v, str | int):
                continue
            for i in range(min(j, len(results))):
                r = results[i]
                returned: list[Any] = []
                if isinstance(r, str | int) and not isinstance(r, bool) and " " not in str(r):
                    returned = [r]
                elif isinstance(r, dict) and isinstance(r.get(p), str | int):
                    returned = [r[p]]
                if returned and v not in returned and str(v) not in json.dumps(r, default=str):
                    problems.append(f"{step.get('tool')}.{p}={v!r} but step {i} returned {returned[0]!r}")
    return "; ".join(problems) if problems else None


def task_gates(task: Any) -> list[dict[str, str]]:
    """Every failing gate of ``task`` as ``{"reason", "detail"}`` (empty: it passes)."""
    out = []
    for reason, fn in (("placeholder_value", placeholder_gate), ("type_invented_value", type_invented_gate),
                       ("boilerplate_echo", lambda t: boilerplate_echo(t.query)),
                       ("ungrammatical", lambda t: grammar_gate(t.query)),
                       ("unmet_constraint", constraint_gate), ("contradicts_outputs", contradiction_gate)):
        detail = fn(task)
        if detail:
            out.append({"reason": reason, "detail": str(detail)[:300]})
    return out


def trajectory_gates(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The gates a trajectory judge applies: the user query's (placeholder values quoted in
    it or passed in a call, boilerplate, grammar), its stated bounds against the tool
    results, and call arguments contradicting what earlier tool results returned (an
    identifier a result gave for that key, replaced by another that no message holds)."""
    from types import SimpleNamespace

    query = next((str(m.get("content") or "") for m in messages if m.get("role") == "user"), "")
    steps: list[dict[str, Any]] = []
    results: list[Any] = []
    seen_text = query
    for m in messages:
        if m.get("role") == "assistant":
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except (TypeError, ValueError):
                    args = {}
                if isinstance(args, dict):
                    steps.append({"tool": fn.get("name"), "user_args": args, "n_results": len(results),
                                  "seen": seen_text})
        elif m.get("role") == "tool":
            content = str(m.get("content") or "")
            seen_text += "\n" + content
            try:
                results.append(json.loads(content))
            except ValueError:
                results.append(content)
    pseudo = SimpleNamespace(query=query, arguments={"steps": steps},
                             meta={"step_results": results})
    out = []
    for reason, fn in (("placeholder_value", placeholder_gate), ("boilerplate_echo", lambda t: boilerplate_echo(t.query)),
                       ("ungrammatical", lambda t: grammar_gate(t.query)), ("unmet_constraint", constraint_gate)):
        detail = fn(pseudo)
        if detail:
            out.append({"reason": reason, "detail": str(detail)[:300]})
    problems = []
    for st in steps:
        for p, v in st["user_args"].items():
            if not _idish(p) or not isinstance(v, str | int) or str(v) in st["seen"]:
                continue
            earlier = [r for r in results[:st["n_results"]] if isinstance(r, dict) and isinstance(r.get(p), str | int)]
            if earlier:
                problems.append(f"{st['tool']}.{p}={v!r} but a result gave {earlier[-1][p]!r}")
    if problems:
        out.append({"reason": "contradicts_outputs", "detail": "; ".join(problems)[:300]})
    return out


__all__ = ["GATES", "trajectory_gates", "boilerplate_echo", "constraint_gate", "contradiction_gate", "grammar_gate", "is_placeholder",
           "placeholder_gate", "task_gates", "type_invented_gate"]
