"""Task generation: chain-conditioned and server-only, offline or with an LLM.

Modes
-----
- **chain**: input a verified :class:`~astra.types.Chain`; the task needs exactly the
  chain's tools in that order (``target_tools == chain``).
- **server**: input a :class:`~astra.types.ToolServer`; any k = 1..3 of its tools. The
  offline generator picks tool sequences joined by data flow (each later tool takes a
  value an earlier one returns) and falls back to a single tool; the LLM picks freely.

Every task is an execution request (not "how to"), names no tool, and declares
``target_tools`` validated against the server. ``Task.arguments`` holds the task's plan
(format ``astra.plan/v1``, see :mod:`astra.tasks.plan`): per step the values the user
states (``user_args``) and where the other arguments come from (``derived_args``: a path
into an earlier step's result) -- complete enough to solve the task by executing the chain.

Generators
----------
- ``offline`` (:class:`OfflineGenerator`, no model): draws concrete values from the
  server's data and schemas (:class:`~astra.tasks.plan.ValuePool`), **dry-runs** the plan
  on a fresh executor for Python servers and keeps only plans where every call succeeds
  (``meta["dry_run"] = True``), then writes the query with varied templates
  (:mod:`astra.tasks.render`). Doc-only and MCP servers are not executed (nor anything
  with ``dry_run=False``): their values come from enums / examples / defaults / plausible
  values by type, ``meta["dry_run"] = False``. The dry run calls Python tools for real on a
  fresh instance -- turn it off for tools with side effects outside the process.
- ``llm`` (:class:`LLMGenerator`): prompts ``task_from_chain`` / ``task_from_server``
  with structured output (query, target tools, language, the concrete values the query
  states per step). Replies are validated; a failure is a rejection, never a task.

Rejection reasons: ``unknown_server``, ``hallucinated_tool`` (a tool the server does not
have), ``chain_mismatch`` (target tools differ from the chain), ``bad_tool_count`` (server
mode, not 1..3), ``names_tool``, ``not_execution_request``, ``missing_value`` (a required
user value neither stated nor given), ``unsolvable`` (the dry run of the LLM's values
failed), ``no_solvable_plan`` (the offline generator found no plan whose dry run succeeds),
``generation_failed`` (the LLM call or its JSON failed).

Which generator runs by default: :func:`default_backend` -- ``offline`` when the
configured LLM is ``offline`` or the tiny embedded default (``embedded`` without a path),
``llm`` otherwise; ``--generator`` overrides.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from astra.llm import LLMClient
from astra.llm.errors import LLMError
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.tasks.plan.execute import Executor, PlanError, execute_plan, executor_factory
from astra.tasks.plan.format import Plan, PlanStep
from astra.tasks.plan.resolve import StepArgs, resolve_steps
from astra.tasks.plan.search import find_plans
from astra.tasks.plan.values import ValuePool
from astra.tasks.render import (
    constraint_facts,
    followup_fields,
    intent_phrase,
    mention_values,
    render_query,
)
from astra.tasks.text import is_how_to, named_tools, value_mentioned
from astra.types import Chain, Rejection, Task, ToolServer

MAX_K = 3


# ---------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------


def default_backend(explicit: str | None, llm_spec: str | None) -> str:
    """``offline`` or ``llm``: the explicit choice wins; otherwise ``offline`` when the
    LLM is ``offline`` or the tiny embedded default (``embedded`` without a model path),
    ``llm`` for anything else (``openai:MODEL``, ``embedded:PATH``)."""
    if explicit:
        if explicit not in ("offline", "llm"):
            raise ValueError(f"unknown backend {explicit!r}: use 'offline' or 'llm'")
        return explicit
    spec = (llm_spec or "embedded").strip()
    return "offline" if spec in ("offline", "embedded", "embedded:") else "llm"


def stable_hash(*parts: Any, n: int = 12) -> str:
    blob = json.dumps([str(p) for p in parts], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:n]


def task_id(server: str, mode: str, chain: list[str] | None, index: int) -> str:
    """Stable id of an original task: a hash of server, mode, chain and index."""
    return f"t-{stable_hash(server, mode, '>'.join(chain or []), index)}"


def rng_for(seed: int, *parts: Any) -> random.Random:
    return random.Random(int(stable_hash(seed, *parts, n=16), 16))


@dataclass
class ServerContext:
    """What generation needs per server, built once: executor factory and value pool."""

    server: ToolServer
    factory: Callable[[], Executor] | None
    pool: ValuePool


def validate_tools(server: ToolServer, names: list[str]) -> list[str]:
    """The names that are not tools of ``server``."""
    known = {t.name for t in server.tools}
    return [n for n in names if n not in known]


def check_query(query: str, server: ToolServer) -> Rejection | None:
    """The text checks every generated (or augmented) query must pass."""
    named = named_tools(query, [t.name for t in server.tools])
    if named:
        return Rejection(key="", reason="names_tool", detail=f"the query names {', '.join(named)}")
    if is_how_to(query):
        return Rejection(key="", reason="not_execution_request", detail="asks how to do it instead of asking for it")
    return None


def _preview(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_task(server: ToolServer, *, tid: str, query: str, plan: Plan, mode: str, chain: list[str] | None,
               generator: str, results: list[Any] | None, language: str = "en",
               extra_meta: dict[str, Any] | None = None) -> Task:
    meta: dict[str, Any] = {
        "generator": generator,
        "domain": server.domain,
        "dry_run": results is not None,
        "intents": [intent_phrase(server.tool(s.tool)) for s in plan.steps],
        "constraints": constraint_facts(server, plan, results),
        "followups": followup_fields(server, plan, results),
    }
    if results is not None:
        meta["final_result"] = _preview(results[-1])
        meta["step_results"] = [_preview(r, 1500) for r in results]
    meta.update(extra_meta or {})
    return Task(id=tid, server=server.name, query=query, target_tools=plan.tools, mode=mode,
                chain=list(chain) if chain else None, arguments=plan.model_dump(mode="json"),
                language=language, meta=meta)


# ---------------------------------------------------------------------------------
# Offline
# ---------------------------------------------------------------------------------


class OfflineGenerator:
    """Rule-based generation from the server's data and schemas (see the module docstring)."""

    def __init__(self, seed: int = 0, *, renders: int = 4, dry_run: bool = True):
        self.seed = seed
        self.renders = renders
        self.dry_run = dry_run  # False: never execute tools (plans are then unverified)
        self._contexts: dict[str, ServerContext] = {}

    def context(self, server: ToolServer) -> ServerContext:
        ctx = self._contexts.get(server.name)
        if ctx is None:
            factory = executor_factory(server) if self.dry_run else None
            ctx = ServerContext(server, factory, ValuePool(server, factory))
            self._contexts[server.name] = ctx
        return ctx

    def _render(self, server: ToolServer, plan: Plan, rng: random.Random) -> tuple[str, list[str]] | None:
        for _ in range(self.renders):
            query, mentions = render_query(server, plan, rng)
            if check_query(query, server) is None and all(value_mentioned(m, query) for m in mentions):
                return query, mentions
        return None

    def _tasks(self, ctx: ServerContext, steps: list[StepArgs], *, n: int, key: str, mode: str,
               chain: list[str] | None, ids: list[str], extra_meta: dict[str, Any] | None = None,
               ) -> tuple[list[Task], list[Rejection]]:
        rng = rng_for(self.seed, mode, key)
        found, errors = find_plans(ctx.server, steps, ctx.pool, rng, n, factory=ctx.factory)
        if not found:
            detail = errors[-1] if errors else "no plan"
            return [], [Rejection(key=key, reason="no_solvable_plan", detail=detail)]
        tasks, rejections = [], []
        for k, fp in enumerate(found):
            written = self._render(ctx.server, fp.plan, rng)
            if written is None:
                rejections.append(Rejection(key=f"{key}#{k}", reason="names_tool",
                                            detail="every rendering named a tool or lost a value"))
                continue
            query, mentions = written
            plan = fp.plan.model_copy(update={"mentions": mentions})
            tasks.append(build_task(ctx.server, tid=ids[k], query=query, plan=plan, mode=mode, chain=chain,
                                    generator="offline", results=fp.results, extra_meta=extra_meta))
        return tasks, rejections

    def for_chain(self, server: ToolServer, chain: Chain, n: int = 2) -> tuple[list[Task], list[Rejection]]:
        """Up to ``n`` solvable tasks that need exactly ``chain``."""
        key = chain.record_key()
        unknown = validate_tools(server, chain.tools)
        if unknown:
            return [], [Rejection(key=key, reason="hallucinated_tool",
                                  detail=f"not tools of {server.name}: {', '.join(unknown)}")]
        ctx = self.context(server)
        steps = resolve_steps(server, chain.tools, chain.checks)
        ids = [task_id(server.name, "chain", chain.tools, k) for k in range(n)]
        return self._tasks(ctx, steps, n=n, key=key, mode="chain", chain=chain.tools, ids=ids,
                           extra_meta={"chain_source": chain.source})

    def tool_sequences(self, server: ToolServer, n: int, rng: random.Random, max_k: int = MAX_K,
                       ) -> list[list[str]]:
        """``n`` distinct tool sequences of length k = 1, 2, 3, 1, 2, ... (capped at
        ``max_k``): each later tool takes at least one required value from an earlier one
        (data flow); a sequence that cannot grow stays shorter."""
        names = [t.name for t in server.tools]
        out: list[list[str]] = []
        seen: set[tuple[str, ...]] = set()
        for i in range(n * 4):
            if len(out) >= n:
                break
            k = 1 + (len(out) % max(1, max_k))
            seq = [rng.choice(names)]
            while len(seq) < k:
                nexts = [t for t in names if t not in seq and _connected(server, seq + [t])]
                if not nexts:
                    break
                seq.append(rng.choice(nexts))
            if len(seq) < k and i < n * 3:
                continue  # try another start that can grow to k
            if tuple(seq) not in seen:
                seen.add(tuple(seq))
                out.append(seq)
        return out

    def for_server(self, server: ToolServer, n: int = 3, max_k: int = MAX_K) -> tuple[list[Task], list[Rejection]]:
        """``n`` tasks over any k = 1..``max_k`` tools of ``server``. Tool sequences with no
        solvable plan are skipped; only when none works is the server rejected."""
        ctx = self.context(server)
        rng = rng_for(self.seed, "server", server.name)
        tasks: list[Task] = []
        failures: list[str] = []
        for seq in self.tool_sequences(server, n * 6, rng, max_k):
            if len(tasks) >= n:
                break
            index = len(tasks)
            got, rej = self._tasks(ctx, resolve_steps(server, seq), n=1, key=f"{server.name}:{'>'.join(seq)}",
                                   mode="server", chain=None, ids=[task_id(server.name, "server", None, index)],
                                   extra_meta={"k": len(seq)})
            tasks += got
            failures += [f"{r.key}: {r.detail}" for r in rej]
        if not tasks:
            return [], [Rejection(key=server.name, reason="no_solvable_plan",
                                  detail=failures[-1] if failures else "no tool sequence")]
        return tasks, []


def _connected(server: ToolServer, seq: list[str]) -> bool:
    steps = resolve_steps(server, seq)
    return bool(steps[-1].derived)


# ---------------------------------------------------------------------------------
# LLM
# ---------------------------------------------------------------------------------


class LLMStep(BaseModel):
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class LLMTask(BaseModel):
    """What the generation prompts ask for."""

    query: str = Field(min_length=8)
    target_tools: list[str] = Field(min_length=1)
    language: str = "en"
    steps: list[LLMStep] = Field(default_factory=list)


def step_views(server: ToolServer, steps: list[StepArgs], pool: ValuePool) -> list[dict[str, Any]]:
    """The chain's steps as the prompt shows them: what the user must say (with values
    that exist in the service's data) and what comes from earlier steps."""
    out = []
    for i, sa in enumerate(steps):
        tool = server.tool(sa.tool)
        user = []
        for p in sa.user_required + [q for q in sa.user_optional][:4]:
            schema = tool.properties.get(p) or {}
            cands = pool.candidates(tool, p)[:6]
            user.append({"name": p, "required": p in sa.user_required,
                         "description": str(schema.get("description") or ""), "known_values": cands})
        derived = [{"name": p, "from_step": ref.step + 1} for p, ref in sa.derived.items()]
        out.append({"index": i + 1, "tool": tool.name, "description": tool.description, "user": user,
                    "derived": derived})
    return out


def server_view(server: ToolServer) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description,
             "parameters": {p: str((s or {}).get("description") or "") for p, s in t.properties.items()},
             "required": t.required} for t in server.tools]


class LLMGenerator:
    """Generation with an LLM (see the module docstring). Needs an :class:`OfflineGenerator`
    for the per-server contexts (value pools and executors used to validate the reply)."""

    def __init__(self, client: LLMClient, offline: OfflineGenerator, *, temperature: float = 0.7,
                 max_repairs: int = 2, max_tokens: int = 768):
        self.client = client
        self.offline = offline
        self.temperature = temperature
        self.max_repairs = max_repairs
        self.max_tokens = max_tokens

    async def _ask(self, prompt: str, index: int) -> LLMTask:
        return await self.client.structured([{"role": "user", "content": prompt}], LLMTask,
                                            max_repairs=self.max_repairs, temperature=self.temperature,
                                            sample_index=index, max_tokens=self.max_tokens)

    async def _ask_valid(self, server: ToolServer, prompt: str, index: int, key: str) -> LLMTask | Rejection:
        """The reply to ``prompt`` when it names only tools of ``server``, else why not
        (an endpoint failure raises: it is no rejection)."""
        try:
            reply = await self._ask(prompt, index)
        except LLMError as e:
            if is_endpoint_failure(e):
                raise
            return Rejection(key=key, reason="generation_failed", detail=str(e)[:300])
        unknown = validate_tools(server, reply.target_tools + [s.tool for s in reply.steps])
        if unknown:
            return Rejection(key=key, reason="hallucinated_tool",
                             detail=f"not tools of {server.name}: {', '.join(dict.fromkeys(unknown))}")
        return reply

    async def for_chain(self, server: ToolServer, chain: Chain, n: int = 2) -> tuple[list[Task], list[Rejection]]:
        key = chain.record_key()
        unknown = validate_tools(server, chain.tools)
        if unknown:
            return [], [Rejection(key=key, reason="hallucinated_tool",
                                  detail=f"the chain has tools {server.name} lacks: {', '.join(unknown)}")]
        ctx = self.offline.context(server)
        steps = resolve_steps(server, chain.tools, chain.checks)
        prompt = render("task_from_chain", server=server, steps=step_views(server, steps, ctx.pool),
                        chain=chain.tools)
        tasks, rejections = [], []
        for i in range(n):
            k = f"{key}#{i}"
            reply = await self._ask_valid(server, prompt, i, k)
            if isinstance(reply, Rejection):
                rejections.append(reply)
                continue
            if reply.target_tools != chain.tools:
                rejections.append(Rejection(key=k, reason="chain_mismatch",
                                            detail=f"target tools {reply.target_tools} != chain {chain.tools}"))
                continue
            task, rej = self._finish(ctx, reply, steps, tid=task_id(server.name, "chain", chain.tools, i),
                                     mode="chain", chain=chain.tools, key=k,
                                     extra_meta={"chain_source": chain.source})
            if task is not None:
                tasks.append(task)
            if rej is not None:
                rejections.append(rej)
        return tasks, rejections

    async def for_server(self, server: ToolServer, n: int = 3, max_k: int = MAX_K
                         ) -> tuple[list[Task], list[Rejection]]:
        ctx = self.offline.context(server)
        tasks, rejections = [], []
        for i in range(n):
            k_hint = 1 + i % max(1, max_k)
            prompt = render("task_from_server", server=server, tools=server_view(server), k=k_hint, max_k=max_k)
            key = f"{server.name}#{i}"
            reply = await self._ask_valid(server, prompt, i, key)
            if isinstance(reply, Rejection):
                rejections.append(reply)
                continue
            if not 1 <= len(reply.target_tools) <= max_k:
                rejections.append(Rejection(key=key, reason="bad_tool_count",
                                            detail=f"{len(reply.target_tools)} tools, expected 1..{max_k}"))
                continue
            steps = resolve_steps(server, reply.target_tools)
            task, rej = self._finish(ctx, reply, steps, tid=task_id(server.name, "server", None, i), mode="server",
                                     chain=None, key=key, extra_meta={"k": len(reply.target_tools)})
            if task is not None:
                tasks.append(task)
            if rej is not None:
                rejections.append(rej)
        return tasks, rejections

    def _finish(self, ctx: ServerContext, reply: LLMTask, steps: list[StepArgs], *, tid: str, mode: str,
                chain: list[str] | None, key: str, extra_meta: dict[str, Any]) -> tuple[Task | None, Rejection | None]:
        server = ctx.server
        query = reply.query.strip()
        bad = check_query(query, server)
        if bad is not None:
            return None, bad.model_copy(update={"key": key})
        given = _values_by_step(reply, [s.tool for s in steps])
        plan_steps, mentions, dropped = [], [], []
        for i, sa in enumerate(steps):
            tool = server.tool(sa.tool)
            user: dict[str, Any] = {}
            for p, v in given[i].items():
                if p not in tool.properties or p in sa.derived or v is None:
                    continue
                if not value_mentioned(v, query):
                    dropped.append(f"{sa.tool}.{p}")
                    continue
                user[p] = v
                mentions += mention_values(v)
            missing = [p for p in sa.user_required if p not in user]
            if missing:
                return None, Rejection(key=key, reason="missing_value",
                                       detail=f"{sa.tool}: no stated value for {', '.join(missing)}")
            plan_steps.append(PlanStep(tool=sa.tool, user_args=user, derived_args=dict(sa.derived)))
        plan = Plan(steps=plan_steps, mentions=list(dict.fromkeys(mentions)))
        results = None
        if ctx.factory is not None:
            try:
                results = execute_plan(plan, ctx.factory())
            except PlanError as e:
                return None, Rejection(key=key, reason="unsolvable", detail=str(e)[:300])
        meta = dict(extra_meta)
        if dropped:
            meta["dropped_values"] = dropped
        language = (reply.language or "en").strip().lower()[:8] or "en"
        return build_task(server, tid=tid, query=query, plan=plan, mode=mode, chain=chain, generator="llm",
                          results=results, language=language, extra_meta=meta), None


def _values_by_step(reply: LLMTask, tools: list[str]) -> list[dict[str, Any]]:
    """The reply's values per step of ``tools`` (matched in order by tool name)."""
    out: list[dict[str, Any]] = [{} for _ in tools]
    used: set[int] = set()
    for st in reply.steps:
        for i, name in enumerate(tools):
            if i not in used and name == st.tool:
                out[i] = dict(st.arguments)
                used.add(i)
                break
    return out


__all__ = [
    "LLMGenerator", "LLMTask", "OfflineGenerator", "ServerContext", "build_task", "check_query",
    "default_backend", "rng_for", "stable_hash", "task_id", "validate_tools",
]
