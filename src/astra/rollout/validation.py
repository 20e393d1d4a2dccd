"""Argument and output checks against a tool's JSON schemas (shared by the rollout
backends and the judge's rules)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from astra.types import Tool


@lru_cache(maxsize=4096)
def _validator(schema_json: str) -> Draft202012Validator | None:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return None
    return Draft202012Validator(schema)


def schema_errors(schema: dict[str, Any] | None, value: Any, *, limit: int = 5) -> list[str]:
    """Violations of ``schema`` by ``value`` as short messages (empty when valid, when the
    schema is None, or when the schema itself is not valid JSON Schema)."""
    if not schema:
        return []
    v = _validator(json.dumps(schema, sort_keys=True))
    if v is None:
        return []
    out = []
    for err in sorted(v.iter_errors(value), key=lambda e: list(e.absolute_path)):
        loc = ".".join(str(p) for p in err.absolute_path) or "<root>"
        out.append(f"{loc}: {err.message[:200]}")
        if len(out) >= limit:
            break
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(arguments, error)`` from a tool call's ``arguments`` (a JSON string or a dict)."""
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if not isinstance(raw, str):
        return None, f"arguments must be a JSON object, got {type(raw).__name__}"
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return None, f"arguments are not valid JSON ({e.msg} at position {e.pos})"
    except RecursionError:
        return None, "arguments are not valid JSON (nested too deep)"
    except ValueError as e:  # NaN / Infinity, an integer too long to convert
        return None, f"arguments are not valid JSON ({str(e)[:120]})"
    if not isinstance(value, dict):
        return None, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, None


def argument_errors(tool: Tool, args: dict[str, Any]) -> list[str]:
    """Schema violations of ``args`` for ``tool``, plus parameters the tool does not have
    (a hallucinated parameter is malformed even where the schema does not forbid extras)."""
    errors = schema_errors(tool.parameters, args)
    props = tool.properties
    if props or tool.parameters.get("additionalProperties") is False:
        unknown = [k for k in args if k not in props]
        known_msgs = " ".join(errors)
        for k in unknown:
            if repr(k) not in known_msgs:
                shown = repr(k) if len(k) <= 80 else repr(k[:77] + "...")
                errors.append(f"unknown parameter {shown} (the tool takes: {', '.join(props) or 'none'})")
    return errors


def canonical_call(name: str, args: Any) -> str:
    """A canonical form of a call, to detect exact repeats."""
    try:
        return name + json.dumps(args, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return f"{name}{args!r}"
