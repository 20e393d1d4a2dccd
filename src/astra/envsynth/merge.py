"""Merging the sub-environments of one instance.

Sub-tasks with the **same intent but different parameters** (the weather in two cities)
become one tool:

- **clusters**: offline, the plan's ``tool_intent``; LLM path, the same tool name with the
  same parameters and required set (the spec prompt shows the tools already designed for
  the instance and asks to reuse one whose intent fits, so same-intent sub-tasks get the
  same name — this is the rule check);
- per cluster the first member's implementation is the **base**; each further member's
  mock data is **inserted** into it — only the module-level literal ``MOCK_DATA`` changes
  (:func:`extend_mock_data`: a deep merge of the two literals; the rest of the module must
  stay identical, checked on the AST) — and after **every** insertion **all** members'
  gold calls so far are re-run in the sandbox with typed matching;
- the template path's base already holds the whole table (the insertion is a no-op), and
  is re-verified all the same;
- a cluster that cannot be merged (no literal ``MOCK_DATA``, conflicting values, a member's
  call that fails against the merged code) drops the instance (``merge_failed``) or, with
  ``on_merge_fail="keep"``, keeps its members as separate tools (renamed ``name_2`` …).

Tool names stay unique in an environment: two clusters that end up with the same name
(LLM path, different signatures) are renamed the same way.
"""

from __future__ import annotations

import ast
import pprint
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from astra import pyast
from astra.envs.verify import (
    MOCK_NAME,
    CallCheck,
    MockDataError,
    call_problems,
    mock_data_of,
    mock_node,
    verify_call,
    verify_calls,
)
from astra.envsynth.decompose import Rejected
from astra.envsynth.templates import render_call
from astra.sandbox import parse_call_statement
from astra.types import EnvTool, Tool

if TYPE_CHECKING:
    from astra.sandbox import SandboxPool

#: A cluster that cannot be merged (its MOCK_DATA unreadable or conflicting); the message says why.
MergeError = MockDataError


@dataclass
class SubEnv:
    """A verified tool for one sub-task (before merging)."""

    sub_id: str
    tool: Tool
    code: str
    call: str
    intent: str
    attempts: int = 1
    check: CallCheck | None = None
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------
# Mock data surgery (pure)
# ---------------------------------------------------------------------------------


def deep_merge(base: Any, extra: Any, path: str = MOCK_NAME) -> Any:
    """``extra`` folded into ``base``: dicts key by key (recursively), lists by appending the
    items ``base`` lacks; equal scalars are kept; different scalars are a conflict."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for k, v in extra.items():
            out[k] = deep_merge(base[k], v, f"{path}[{k!r}]") if k in base else v
        return out
    if isinstance(base, list) and isinstance(extra, list):
        return base + [x for x in extra if x not in base]
    if isinstance(base, tuple | set | frozenset) and type(base) is type(extra):
        merged = list(base) + [x for x in extra if x not in base]
        return type(base)(merged)
    if base == extra and type(base) is type(extra):
        return base
    raise MergeError(f"conflicting mock data at {path}: {base!r} vs {extra!r}")


def _skeleton(code: str) -> str:
    tree = pyast.parse(code)
    node = mock_node(tree)
    if node is not None:
        node.value = ast.Constant(value=None)
    return ast.dump(tree, include_attributes=False)


def replace_mock_data(code: str, value: Any) -> str:
    """``code`` with its ``MOCK_DATA`` literal replaced by ``value`` (everything else kept
    as written)."""
    tree = pyast.parse(code)
    node = mock_node(tree)
    if node is None:
        raise MergeError(f"the implementation has no module-level {MOCK_NAME}")
    lines = code.splitlines(keepends=True)
    start, end = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    tail = lines[end][node.end_col_offset or 0:] if end < len(lines) else ""
    ann = ""
    if isinstance(node, ast.AnnAssign):
        ann = ": " + ast.get_source_segment(code, node.annotation)  # type: ignore[operator]
    new = f"{MOCK_NAME}{ann} = " + pprint.pformat(value, width=100) + "\n"
    if node.col_offset != 0 or tail.strip():
        node.value = pyast.parse(repr(value), mode="eval").body
        return ast.unparse(tree) + "\n"
    return "".join(lines[:start]) + new + "".join(lines[end + 1:])


def extend_mock_data(base_code: str, member_code: str) -> str:
    """The base implementation with the member's mock data inserted — and nothing else
    changed (checked on the AST)."""
    merged = deep_merge(mock_data_of(base_code), mock_data_of(member_code))
    new = replace_mock_data(base_code, merged)
    if _skeleton(new) != _skeleton(base_code):  # pragma: no cover - defensive
        raise MergeError("merging changed more than the mock data")
    return new


def rename_code(code: str, old: str, new: str) -> str:
    """Expose the function ``old`` also as ``new`` (an alias line, so recursion still works)."""
    return code.rstrip("\n") + f"\n\n\n{new} = {old}\n"


def rename_call(statement: str, new: str) -> str:
    call = parse_call_statement(statement)
    return render_call(new, call.kwargs)


# ---------------------------------------------------------------------------------
# Clusters
# ---------------------------------------------------------------------------------


def signature_key(tool: Tool) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    return tool.name, tuple(sorted(tool.properties)), tuple(sorted(tool.required))


def clusters(sub_envs: Sequence[SubEnv], intents: dict[str, str] | None = None) -> list[list[SubEnv]]:
    """Same-intent groups, in the order of their first member."""
    groups: dict[Any, list[SubEnv]] = {}
    for e in sub_envs:
        key = intents.get(e.sub_id, e.intent) if intents else signature_key(e.tool)
        groups.setdefault(key, []).append(e)
    return list(groups.values())


async def merge_cluster(members: Sequence[SubEnv], golds: dict[str, str], types: dict[str, str | None], *,
                        pool: SandboxPool) -> tuple[EnvTool, list[CallCheck], int]:
    """One tool for a cluster: ``(tool, final checks of every member, insertions)``."""

    base = members[0]
    tool = base.tool
    code = base.code
    done = [base]
    insertions = 0
    checks = [base.check] if base.check is not None else []
    for m in members[1:]:
        probs = call_problems(m.call, tool)
        if probs:
            raise MergeError(f"{m.sub_id}: its call {m.call} does not fit {tool.name}: " + "; ".join(probs))
        new_code = code
        if m.code != code:
            new_code = extend_mock_data(code, m.code)
            insertions += 1
        calls = {e.sub_id: e.call for e in done + [m]}
        checks = await verify_calls(new_code, tool.name, calls, golds, types, pool=pool)
        bad = [c for c in checks if not c.ok]
        if bad:
            raise MergeError("; ".join(f"{c.sub_id}: {c.feedback()}" for c in bad)[:800])
        code = new_code
        done.append(m)
    env_tool = EnvTool(tool=tool, code=code, serves=[e.sub_id for e in done], calls={e.sub_id: e.call for e in done})
    return env_tool, checks, insertions


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


async def merge_subenvs(sub_envs: Sequence[SubEnv], golds: dict[str, str], types: dict[str, str | None], *,
                        pool: SandboxPool, on_merge_fail: Literal["drop", "keep"] = "drop",
                        intents: dict[str, str] | None = None) -> tuple[list[EnvTool], list[CallCheck],
                                                                          list[dict[str, Any]]]:
    """All clusters of an instance merged: ``(tools, checks, merge records)``. Raises
    :class:`~astra.envsynth.decompose.Rejected` ``merge_failed`` under ``drop``."""

    if on_merge_fail not in ("drop", "keep"):
        raise ValueError(f"on_merge_fail must be 'drop' or 'keep', got {on_merge_fail!r}")
    tools: list[EnvTool] = []
    checks: list[CallCheck] = []
    records: list[dict[str, Any]] = []
    taken: set[str] = set()

    async def add_single(e: SubEnv, status: str, detail: str = "") -> None:
        name = _unique(e.tool.name, taken)
        code, call, tool = e.code, e.call, e.tool
        check = e.check
        if name != e.tool.name:
            code, call = rename_code(code, e.tool.name, name), rename_call(call, name)
            tool = tool.model_copy(update={"name": name})
            check = await verify_call(code, call, golds[e.sub_id], types.get(e.sub_id), sub_id=e.sub_id, tool=name,
                                      pool=pool, repeat=False)
            if not check.ok:
                raise Rejected("merge_failed", f"{e.sub_id}: renamed tool {name} fails: {check.feedback()}"[:800])
        taken.add(name)
        tools.append(EnvTool(tool=tool, code=code, serves=[e.sub_id], calls={e.sub_id: call}))
        if check is not None:
            checks.append(check)
        rec: dict[str, Any] = {"tool": name, "members": [e.sub_id], "insertions": 0, "status": status}
        if detail:
            rec["detail"] = detail
        records.append(rec)

    for members in clusters(sub_envs, intents):
        if len(members) == 1:
            await add_single(members[0], "single")
            continue
        try:
            env_tool, cl_checks, ins = await merge_cluster(members, golds, types, pool=pool)
        except MergeError as e:
            ids = [m.sub_id for m in members]
            if on_merge_fail == "drop":
                raise Rejected("merge_failed", f"cluster {members[0].tool.name} {ids}: {e}"[:800]) from None
            for m in members:
                await add_single(m, "kept_unmerged", str(e)[:300])
            continue
        name = _unique(env_tool.tool.name, taken)
        if name != env_tool.tool.name:
            old = env_tool.tool.name
            env_tool = EnvTool(tool=env_tool.tool.model_copy(update={"name": name}),
                               code=rename_code(env_tool.code, old, name), serves=env_tool.serves,
                               calls={k: rename_call(v, name) for k, v in env_tool.calls.items()})

            cl_checks = await verify_calls(env_tool.code, name, env_tool.calls, golds, types, pool=pool)
            if not all(c.ok for c in cl_checks):
                raise Rejected("merge_failed", f"renamed tool {name} fails its calls")
        taken.add(name)
        tools.append(env_tool)
        checks.extend(cl_checks)
        records.append({"tool": name, "members": env_tool.serves, "insertions": ins, "status": "merged"})
    return tools, checks, records


__all__ = [
    "MergeError", "SubEnv", "clusters", "deep_merge", "extend_mock_data", "merge_cluster", "merge_subenvs",
    "rename_call", "rename_code", "replace_mock_data", "signature_key",
]
