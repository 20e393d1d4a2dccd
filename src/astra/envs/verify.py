"""What a running environment needs to check its tools: gold calls replayed in the sandbox
and matched by type, the spec check of a call statement, and the ``MOCK_DATA`` literal of
an implementation.

Synthesis (:mod:`astra.envsynth`) uses these to accept the code it writes; the runtime
and the bundle loader use them to replay and score environments. This module depends on
the sandbox and :mod:`astra.envs.match` only, never on synthesis.
"""

from __future__ import annotations

import ast
import asyncio
import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from astra import pyast
from astra.envs.match import answer_in_output
from astra.sandbox import CallStatementError, SandboxPool, parse_call_statement
from astra.types import QAInstance, Tool

CALL_TIMEOUT = 10.0  # seconds per sandboxed gold call
EXCERPT = 300  # characters of a returned value kept in a check
MOCK_NAME = "MOCK_DATA"


class MockDataError(Exception):
    """An implementation whose ``MOCK_DATA`` cannot be read (or merged); the message says why."""


# ---------------------------------------------------------------------------------
# The MOCK_DATA literal (pure)
# ---------------------------------------------------------------------------------


def mock_node(tree: ast.Module) -> ast.Assign | ast.AnnAssign | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id == MOCK_NAME:
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == MOCK_NAME \
                and node.value is not None:
            return node
    return None


def mock_data_of(code: str) -> Any:
    """The literal value of the module-level ``MOCK_DATA``; MockDataError when there is none or it is not a literal."""
    try:
        tree = pyast.parse(code)
    except SyntaxError as e:
        raise MockDataError(f"the implementation does not parse: {e.msg}") from None
    node = mock_node(tree)
    if node is None:
        raise MockDataError(f"the implementation has no module-level {MOCK_NAME} = <literal>")
    try:
        return pyast.literal_eval(node.value)  # type: ignore[arg-type]
    except (ValueError, TypeError, SyntaxError, RecursionError) as e:
        raise MockDataError(f"{MOCK_NAME} is not a literal ({type(e).__name__})") from None


# ---------------------------------------------------------------------------------
# Call statements against a tool's spec
# ---------------------------------------------------------------------------------


def _type_ok(value: Any, jtype: str | None) -> bool:
    return {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list | tuple),
        "object": lambda v: isinstance(v, dict),
    }.get(jtype or "", lambda v: True)(value)


def call_problems(statement: str, tool: Tool) -> list[str]:
    """Why a call statement does not fit the tool's spec (empty = fine)."""
    try:
        call = parse_call_statement(statement)
    except CallStatementError as e:
        return [str(e)]
    probs = []
    if call.name != tool.name:
        probs.append(f"the call names {call.name!r}, the tool is {tool.name!r}")
    if call.args:
        probs.append("use keyword arguments only (name=value)")
    props = tool.properties
    for k, v in call.kwargs.items():
        if k not in props:
            probs.append(f"unknown parameter {k!r} (parameters: {', '.join(props) or 'none'})")
        elif not _type_ok(v, props[k].get("type")):
            probs.append(f"parameter {k!r} should be {props[k].get('type')}, got {type(v).__name__}")
    missing = [r for r in tool.required if r not in call.kwargs]
    if missing:
        probs.append(f"missing required parameters {missing}")
    return probs


# ---------------------------------------------------------------------------------
# Sandbox verification
# ---------------------------------------------------------------------------------


class CallCheck(BaseModel):
    """One gold call run in the sandbox."""

    model_config = ConfigDict(extra="forbid")

    sub_id: str
    tool: str
    call: str
    ok: bool
    reason: str | None = None  # code_error | wrong_answer when not ok
    outcome: str | None = None
    output_excerpt: str = ""
    error: str | None = None
    duration: float = 0.0
    isolation: str = ""  # the sandbox mode, and what was degraded

    def feedback(self) -> str:
        """What the LLM is told when this call failed."""
        if self.reason == "wrong_answer":
            return (f"The call {self.call} returned {self.output_excerpt}, which does not contain the expected "
                    f"answer. {self.error or ''}").strip()
        return f"The call {self.call} failed: {self.error}"


def excerpt(value: Any, n: int = EXCERPT) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= n else text[: n - 1] + "…"


async def verify_call(code: str, statement: str, gold: str, answer_type: str | None, *, sub_id: str, tool: str,
                      pool: SandboxPool, timeout: float = CALL_TIMEOUT, repeat: bool = True) -> CallCheck:
    """Run ``statement`` against ``code`` in the sandbox and check its value by typed
    matching (the ASTRA method §2.3 step 5). ``repeat`` runs it twice and requires the same value."""
    t0 = time.perf_counter()
    common: dict[str, Any] = {"sub_id": sub_id, "tool": tool, "call": statement}
    try:
        call = parse_call_statement(statement)
    except CallStatementError as e:
        return CallCheck(ok=False, reason="code_error", error=f"bad call statement: {e}", **common)
    res = await pool.acall_function(code, call.name, call.kwargs, timeout=timeout)
    dur = round(time.perf_counter() - t0, 4)
    iso = res.sandbox.isolation
    common["isolation"] = iso.mode + (f" (degraded: {'; '.join(iso.degraded)})" if iso.degraded else "")
    if not res.ok:
        err = res.error or "the call failed"
        if res.traceback:
            err += "\n" + res.traceback[-1200:]
        if res.violations:
            err += "\nsandbox refused: " + "; ".join(res.violations[:3])
        return CallCheck(ok=False, reason="code_error", outcome=res.outcome, error=err,
                         output_excerpt=excerpt(res.sandbox.stdout) if res.sandbox.stdout else "",
                         duration=dur, **common)
    out = excerpt(res.value)
    if not answer_in_output(gold, res.value, answer_type, exclude=call.kwargs):
        printed = " (it printed the answer but a tool must *return* it)" if answer_in_output(
            gold, res.sandbox.stdout, answer_type) else ""
        echoed = " (it is there only as an echo of the call's own arguments)" if answer_in_output(
            gold, res.value, answer_type) else ""
        return CallCheck(ok=False, reason="wrong_answer", outcome=res.outcome, output_excerpt=out, duration=dur,
                         error=f"expected the answer {gold!r} in the returned value{printed}{echoed}", **common)
    if repeat:
        again = await pool.acall_function(code, call.name, call.kwargs, timeout=timeout)
        if not again.ok or again.value_json != res.value_json:
            return CallCheck(ok=False, reason="code_error", outcome=res.outcome, output_excerpt=out,
                             duration=dur, error="non-deterministic: a second run returned "
                                                 f"{excerpt(again.value if again.ok else again.error, 120)}",
                             **common)
    return CallCheck(ok=True, outcome=res.outcome, output_excerpt=out, duration=dur, **common)


async def verify_calls(code: str, tool: str, calls: dict[str, str], golds: dict[str, str],
                       types: dict[str, str | None], *, pool: SandboxPool, repeat: bool = False) -> list[CallCheck]:
    """Every member's gold call against one implementation (concurrently)."""
    return list(await asyncio.gather(*(
        verify_call(code, calls[sid], golds[sid], types.get(sid), sub_id=sid, tool=tool, pool=pool, repeat=repeat)
        for sid in calls)))


def answer_type_of(inst: QAInstance, sub_id: str) -> str | None:
    """The typed-matching hint of a sub-task: the plan's ``answer_type``, the aggregate's for
    the non-tool step, ``meta["answer_types"]``, else None (inferred from the gold)."""
    plan = (inst.meta.get("plan") or {}).get(sub_id)
    if plan and plan.get("answer_type"):
        return plan["answer_type"]
    agg = inst.meta.get("aggregate")
    if agg and agg.get("sub_id") == sub_id:
        return agg.get("answer_type")
    return (inst.meta.get("answer_types") or {}).get(sub_id)


__all__ = ["CALL_TIMEOUT", "EXCERPT", "MOCK_NAME", "CallCheck", "MockDataError", "answer_type_of", "call_problems",
           "excerpt", "mock_data_of", "mock_node", "verify_call", "verify_calls"]
