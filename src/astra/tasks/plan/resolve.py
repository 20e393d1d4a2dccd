"""Argument resolution: which arguments of each step of a chain come from earlier steps
(derived: a path into an earlier result) and which the user supplies (:func:`resolve_steps`:
the graph's argument resolution from ``Chain.checks["args"]`` when present, else data-flow
matching of output fields to parameters)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from astra.tasks.plan.format import DerivedRef
from astra.tasks.plan.schema import items_schema, json_types, schema_fields
from astra.types import Tool, ToolServer

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
        it = json_types(items_schema(param_schema))
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
