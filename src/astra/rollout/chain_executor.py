"""The offline teacher: solve a chain-conditioned task by executing its plan for real.

No LLM is involved (except the emulator, for doc-only servers). The task's plan
(``Task.arguments`` in the ``astra.plan/v1`` format of :mod:`astra.tasks.plan`: per step the
tool, the user-supplied arguments and the arguments derived from earlier results) is run
step by step through the same :class:`~astra.rollout.toolset.ToolSet` an LLM agent uses, and
written as the trajectory an ideal agent would produce:

1. the first assistant turn states the plan (every step with its arguments; derived ones as
   ``<step k: path>``) and makes the first call(s);
2. every later turn says what the previous result gave (values taken from it) and makes
   the next call(s); consecutive independent read-only steps (``get_``/``list_``/
   ``search_``/… with no data flow between them) are made as parallel calls in one turn;
3. a call that fails with a transient error (an injected timeout / unavailable / rate
   limit, an emulator failure, a real timeout) is retried up to ``retries`` times, with a
   sentence saying so; a non-transient error ends the rollout as a failure
   (``chain_step_failed``), as does a derived value missing from a result
   (``derived_value_missing``) or retries running out (``tool_failed_after_retries``);
4. the final answer lists, per step, the values the tool actually returned, framed by
   sentences in the task's language (:mod:`astra.rollout.phrases`).

Derived values are found by following the plan's path into the result; when the result is
shaped differently (an emulated result, an MCP ``{"result": ...}`` wrapper), the last key
of the path is looked up anywhere in the result (recorded as ``meta.derived_fallbacks``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from astra.pipeline.failures import is_endpoint_failure
from astra.rollout.agent import AgentRun, RolloutFailure, initial_messages
from astra.rollout.backends import BackendUnavailable
from astra.rollout.phrases import normalize_language, phrases
from astra.rollout.toolset import ToolSet
from astra.tasks.plan.execute import MISSING, follow_path
from astra.tasks.plan.format import Plan
from astra.types import Task, ToolServer

READ_ONLY = re.compile(r"^(get|list|search|find|check|view|read|lookup|fetch|geocode|query|show|describe)_")
MAX_PARALLEL = 3


def load_plan(task: Task) -> Plan:
    """The task's :class:`astra.tasks.plan.Plan`; raises :class:`RolloutFailure` (``no_plan``)."""
    try:
        return Plan.from_arguments(task.arguments)
    except (ValueError, TypeError) as e:
        raise RolloutFailure("no_plan", f"task {task.id} has no executable plan in its arguments ({e})") from None


# ---------------------------------------------------------------------------------
# Derived values
# ---------------------------------------------------------------------------------


def _find_key(value: Any, key: str, *, collect: bool) -> Any:
    """The first value of ``key`` anywhere in ``value`` (breadth first), or every value of
    it across list items when ``collect``."""
    found: list[Any] = []
    frontier = [value]
    while frontier:
        nxt: list[Any] = []
        for v in frontier:
            if isinstance(v, dict):
                if key in v and v[key] is not None:
                    if not collect:
                        return v[key]
                    found.append(v[key])
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        if found:
            return found
        frontier = nxt
    return MISSING


def resolve_derived(result: Any, path: list[Any]) -> tuple[Any, bool]:
    """``(value, used_fallback)``; value is ``MISSING`` when nothing fits."""
    value = follow_path(result, path)
    if value is not MISSING and value is not None:
        return value, False
    if isinstance(result, dict) and set(result) == {"result"}:
        value = follow_path(result["result"], path)
        if value is not MISSING and value is not None:
            return value, True
    keys = [k for k in path if isinstance(k, str) and k != "*"]
    if not keys:
        return MISSING, True
    return _find_key(result, keys[-1], collect="*" in path), True


# ---------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------


def _short(v: Any, n: int = 80) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[: n - 1] + "…"


def _arg_text(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False) if isinstance(v, str) else _short(v)


_LABEL_KEYS = ("name", "title", "city", "subject", "event", "description")


def _item_label(item: Any) -> str:
    if not isinstance(item, dict):
        return _short(item, 60)
    ident = next((str(v) for k, v in item.items() if re.search(r"(^|_)(id|code)$", k) and _scalar(v)), None)
    label = next((str(item[k]) for k in _LABEL_KEYS if _scalar(item.get(k)) and item.get(k) not in ("", None)), None)
    if ident and label:
        return f"{ident} ({_short(label, 60)})"
    if ident or label:
        return _short(ident or label, 60)
    scalars = [f"{k}={_short(v, 30)}" for k, v in item.items() if _scalar(v)][:3]
    return ", ".join(scalars) or _short(item, 60)


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float | bool) and not isinstance(v, dict | list)


def summarize(value: Any, ph: dict[str, str], *, max_fields: int = 6, max_items: int = 3,
              skip: set[str] | None = None) -> str:
    """A compact, grounded rendering of a tool result (values copied from it). ``skip``
    collects the ``key=value`` pairs already shown, which are not repeated."""
    if isinstance(value, dict) and set(value) == {"result"}:
        value = value["result"]
    if value is None or value == [] or value == {} or value == "":
        return ph["none"]
    if isinstance(value, list):
        head = ph["results_n"].format(n=len(value))
        items = "; ".join(_item_label(x) for x in value[:max_items])
        more = ", …" if len(value) > max_items else ""
        return f"{head}: {items}{more}"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if v is None:
                continue
            if _scalar(v):
                pair = f"{k}={_short(v, 60)}"
                if skip is not None:
                    if pair in skip:
                        continue
                    skip.add(pair)
                parts.append(pair)
            elif isinstance(v, list):
                parts.append(f"{k}=[{'; '.join(_item_label(x) for x in v[:2])}{', …' if len(v) > 2 else ''}]"
                             if v else f"{k}=[]")
            if len(parts) >= max_fields:
                break
        return ", ".join(parts) or _short(value, 120)
    return _short(value, 200)


def _group(plan: Any) -> list[list[int]]:
    """Steps in turns: consecutive independent read-only steps share a turn."""
    groups: list[list[int]] = []
    for i, step in enumerate(plan.steps):
        cur = groups[-1] if groups else None
        deps = {ref.step for ref in step.derived_args.values()}
        if (cur is not None and len(cur) < MAX_PARALLEL and READ_ONLY.match(step.tool)
                and all(READ_ONLY.match(plan.steps[j].tool) for j in cur) and not deps & set(cur)):
            cur.append(i)
        else:
            groups.append([i])
    return groups


def _step_line(plan: Any, i: int, ph: dict[str, str]) -> str:
    step = plan.steps[i]
    args = [f"{k}={_arg_text(v)}" for k, v in step.user_args.items()]
    for k, ref in step.derived_args.items():
        path = ".".join(str(p) for p in ref.path) or "result"
        args.append(f"{k}=<{ph['step']} {ref.step + 1}: {path}>")
    return f"{i + 1}. {step.tool}({', '.join(args)})"


# ---------------------------------------------------------------------------------
# The teacher
# ---------------------------------------------------------------------------------


async def run_chain_executor(task: Task, toolset: ToolSet, *, server: ToolServer | None = None,
                             retries: int = 2, max_turns: int = 20) -> AgentRun:
    """Execute the task's plan and write the trajectory; raises :class:`RolloutFailure`."""
    plan = load_plan(task)
    missing = [s.tool for s in plan.steps if toolset.tool(s.tool) is None]
    if missing:
        raise RolloutFailure("no_plan", f"the plan calls tools the server does not have: {', '.join(missing)}")
    lang, ph = phrases(task.language)
    messages = initial_messages(task, server)
    results: list[Any] = [None] * len(plan.steps)
    fallbacks = 0
    turn = 0
    retried = 0

    def fail(reason: str, detail: str) -> RolloutFailure:
        return RolloutFailure(reason, detail, meta={"turns": turn, **toolset.meta()})

    groups = _group(plan)
    for gi, group in enumerate(groups):
        pending = list(group)
        # arguments of this group's steps
        call_args: dict[int, dict[str, Any]] = {}
        for i in group:
            step = plan.steps[i]
            args = dict(step.user_args)
            for param, ref in step.derived_args.items():
                if not 0 <= ref.step < i:
                    raise fail("no_plan", f"step {i + 1} derives {param!r} from step {ref.step + 1}")
                value, fb = resolve_derived(results[ref.step], list(ref.path))
                if value is MISSING or value is None or value == []:
                    path = ".".join(str(p) for p in ref.path)
                    raise fail("derived_value_missing",
                               f"step {i + 1} ({step.tool}): no {path!r} in the result of step {ref.step + 1}")
                fallbacks += int(fb)
                args[param] = value
            call_args[i] = args
        # the text of the first attempt
        nums = ", ".join(str(i + 1) for i in group)
        if gi == 0:
            lines = [ph["plan_intro"], *(_step_line(plan, i, ph) for i in range(len(plan.steps)))]
            lines.append(ph["start"] if len(group) == 1 else ph["start_many"].format(steps=nums))
            text = "\n".join(lines)
        else:
            prev = groups[gi - 1]
            summary = "; ".join(summarize(results[j], ph, max_fields=4) for j in prev)
            text = (ph["next"].format(prev=prev[-1] + 1, summary=summary, i=group[0] + 1) if len(group) == 1
                    else ph["next_many"].format(summary=summary, steps=nums))
        attempt = 0
        tried: dict[int, list[str]] = {}  # each failed attempt of a step: its status (and why)
        while pending:
            turn += 1
            if turn > max_turns - 1:  # leave the last turn for the final answer
                raise fail("max_turns", f"the plan needs more than {max_turns} turns")
            calls: list[dict[str, Any]] = [{"id": f"call_{turn}_{k}", "name": plan.steps[i].tool,
                      "arguments": json.dumps(call_args[i], ensure_ascii=False), "step": i}
                     for k, i in enumerate(pending)]
            messages.append({"role": "assistant", "content": text, "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in calls]})
            failed: list[tuple[int, Any]] = []
            for c in calls:
                try:
                    out = await toolset.execute(c["id"], c["name"], c["arguments"], turn=turn)
                except BackendUnavailable as e:
                    if is_endpoint_failure(e):
                        raise
                    raise fail(e.reason, str(e)) from None
                messages.append({"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": out.content})
                if out.ok:
                    results[c["step"]] = out.value
                else:
                    failed.append((c["step"], out))
                    why = f" ({out.error[:160]})" if out.error and out.error != out.status else ""
                    tried.setdefault(c["step"], []).append(f"{out.status}{why}")
            if not failed:
                break
            hard = [(i, o) for i, o in failed if not o.transient]
            if hard:
                i, o = hard[0]
                raise fail("chain_step_failed", f"step {i + 1} ({plan.steps[i].tool}): {o.status}: {o.error}")
            if attempt >= retries:
                i, o = failed[0]
                raise fail("tool_failed_after_retries",
                           f"step {i + 1} ({plan.steps[i].tool}) still failing after {retries} retries: "
                           + "; ".join(tried.get(i) or [o.status]))
            attempt += 1
            retried += 1
            pending = [i for i, _ in failed]
            text = " ".join(ph["retry"].format(tool=plan.steps[i].tool, kind=o.injected or o.status)
                            for i, o in failed)
    # the grounded final answer
    lines = [ph["final_intro"]]
    shown: set[str] = set()
    last = len(plan.steps) - 1
    for i, step in enumerate(plan.steps):
        text = summarize(results[i], ph, max_fields=12 if i == last else 6, skip=shown)
        asked = ", ".join(f"{k}={_arg_text(v)}" for k, v in step.user_args.items())
        lines.append(f"- {step.tool}({asked}): {text}" if asked else f"- {step.tool}: {text}")
    lines.append(ph["final_outro"])
    messages.append({"role": "assistant", "content": "\n".join(lines)})
    meta = {"turns": turn + 1, "finish": "answer", "max_turns": max_turns, "retries": retried,
            "derived_fallbacks": fallbacks, "answer_language": lang,
            "language_fallback": lang != normalize_language(task.language), "plan_steps": len(plan.steps),
            **toolset.meta()}
    return AgentRun(messages=messages, meta=meta)
