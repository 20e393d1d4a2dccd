"""Reading JSON schemas: the types a schema admits, its enum values, its item and
property schemas, and every field of an output schema or of an actual result."""

from __future__ import annotations

from typing import Any

from astra.tools import schema as tools_schema


def json_types(schema: Any) -> set[str]:
    """The JSON types a schema admits (:func:`astra.tools.schema.json_types`), an untyped
    enum admitting the kinds of its values: what the value pool types its candidates by."""
    return tools_schema.json_types(schema, enum_value_types=True)


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


def items_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if isinstance(schema.get("items"), dict):
        return schema["items"]
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            it = items_schema(sub)
            if it:
                return it
    return {}


def schema_props(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if isinstance(schema.get("properties"), dict):
        return schema["properties"]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            p = schema_props(sub)
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
                nxt.append(([*prefix, 0], items_schema(sub)))
                continue
            for name, ps in schema_props(sub).items():
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
