"""Tool-call arguments from an untrusted agent: parsed, bounded and checked against the
tool's JSON schema before any tool code runs (shared by the runtime and the MCP server).

- :func:`parse_arguments` — a JSON object from a string or a dict, or one line saying why
  not: not JSON, not an object, longer than :data:`MAX_ARGUMENT_CHARS`, nested deeper than
  :data:`MAX_ARGUMENT_DEPTH` (JSON nested thousands deep is refused without recursion),
  more than :data:`MAX_ARGUMENT_VALUES` values, a value that is not JSON data.
- :func:`argument_problem` — the first violation of the tool's parameter schema as a
  message for the agent: ``missing required argument 'planet' (required: planet)``,
  ``unexpected argument 'extra' (the tool takes: planet)``, ``argument 'limit' must be
  integer, got string``, ``argument 'mode' must be one of ['fast', 'slow'], got 'x'``.
  A schema that is itself not valid JSON Schema cannot be checked:
  :class:`SchemaUnusable` is raised, and the caller records it.

Nothing here raises on hostile input except :class:`SchemaUnusable`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

#: Longest arguments accepted: characters of the JSON text, or of all strings and keys.
MAX_ARGUMENT_CHARS = 20_000
#: Deepest nesting of the arguments object (the object itself is level 1).
MAX_ARGUMENT_DEPTH = 32
#: Most values (objects, arrays, scalars) in one arguments object.
MAX_ARGUMENT_VALUES = 5_000
#: Longest excerpt of a value quoted back in a message.
QUOTE_CHARS = 60


class SchemaUnusable(Exception):
    """The tool's own parameter schema is not valid JSON Schema (nothing can be checked)."""


def _quote(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "…"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape_problem(value: Any) -> str | None:
    """Why ``value`` is not acceptable as arguments data (size, depth, non-JSON values), or
    None. Walks without recursion, so any depth is safe."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    chars = values = 0
    while stack:
        v, depth = stack.pop()
        values += 1
        if depth > MAX_ARGUMENT_DEPTH:
            return f"the arguments are nested deeper than {MAX_ARGUMENT_DEPTH} levels"
        if values > MAX_ARGUMENT_VALUES:
            return f"the arguments hold more than {MAX_ARGUMENT_VALUES} values"
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    return f"an argument name must be a string, got {_json_type(k)}"
                chars += len(k)
                stack.append((x, depth + 1))
        elif isinstance(v, list | tuple):
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, str):
            chars += len(v)
        elif isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                return "an argument is not a finite number"
        elif not (v is None or isinstance(v, bool | int)):
            return f"an argument of type {type(v).__name__} is not JSON data"
        if chars > MAX_ARGUMENT_CHARS:
            return f"the arguments are longer than {MAX_ARGUMENT_CHARS} characters"
    return None


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(arguments, None)`` or ``(None, why)`` for a tool call's raw ``arguments`` (a JSON
    string, a dict, or None/"" for no arguments)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if isinstance(raw, str):
        if len(raw) > MAX_ARGUMENT_CHARS:
            return None, f"the arguments are longer than {MAX_ARGUMENT_CHARS} characters"
        try:
            value = json.loads(raw)
        except RecursionError:
            return None, f"the arguments are nested deeper than {MAX_ARGUMENT_DEPTH} levels"
        except ValueError as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
            return None, f"the arguments are not valid JSON ({msg[:120]}); send a JSON object"
    elif isinstance(raw, dict):
        value = raw
    else:
        return None, f"the arguments must be a JSON object, got {_json_type(raw)}"
    if not isinstance(value, dict):
        return None, f"the arguments must be a JSON object, got {_json_type(value)}"
    problem = shape_problem(value)
    if problem:
        return None, problem
    return value, None


@lru_cache(maxsize=4096)
def _validator(schema_json: str) -> Draft202012Validator:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        raise SchemaUnusable(f"the tool's parameter schema is not valid JSON Schema: {e.message[:200]}") from None
    return Draft202012Validator(schema)


def _where(err: ValidationError) -> str:
    path = [str(p) for p in err.absolute_path]
    return ".".join(path)


def _describe(err: ValidationError, schema: dict[str, Any]) -> str:
    props = list((schema.get("properties") or {}).keys())
    where = _where(err)
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [p for p in err.validator_value if p not in err.instance]
        req = ", ".join(map(str, err.validator_value))
        name = f"{where}.{missing[0]}" if where else str(missing[0])
        return f"missing required argument {name!r} (required: {req})"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        sub_props = set((err.schema.get("properties") or {}).keys())
        extra = sorted(k for k in err.instance if k not in sub_props)
        takes = ", ".join(sorted(sub_props) if where else props) or "no arguments"
        name = _quote(extra[0])[1:-1] if extra else "?"
        return f"unexpected argument {name!r} (the tool takes: {takes})"
    label = f"argument {where!r}" if where else "the arguments"
    if err.validator == "type":
        want = err.validator_value if isinstance(err.validator_value, str) else " or ".join(err.validator_value)
        return f"{label} must be {want}, got {_json_type(err.instance)}"
    if err.validator == "enum":
        return f"{label} must be one of {_quote(err.validator_value)}, got {_quote(err.instance)}"
    if err.validator == "const":
        return f"{label} must be {_quote(err.validator_value)}, got {_quote(err.instance)}"
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
                         "minItems", "maxItems", "pattern", "format"):
        return f"{label} must satisfy {err.validator} {_quote(err.validator_value)}, got {_quote(err.instance)}"
    return f"{label} does not match the tool's schema ({err.validator})"


def argument_problem(schema: dict[str, Any] | None, args: dict[str, Any]) -> str | None:
    """The first violation of the parameter ``schema`` by ``args`` (missing arguments
    first), as one line for the agent; None when they conform or there is no schema.
    Raises :class:`SchemaUnusable` when the schema itself is broken."""
    if not schema:
        return None
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise SchemaUnusable(f"the tool's parameter schema is not JSON ({e})") from None
    validator = _validator(key)
    try:
        errors = list(validator.iter_errors(args))
    except Exception as e:  # a schema that cannot be applied (unknown type, bad $ref) is the tool's fault
        raise SchemaUnusable(f"the tool's parameter schema cannot be applied: {type(e).__name__}") from None
    if not errors:
        return None
    order = {"required": 0, "additionalProperties": 1, "type": 2}
    errors.sort(key=lambda e: (len(list(e.absolute_path)), order.get(str(e.validator), 3)))
    return _describe(errors[0], schema)


__all__ = [
    "MAX_ARGUMENT_CHARS", "MAX_ARGUMENT_DEPTH", "MAX_ARGUMENT_VALUES", "SchemaUnusable", "argument_problem",
    "parse_arguments", "shape_problem",
]
