"""Execution plans: which concrete value every argument of every step of a task takes.

A task's :attr:`~astra.types.Task.arguments` holds its plan (format ``astra.plan/v1``)::

    {
      "format": "astra.plan/v1",
      "steps": [
        {"tool": "geocode_city", "user_args": {"city": "Tokyo"}, "derived_args": {}},
        {"tool": "get_current_weather", "user_args": {"units": "imperial"},
         "derived_args": {"latitude":  {"step": 0, "path": ["latitude"]},
                          "longitude": {"step": 0, "path": ["longitude"]}}}
      ],
      "mentions": ["Tokyo", "imperial"]
    }

- ``steps`` are the target tools in call order. The arguments of step ``i`` are its
  ``user_args`` (values the user states in the query) plus, for every entry of
  ``derived_args``, the value found in the *result* of the earlier step ``step`` by
  following ``path``: strings are object keys, integers list indices, and ``"*"`` maps the
  rest of the path over every item of a list (``{"step": 0, "path": ["*", "recipe_id"]}``
  is the list of all recipe ids of step 0's result). Parameters absent from both take the
  tool's defaults.
- ``mentions`` are the values the query states verbatim; an augmentation must keep each.

:func:`execute_plan` runs a plan against an executor (anything with
``call(tool_name, arguments)``, e.g. :func:`astra.tools.pyfunc.make_python_executor`) and
returns every step's result: that is how the generator's dry run proves a task solvable
and how a teacher can solve the task by executing the chain for real.

Which parameters are derived and which the user supplies is decided by
:func:`resolve_steps` (the graph's argument resolution from ``Chain.checks["args"]`` when
present, else data-flow matching of output fields to parameters). Concrete user values come
from :class:`ValuePool`: schema enums / examples / defaults, examples in parameter
descriptions, and for Python servers the implementation's seed data (module-level
constants) and the outputs of parameter-free tools (a probe run on a fresh instance).
"""

from __future__ import annotations

import copy
import datetime as _dt
import importlib
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from astra.types import Tool, ToolServer

PLAN_FORMAT = "astra.plan/v1"


class PlanError(Exception):
    """A plan that cannot be executed: a missing derived field or a failing tool call."""

    def __init__(self, step: int, message: str, *, param: str | None = None):
        super().__init__(f"step {step}: {message}")
        self.step = step
        self.param = param  # the derived parameter whose value was missing, if that was the failure


class Executor(Protocol):
    def call(self, tool_name: str, arguments: dict[str, Any] | None = None) -> Any: ...


# ---------------------------------------------------------------------------------
# The plan records
# ---------------------------------------------------------------------------------


class DerivedRef(BaseModel):
    """Where a derived argument comes from: ``path`` into the result of step ``step``."""

    model_config = ConfigDict(extra="forbid")

    step: int
    path: list[str | int] = Field(default_factory=list)


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str
    user_args: dict[str, Any] = Field(default_factory=dict)
    derived_args: dict[str, DerivedRef] = Field(default_factory=dict)


class Plan(BaseModel):
    """The ``Task.arguments`` payload (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    format: str = PLAN_FORMAT
    steps: list[PlanStep]
    mentions: list[Any] = Field(default_factory=list)

    @property
    def tools(self) -> list[str]:
        return [s.tool for s in self.steps]

    def user_values(self) -> dict[str, Any]:
        """Every user-supplied value by parameter name (first occurrence wins)."""
        out: dict[str, Any] = {}
        for s in self.steps:
            for k, v in s.user_args.items():
                out.setdefault(k, v)
        return out

    def signature(self) -> str:
        return json.dumps([[s.tool, s.user_args, {k: v.model_dump() for k, v in s.derived_args.items()}]
                           for s in self.steps], sort_keys=True, default=str)

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> Plan:
        """Read a plan from ``Task.arguments`` (raises ``ValueError`` when it is none)."""
        if not isinstance(arguments, dict) or "steps" not in arguments:
            raise ValueError("Task.arguments holds no plan (no 'steps')")
        return cls.model_validate(arguments)


# ---------------------------------------------------------------------------------
# Executing a plan
# ---------------------------------------------------------------------------------

_MISSING = object()


def follow_path(value: Any, path: list[str | int]) -> Any:
    """Follow ``path`` into ``value``; ``"*"`` maps the rest over a list. Returns a
    sentinel (checked by :func:`resolve_ref`) when the path does not exist."""
    cur = value
    for i, key in enumerate(path):
        if key == "*":
            if not isinstance(cur, list) or not cur:
                return _MISSING
            items = [follow_path(item, list(path[i + 1:])) for item in cur]
            items = [x for x in items if x is not _MISSING]
            return items if items else _MISSING
        if isinstance(key, int):
            if not isinstance(cur, list) or not -len(cur) <= key < len(cur):
                return _MISSING
            cur = cur[key]
        else:
            if not isinstance(cur, dict) or key not in cur:
                return _MISSING
            cur = cur[key]
    return cur


def resolve_ref(results: list[Any], ref: DerivedRef, *, step: int = -1, param: str | None = None) -> Any:
    if not 0 <= ref.step < len(results):
        raise PlanError(step, f"derived argument refers to step {ref.step}, which has not run", param=param)
    value = follow_path(results[ref.step], list(ref.path))
    if value is _MISSING or value is None:
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in ref.path)
        raise PlanError(step, f"the result of step {ref.step} has no value at {where or '(root)'}", param=param)
    return value


def step_arguments(plan: Plan, index: int, results: list[Any]) -> dict[str, Any]:
    """The full call arguments of step ``index`` given the results of the earlier steps."""
    step = plan.steps[index]
    args = copy.deepcopy(step.user_args)
    for param, ref in step.derived_args.items():
        args[param] = resolve_ref(results, ref, step=index, param=param)
    return args


def execute_plan(plan: Plan | dict[str, Any], executor: Executor) -> list[Any]:
    """Run every step of ``plan`` on ``executor`` (use a fresh one: tools are stateful).

    Returns each step's result; raises :class:`PlanError` naming the failing step when a
    derived value is missing or a tool call fails."""
    if not isinstance(plan, Plan):
        plan = Plan.from_arguments(plan)
    results: list[Any] = []
    for i, step in enumerate(plan.steps):
        results.append(call_step(executor, i, step.tool, step_arguments(plan, i, results)))
    return results


def call_step(executor: Executor, i: int, tool: str, args: dict[str, Any]) -> Any:
    """Call step ``i``'s tool; its JSON-able result, or :class:`PlanError` when the call
    raises or returns an error (:func:`error_result`)."""
    try:
        result = executor.call(tool, args)
    except Exception as e:  # noqa: BLE001 - ToolCallError or a bug in the tool: both fail the plan
        raise PlanError(i, f"{tool} failed: {type(e).__name__}: {e}") from None
    result = _jsonable(result)
    err = error_result(result)
    if err is not None:
        raise PlanError(i, f"{tool} returned an error: {err}")
    return result


_ERROR_TEXT = re.compile(r"^\s*(error|errors|exception|traceback|failed|failure)\b[:\s]", re.IGNORECASE)
_ERROR_KEYS = ("error", "errors", "error_message", "exception")


def error_result(result: Any) -> str | None:
    """The message when a tool *returned* an error instead of raising one: an object whose
    only or leading key is ``error`` (BFCL's backends: ``{"error": "No such file"}``), an
    MCP-style ``{"isError": true}``, or a text that starts with "Error:"; else None."""
    if isinstance(result, dict):
        if result.get("isError") is True or result.get("is_error") is True:
            return str(result.get("content") or result)[:200]
        for key in _ERROR_KEYS:
            if key in result and result[key] not in (None, "", [], {}, False) and (
                    len(result) <= 2 or next(iter(result)) == key):
                return str(result[key])[:200]
        return None
    if isinstance(result, str) and _ERROR_TEXT.match(result):
        return result.strip()[:200]
    return None


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


class ExecutorFactory:
    """Fresh executors for a Python server, cheaply: one pristine executor is built (and
    never called) and deep-copied for every session, so each copy starts from the
    implementation's initial state."""

    def __init__(self, target: str):
        from astra.tools.pyfunc import make_python_executor

        self.target = target
        self._make = make_python_executor
        self._pristine = make_python_executor(target)

    def __call__(self) -> Executor:
        try:
            return copy.deepcopy(self._pristine)
        except Exception:  # noqa: BLE001 - an instance that cannot be copied: build anew
            return self._make(self.target)


def executor_factory(server: ToolServer) -> Callable[[], Executor] | None:
    """A factory of fresh executors: a Python server's (a fresh instance each), a live MCP
    server's (:class:`MCPExecutor`: the same server, whose state the plan may change);
    None for a doc-only server."""
    if server.call.kind == "python" and server.call.target:
        return ExecutorFactory(server.call.target)
    if server.call.kind in ("mcp_stdio", "mcp_http", "mcp_sse") and server.call.target:
        call = server.call
        return lambda: MCPExecutor(call)
    return None


# ---------------------------------------------------------------------------------
# Schema helpers
# ---------------------------------------------------------------------------------


def json_types(schema: Any) -> set[str]:
    """The JSON types a schema admits (``null`` dropped)."""
    if not isinstance(schema, dict):
        return set()
    out: set[str] = set()
    t = schema.get("type")
    if isinstance(t, str):
        out.add(t)
    elif isinstance(t, list):
        out.update(x for x in t if isinstance(x, str))
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            out |= json_types(sub)
    if not out and isinstance(schema.get("enum"), list):
        out.update("string" if isinstance(v, str) else "number" for v in schema["enum"] if v is not None)
    out.discard("null")
    if "dict" in out:  # BFCL-style
        out.discard("dict")
        out.add("object")
    return out


def enum_values(schema: Any) -> list[Any]:
    if not isinstance(schema, dict):
        return []
    if isinstance(schema.get("enum"), list):
        return [v for v in schema["enum"] if v is not None]
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            vals = enum_values(sub)
            if vals:
                return vals
    return []


def _items_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if isinstance(schema.get("items"), dict):
        return schema["items"]
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            it = _items_schema(sub)
            if it:
                return it
    return {}


def _props(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if isinstance(schema.get("properties"), dict):
        return schema["properties"]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            p = _props(sub)
            if p:
                return p
    return {}


def schema_fields(schema: Any, *, max_depth: int = 4) -> list[tuple[list[str | int], str, dict[str, Any]]]:
    """Every field of an output schema as ``(path, name, field_schema)``; list items are
    reached through index 0. Shallow fields come first."""
    out: list[tuple[list[str | int], str, dict[str, Any]]] = []
    frontier: list[tuple[list[str | int], Any]] = [([], schema)]
    for _ in range(max_depth):
        nxt: list[tuple[list[str | int], Any]] = []
        for prefix, sub in frontier:
            if not isinstance(sub, dict):
                continue
            if "array" in json_types(sub) or ("items" in sub and "properties" not in sub):
                nxt.append(([*prefix, 0], _items_schema(sub)))
                continue
            for name, ps in _props(sub).items():
                ps = ps if isinstance(ps, dict) else {}
                out.append(([*prefix, name], name, ps))
                nxt.append(([*prefix, name], ps))
        frontier = nxt
    return out


def value_fields(value: Any, *, max_depth: int = 4) -> list[tuple[list[str | int], str, Any]]:
    """Every field of an actual result as ``(path, name, value)`` (lists through index 0)."""
    out: list[tuple[list[str | int], str, Any]] = []
    frontier: list[tuple[list[str | int], Any]] = [([], value)]
    for _ in range(max_depth):
        nxt: list[tuple[list[str | int], Any]] = []
        for prefix, v in frontier:
            if isinstance(v, list):
                if v:
                    nxt.append(([*prefix, 0], v[0]))
            elif isinstance(v, dict):
                for k, sub in v.items():
                    out.append(([*prefix, k], str(k), sub))
                    nxt.append(([*prefix, k], sub))
        frontier = nxt
    return out


# ---------------------------------------------------------------------------------
# Argument resolution: derived vs user-supplied
# ---------------------------------------------------------------------------------

_ID_RE = re.compile(r"(^|_)(id|ids|uuid|code|key)$")
_GENERIC = frozenset("name id type kind status value amount date description text query limit count total "
                     "currency category units title note content data message".split())


def is_identifier(name: str) -> bool:
    return bool(_ID_RE.search(name.lower()))


@dataclass
class StepArgs:
    """How the arguments of one step are obtained."""

    tool: str
    derived: dict[str, DerivedRef] = field(default_factory=dict)
    user_required: list[str] = field(default_factory=list)
    user_optional: list[str] = field(default_factory=list)


def _name_score(param: str, key: str, param_schema: dict[str, Any]) -> int:
    """How well an output field named ``key`` fills ``param`` (0 = not at all). Generic
    names (``text``, ``amount``, ``status`` ...) are never bound by name alone: the user
    states them. A field the parameter's description names ("a flight's destination_city
    works") scores higher."""
    p, k = param.lower(), key.lower()
    score = 0
    if p == k:
        score = 6 if p not in _GENERIC or is_identifier(p) else 0
    elif "array" in json_types(param_schema) and p in (k + "s", k + "es"):
        score = 6
    elif is_identifier(k) and p.endswith("_" + k):  # from_account_id <- account_id
        score = 4
    elif k.endswith("_" + p) and p not in _GENERIC:  # city <- destination_city
        score = 2
    if score and re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", str(param_schema.get("description") or "")):
        score += 1
    return score


def _types_ok(param_schema: dict[str, Any], field_schema: dict[str, Any]) -> bool:
    pt, ft = json_types(param_schema), json_types(field_schema)
    if not pt or not ft:
        return True
    num = {"number", "integer"}
    if pt & ft or (pt & num and ft & num):
        return True
    if "array" in pt:
        it = json_types(_items_schema(param_schema))
        return not it or bool(it & ft) or bool(it & num and ft & num)
    return False


def _mentions(text: str, name: str) -> bool:
    return bool(re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text or ""))


def _best_source(tools: list[Tool], i: int, param: str, pschema: dict[str, Any]) -> DerivedRef | None:
    """The best earlier output field for ``param`` of step ``i`` (best name match, then
    the most recent step, then the shallowest field). As in the graph's argument check, a
    value that is not an identifier is taken from an earlier step only when the
    parameter's description names that step's tool or the field ("as returned by
    geocode_city"); otherwise the user states it ("servings wanted")."""
    best: tuple[int, int, int, DerivedRef] | None = None
    desc = str(pschema.get("description") or "")
    for j in range(i - 1, -1, -1):
        for path, name, fschema in schema_fields(tools[j].output_schema):
            score = _name_score(param, name, pschema)
            if not score or not _types_ok(pschema, fschema):
                continue
            if not (is_identifier(param) or is_identifier(name) or _mentions(desc, tools[j].name)
                    or (name != param and _mentions(desc, name))):
                continue
            p = list(path)
            if "array" in json_types(pschema) and "array" not in json_types(fschema) and 0 in p:
                p[len(p) - 1 - p[::-1].index(0)] = "*"  # collect every item's value
            cand = (score, j, -len(p), DerivedRef(step=j, path=p))
            if best is None or cand[:3] > best[:3]:
                best = cand
    return best[3] if best else None


def _from_field_path(from_field: str, param_schema: dict[str, Any]) -> list[str | int]:
    """The graph's field path -> ours: ``items[].product_id`` -> ``["items", 0, "product_id"]``,
    ``[].recipe_id`` for a list parameter -> ``["*", "recipe_id"]``."""
    out: list[str | int] = []
    for name, brackets in re.findall(r"([^.\[\]]+)|(\[\])", from_field):
        out.append(0 if brackets else name)
    if "array" in json_types(param_schema) and 0 in out:
        out[len(out) - 1 - out[::-1].index(0)] = "*"
    return out


def _graph_resolution(tools: list[Tool], checks: dict[str, Any]) -> list[StepArgs] | None:
    """The graph's argument resolution from ``Chain.checks["args"]``
    (:func:`astra.graph.verify.resolve_args`: ``{"steps": [{"tool", "args": {param:
    {"source": "step", "step": i, "field": "[].product_id"} | {"source": "user", ...}}}]}``),
    or None when there is none we can read (the caller falls back to data-flow matching).
    The graph resolves required parameters only; optional ones stay the user's."""
    args = checks.get("args") if isinstance(checks, dict) else None
    if not isinstance(args, dict):
        return None
    steps = args.get("steps")
    if not isinstance(steps, list) or len(steps) != len(tools):
        return None
    out: list[StepArgs] = []
    try:
        for i, (tool, st) in enumerate(zip(tools, steps, strict=True)):
            if not isinstance(st, dict) or st.get("tool", tool.name) != tool.name:
                return None
            sa = StepArgs(tool=tool.name)
            for param, src in (st.get("args") or {}).items():
                if not isinstance(src, dict) or param not in tool.properties or src.get("source") != "step":
                    continue
                j = src.get("step")
                if not isinstance(j, int) or not 0 <= j < i:
                    continue
                pschema = tool.properties.get(param) or {}
                fld = src.get("field")
                path = list(src["path"]) if isinstance(src.get("path"), list) else \
                    _from_field_path(param if fld is None else str(fld), pschema)  # "" = the whole result
                sa.derived[param] = DerivedRef(step=j, path=path)
            sa.user_required = [p for p in tool.required if p not in sa.derived]
            sa.user_optional = [p for p in tool.properties if p not in tool.required and p not in sa.derived]
            out.append(sa)
    except (TypeError, AttributeError, ValueError, KeyError):
        return None
    return out


def resolve_steps(server: ToolServer, tool_names: list[str], checks: dict[str, Any] | None = None
                  ) -> list[StepArgs]:
    """Which arguments of each step come from earlier steps and which from the user.

    The single place that decides it: the graph stage's resolution in
    ``checks["args"]`` when present and readable, otherwise data-flow matching: a required
    parameter is derived when an earlier step's output schema has a field that fills it
    (same name; ``from_account_id`` <- ``account_id``; ``recipe_ids`` <- every
    ``recipe_id``; ``city`` <- ``destination_city``), preferring the most recent step. An
    optional identifier parameter is derived the same way; every other parameter is the
    user's. Raises ``KeyError`` for a tool the server does not have.
    """
    tools = [server.tool(n) for n in tool_names]
    graph = _graph_resolution(tools, checks or {})
    if graph is not None:
        return _dedupe_list_sources(graph)
    if len(tools) > 1:  # the graph's own argument resolution (bare results, lists of ids, meaning)
        from astra.graph.verify import resolve_args

        graph = _graph_resolution(tools, {"args": resolve_args(server, list(tool_names)).record})
        if graph is not None:
            for i, sa in enumerate(graph):  # optional identifiers: from an earlier step when one fits
                for param in list(sa.user_optional):
                    pschema = tools[i].properties.get(param)
                    if i > 0 and is_identifier(param) and isinstance(pschema, dict):
                        ref = _best_source(tools, i, param, pschema)
                        if ref is not None:
                            sa.derived[param] = ref
                            sa.user_optional.remove(param)
            return _dedupe_list_sources(graph)
    out: list[StepArgs] = []
    for i, tool in enumerate(tools):
        sa = StepArgs(tool=tool.name)
        for param, pschema in tool.properties.items():
            pschema = pschema if isinstance(pschema, dict) else {}
            required = param in tool.required
            if i > 0 and (required or is_identifier(param)):
                ref = _best_source(tools, i, param, pschema)
                if ref is not None:
                    sa.derived[param] = ref
                    continue
            (sa.user_required if required else sa.user_optional).append(param)
        out.append(sa)
    return _dedupe_list_sources(out)


def _dedupe_list_sources(steps: list[StepArgs]) -> list[StepArgs]:
    """Two parameters of one step drawn from the same list field take different items
    (``from_account_id`` the first account, ``to_account_id`` the second)."""
    for sa in steps:
        seen: set[str] = set()
        for param, ref in sa.derived.items():
            key = json.dumps([ref.step, ref.path])
            if key in seen and 0 in ref.path:
                path = list(ref.path)
                k = path.index(0)
                while json.dumps([ref.step, path]) in seen:
                    path[k] = int(path[k]) + 1
                sa.derived[param] = DerivedRef(step=ref.step, path=path)
                key = json.dumps([ref.step, path])
            seen.add(key)
    return steps


# ---------------------------------------------------------------------------------
# Concrete values
# ---------------------------------------------------------------------------------

PERSON_NAMES = ["Maya Chen", "Daniel Brooks", "Aisha Rahman", "Lukas Novak", "Sofia Marino", "Kenji Watanabe",
                "Grace Okoye", "Tomás Herrera", "Emily Carter", "Priya Nair", "Oliver Smith", "Hannah Schultz"]
ADDRESSES = ["14 Alder Lane, Portland, OR 97205", "221 Maple Street, Austin, TX 78701",
             "9 Harbor View Road, Seattle, WA 98101", "580 Pine Avenue, Denver, CO 80202",
             "37 Elm Court, Boston, MA 02116"]
EMAILS = ["maya.chen@example.com", "d.brooks@example.org", "aisha.rahman@example.net"]
TEXTS = {
    "content": ["Agenda: budget review, hiring plan, next steps.", "Reminder: send the weekly status report on Friday.",
                "Notes from today's call: the client approved the revised timeline."],
    "subject": ["Invoice shows the wrong total", "Cannot log in after the update", "Question about my last payment"],
    "description": ["Since this morning the invoice export stops halfway with an error.",
                    "I was charged twice for the same month and need a refund.",
                    "The password reset email never arrives."],
    "reason": ["ordered the wrong size", "found a better price elsewhere", "no longer needed"],
    "note": ["Customer confirmed by phone.", "Waiting on the payment processor.", "Follow up next week."],
    "memo": ["March rent top-up", "holiday savings", "emergency fund"],
    "text": ["Thanks for your patience, we are looking into it.", "Could you send a screenshot of the error?",
             "The fix has been deployed; please try again."],
    "message": ["Hello, just checking in on this.", "Please call me back when you can."],
    "title": ["Weekly summary", "Project kickoff notes"],
}
_TEXT_KEYS = {"comment": "text", "body": "text", "details": "description"}

#: Realistic values by what a parameter is (its name and description), for parameters
#: whose server holds no value and documents no example. Checked in order.
_REALISTIC: list[tuple[re.Pattern[str], list[Any]]] = [
    (re.compile(r"time ?zone|\bIANA\b|\btz\b", re.I), ["America/New_York", "Europe/London", "Asia/Tokyo",
                                                        "Europe/Berlin", "Australia/Sydney"]),
    (re.compile(r"currency|ISO 4217", re.I), ["USD", "EUR", "GBP", "JPY"]),
    (re.compile(r"country.?code|ISO 3166|alpha-2", re.I), ["US", "GB", "DE", "JP"]),
    (re.compile(r"\bcountry\b", re.I), ["France", "Japan", "Canada", "Brazil"]),
    (re.compile(r"language.?code|ISO 639|locale", re.I), ["en", "fr", "de", "es"]),
    (re.compile(r"\bIATA\b|airport.?code", re.I), ["JFK", "LAX", "SFO", "ORD", "LHR"]),
    (re.compile(r"ticker|stock.?symbol", re.I), ["AAPL", "MSFT", "NVDA", "AMZN"]),
    (re.compile(r"\bphone|telephone|mobile.?number", re.I), ["+1 415 555 0134", "+44 20 7946 0958"]),
    (re.compile(r"\burl\b|website|web page", re.I), ["https://www.python.org", "https://en.wikipedia.org/wiki/Lisbon"]),
    (re.compile(r"\b(zip|postal|post) ?code|\bzip\b", re.I), ["94105", "10001", "60601"]),
    (re.compile(r"HH:MM|24-hour|\btime of day\b", re.I), ["09:30", "14:45", "18:00"]),
    (re.compile(r"ISO 8601|date.?time|timestamp", re.I), ["2026-03-18T09:30:00", "2026-04-02T15:00:00"]),
    (re.compile(r"\bcity\b|\btown\b", re.I), ["Paris", "Tokyo", "Chicago", "Cape Town", "Lisbon"]),
    (re.compile(r"colou?r", re.I), ["blue", "red", "green"]),
]


_NUMBERS: list[tuple[re.Pattern[str], list[float]]] = [
    (re.compile(r"gallon|liter|litre|fuel|volume", re.I), [10.0, 15.0, 30.0]),
    (re.compile(r"amount|price|cost|fare|balance|fund|deposit|withdraw|payment|budget|salary|total|fee|usd|dollar",
                re.I), [250.0, 120.0, 75.5, 1200.0]),
    (re.compile(r"quantit|count|number of|passengers|guests|people|seats|rooms|nights|days|shares|copies|items|"
                r"servings|tickets|lines|limit|top", re.I), [2, 3, 5]),
    (re.compile(r"percent|threshold|rate|ratio", re.I), [5.0, 2.5, 10.0]),
    (re.compile(r"distance|mileage|\bkm\b|miles", re.I), [120.0, 45.5, 300.0]),
    (re.compile(r"temperature|celsius|fahrenheit", re.I), [21.0, 18.5, 25.0]),
    (re.compile(r"weight|\bkg\b|pounds", re.I), [2.5, 12.0]),
    (re.compile(r"\bage\b|year", re.I), [2024, 2025, 34]),
    (re.compile(r"\bnumbers?\b|\bvalue\b|\bbase\b|exponent|operand|\b[abxy]\b|dividend|divisor", re.I),
     [12.0, 7.0, 3.5, 9.0, 2.0]),
]


def _numbers_by_meaning(param: str, description: str) -> list[float] | None:
    """Plausible numbers for what a numeric parameter is (an amount of money, a count, a
    percentage ...), or None when its name and description say nothing."""
    words = re.split(r"[_\W]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", param))
    text = " ".join(words) + " " + description
    for pattern, values in _NUMBERS:
        if pattern.search(text):
            return list(values)
    return None


def realistic_values(param: str, description: str = "") -> list[Any]:
    """Realistic values for a parameter by what it is (time zone, currency, city, URL ...),
    or [] when it is nothing this table knows (no type-invented filler)."""
    text = f"{param.replace('_', ' ')} {description}"
    for pattern, values in _REALISTIC:
        if pattern.search(text):
            return list(values)
    return []

_QUERYISH = re.compile(r"^(query|q|keywords?|search|search_term|term|terms|search_query)$")
_PERSONISH = re.compile(r"(traveler|traveller|guest|passenger|holder|recipient|person|full|customer|contact)_?name$|"
                        r"^(name|full_name)$")
_THING_NAME = re.compile(r"\b(company|product|file|folder|directory|stock|city|country|item|project|branch|"
                         r"repository|repo|team|group|channel|category|brand|store|shop|hotel|airport|place)\b", re.I)
_END_OF = {"check_out": "check_in", "checkout": "checkin", "end_date": "start_date", "to_date": "from_date",
           "return_date": "departure_date", "end": "start", "until": "since", "date_to": "date_from"}
_EXAMPLE_SPAN = re.compile(r"(?:e\.g\.|such as|for example|for instance|like)\s*(.*?)(?:;|\)|\.(?:\s|$)|, as\b|$)",
                           re.IGNORECASE)
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")
_NUMBER = re.compile(r"(?<![\w.-])(-?\d+(?:\.\d+)?)(?![\w-])")
_RANGE = re.compile(r"\((\d+)\s*[-–]\s*(\d+)\)")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LIMITISH = re.compile(r"^(limit|offset|page|page_size|per_page|max_results|max_chars|top_k|k|n|size|cursor)$")


def description_examples(schema: dict[str, Any]) -> list[Any]:
    """Example values a parameter's description gives ("e.g. 'Tokyo' or 'Cape Town'",
    "such as 'ACC-1001'", "e.g. 250.0"), typed by the parameter's schema."""
    desc = str(schema.get("description") or "")
    types = json_types(schema)
    out: list[Any] = []
    for m in _EXAMPLE_SPAN.finditer(desc):
        span = m.group(1)
        quoted = [a or b for a, b in _QUOTED.findall(span)]
        if types & {"number", "integer"} and not quoted:
            for n in _NUMBER.findall(span):
                out.append(int(float(n)) if "integer" in types else float(n))
        elif quoted:
            out.extend(quoted)
    for key in ("examples",):
        if isinstance(schema.get(key), list):
            out.extend(schema[key])
    if "example" in schema:
        out.append(schema["example"])
    return out


def _singular(word: str) -> str:
    w = word.lower().strip("_")
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("ses") or w.endswith("xes"):
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float) and not isinstance(v, bool) and v != ""


class ValuePool:
    """Candidate concrete values for a server's parameters (see the module docstring)."""

    def __init__(self, server: ToolServer, factory: Callable[[], Executor] | None = None):
        self.server = server
        self.keyed: dict[str, list[Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.tables: dict[str, list[str]] = {}
        self.today: str | None = None
        #: descriptions of harvested keys (from the output schema of the tool that returned them)
        self.key_desc: dict[str, str] = {}
        #: keys whose values came as a list of scalars (``current_directory_content``)
        self.list_keys: set[str] = set()
        self._matched: dict[tuple[str, str, bool], list[Any]] = {}
        #: values returned during the plan being sampled (a fork's own)
        self.live: dict[str, list[Any]] = {}
        self._scores: dict[tuple[str, str, str, str, bool], float | None] = {}
        #: whether probing a copy of a live executor is cheap enough to do at every step
        self.cheap_copies = True
        if server.call.kind == "python" and server.call.target:
            self._scan_module(server.call.target)
        if factory is not None and server.call.kind == "python":  # MCP tools are never probed
            import time

            t0 = time.perf_counter()
            copy.deepcopy(factory())
            self.cheap_copies = time.perf_counter() - t0 < 0.05
            self._scan_instance(factory)
            self._probe(factory)

    def fork(self) -> ValuePool:
        """A copy to add a plan's live results to (the original is not changed)."""
        other = copy.copy(self)
        other.keyed = dict(self.keyed)  # lists are copied on the fork's first write (_add)
        other._owned = set()
        other.records = list(self.records)
        other.tables = {k: list(v) for k, v in self.tables.items()}
        other.key_desc = dict(self.key_desc)
        other.list_keys = set(self.list_keys)
        other._matched = {}
        other.live = {}
        other._scores = self._scores  # shared: a field/parameter pair scores the same in every fork
        return other

    def absorb(self, tool: Tool, result: Any) -> None:
        """Add what ``tool`` returned during a plan (its values come first for later steps)."""
        self._describe(tool)
        self._recording = True
        try:
            self._walk(_jsonable(result))
            if not isinstance(result, dict | list):
                from astra.graph.dataflow import output_fields

                fields = output_fields(tool)
                if fields and fields[0].path == "":
                    self._add(fields[0].name, result)
                    self.key_desc.setdefault(fields[0].name, fields[0].description)
        finally:
            self._recording = False
        self._matched = {}

    def _describe(self, tool: Tool) -> None:
        props = (tool.output_schema or {}).get("properties") if isinstance(tool.output_schema, dict) else None
        for k, sub in (props or {}).items():
            if isinstance(sub, dict) and sub.get("description"):
                self.key_desc.setdefault(k, str(sub["description"]))

    def _scan_instance(self, factory: Callable[[], Executor]) -> None:
        """The implementation's own data: the attributes of a fresh instance (a tau2 toolkit's
        database, a BFCL class's loaded scenario), walked for keyed values and records."""
        try:
            instance = getattr(factory(), "instance", None)
        except Exception:  # noqa: BLE001 - no instance data is not an error
            return
        if instance is None:
            return
        for name, value in list(vars(instance).items())[:50]:
            if name.startswith("__"):
                continue
            if hasattr(value, "model_dump"):
                try:
                    value = value.model_dump(mode="json")
                except Exception:  # noqa: BLE001
                    continue
            if isinstance(value, dict | list | tuple):
                self._walk(_jsonable(value), table=name.strip("_").lower())

    # -- collecting ---------------------------------------------------------------

    _recording = False
    _owned: set[str] | None = None  # a fork's keys whose lists it has copied

    def _add(self, key: str, value: Any) -> None:
        if not _scalar(value):
            return
        key = str(key)
        if self._recording:  # what the plan's own calls returned comes first later
            live = self.live.setdefault(key, [])
            if value not in live and len(live) < 200:
                live.append(value)
        vals = self.keyed.get(key)
        if vals is not None and (value in vals or len(vals) >= 200):
            return
        if self._owned is not None and key not in self._owned:
            vals = list(vals or [])
            self.keyed[key] = vals
            self._owned.add(key)
        elif vals is None:
            vals = self.keyed[key] = []
        vals.append(value)

    def _walk(self, obj: Any, depth: int = 0, table: str | None = None) -> None:
        if depth > 5:
            return
        if isinstance(obj, dict):
            if obj and all(isinstance(k, str) for k in obj) and all(isinstance(v, dict) for v in obj.values()):
                keys = list(obj)
                if table:
                    self.tables.setdefault(_singular(table), []).extend(k for k in keys if k not in
                                                                        self.tables.get(_singular(table), []))
                if all(k.startswith("/") for k in keys):
                    for k in keys:
                        self._add("path", k)
                for v in obj.values():
                    self._walk(v, depth + 1)
                return
            flat = {k: v for k, v in obj.items() if _scalar(v)}
            for sub in obj.values():  # a user's name and address belong to the user
                if isinstance(sub, dict):
                    for k2, v2 in sub.items():
                        if _scalar(v2):
                            flat.setdefault(k2, v2)
            if len(flat) >= 2 and len(self.records) < 2000:
                self.records.append(flat)
            for k, v in obj.items():
                if _scalar(v):
                    self._add(k, v)
                elif isinstance(v, list | tuple) and v and all(_scalar(x) for x in v[:50]):
                    self.list_keys.add(str(k))
                    for x in v[:50]:
                        self._add(k, x)
                elif isinstance(v, dict | list | tuple):
                    self._walk(v, depth + 1, table=k)
        elif isinstance(obj, list | tuple):
            for v in obj[:500]:
                if isinstance(v, dict | list | tuple):
                    self._walk(v, depth + 1)

    def _scan_module(self, target: str) -> None:
        mod_name = target.split(":", 1)[0]
        if mod_name.endswith(".py") or "/" in mod_name:
            return
        try:
            module = importlib.import_module(mod_name)
        except Exception:  # noqa: BLE001 - no seed data is not an error
            return
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            if isinstance(value, list | tuple | dict):
                self._walk(value, table=name.strip("_").lower())
            elif name.strip("_").upper() in ("TODAY", "NOW") and isinstance(value, str):
                self.today = value[:10]

    def _probe(self, factory: Callable[[], Executor]) -> None:
        """Call every tool that needs no argument (and once more with each boolean
        option switched on) on a fresh executor and collect what it returns."""
        for tool in self.server.tools:
            if tool.required:
                continue
            variants: list[dict[str, Any]] = [{}]
            for p, s in tool.properties.items():
                if "boolean" in json_types(s):
                    variants.append({p: True})
            for args in variants:
                try:
                    result = _jsonable(factory().call(tool.name, args))
                except Exception:  # noqa: BLE001 - a probe that fails teaches nothing
                    continue
                if error_result(result) is None:
                    self.absorb(tool, result)

    # -- answering ----------------------------------------------------------------

    def seed_values(self, param: str) -> list[Any]:
        p = param.lower()
        out: list[Any] = list(self.keyed.get(param, []))
        for key, vals in self.keyed.items():
            if key != param and is_identifier(key) and p.endswith("_" + key.lower()):
                out.extend(vals)
        for table, keys in self.tables.items():
            if p.startswith(table + "_") or p == table:
                out.extend(keys)
        if "array" not in p and p.endswith("s") and not out:
            out.extend(self.keyed.get(p[:-1], []))
        return list(dict.fromkeys(out))

    def matched_values(self, tool: Tool, param: str, *, live_only: bool = False) -> list[Any]:
        """Values harvested under another key that means what ``param`` means, decided by the
        graph's field matcher (names, then meaning): the entries ``ls`` listed for
        ``file_name``, a watchlist's symbols for ``symbol``. Values seen during this plan
        come first."""
        key = (tool.name, param, live_only)
        hit = self._matched.get(key)
        if hit is not None:
            return hit
        from astra.graph.dataflow import (
            EDGE_THRESHOLD,
            OutField,
            field_text,
            match_field,
            param_text,
            prime_embeddings,
        )

        schema = tool.properties.get(param) if isinstance(tool.properties.get(param), dict) else {}
        fields = []
        for k, vals in self.keyed.items():
            if k == param or not vals:
                continue
            sample = vals[0]
            types = frozenset({"integer" if isinstance(sample, int) else "number" if isinstance(sample, float)
                               else "string"})
            path = f"{k}[]" if k in self.list_keys else k
            fields.append(OutField(path=path, name=k, types=types, description=self.key_desc.get(k, "")))
        todo = [f for f in fields if (tool.name, param, f.name, f.description, f.path.endswith("[]"))
                not in self._scores]
        if todo:
            prime_embeddings([field_text(f) for f in todo] + [param_text(param, schema)])
        scored = []
        for f in fields:
            sk = (tool.name, param, f.name, f.description, f.path.endswith("[]"))
            if sk not in self._scores:
                m = match_field(f, param, schema, src_tool="", dst_tool=tool.name, server_tools=[])
                self._scores[sk] = m.raw if m is not None and m.score >= EDGE_THRESHOLD else None
            if self._scores[sk] is not None:
                scored.append((self._scores[sk], f.name))
        scored.sort(key=lambda x: -x[0])
        out: list[Any] = []
        for _, k in scored:
            out.extend(self.live.get(k, []))
        if not live_only:
            for _, k in scored:
                out.extend(self.keyed.get(k, []))
        out = list(dict.fromkeys(out))
        self._matched[key] = out
        return out

    def candidates(self, tool: Tool, param: str, *, fallback: bool = True) -> list[Any]:
        """Candidate values for ``param`` of ``tool``, most trustworthy first. Without
        ``fallback``, only values the server documents or holds (no invented ones)."""
        schema = tool.properties.get(param) or {}
        schema = schema if isinstance(schema, dict) else {}
        types = json_types(schema)
        enum = enum_values(schema)
        if enum:
            return enum
        if "array" in types:
            items = self._scalar_candidates(tool, param, _items_schema(schema) | {
                "description": schema.get("description", "")}, json_types(_items_schema(schema)), fallback)
            ex = [e for e in description_examples(schema) if isinstance(e, list)]
            if json_types(_items_schema(schema)) & {"number", "integer"} and len(items) >= 3:
                return ex + [items[:4], items[1:4]]  # a list of numbers to compute on, not one number
            return ex + [[v] for v in items[:10]]
        return self._scalar_candidates(tool, param, schema, types, fallback)

    def _scalar_candidates(self, tool: Tool, param: str, schema: dict[str, Any], types: set[str],
                           fallback: bool = True) -> list[Any]:
        p = param.lower()
        examples = [e for e in description_examples(schema) if not isinstance(e, list)]
        live = list(self.live.get(param, [])) + self.matched_values(tool, param, live_only=True)
        if live and not enum_values(schema):
            typed_live = self._typed(list(dict.fromkeys(live)), schema, types)
            if typed_live:
                return typed_live  # a value the plan's own earlier calls returned: consistent with them
        seed = self.seed_values(param)
        seed = list(dict.fromkeys(seed + self.matched_values(tool, param)))
        if _QUERYISH.match(p):
            names = []
            for key in ("name", "title", "subject", "company"):
                for v in self.keyed.get(key, [])[:40]:
                    if isinstance(v, str):
                        names.append(v)
                        words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", v) if len(w) > 2]
                        if len(words) >= 3:
                            names.append(" ".join(words[-2:]).lower())
            vals = examples + seed + names
        elif _PERSONISH.search(p) and not seed and not _THING_NAME.search(str(schema.get("description") or "")):
            vals = examples + PERSON_NAMES
        else:
            vals = examples + seed
        if not vals and schema.get("default") not in (None, "", [], {}):
            vals = [schema["default"]]
        if not vals and fallback:
            vals = self._by_type(p, schema, types)
        return self._typed(vals, schema, types)

    def _by_type(self, p: str, schema: dict[str, Any], types: set[str]) -> list[Any]:
        desc = str(schema.get("description") or "")
        if "boolean" in types:
            return [True]
        if "integer" in types or "number" in types:
            m = _RANGE.search(desc)
            bounded = bool(m) or "minimum" in schema or "maximum" in schema
            lo = int(m.group(1)) if m else int(schema.get("minimum", 1))
            hi = int(m.group(2)) if m else int(schema.get("maximum", 10**9))
            by_meaning = _numbers_by_meaning(p, desc)
            if by_meaning is None and not bounded:
                return []  # a number nothing says anything about: no "1" invented from the type
            vals = by_meaning or ([2, 3, 4, 5] if "integer" in types else [2.0, 3.0, 4.0])
            if "integer" in types:
                return [int(v) for v in vals if float(v).is_integer() and lo <= v <= hi] or \
                    ([v for v in (2, 3, lo) if lo <= v <= hi] if bounded else [])
            return [float(v) for v in vals if lo <= v <= hi] or ([float(lo)] if bounded else [])
        if "birth" in p:
            return ["1988-04-12", "1975-11-03", "1993-07-21"]
        if re.search(r"(^|_)(date|day)(_|$)|_on$", p) or "YYYY-MM-DD" in desc or \
                p in ("check_in", "check_out", "checkin", "checkout"):
            base = _dt.date.fromisoformat(self.today) if self.today else _dt.date(2026, 3, 10)
            return [(base + _dt.timedelta(days=d)).isoformat() for d in (8, 10, 12, 14)]
        if "email" in p:
            return EMAILS
        if "address" in p:
            return ADDRESSES
        key = _TEXT_KEYS.get(p, p)
        for k, vals in TEXTS.items():
            if key == k or key.endswith("_" + k):
                return vals
        if re.search(r"(^|_)(first|given)_?name$", p):
            return [n.split()[0] for n in PERSON_NAMES]
        if re.search(r"(^|_)(last|family|sur)_?name$", p):
            return [n.split()[-1] for n in PERSON_NAMES]
        if re.search(r"birth", p + " " + desc, re.IGNORECASE):
            return ["1988-04-12", "1975-11-03", "1993-07-21"]
        if (p.endswith("name") or p in ("name", "traveler", "passenger", "guest", "customer")) and re.search(
                r"\b(full name|first and last name|person|passenger|traveller|traveler|customer|guest)\b",
                desc, re.IGNORECASE) and not _THING_NAME.search(desc):
            return PERSON_NAMES
        generated = realistic_values(p, desc)
        if generated:
            return generated
        return []  # nothing real to offer: the caller finds no plan rather than inventing "example"

    @staticmethod
    def _typed(vals: Iterable[Any], schema: dict[str, Any], types: set[str]) -> list[Any]:
        desc = str(schema.get("description") or "")
        m = _RANGE.search(desc)
        lo = schema.get("minimum", int(m.group(1)) if m else None)
        hi = schema.get("maximum", int(m.group(2)) if m else None)
        out = []
        for v in vals:
            if types & {"integer", "number"}:
                if isinstance(v, str):
                    try:
                        v = float(v)
                    except ValueError:
                        continue
                if not isinstance(v, int | float) or isinstance(v, bool):
                    continue
                if "integer" in types and "number" not in types:
                    if float(v) != int(v):
                        continue
                    v = int(v)
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    continue
                if isinstance(v, float) and abs(v - round(v, 2)) > 1e-9:
                    v = round(v, 2)  # a person states 31.3, not 31.29968928699752
            elif "string" in types or not types:
                if isinstance(v, bool) or not _scalar(v):
                    continue
                v = str(v)
                if "\n" in v.strip() or len(v) > 160:  # a user types short, single-line values
                    continue
                v = v.strip()
            elif "boolean" in types and not isinstance(v, bool):
                continue
            if v not in out:
                out.append(v)
        return out


# ---------------------------------------------------------------------------------
# Sampling plans
# ---------------------------------------------------------------------------------


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
        queryish = [p for p in optional if _QUERYISH.match(p.lower())]
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
                    typed = pool._typed([rec[p]], tool.properties.get(p) or {},
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
            given_schemas[p] = tool.properties.get(p) if isinstance(tool.properties.get(p), dict) else {}
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
                live._probe(lambda: copy.deepcopy(ex))
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
                    qs = tool.properties.get(q) if isinstance(tool.properties.get(q), dict) else {}
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


__all__ = [
    "PLAN_FORMAT", "DerivedRef", "ExecutorFactory", "FoundPlan", "Plan", "PlanError", "PlanStep", "StepArgs",
    "MCPExecutor", "ValuePool", "description_examples", "executor_factory", "execute_plan", "find_plans", "follow_path",
    "json_types", "resolve_steps", "sample_plan", "schema_fields", "step_arguments",
]


class MCPExecutor:
    """Calls the tools of a live MCP server (``CallInfo`` of kind ``mcp_*``) from sync code,
    one session per call; a result marked as an error raises. For servers whose state
    lives outside the process (a repository, a database), a plan run here changes it."""

    def __init__(self, call: Any, timeout: float = 30.0) -> None:
        self.call_info = call
        self.timeout = timeout

    def call(self, tool_name: str, arguments: dict[str, Any] | None = None) -> Any:
        from astra.tools.ingest import run_sync
        from astra.tools.mcp_client import call_tool, open_session, result_payload

        async def go() -> Any:
            async with open_session(self.call_info, timeout=self.timeout) as session:
                res = await call_tool(session, tool_name, arguments or {}, timeout=self.timeout)
                payload = result_payload(res)
                if res.is_error:
                    raise RuntimeError(str(payload)[:300])
                return payload

        return run_sync(go)
