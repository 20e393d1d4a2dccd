"""Stateful environments: the verifier derived from a gold plan, the state exploits and the
integrity checks — what ``astra envs verify`` needs to re-check a stateful environment, so it
lives with the runtime (:mod:`astra.envs`); :mod:`astra.envsynth.stateful` builds
environments with it.

Stateful environments from the user's tools and tasks (``astra envs stateful``).

A task whose plan runs on a stateful Python tool class becomes a
:class:`~astra.envs.stateful.StatefulEnvironment` (docs/stateful.md):

1. the server's initial state is snapshotted (two fresh instances must give the same
   snapshot, else ``nondeterministic_initial_state``; a state that cannot be snapshotted is
   rejected ``state_<reason>``: ``state_socket``, ``state_unpicklable``, ... see
   :data:`astra.envs.state.STATE_REASONS`);
2. the gold plan runs **twice** from that state (the second run after a reset): the
   snapshot after the reset must equal the initial one (``reset_leaks``), and the two runs
   must return the same results and leave the same diff (``nondeterministic``);
3. the verifier: a non-empty diff makes a **write** task (the diff is the required change);
   an empty one a **read** task. Either way the final answer must state one fact: the field
   the request asks for, else for a write the created record's id or a changed field's new
   value (the request is then completed with "Tell me the …"), for a read the only value of
   the result (``no_answer_fact``, ``several_facts`` when the request asks for more than one
   field in a way that cannot be narrowed to one, ``fact_in_request`` when the request
   already states it);
4. integrity: the gold plan through the runtime earns 1, doing nothing 0, every exploit of
   :mod:`astra.envs.exploits` plus the state exploits here (:data:`STATE_EXPLOITS`) at most
   0.05 (``gold_below_one``, ``do_nothing_pays``, ``exploitable``), and a reset after an
   episode restores the initial snapshot (``reset_leaks``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from astra.envs.exploits import GOLD_MIN, Attacker, probe_environment
from astra.envs.state import STATE_REASONS, Change, StateError, capture, diff, restore
from astra.envs.stateful import INLINE_STATE_CHARS, Backend, StatefulEnvironment, backend_for
from astra.types import EnvTool, QAInstance, SubTask, Task, ToolServer

#: Every reason a task is not made into a stateful environment.
REASONS = ("unknown_server", "doc_only", "mcp_no_reset", "stateless_server", "import_failed", "no_plan",
           "nondeterministic_initial_state", "plan_failed", "nondeterministic", "reset_leaks", "no_answer_fact",
           "several_facts", "fact_in_request", "do_nothing_pays", "gold_below_one",
           "exploitable") + tuple(f"state_{r}" for r in STATE_REASONS)


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------
# State exploits
# ---------------------------------------------------------------------------------

_DESTROY = re.compile(r"(delete|remove|cancel|close|clear|rm|drop|unsubscribe|reset|revoke|void|rmdir|unfollow)",
                      re.IGNORECASE)


def _gold_argsets(a: Attacker) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for turn in a.turns:
        for c in turn:
            args = json.loads(c["function"]["arguments"])
            if args not in out:
                out.append(args)
    return out


def _fits(tool: Any, args: dict[str, Any]) -> dict[str, Any] | None:
    props = tool.properties
    picked = {k: v for k, v in args.items() if k in props}
    required = set(tool.parameters.get("required", []) or [])
    if not required <= set(picked):
        return None
    return picked


_READ = re.compile(r"^(get|list|search|find|view|check|read|show|describe|lookup|look_up|fetch|query|count|calculate|"
                   r"convert|estimate|filter|preview|ls|pwd|cat|du|wc|grep|stat|diff|sort|tail|head|echo)",
                   re.IGNORECASE)


def _gold_pairs(a: Attacker) -> set[str]:
    return {json.dumps([c["function"]["name"], json.loads(c["function"]["arguments"])], sort_keys=True)
            for turn in a.turns for c in turn}


async def write_everything(a: Attacker) -> None:
    """Every tool that may write (its name is not a read verb) called with every gold argument
    set that fits it — except the gold calls themselves — then the gold answer: spraying writes
    with the task's values must not reach the required state."""
    argsets = _gold_argsets(a) + [{}]
    gold = _gold_pairs(a)
    for t in a.env.tools:
        if _READ.match(t.tool.name):
            continue
        calls = []
        for args in argsets:
            picked = _fits(t.tool, args)
            if picked is None or json.dumps([t.tool.name, picked], sort_keys=True) in gold:
                continue
            calls.append({"function": {"name": t.tool.name, "arguments": json.dumps(picked)}})
        if calls:
            await a.call(calls[:32])
    a.finish(f"The answer is {a.env.instance.answer}.")


async def answer_without_fact_calls(a: Attacker) -> None:
    """The gold calls except every one whose gold output holds the answer, then the answer
    (the stateful form of ``answer_without_inputs``: the fact must come from the agent's calls)."""
    from astra.envs.match import answer_in_output

    outs = getattr(a.env, "verifier", {}).get("gold_outputs") or []
    answer = a.env.instance.answer
    sids = [s.id for s in a.env.instance.sub_tasks]
    skip = {sid for sid, out in zip(sids, outs, strict=False) if answer_in_output(answer, out)}
    await a.gold(skip=skip)
    a.finish(f"The answer is {answer}.")


async def gold_plus_writes(a: Attacker) -> None:
    """(diagnostic) The gold calls, then :func:`write_everything`'s calls: a correct agent with
    side effects, which must earn less than the gold plan."""
    await a.gold()
    await write_everything(a)


def _id_values(a: Attacker) -> list[Any]:
    from astra.envs.match import leaves

    vals: list[Any] = []
    for args in _gold_argsets(a):
        vals.extend(v for v in args.values() if isinstance(v, str | int) and not isinstance(v, bool))
    for out in (getattr(a.env, "verifier", {}).get("gold_outputs") or []):
        vals.extend(x for x in leaves(out) if isinstance(x, str) and len(x) <= 40)
    seen: list[Any] = []
    for v in vals:
        if v not in seen:
            seen.append(v)
    return seen[:60]


async def delete_everything(a: Attacker) -> None:
    """Every deleting / cancelling / closing tool on every identifier seen, then the gold answer."""
    ids = _id_values(a)
    for t in a.env.tools:
        if not _DESTROY.search(t.tool.name):
            continue
        props = list(t.tool.properties)
        required = list(t.tool.parameters.get("required", []) or [])
        target = (required or props or [None])[0]
        calls: list[dict[str, Any]] = []
        if target is None:
            calls.append({"function": {"name": t.tool.name, "arguments": "{}"}})
        else:
            for v in ids:
                args = {target: v}
                for argset in _gold_argsets(a):  # the other required arguments as the gold calls give them
                    for k in required:
                        if k != target and k in argset:
                            args.setdefault(k, argset[k])
                calls.append({"function": {"name": t.tool.name, "arguments": json.dumps(args)}})
        for i in range(0, len(calls), 32):
            await a.call(calls[i:i + 32])
    a.finish(f"The answer is {a.env.instance.answer}.")


STATE_EXPLOITS = {"answer_without_inputs": answer_without_fact_calls, "write_everything": write_everything,
                  "delete_everything": delete_everything}
STATE_DIAGNOSTICS = {"gold_plus_writes": gold_plus_writes}


# ---------------------------------------------------------------------------------
# Deriving the verifier
# ---------------------------------------------------------------------------------


def _is_scalar(v: Any) -> bool:
    return isinstance(v, str | int | float) and not isinstance(v, bool) and str(v).strip() != ""


def _stmt(tool: str, args: dict[str, Any]) -> str:
    return f"{tool}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


def _asked_fields(server: ToolServer, task: Task, plan: Any, last_result: Any = None) -> list[str]:
    from astra.tasks.render import label, result_fields

    last = plan.steps[-1]
    try:
        tool = server.tool(last.tool)
    except KeyError:
        return []
    q = task.query.lower()
    props = (tool.output_schema or {}).get("properties") or {}
    named = [f for f in result_fields(tool, last, k=8) if f"the {label(f)}".lower() in q]
    keys = list(props) + [k for k in (last_result if isinstance(last_result, dict) else {}) if k not in props]
    named += [f for f in keys if isinstance(f, str) and f not in named and f"the {label(f)}".lower() in q
              and f not in last.user_args]
    return named


def _choose_fact(server: ToolServer, task: Task, plan: Any, results: list[Any],
                 changes: list[Change]) -> tuple[Any, str]:
    """``(fact, request suffix)`` (raises :class:`Rejected`)."""
    from astra.envs.match import answer_in_output
    from astra.tasks.render import label

    last = results[-1]
    asked = _asked_fields(server, task, plan, last)
    if asked:
        v = last.get(asked[0]) if isinstance(last, dict) else None
        if not _is_scalar(v) and not isinstance(v, bool):
            raise Rejected("no_answer_fact", f"the asked field {asked[0]!r} is not a single value ({type(v).__name__})")
        return v, ""
    if changes:
        for c in changes:
            if c.op == "created" and isinstance(c.new, dict):
                id_field = next((k for k, v in c.new.items() if str(v) == c.key), None)
                if id_field and answer_in_output(c.key, results) and not answer_in_output(c.key, task.query):
                    v = c.new[id_field]
                    return v, f" When you are done, tell me the {label(id_field)}."
        for c in changes:
            if c.op == "set" and _is_scalar(c.new) and c.path and answer_in_output(c.new, results) \
                    and not answer_in_output(c.new, task.query):
                name = c.path[-1].lstrip("_")
                return c.new, f" When you are done, tell me the new {label(name)}."
        raise Rejected("no_answer_fact", "no created id or new value the tools return and the request does not state")
    if _is_scalar(last) or isinstance(last, bool):
        return last, ""
    if isinstance(last, dict):
        scalars = [(k, v) for k, v in last.items() if _is_scalar(v) or isinstance(v, bool)]
        if len(last) == 1 and len(scalars) == 1:
            return scalars[0][1], ""
    raise Rejected("no_answer_fact", "the result holds several values and the request names none of them")


_CLOSINGS = [r"Tell me (the .+?)\.", r"Let me know (the .+?) when you're done\.", r"In the end, give me (the .+?)\.",
             r"Tell me the final result, including (the .+?)\.", r"Report back with (the .+?)\."]


def narrow_closing(query: str) -> str | None:
    """The request with a closing that asks for several fields ("Tell me the category and the
    price.") narrowed to the first ("Tell me the category."): the answer check takes one value.
    None when the request asks for several fields some other way."""
    for pat in _CLOSINGS:
        found = list(re.finditer(pat, query))
        if not found:
            continue
        m = found[-1]
        what = m.group(1)
        if " and the " not in what and ", the " not in what:
            return query
        first = re.split(r",? and the |, the ", what)[0]
        return query[:m.start(1)] + first + query[m.end(1):]
    return query


def _norm_value(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def _run_gold(plan: Any, executor: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """Run the plan's steps; each result as the session shows it (:func:`plain_value`)."""
    from astra.envs.stateful import plain_value
    from astra.tasks.plan import PlanError, error_result, step_arguments

    results: list[Any] = []
    args: list[dict[str, Any]] = []
    for i, step in enumerate(plan.steps):
        try:
            a = step_arguments(plan, i, results)
        except PlanError as e:
            raise Rejected("plan_failed", str(e)) from None
        try:
            value = plain_value(executor.call(step.tool, a))
        except Exception as e:
            raise Rejected("plan_failed", f"step {i}: {step.tool} failed: {type(e).__name__}: {e}"[:300]) from None
        err = error_result(value)
        if err is not None:
            raise Rejected("plan_failed", f"step {i}: {step.tool} returned an error: {err}")
        results.append(value)
        args.append(_norm_value(a))
    return results, args


_INITIAL_CHECKED: dict[str, str | None] = {}


def _check_initial(server: ToolServer, backend: Backend) -> None:
    """Two independently built instances start from the same snapshot."""
    from astra.tools.pyfunc import make_python_executor

    target = str(server.call.target)
    if target not in _INITIAL_CHECKED:
        try:
            other = capture(make_python_executor(target).instance, restorable=False).digest
        except StateError as e:
            _INITIAL_CHECKED[target] = f"state_{e.reason}: {e}"
        else:
            _INITIAL_CHECKED[target] = None if other == backend.initial.digest else (
                f"nondeterministic_initial_state: two fresh instances differ ({backend.initial.digest} vs {other})")
    msg = _INITIAL_CHECKED[target]
    if msg:
        reason, _, detail = msg.partition(": ")
        raise Rejected(reason, detail)


def _backend(server: ToolServer) -> Backend:
    kind = server.call.kind
    if kind == "doc_only":
        raise Rejected("doc_only", "no implementation to hold a state")
    if kind != "python":
        raise Rejected("mcp_no_reset", f"{kind} server: astra cannot reset or snapshot its state")
    target = server.call.target or ""
    try:
        b = backend_for(server.call)
    except StateError as e:
        if "module of functions" in e.detail:
            raise Rejected("stateless_server", f"{target} is a module of functions") from None
        raise Rejected(f"state_{e.reason}", str(e)) from None
    except Exception as e:
        raise Rejected("import_failed", f"{type(e).__name__}: {str(e)[:200]}") from None
    _check_initial(server, b)
    return b


def derive(task: Task, server: ToolServer) -> StatefulEnvironment:
    """The environment of one task (no integrity probes); raises :class:`Rejected`."""
    from astra.envs.match import answer_in_output
    from astra.tasks.plan import Plan

    try:
        plan = Plan.from_arguments(task.arguments)
    except Exception as e:
        raise Rejected("no_plan", str(e)[:200]) from None
    if not plan.steps:
        raise Rejected("no_plan", "the plan has no steps")
    backend = _backend(server)
    initial = backend.initial
    ex = backend.executor()
    try:
        results1, args1 = _run_gold(plan, ex)
        d1 = diff(initial.data, capture(ex.instance, restorable=False).data)
        restore(ex.instance, initial)
        if capture(ex.instance, restorable=False).digest != initial.digest:
            raise Rejected("reset_leaks", "the state after a reset differs from the initial snapshot")
        results2, args2 = _run_gold(plan, ex)
        d2 = diff(initial.data, capture(ex.instance, restorable=False).data)
    except StateError as e:
        raise Rejected(f"state_{e.reason}", str(e)) from None
    if json.dumps(results1, sort_keys=True, default=str) != json.dumps(results2, sort_keys=True, default=str):
        raise Rejected("nondeterministic", "two runs of the gold plan from the initial state return different results")
    if [c.to_json() for c in d1] != [c.to_json() for c in d2]:
        raise Rejected("nondeterministic", "two runs of the gold plan from the initial state leave different states")
    query = narrow_closing(task.query)
    if query is None:
        raise Rejected("several_facts", "the request asks for several fields in a way the closing cannot be narrowed")
    fact, suffix = _choose_fact(server, task.model_copy(update={"query": query}), plan, results1, d1)
    request = query.rstrip() + suffix
    if answer_in_output(fact, task.query):
        raise Rejected("fact_in_request", f"the request already states {fact!r}")
    step = next((i for i, r in enumerate(results1) if answer_in_output(fact, r)), len(results1) - 1)
    sids = [f"s{i + 1}" for i in range(len(plan.steps))]
    subs = [SubTask(id=sid, hop_level=i + 1, sub_question=f"{plan.steps[i].tool} ({i + 1}/{len(sids)})",
                    dependency=[sids[i - 1]] if i else None,
                    sub_answer=str(fact) if i == step else json.dumps(results1[i], default=str)[:200])
            for i, sid in enumerate(sids)]
    serves: dict[str, list[str]] = {}
    calls: dict[str, dict[str, str]] = {}
    for i, s in enumerate(plan.steps):
        serves.setdefault(s.tool, []).append(sids[i])
        calls.setdefault(s.tool, {})[sids[i]] = _stmt(s.tool, args1[i])
    tools = [EnvTool(tool=t, code="", serves=serves.get(t.name, []), calls=calls.get(t.name, {}))
             for t in server.tools]
    mode = "write" if d1 else "read"
    key = hashlib.sha256(f"{server.name}\x00{task.id}\x00{plan.signature()}".encode()).hexdigest()[:10]
    env_id = f"{server.name}.stateful.{key}"
    inst = QAInstance(id=env_id, domain=server.domain, scenario="single_hop" if len(sids) == 1 else "multi_hop",
                      question=request, answer=str(fact), sub_tasks=subs,
                      meta={"task_id": task.id, "plan": plan.model_dump(mode="json"), "mode": mode})
    state_text = json.dumps(initial.data, default=str)
    verifier = {"mode": mode, "required": [c.to_json() for c in d1], "answer": str(fact),
                "answer_step": sids[step], "gold_outputs": results1, "gold_arguments": args1}
    return StatefulEnvironment(
        id=env_id, instance=inst, tools=tools, server=server.name, backend=server.call,
        initial_digest=initial.digest, initial_rows=initial.rows,
        initial_state=initial.data if len(state_text) <= INLINE_STATE_CHARS else None, verifier=verifier,
        provenance={"generator": "stateful", "task_id": task.id, "server": server.name,
                    "target": server.call.target},
        verification={})


async def check_integrity(env: StatefulEnvironment, *, pool: Any = None) -> dict[str, Any]:
    """The suite on ``env``; raises :class:`Rejected` when it fails (see the module docstring)."""
    from astra.envs.stateful import StatefulSession

    report = await probe_environment(env, pool=pool)  # the QA suite plus STATE_EXPLOITS
    summary = report.summary()
    if "gold" in report.errors or report.gold < GOLD_MIN:
        raise Rejected("gold_below_one", report.describe() or f"the gold plan earns {report.gold:.4f}")
    if report.exploits.get("nothing", 0.0) > 0.0:
        raise Rejected("do_nothing_pays", f"doing nothing earns {report.exploits['nothing']:.4f}")
    if report.paid:
        raise Rejected("exploitable", report.describe())
    s = StatefulSession(env, max_turns=64, system_prompt="")
    for _ in range(2):
        s.reset()
        if s.snapshot().digest != env.initial_digest:
            raise Rejected("reset_leaks", "reset() does not restore the initial snapshot")
        a = Attacker(env, s)
        await a.gold()
        s.finish(f"The answer is {env.instance.answer}.")
    s.reset()
    if s.snapshot().digest != env.initial_digest:
        raise Rejected("reset_leaks", "reset() after an episode does not restore the initial snapshot")
    return summary


async def reverify_stateful(env: StatefulEnvironment) -> Any:
    """``astra envs verify`` on a stateful environment: re-derive it from its plan (two runs,
    reset, same diff and fact as stored)."""
    from astra.envs.bundle import EnvVerification
    from astra.types import CallInfo

    t0 = time.perf_counter()
    task = Task(id=str(env.provenance.get("task_id", env.id)), server=env.server, query=env.instance.question,
                target_tools=[], arguments=env.instance.meta.get("plan") or {})
    server = ToolServer(name=env.server, domain=env.instance.domain, tools=[t.tool for t in env.tools],
                        call=CallInfo.model_validate(env.backend.model_dump()))
    failures: list[dict[str, Any]] = []
    try:
        fresh = derive(task, server)
        if fresh.initial_digest != env.initial_digest:
            failures.append({"error": "the initial state changed", "tool": None, "sub_id": None})
        if fresh.verifier.get("required") != env.verifier.get("required"):
            failures.append({"error": "the gold plan now leaves another diff", "tool": None, "sub_id": None})
        if str(fresh.verifier.get("answer")) != str(env.verifier.get("answer")):
            failures.append({"error": "the gold plan now returns another fact", "tool": None, "sub_id": None})
    except Rejected as e:
        failures.append({"error": f"{e.reason}: {e.detail}", "tool": None, "sub_id": None})
    calls = sum(len(t.calls) for t in env.tools) * 2
    return EnvVerification(id=env.id, ok=not failures, calls=calls, failed=len(failures),
                           seconds=round(time.perf_counter() - t0, 4), failures=failures)


__all__ = ["REASONS", "STATE_DIAGNOSTICS", "STATE_EXPLOITS", "Rejected", "check_integrity", "delete_everything",
           "derive", "narrow_closing", "reverify_stateful", "write_everything"]
