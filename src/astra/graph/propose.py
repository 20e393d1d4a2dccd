"""LLM-proposed (task, chain) pairs for one server.

The prompt ``graph_propose`` shows the server and its tools and asks for ``k`` pairs as
JSON; ``proposals`` samples of it are drawn (``sample_index`` 0..N-1, so each is cached
separately). Tool names are validated against the server: an unknown name is dropped and
counted, and the chain is cut there (no transition is invented across a dropped name).
A sample that fails (no valid JSON after the repair rounds, or any LLM error) is recorded
as a failure with its reason, never used.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from astra.llm import LLMClient
from astra.llm.errors import LLMError
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.types import Rejection, Tool, ToolServer


class ProposedChain(BaseModel):
    task: str = ""
    tools: list[str] = Field(default_factory=list)


class ChainProposals(BaseModel):
    chains: list[ProposedChain] = Field(min_length=1)  # a reply without chains is a failure


def compact(text: str, limit: int = 500) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters."""
    s = " ".join((text or "").split())
    return s if len(s) <= limit else s[: limit - 3].rstrip() + "..."


def _type_of(schema: dict[str, Any]) -> str:
    from astra.tools.schema import json_types

    ts = sorted(json_types(schema))
    return "|".join(ts) if ts else "any"


def tool_view(tool: Tool, *, full: bool = False) -> dict[str, Any]:
    """A tool as the prompts show it: name, description, parameters, required names."""
    req = set(tool.required)
    params = [{"name": n, "type": _type_of(s if isinstance(s, dict) else {}), "required": n in req,
               "description": compact(str((s or {}).get("description") or ""), 200)}
              for n, s in tool.properties.items()]
    return {"name": tool.name, "description": compact(tool.description, 2000 if full else 500),
            "params": params, "required": [p["name"] for p in params if p["required"]]}


def server_view(server: ToolServer) -> dict[str, Any]:
    return {"name": server.name, "title": server.title, "description": compact(server.description, 600)}


def resolve_name(name: str, known: dict[str, str]) -> str | None:
    """The server's tool called ``name`` (exact, else case/whitespace-insensitive, also
    accepting a ``functions.`` prefix); None for a hallucinated name."""
    if not isinstance(name, str):
        return None
    if name in known.values():
        return name
    key = name.strip().lower().removeprefix("functions.").strip("`'\" ()")
    return known.get(key)


def validate_chain(names: list[str], server: ToolServer) -> tuple[list[list[str]], list[str]]:
    """(segments of known tools, hallucinated names): the chain cut at each unknown name;
    only segments of 2+ tools carry transitions."""
    known = {t.name.lower(): t.name for t in server.tools}
    segments: list[list[str]] = [[]]
    bad: list[str] = []
    for n in names:
        r = resolve_name(n, known)
        if r is None:
            bad.append(str(n))
            segments.append([])
        else:
            segments[-1].append(r)
    return [s for s in segments if s], bad


@dataclass
class ProposalResult:
    chains: list[list[str]] = field(default_factory=list)  # validated segments (2+ tools)
    tasks: list[dict[str, Any]] = field(default_factory=list)  # {"task", "tools"} as kept
    stats: dict[str, Any] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


async def propose_chains(client: LLMClient, server: ToolServer, *, proposals: int = 3, k: int = 5,
                         max_len: int = 5, temperature: float = 0.8, max_tokens: int = 1024,
                         max_repairs: int = 1) -> ProposalResult:
    """Draw ``proposals`` samples of ``k`` (task, chain) pairs for ``server``."""
    prompt = render("graph_propose", server=server_view(server),
                    tools=[tool_view(t) for t in server.tools], k=k, max_len=max_len)
    messages = [{"role": "user", "content": prompt}]

    async def one(i: int) -> ChainProposals | BaseException:
        try:
            return await client.structured(messages, ChainProposals, max_repairs=max_repairs,
                                           temperature=temperature, max_tokens=max_tokens, sample_index=i)
        except LLMError as e:
            if is_endpoint_failure(e):
                raise
            return e

    results = await asyncio.gather(*(one(i) for i in range(proposals)))
    out = ProposalResult()
    ok = failed = proposed = hallucinated = single_tool = 0
    bad_names: set[str] = set()
    errors: list[str] = []
    for i, res in enumerate(results):
        key = f"{server.name}#proposal{i}"
        if isinstance(res, BaseException):
            failed += 1
            msg = f"{type(res).__name__}: {res}"
            errors.append(msg[:300])
            out.rejections.append(Rejection(key=key, reason="proposal_failed", detail=msg[:500]))
            continue
        ok += 1
        sample_bad: list[str] = []
        kept_here = short_here = 0
        for pc in res.chains:
            proposed += 1
            segments, bad = validate_chain(pc.tools, server)
            sample_bad.extend(bad)
            for seg in segments:
                if len(seg) >= 2:
                    out.chains.append(seg)
                    out.tasks.append({"task": pc.task, "tools": seg})
                    kept_here += 1
                else:
                    short_here += 1
        single_tool += short_here
        if not kept_here and not sample_bad:
            # an answer, but nothing to learn a transition from: say so
            out.rejections.append(Rejection(
                key=key, reason="single_tool_chains",
                detail=f"{len(res.chains)} proposed chain(s), none with two or more tools of the server"))
        if sample_bad:
            hallucinated += len(sample_bad)
            bad_names.update(sample_bad)
            out.rejections.append(Rejection(
                key=key, reason="hallucinated_tool",
                detail=f"dropped {len(sample_bad)} unknown tool name(s): {', '.join(sorted(set(sample_bad))[:10])}"))
    out.stats = {
        "requested": proposals, "ok": ok, "failed": failed, "proposed_chains": proposed,
        "kept_chains": len(out.chains), "single_tool_segments": single_tool, "hallucinated_names": hallucinated,
        "hallucinated": sorted(bad_names)[:20], "errors": errors[:5],
    }
    return out
