"""Plan search: sampling user values for resolved steps from a :class:`ValuePool`
(:func:`sample_plan`), sampling while executing on a fresh executor (:func:`sample_and_run`),
and :func:`find_plans`, which looks for distinct plans whose dry run succeeds."""

from __future__ import annotations

import copy
import datetime as _dt
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from astra.tasks.plan.execute import Executor, PlanError, call_step, step_arguments
from astra.tasks.plan.format import Plan, PlanStep
from astra.tasks.plan.resolve import StepArgs, is_identifier
from astra.tasks.plan.schema import json_types
from astra.tasks.plan.values import QUERYISH, ValuePool, description_examples, realistic_values
from astra.types import Tool, ToolServer

_END_OF = {"check_out": "check_in", "checkout": "checkin", "end_date": "start_date", "to_date": "from_date",
           "return_date": "departure_date", "end": "start", "until": "since", "date_to": "date_from"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LIMITISH = re.compile(r"^(limit|offset|page|page_size|per_page|max_results|max_chars|top_k|k|n|size|cursor)$")
_END_WORDS = re.compile(r"(^|_)(end|to|until|return|dropoff|drop|out|checkout|last)(_|$)")
_START_WORDS = re.compile(r"(^|_)(start|from|since|pickup|departure|in|checkin|first|begin)(_|$)")


def _end_partner(param: str, params: list[str]) -> str | None:
    """The start parameter an end date pairs with: ``check_out`` -> ``check_in``,
    ``return_date`` -> ``pickup_date``, ``end_date`` -> ``start_date``."""
    p = param.lower()
    if p in _END_OF and _END_OF[p] in params:
        return _END_OF[p]
    if not _END_WORDS.search(p) or not ("date" in p or "check" in p or p in ("end", "until")):
        return None
    for q in params:
        ql = q.lower()
        if q != param and _START_WORDS.search(ql) and ("date" in ql or "check" in ql or ql in ("start", "since")):
            return q
    return None


def _skip_optional(param: str, schema: dict[str, Any]) -> bool:
    return bool(_LIMITISH.match(param.lower())) or "boolean" in json_types(schema)


def _step_user_args(sa: StepArgs, tool: Tool, pool: ValuePool, rng: random.Random, given: dict[str, Any], *,
                    optional_rate: float = 0.3, given_schemas: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The user values of one step drawn from ``pool`` (None when a required value has no
    candidate). ``given`` holds the values earlier steps stated (reused, and updated)."""
    given_schemas = given.setdefault("\0schemas", {}) if given_schemas is None else given_schemas
    params = list(sa.user_required)
    optional = [p for p in sa.user_optional if not _skip_optional(p, tool.properties.get(p) or {})]
    if not params and not sa.derived and optional:
        # a step with nothing to go on (a bare search) gets one concrete option
        queryish = [p for p in optional if QUERYISH.match(p.lower())]
        params.append(queryish[0] if queryish else rng.choice(optional))
    for p in optional:
        if p not in params and (p in given or rng.random() < optional_rate):
            params.append(p)
    args: dict[str, Any] = {}
    for p in params:
        if p in given and _same_meaning(given_schemas.get(p), tool.properties.get(p)):
            args[p] = given[p]
    # values that belong together (origin, destination and date of one flight)
    open_params = [p for p in params if p not in args]
    if len(open_params) >= 2 and pool.records:
        fits = [r for r in pool.records if sum(1 for p in open_params if p in r) >= 2]
        if fits and rng.random() < 0.9:
            rec = rng.choice(fits)
            for p in open_params:
                if p in rec:
                    typed = pool.typed([rec[p]], tool.properties.get(p) or {},
                                        json_types(tool.properties.get(p) or {}))
                    if typed:
                        args[p] = typed[0]
    for p in sorted(params, key=lambda x: _end_partner(x, params) is not None):
        if p in args:
            continue
        start = _end_partner(p, params)
        if start and isinstance(args.get(start), str) and _DATE.match(args[start]):
            d = _dt.date.fromisoformat(args[start]) + _dt.timedelta(days=rng.randint(2, 5))
            args[p] = d.isoformat()
            continue
        # an identifier the user could not know is never invented ("vehicle example")
        cands = pool.candidates(tool, p, fallback=not is_identifier(p))
        if not cands:
            if p in sa.user_required:
                return None
            continue
        # favour the first (most trustworthy) candidates a little
        idx = min(int(rng.expovariate(1 / 3.0)), len(cands) - 1) if rng.random() < 0.5 else \
            rng.randrange(len(cands))
        args[p] = cands[idx]
    _separate_pairs(args, tool, pool, rng)
    for p, v in args.items():
        if p not in given:
            given[p] = v
            given_schemas[p] = tool.param_schema(p)
    return {p: args[p] for p in tool.properties if p in args}


def _same_meaning(a: Any, b: Any) -> bool:
    """Whether two parameters of one name mean the same (an ``amount`` of shares is not an
    ``amount`` of money): same description, or similar ones by the graph's matcher."""
    da = str((a or {}).get("description") or "") if isinstance(a, dict) else ""
    db = str((b or {}).get("description") or "") if isinstance(b, dict) else ""
    if da == db or not da or not db:
        return True
    from astra.graph import dataflow

    if dataflow._MATCHER != "semantic":
        return True
    return dataflow.similarity(da, db) >= 0.6


def sample_plan(server: ToolServer, steps: list[StepArgs], pool: ValuePool, rng: random.Random, *,
                optional_rate: float = 0.3) -> Plan | None:
    """One plan for ``steps`` with user values drawn from ``pool`` (None when a required
    value has no candidate)."""
    plan_steps: list[PlanStep] = []
    given: dict[str, Any] = {}  # a value the user already stated is reused by later steps
    for sa in steps:
        tool = server.tool(sa.tool)
        ordered = _step_user_args(sa, tool, pool, rng, given, optional_rate=optional_rate)
        if ordered is None:
            return None
        plan_steps.append(PlanStep(tool=sa.tool, user_args=ordered, derived_args=dict(sa.derived)))
    return Plan(steps=plan_steps)


class _NoValue(Exception):
    pass


def sample_and_run(server: ToolServer, steps: list[StepArgs], pool: ValuePool, rng: random.Random,
                   factory: Callable[[], Executor], *, optional_rate: float = 0.3) -> tuple[Plan, list[Any]]:
    """Sample a plan step by step while executing it on one fresh executor: the values of
    step i are drawn from the pool *plus* what steps < i returned and what the
    parameter-free tools return in the state reached so far (probed on a copy of the
    executor, so the probes change nothing). So a file name comes from the directory the
    plan is in, an order id from the user the plan looked up. Raises :class:`PlanError`
    (a failing call) or :class:`_NoValue` (no candidate for a required value)."""
    ex = factory()
    live = pool.fork()
    plan_steps: list[PlanStep] = []
    results: list[Any] = []
    given: dict[str, Any] = {}
    for i, sa in enumerate(steps):
        tool = server.tool(sa.tool)
        if i > 0:
            live.absorb(server.tool(steps[i - 1].tool), results[-1])
            if pool.cheap_copies and server.call.kind == "python":
                live.probe(lambda: copy.deepcopy(ex))
        ordered = _step_user_args(sa, tool, live, rng, given, optional_rate=optional_rate)
        if ordered is None:
            raise _NoValue(f"step {i}: no candidate value for a required parameter of {sa.tool}")
        plan_steps.append(PlanStep(tool=sa.tool, user_args=ordered, derived_args=dict(sa.derived)))
        results.append(call_step(ex, i, sa.tool, step_arguments(Plan(steps=plan_steps), i, results)))
    return Plan(steps=plan_steps), results


def _separate_pairs(args: dict[str, Any], tool: Tool, pool: ValuePool, rng: random.Random) -> None:
    """``from_currency`` and ``to_currency`` (origin/destination, ``cityA``/``cityB``,
    ``file_name1``/``file_name2`` ...) get different values."""
    for p in list(args):
        m = re.fullmatch(r"(.+?)(A|1|_a|_1)", p)
        if m:
            for q in (m.group(1) + {"A": "B", "1": "2", "_a": "_b", "_1": "_2"}[m.group(2)],):
                if q in args and args[q] == args[p]:
                    others = [c for c in pool.candidates(tool, q) if c != args[p]]
                    if others:
                        args[q] = rng.choice(others[:10])
        pl = p.lower()
        for pre, other in (("from_", "to_"), ("source_", "target_"), ("origin", "destination")):
            if pl.startswith(pre):
                q = other + p[len(pre):] if pre.endswith("_") else other
                if q in args and args[q] == args[p]:
                    qs = tool.param_schema(q)
                    others = [c for c in pool.candidates(tool, q) + description_examples(qs)
                              + realistic_values(q, str(qs.get("description") or "")) if c != args[p]]
                    if others:
                        args[q] = rng.choice(others[:10])


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


@dataclass
class FoundPlan:
    plan: Plan
    results: list[Any] | None  # None when not executed (doc-only server)


def find_plans(server: ToolServer, steps: list[StepArgs], pool: ValuePool, rng: random.Random, n: int, *,
               factory: Callable[[], Executor] | None = None, max_tries: int | None = None,
               ) -> tuple[list[FoundPlan], list[str]]:
    """Up to ``n`` distinct plans; with an executor factory only plans whose dry run
    succeeds on a fresh executor (every call succeeds; a step given user values must not
    return an empty result). Returns the plans and the errors of failed attempts.

    When no attempt has succeeded after half the tries and some derived value was missing
    from an earlier result (``coupon_code`` is null in a fresh cart), those parameters are
    handed to the user instead and the search goes on; the plans record what they use."""
    found: list[FoundPlan] = []
    errors: list[str] = []
    seen: set[str] = set()
    missing: set[tuple[int, str]] = set()
    # a fresh executor that is slow to copy (a large database) gets fewer tries
    tries = max_tries if max_tries is not None else (max(24, 12 * n) if pool.cheap_copies or factory is None
                                                     else max(8, 4 * n))
    demoted = False
    for attempt in range(tries):
        if len(found) >= n:
            break
        if not found and not demoted and missing and attempt >= tries // 2:
            steps = _demote(steps, missing)
            demoted = True
        if factory is None:
            plan = sample_plan(server, steps, pool, rng)
            if plan is None:
                errors.append("no candidate value for a required parameter")
                continue
            sig = plan.signature()
            if sig in seen:
                continue
            seen.add(sig)
            found.append(FoundPlan(plan, None))
            continue
        try:
            plan, results = sample_and_run(server, steps, pool, rng, factory)
        except _NoValue as e:
            errors.append(str(e))
            continue
        except PlanError as e:
            errors.append(str(e))
            if e.param is not None:
                missing.add((e.step, e.param))
            continue
        sig = plan.signature()
        if sig in seen:
            continue
        seen.add(sig)
        empty = [i for i, (s, r) in enumerate(zip(plan.steps, results, strict=True)) if s.user_args and _empty(r)]
        if empty:
            errors.append(f"step {empty[0]}: {plan.steps[empty[0]].tool} returned nothing for the chosen values")
            continue
        found.append(FoundPlan(plan, results))
    return found, errors


def _demote(steps: list[StepArgs], missing: set[tuple[int, str]]) -> list[StepArgs]:
    out = []
    for i, sa in enumerate(steps):
        sa = StepArgs(tool=sa.tool, derived=dict(sa.derived), user_required=list(sa.user_required),
                      user_optional=list(sa.user_optional))
        for step, param in missing:
            if step == i and param in sa.derived:
                del sa.derived[param]
                sa.user_required.append(param)
        out.append(sa)
    return out
