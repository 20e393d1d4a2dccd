"""What one tool call produced, and how the agent sees it.

Every call of a rollout ends as a :class:`ToolOutcome` with a ``status`` from
:data:`STATUSES`. Only ``ok`` is a valid response; the others come back to the agent as a
tool message ``{"error": {"type": STATUS_OR_KIND, "message": ..., "retryable": bool}}``
(:func:`error_content`), so a trajectory is always well-formed OpenAI chat and the judge
can read a call's status from the transcript alone.

- malformed calls (the agent's fault, never retryable): ``bad_json`` (arguments are not a
  JSON object), ``unknown_tool``, ``invalid_arguments`` (schema violation or an unknown
  parameter), ``unreadable_call`` (a ``<tool_call>`` block the parser could not read);
- tool errors: ``tool_error`` (the tool refused: bad id, business rule; not retryable);
- environment failures (retryable): ``timeout``, ``unavailable`` (a live server that
  dropped or cannot be reached), ``injected_failure`` (failure injection of the emulator:
  ``injected`` names the kind), ``emulator_failure`` (the emulator produced no valid
  result).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_jsonable_python

OK = "ok"
BAD_JSON = "bad_json"
UNKNOWN_TOOL = "unknown_tool"
INVALID_ARGUMENTS = "invalid_arguments"
UNREADABLE_CALL = "unreadable_call"
TOOL_ERROR = "tool_error"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
INJECTED_FAILURE = "injected_failure"
EMULATOR_FAILURE = "emulator_failure"

STATUSES = (OK, BAD_JSON, UNKNOWN_TOOL, INVALID_ARGUMENTS, UNREADABLE_CALL, TOOL_ERROR, TIMEOUT,
            UNAVAILABLE, INJECTED_FAILURE, EMULATOR_FAILURE)
MALFORMED = frozenset({BAD_JSON, UNKNOWN_TOOL, INVALID_ARGUMENTS, UNREADABLE_CALL})
TRANSIENT = frozenset({TIMEOUT, UNAVAILABLE, INJECTED_FAILURE, EMULATOR_FAILURE})

#: Kinds of injected failures and the messages the agent sees.
FAILURE_KINDS: dict[str, str] = {
    "timeout": "The request to {tool} timed out after 30 seconds. The service did not respond.",
    "service_unavailable": "503 Service Unavailable: {server} is temporarily unavailable. Try again later.",
    "rate_limited": "429 Too Many Requests: rate limit exceeded for {tool}. Retry after a short wait.",
}


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models, dates, sets … converted)."""
    return json.loads(json.dumps(to_jsonable_python(value, fallback=str), ensure_ascii=False))


def result_content(value: Any) -> str:
    """The tool message content of a successful result (JSON text; strings as they are)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def error_content(kind: str, message: str, *, retryable: bool) -> str:
    return json.dumps({"error": {"type": kind, "message": message, "retryable": retryable}},
                      ensure_ascii=False)


@dataclass
class ToolOutcome:
    """The result of one call: ``content`` is what the agent sees."""

    status: str
    content: str
    value: Any = None
    error: str | None = None
    injected: str | None = None
    backend: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT

    @classmethod
    def success(cls, value: Any, *, backend: str = "") -> ToolOutcome:
        value = jsonable(value)
        return cls(status=OK, content=result_content(value), value=value, backend=backend)

    @classmethod
    def failure(cls, status: str, message: str, *, backend: str = "", injected: str | None = None,
                **meta: Any) -> ToolOutcome:
        kind = injected or status
        return cls(status=status, content=error_content(kind, message, retryable=status in TRANSIENT),
                   error=message, injected=injected, backend=backend, meta=dict(meta))


def parse_error_content(content: Any) -> dict[str, Any] | None:
    """The ``error`` object of a tool message written by :func:`error_content` (or any JSON
    object whose only key is ``error``), else None."""
    if not isinstance(content, str) or not content.lstrip().startswith("{"):
        return None
    try:
        obj = json.loads(content)
    except ValueError:
        return None
    if isinstance(obj, dict) and set(obj) == {"error"}:
        err = obj["error"]
        if isinstance(err, dict):
            return err
        return {"type": "error", "message": str(err)}
    return None
