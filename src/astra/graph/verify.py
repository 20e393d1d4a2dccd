"""Chain verification that filters (the ASTRA method §1.2; the reference computes verdicts and never
uses them -- here a chain failing any selected check is discarded).

Checks (each selectable):

``args`` (rules, no LLM)
    Every required argument of every step is available: from the user (free text, names,
    dates, enums, numbers -- anything that is not an opaque identifier) or from an earlier
    step's output (a data-flow binding, :mod:`astra.graph.dataflow`). An opaque identifier
    (``*_id``, or an identifier described "as returned by X") must come from an earlier
    step. The resolution -- which parameter comes from which earlier field -- is returned
    (:func:`resolve_args`) and stored in ``Chain.checks["args"]``.
``vote``
    ``n`` LLM samples of "can this chain form a reasonable, realistic task?" as
    ``{"verdict": "yes"|"no", "reason"}``; accepted iff yes-votes > n/2. A sample whose
    reply cannot be parsed is a failed vote (recorded), never a yes; with fewer valid
    votes than a majority of n the chain is rejected as ``vote_failed``.
``backtranslate``
    chain -> query (an LLM writes a user request that needs the chain, naming no tool) ->
    chain (an LLM, possibly another model, picks the tool sequence for the query from all
    of the server's tools). Accepted iff the recovered tools are the same multiset and
    their order respects the chain's data dependencies (the partial order induced by the
    ``args`` bindings: independent steps may come in any order). Unknown tool names in the
    recovered sequence reject the chain.

Rejection reasons: ``unknown_server``, ``unknown_tool``, ``args``, ``vote``,
``vote_failed``, ``backtranslate``, ``backtranslate_failed`` (the LLM failed).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, field_validator

from astra.choices import parse_choices
from astra.graph.dataflow import (
    EDGE_THRESHOLD,
    STRONG_THRESHOLD,
    binding_table,
    example_value,
    is_opaque,
    tool_references,
    user_value_kind,
)
from astra.graph.propose import compact, resolve_name, server_view, tool_view
from astra.llm import LLMClient
from astra.llm.errors import LLMError
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.types import ToolServer

CHECKS = ("args", "vote", "backtranslate")


def parse_checks(spec: str | Sequence[str]) -> list[str]:
    """``"args,vote"`` -> ``["args", "vote"]`` (validated, in canonical order)."""
    return parse_choices(spec, CHECKS, "check")


@dataclass
class CheckOutcome:
    """One check's verdict: ``ok``, the rejection ``reason`` and ``detail`` when not,
    and ``record`` -- what is stored in ``Chain.checks[<check>]``."""

    ok: bool
    record: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    detail: str = ""


# ---------------------------------------------------------------------------------
# args
# ---------------------------------------------------------------------------------


class UnknownTool(KeyError):
    pass


def resolve_args(server: ToolServer, tools: list[str], *, threshold: float = EDGE_THRESHOLD,
                 strong: float = STRONG_THRESHOLD) -> CheckOutcome:
    """Resolve every required argument of the chain ``tools`` of ``server``.

    ``record`` (stored as ``Chain.checks["args"]``)::

        {"ok": bool,
         "steps": [{"tool": name,
                    "args": {param: {"source": "step", "step": i, "tool": name_i,
                                     "field": "[].product_id", "score": 1.0, "how": "name"}
                                  | {"source": "user", "kind": "text|enum|date|number|integer|
                                     boolean|array|object", "type": ..., "description": ...,
                                     "example": value|None, "enum": [...]|None}
                                  | {"source": "missing", "opaque": true, "producers": [...]}}}],
         "dependencies": [[i, j], ...],   # step j uses an output of step i (i < j)
         "user_inputs": ["tool.param", ...],
         "missing": ["tool.param", ...]}

    Only required parameters are resolved. A non-identifier parameter is taken from an
    earlier step only when the match is strong (>= ``strong``) or the parameter's
    description names that step's tool ("as returned by list_airports"); otherwise the
    user gives it.
    Raises :class:`UnknownTool` for a tool the server does not have.
    """
    by_name = {t.name: t for t in server.tools}
    names = [t.name for t in server.tools]
    for n in tools:
        if n not in by_name:
            raise UnknownTool(n)
    table = binding_table(server, threshold=threshold)
    steps: list[dict[str, Any]] = []
    deps: set[tuple[int, int]] = set()
    user: list[str] = []
    missing: list[str] = []
    problems: list[str] = []
    for j, name in enumerate(tools):
        tool = by_name[name]
        args: dict[str, Any] = {}
        for p in tool.required:
            pschema = tool.param_schema(p)
            opaque = is_opaque(p, pschema, names)
            best: tuple[float, int, dict[str, Any]] | None = None
            for i in range(j):
                b = table.get((tools[i], name), {}).get(p)
                if b is not None and tools[i] != name:
                    cand = (b["score"], i, b)
                    if best is None or (cand[0], cand[1]) >= (best[0], best[1]):  # ties: latest step
                        best = cand
            refs = tool_references(pschema, names)
            if best is not None and (opaque or best[0] >= strong or tools[best[1]] in refs):
                score, i, b = best
                args[p] = {"source": "step", "step": i, "tool": tools[i], "field": b["from_field"],
                           "score": score, "how": b["how"]}
                deps.add((i, j))
            elif opaque:
                producers = sorted(t.name for t in server.tools if p in table.get((t.name, name), {}))
                args[p] = {"source": "missing", "opaque": True, "producers": producers}
                missing.append(f"{name}.{p}")
                hint = f" (produced by {', '.join(producers)})" if producers else " (no tool of the server produces it)"
                problems.append(f"{name}.{p}: opaque identifier not produced by an earlier tool in the chain{hint}")
            else:
                enum = pschema.get("enum") or next((a.get("enum") for a in pschema.get("anyOf") or []
                                                    if isinstance(a, dict) and a.get("enum")), None)
                args[p] = {"source": "user", "kind": user_value_kind(p, pschema),
                           "type": pschema.get("type"), "description": compact(str(pschema.get("description") or ""), 300),
                           "example": example_value(pschema), "enum": enum}
                user.append(f"{name}.{p}")
        steps.append({"tool": name, "args": args})
    record = {"ok": not missing, "steps": steps, "dependencies": [list(d) for d in sorted(deps)],
              "user_inputs": user, "missing": missing}
    return CheckOutcome(ok=not missing, record=record, reason="" if not missing else "args",
                        detail="; ".join(problems))


def dependencies_of(resolution: dict[str, Any]) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in resolution.get("dependencies", [])]


def step_views(server: ToolServer, tools: list[str], resolution: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The chain's steps as the prompts show them: name, description and where each
    required input comes from."""
    by_name = {t.name: t for t in server.tools}
    out = []
    for j, name in enumerate(tools):
        view = tool_view(by_name[name])
        inputs = []
        steps = (resolution or {}).get("steps") or []
        args = steps[j].get("args", {}) if j < len(steps) else {}
        for p in view["required"]:
            a = args.get(p, {})
            if a.get("source") == "step":
                inputs.append(f"{p} from step {a['step'] + 1} ({a['tool']}: {a['field']})")
            elif a.get("source") == "user":
                ex = a.get("example")
                inputs.append(f"{p} given by the user" + (f", e.g. {ex!r}" if ex is not None else ""))
            elif a.get("source") == "missing":
                inputs.append(f"{p} (an identifier no earlier step returns)")
            else:
                inputs.append(p)
        out.append({"name": name, "description": view["description"], "inputs": inputs})
    return out


# ---------------------------------------------------------------------------------
# vote
# ---------------------------------------------------------------------------------


class VoteReply(BaseModel):
    verdict: Literal["yes", "no"]
    reason: str = ""

    @field_validator("verdict", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return v.strip().lower().rstrip(".") if isinstance(v, str) else v


async def vote_check(client: LLMClient, server: ToolServer, tools: list[str], *, votes: int = 3,
                     resolution: dict[str, Any] | None = None, temperature: float = 0.7,
                     max_tokens: int = 256, max_repairs: int = 1) -> CheckOutcome:
    """Majority vote over ``votes`` samples (``sample_index`` 0..n-1)."""
    if votes < 1:
        raise ValueError(f"votes must be >= 1, got {votes}")
    prompt = render("chain_vote", server=server_view(server), steps=step_views(server, tools, resolution))
    messages = [{"role": "user", "content": prompt}]

    async def one(i: int) -> dict[str, Any]:
        try:
            r = await client.structured(messages, VoteReply, max_repairs=max_repairs, temperature=temperature,
                                        max_tokens=max_tokens, sample_index=i)
        except LLMError as e:
            if is_endpoint_failure(e):
                raise
            return {"verdict": None, "error": f"{type(e).__name__}: {str(e)[:300]}"}
        return {"verdict": r.verdict, "reason": compact(r.reason, 300)}

    ballots = await asyncio.gather(*(one(i) for i in range(votes)))
    yes = sum(b["verdict"] == "yes" for b in ballots)
    no = sum(b["verdict"] == "no" for b in ballots)
    failed = votes - yes - no
    majority = votes // 2 + 1
    record = {"n": votes, "yes": yes, "no": no, "failed": failed, "ballots": ballots}
    if yes >= majority:  # yes > n/2
        return CheckOutcome(ok=True, record=record)
    if yes + no < majority:
        return CheckOutcome(ok=False, record=record, reason="vote_failed",
                            detail=f"only {yes + no} of {votes} votes were valid ({failed} failed), "
                                   f"a majority needs {majority}")
    reasons = "; ".join(b["reason"] for b in ballots if b["verdict"] == "no" and b.get("reason"))[:300]
    return CheckOutcome(ok=False, record=record, reason="vote",
                        detail=f"{yes} yes / {no} no / {failed} failed of {votes}" + (f": {reasons}" if reasons else ""))


# ---------------------------------------------------------------------------------
# backtranslate
# ---------------------------------------------------------------------------------


class QueryReply(BaseModel):
    query: str

    @field_validator("query")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the query is empty")
        return v.strip()


class ToolSequence(BaseModel):
    tools: list[str]


def _names_tool(text: str, name: str) -> bool:
    """Whether ``text`` spells out the identifier ``name`` (``get_order``, ``getOrder``);
    a tool called with a plain word (``search``) may appear in natural text."""
    if "_" not in name and name.islower():
        return False
    return bool(re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text))


def order_violations(chain: list[str], recovered: list[str], deps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Dependencies (i, j) of ``chain`` that ``recovered`` (same multiset) puts out of order.
    The k-th occurrence of a tool in ``recovered`` stands for its k-th occurrence in ``chain``."""
    positions: dict[str, list[int]] = {}
    for pos, name in enumerate(recovered):
        positions.setdefault(name, []).append(pos)
    seen: Counter[str] = Counter()
    where: list[int] = []
    for name in chain:
        where.append(positions[name][seen[name]])
        seen[name] += 1
    return [(i, j) for i, j in deps if where[i] >= where[j]]


def compare_chains(chain: list[str], recovered: list[str], deps: list[tuple[int, int]]) -> tuple[bool, str]:
    """Same multiset of tools and an order consistent with ``deps``."""
    if Counter(chain) != Counter(recovered):
        return False, f"recovered {recovered} is not the chain's tools {chain}"
    bad = order_violations(chain, recovered, deps)
    if bad:
        i, j = bad[0]
        return False, (f"recovered order {recovered} puts {chain[j]} (step {j + 1}) before {chain[i]} "
                       f"(step {i + 1}), whose output it needs")
    return True, "same tools" + (" in the same order" if recovered == chain else
                                 " in an order consistent with the data dependencies")


async def backtranslate_check(client: LLMClient, server: ToolServer, tools: list[str], *,
                              resolution: dict[str, Any] | None = None, bt_client: LLMClient | None = None,
                              max_tokens: int = 512, max_repairs: int = 1) -> CheckOutcome:
    """chain -> query (``client``) -> chain (``bt_client``, default ``client``)."""
    bt_client = bt_client or client
    prompt = render("chain_to_query", server=server_view(server), steps=step_views(server, tools, resolution))
    try:
        q = await client.structured([{"role": "user", "content": prompt}], QueryReply, max_repairs=max_repairs,
                                    temperature=0.0, max_tokens=max_tokens)
    except LLMError as e:
        if is_endpoint_failure(e):
            raise
        return CheckOutcome(ok=False, reason="backtranslate_failed",
                            detail=f"chain -> query failed: {type(e).__name__}: {str(e)[:300]}")
    record: dict[str, Any] = {"query": q.query}
    named = [t.name for t in server.tools if _names_tool(q.query, t.name)]
    if named:
        return CheckOutcome(ok=False, record=record, reason="backtranslate",
                            detail=f"the generated query names tool(s) {', '.join(named)}")
    prompt2 = render("query_to_chain", server=server_view(server), tools=[tool_view(t) for t in server.tools],
                     query=q.query)
    try:
        seq = await bt_client.structured([{"role": "user", "content": prompt2}], ToolSequence,
                                         max_repairs=max_repairs, temperature=0.0, max_tokens=max_tokens)
    except LLMError as e:
        if is_endpoint_failure(e):
            raise
        return CheckOutcome(ok=False, record=record, reason="backtranslate_failed",
                            detail=f"query -> chain failed: {type(e).__name__}: {str(e)[:300]}")
    known = {t.name.lower(): t.name for t in server.tools}
    resolved = [resolve_name(n, known) for n in seq.tools]
    record["raw"] = list(seq.tools)
    bad = [n for n, r in zip(seq.tools, resolved, strict=True) if r is None]
    if bad:
        return CheckOutcome(ok=False, record=record, reason="backtranslate",
                            detail=f"hallucinated tool name(s) in the recovered chain: {', '.join(map(str, bad))}")
    recovered = [r for r in resolved if r is not None]
    deps = dependencies_of(resolution or {})
    record["recovered"] = recovered
    record["dependencies"] = [list(d) for d in deps]
    ok, why = compare_chains(tools, recovered, deps)
    record["match"] = why
    return CheckOutcome(ok=ok, record=record, reason="" if ok else "backtranslate", detail="" if ok else why)
