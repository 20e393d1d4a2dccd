"""A trajectory read as rounds and calls, with every rule-decidable fact about each call.

Round ``j`` is the ``j``-th assistant message after the user's query together with the
tool results that answer its calls. A call's status comes from the rollout's record
(``meta.tool_calls``) when present, else from its tool message (an ``{"error": ...}``
object written by :mod:`astra.rollout.outcome`, or no answer at all); whether the tool
exists and whether the arguments fit its schema is re-checked here from the trajectory's
own ``tools`` list, so trajectories from elsewhere are judged by the same rules.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from astra.rollout.chain_executor import READ_ONLY
from astra.rollout.outcome import (
    BAD_JSON,
    FAILURE_KINDS,
    INJECTED_FAILURE,
    INVALID_ARGUMENTS,
    MALFORMED,
    OK,
    STATUSES,
    TOOL_ERROR,
    TRANSIENT,
    UNKNOWN_TOOL,
    UNREADABLE_CALL,
    parse_error_content,
)
from astra.rollout.validation import argument_errors, canonical_call, parse_arguments
from astra.types import Tool, Trajectory


@dataclass
class CallView:
    id: str
    name: str
    raw_arguments: str
    args: dict[str, Any] | None
    round: int
    defined: bool
    arg_errors: list[str]
    status: str
    transient: bool
    result: str | None
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def malformed(self) -> bool:
        return self.status in MALFORMED or not self.defined or bool(self.arg_errors)

    @property
    def key(self) -> str:
        return canonical_call(self.name, self.args if self.args is not None else self.raw_arguments)


@dataclass
class RoundView:
    index: int  # 1-based
    text: str
    calls: list[CallView] = field(default_factory=list)

    @property
    def is_answer(self) -> bool:
        return not self.calls


@dataclass
class TranscriptView:
    query: str
    rounds: list[RoundView]
    final_answer: str | None
    tools: dict[str, Tool]
    target_tools: list[str] | None
    language: str | None

    @property
    def calls(self) -> list[CallView]:
        return [c for r in self.rounds for c in r.calls]

    def tool_rounds(self) -> list[RoundView]:
        return [r for r in self.rounds if r.calls]


def _tools(traj: Trajectory) -> dict[str, Tool]:
    out: dict[str, Tool] = {}
    for entry in traj.tools:
        fn = entry.get("function", entry) if isinstance(entry, dict) else {}
        name = fn.get("name")
        if isinstance(name, str) and name not in out:
            params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else None
            out[name] = Tool(name=name, description=str(fn.get("description") or ""),
                             **({"parameters": params} if params else {}))
    return out


def _status_from_content(content: str | None) -> tuple[str, bool, str | None]:
    if content is None:
        return "no_response", False, "the call got no tool response"
    err = parse_error_content(content)
    if err is None:
        return OK, False, None
    kind = str(err.get("type") or "error")
    msg = str(err.get("message") or "")
    if kind in STATUSES:
        return kind, kind in TRANSIENT, msg
    if kind in FAILURE_KINDS:
        return INJECTED_FAILURE, True, msg
    return TOOL_ERROR, bool(err.get("retryable")), msg


def read_transcript(traj: Trajectory) -> TranscriptView:
    tools = _tools(traj)
    msgs = traj.messages
    query = ""
    start = 0
    for i, m in enumerate(msgs):
        if m.get("role") == "user":
            query = str(m.get("content") or "")
            start = i + 1
            break
    results: dict[str, str] = {}
    for m in msgs[start:]:
        if m.get("role") == "tool" and m.get("tool_call_id") is not None:
            results.setdefault(str(m["tool_call_id"]), str(m.get("content") or ""))
    recorded = {}
    for rec in (traj.meta or {}).get("tool_calls") or []:
        if isinstance(rec, dict) and rec.get("id") is not None:
            recorded[str(rec["id"])] = rec
    rounds: list[RoundView] = []
    for m in msgs[start:]:
        if m.get("role") != "assistant":
            continue
        r = RoundView(index=len(rounds) + 1, text=str(m.get("content") or "").strip())
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function", {}) if isinstance(tc, dict) else {}
            cid = str(tc.get("id") or "")
            name = str(fn.get("name") or "")
            raw = fn.get("arguments")
            raw_s = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            args, err = parse_arguments(raw)
            tool = tools.get(name)
            arg_errors = [err] if err else (argument_errors(tool, args) if tool is not None and args is not None
                                            else [])
            content = results.get(cid)
            rec = recorded.get(cid)
            if rec is not None and rec.get("status") in STATUSES:
                status, transient, error = rec["status"], bool(rec.get("transient")), rec.get("error")
            else:
                status, transient, error = _status_from_content(content)
            if tool is None:
                status, transient = (UNREADABLE_CALL if status == UNREADABLE_CALL else UNKNOWN_TOOL), False
            elif err:
                status, transient = (UNREADABLE_CALL if status == UNREADABLE_CALL else BAD_JSON), False
            elif arg_errors and status == OK:
                status = INVALID_ARGUMENTS
            value = None
            if status == OK and content is not None:
                try:
                    value = json.loads(content)
                except ValueError:
                    value = content
            r.calls.append(CallView(id=cid, name=name, raw_arguments=raw_s, args=args, round=r.index,
                                    defined=tool is not None, arg_errors=arg_errors, status=status,
                                    transient=transient, result=content, value=value, error=error))
        rounds.append(r)
    final = None
    last = msgs[-1] if msgs else {}
    if rounds and last.get("role") == "assistant" and rounds[-1].is_answer and rounds[-1].text:
        final = rounds[-1].text
    task = (traj.meta or {}).get("task") or {}
    targets = task.get("target_tools") if isinstance(task.get("target_tools"), list) else None
    return TranscriptView(query=query, rounds=rounds, final_answer=final, tools=tools, target_tools=targets,
                          language=task.get("language"))


# ---------------------------------------------------------------------------------
# Values (grounding checks)
# ---------------------------------------------------------------------------------

_NUM = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)?(?![\w])")


def scalars(value: Any, *, limit: int = 400) -> list[Any]:
    """Scalar leaves of a JSON value (strings and numbers; booleans and nulls left out)."""
    out: list[Any] = []
    stack = [value]
    while stack and len(out) < limit:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float):
            out.append(v)
        elif isinstance(v, str) and v.strip():
            out.append(v.strip())
    return out


def numbers_in(text: str) -> list[float]:
    out = []
    for m in _NUM.finditer(text or ""):
        try:
            out.append(float(m.group(0).replace(",", ".")))
        except ValueError:
            pass
    return out


def _num_match(a: float, b: float) -> bool:
    if math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9):
        return True
    # a rounded mention (49.1 for 49.12, 50 for 49.99 is not)
    for nd in (0, 1, 2):
        if round(b, nd) == a and a != 0:
            return True
    return False


def mentions(text: str, value: Any) -> bool:
    """Whether ``text`` states ``value`` (numbers with rounding tolerance, strings of >= 3
    characters case-insensitively; short strings only as whole words)."""
    if not text:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return any(_num_match(n, float(value)) for n in numbers_in(text))
    s = str(value).strip().lower()
    if not s:
        return False
    low = text.lower()
    if len(s) >= 3:
        return s in low
    return re.search(rf"(?<!\w){re.escape(s)}(?!\w)", low) is not None


def informative(v: Any) -> bool:
    """A value whose mention says something (not ``0``/``1``, not a 1-2 letter code)."""
    if isinstance(v, int | float):
        return abs(float(v)) not in (0.0, 1.0)
    return isinstance(v, str) and len(v) >= 3


def is_read_only(tool_name: str) -> bool:
    return bool(READ_ONLY.match(tool_name))


# ---------------------------------------------------------------------------------
# Rendering for the LLM judge
# ---------------------------------------------------------------------------------


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 20] + f" … [{len(text) - n + 20} chars cut]"


def render_rounds(view: TranscriptView, upto: int | None = None, *, result_chars: int = 1200) -> str:
    """Rounds 1..``upto`` as plain text (assistant text, calls with ids, results)."""
    lines = []
    for r in view.rounds:
        if upto is not None and r.index > upto:
            break
        lines.append(f"[round {r.index}] ASSISTANT: {r.text or '(no text)'}")
        for c in r.calls:
            lines.append(f"  CALL {c.id}: {c.name}({_clip(c.raw_arguments, 600)})")
        for c in r.calls:
            res = c.result if c.result is not None else "(no response)"
            lines.append(f"  RESULT {c.id} [{c.status}]: {_clip(res, result_chars)}")
    return "\n".join(lines)


def render_tools(view: TranscriptView, *, chars: int = 4000) -> str:
    text = "\n".join(f"- {t.name}: {t.description.splitlines()[0] if t.description else ''} "
                     f"params={json.dumps(t.properties, ensure_ascii=False)[:300]}" for t in view.tools.values())
    return _clip(text, chars)
