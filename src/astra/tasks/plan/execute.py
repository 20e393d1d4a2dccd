"""Executing a plan: :func:`execute_plan` runs a plan against an executor (anything with
``call(tool_name, arguments)``, e.g. :func:`astra.tools.pyfunc.make_python_executor`) and
returns every step's result: that is how the generator's dry run proves a task solvable
and how a teacher can solve the task by executing the chain for real. :func:`follow_path`
reads a derived value out of an earlier result."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from astra.tasks.plan.format import DerivedRef, Plan
from astra.types import ToolServer

if TYPE_CHECKING:
    from astra.tools.pyfunc import PythonExecutor


class PlanError(Exception):
    """A plan that cannot be executed: a missing derived field or a failing tool call."""

    def __init__(self, step: int, message: str, *, param: str | None = None):
        super().__init__(f"step {step}: {message}")
        self.step = step
        self.param = param  # the derived parameter whose value was missing, if that was the failure


class Executor(Protocol):
    def call(self, tool_name: str, arguments: dict[str, Any] | None = None) -> Any: ...


#: What :func:`follow_path` returns where the path does not exist.
MISSING = object()


def follow_path(value: Any, path: list[str | int]) -> Any:
    """Follow ``path`` into ``value``; ``"*"`` maps the rest over a list. Returns a
    sentinel (checked by :func:`resolve_ref`) when the path does not exist."""
    cur = value
    for i, key in enumerate(path):
        if key == "*":
            if not isinstance(cur, list) or not cur:
                return MISSING
            items = [follow_path(item, list(path[i + 1:])) for item in cur]
            items = [x for x in items if x is not MISSING]
            return items if items else MISSING
        if isinstance(key, int):
            if not isinstance(cur, list) or not -len(cur) <= key < len(cur):
                return MISSING
            cur = cur[key]
        else:
            if not isinstance(cur, dict) or key not in cur:
                return MISSING
            cur = cur[key]
    return cur


def resolve_ref(results: list[Any], ref: DerivedRef, *, step: int = -1, param: str | None = None) -> Any:
    if not 0 <= ref.step < len(results):
        raise PlanError(step, f"derived argument refers to step {ref.step}, which has not run", param=param)
    value = follow_path(results[ref.step], list(ref.path))
    if value is MISSING or value is None:
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
    except Exception as e:  # ToolCallError or a bug in the tool: both fail the plan
        raise PlanError(i, f"{tool} failed: {type(e).__name__}: {e}") from None
    result = jsonable(result)
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


def jsonable(value: Any) -> Any:
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

    def __call__(self) -> PythonExecutor:
        try:
            return copy.deepcopy(self._pristine)
        except Exception:  # an instance that cannot be copied: build anew
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
