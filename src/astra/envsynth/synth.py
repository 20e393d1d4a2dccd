"""Environment synthesis per sub-question, verification in the sandbox, and the
assembly of one :class:`~astra.types.Environment` per instance (with merging, the ASTRA method §2.4).

For every **tool** sub-task of an instance (leaf non-tool steps are skipped):

1. **tool spec** — name, description, typed parameters. Anti-leakage: the spec (name,
   descriptions, enums, defaults, examples) must not contain the sub-question's entity
   values or the answer (:func:`spec_leaks`); a leaking spec is asked for again with the
   leak named, and after ``max_attempts`` the instance is rejected ``spec_leak``;
2. **complexity scaling** — more optional parameters / richer enums; it must stay backward
   compatible (:func:`scaling_problems`), else the unscaled spec is kept (recorded);
3. **call statement** from the sub-question (``get_weather(city="Oslo")``), checked against
   the spec (name, parameter names, required parameters);
4. **implementation** — standard library only (static check, :func:`forbidden_imports`:
   ``sys.stdlib_module_names`` minus process/network/FFI modules, no dynamic imports), the
   exact name and signature (:func:`signature_problems`), embedded mock data in a
   module-level literal ``MOCK_DATA`` (what merging extends), defensive ``ValueError``\\ s,
   deterministic;
5. **sandbox verification** (:func:`verify_call`) — the code and the call run in
   :mod:`astra.sandbox`; accepted iff the call returns and the return value contains the
   gold answer by **typed matching** (:func:`astra.envs.match.answer_in_output`; what
   the output merely echoes from the call's arguments does not count), and a second run
   returns the same value (determinism).

On failure, steps 3–5 are retried **with the error fed back** (the previous call, the
error/traceback or the wrong output), up to ``max_attempts``. Rejection reasons:
``spec_leak``, ``code_error`` (syntax, signature, raised, crashed, limit,
non-deterministic, bad call statement), ``wrong_answer``, ``forbidden_import``,
``llm_failed`` (no valid structured reply), plus ``no_tool_step``, ``no_plan`` (offline
synthesizer on an instance without a plan) and ``merge_failed``.

Two synthesizers produce steps 1–4: ``llm`` (prompts ``env_tool_spec``, ``env_scale``,
``env_call``, ``env_code``; structured output) and ``offline``
(:mod:`astra.envsynth.templates`, from ``QAInstance.meta["plan"]``). Step 5 and merging are
the same for both.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import keyword
import re
import sys
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from astra import pyast
from astra.envs.match import answer_in_output, normalize_text, parse_date, parse_number
from astra.envs.verify import (
    CALL_TIMEOUT,
    CallCheck,
    answer_type_of,
    call_problems,
    excerpt,
    verify_call,
    verify_calls,
)
from astra.envsynth.decompose import Rejected
from astra.envsynth.merge import SubEnv, merge_subenvs
from astra.envsynth.templates import param_name, probe_value, render_plan_tool
from astra.envsynth.worlds import World, load_world
from astra.llm import LLMClient
from astra.llm.errors import LLMError
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.sandbox import SandboxPool, default_pool, parse_call_statement
from astra.types import Environment, QAInstance, SubTask, Tool

Synthesizer = Literal["offline", "llm"]
REASONS = ("spec_leak", "code_error", "wrong_answer", "forbidden_import", "llm_failed", "no_tool_step", "no_plan",
           "merge_failed")
#: Standard-library modules a tool implementation may still not import: processes, network,
#: FFI, concurrency and interpreter internals (the sandbox refuses them anyway; refusing them
#: statically gives the LLM a clear error to fix).
DENIED_STDLIB = frozenset({
    "ctypes", "subprocess", "socket", "ssl", "select", "selectors", "asyncio", "multiprocessing", "threading",
    "concurrent", "signal", "urllib", "http", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "socketserver",
    "xmlrpc", "webbrowser", "pty", "tty", "resource", "mmap", "importlib", "sys", "os", "shutil", "tempfile",
    "pickle", "marshal", "gc", "code", "codeop", "runpy", "pdb", "inspect", "_thread", "builtins",
})
PROMPTS = ("env_tool_spec", "env_scale", "env_call", "env_code")


def prompts_version() -> str:
    """A short hash of the synthesis prompt files (recorded in every environment's provenance)."""
    h = hashlib.sha256()
    for name in PROMPTS:
        h.update(resources.files("astra.prompts").joinpath(f"{name}.jinja").read_bytes())
    return h.hexdigest()[:12]


# ---------------------------------------------------------------------------------
# Structured drafts (LLM replies)
# ---------------------------------------------------------------------------------

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]


class ParamDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    type: JsonType = "string"
    description: str = ""
    required: bool = True
    enum: list[Any] | None = None
    default: Any = None
    items: JsonType | None = Field(default=None, description="item type of an array")


class ToolSpecDraft(BaseModel):
    """A tool specification as the LLM writes it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    description: str
    parameters: list[ParamDraft] = Field(default_factory=list)

    def to_tool(self) -> Tool:
        """The OpenAI function schema; raises ValueError for unusable names."""
        if not self.name.isidentifier() or keyword.iskeyword(self.name):
            raise ValueError(f"tool name {self.name!r} is not a Python identifier")
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in self.parameters:
            if not p.name.isidentifier() or keyword.iskeyword(p.name):
                raise ValueError(f"parameter name {p.name!r} is not a Python identifier")
            if p.name in props:
                raise ValueError(f"parameter {p.name!r} is declared twice")
            schema: dict[str, Any] = {"type": p.type}
            if p.description:
                schema["description"] = p.description
            if p.enum:
                schema["enum"] = list(p.enum)
            if p.type == "array":
                schema["items"] = {"type": p.items or "string"}
            if not p.required and p.default is not None:
                schema["default"] = p.default
            props[p.name] = schema
            if p.required:
                required.append(p.name)
        return Tool(name=self.name, description=self.description,
                    parameters={"type": "object", "properties": props, "required": required})

    @classmethod
    def of(cls, tool: Tool) -> ToolSpecDraft:
        req = set(tool.required)
        params = []
        for name, s in tool.properties.items():
            t = s.get("type", "string")
            params.append(ParamDraft(name=name, type=t if t in JsonType.__args__ else "string",  # type: ignore[attr-defined]
                                     description=s.get("description", ""), required=name in req,
                                     enum=s.get("enum"), default=s.get("default"),
                                     items=(s.get("items") or {}).get("type") if t == "array" else None))
        return cls(name=tool.name, description=tool.description, parameters=params)


class CallDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    call: str = Field(description='one Python call statement, e.g. get_weather(city="Oslo")')


class CodeDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str = Field(description="the complete Python module (standard library only)")


# ---------------------------------------------------------------------------------
# Rules: leaks, compatibility, calls, static checks
# ---------------------------------------------------------------------------------

_QUOTED = re.compile(r"[\"“«]([^\"”»]{2,80})[\"”»]")
_CAPS = re.compile(r"\b([A-Z][\w'’\-]*(?:\s+(?:of|the|de|la|von|van|and|&)?\s*[A-Z][\w'’\-]*)*)")
_QWORDS = {"what", "which", "who", "whom", "whose", "when", "where", "why", "how", "in", "on", "at", "is", "are",
           "was", "were", "does", "do", "did", "the", "a", "an", "of", "for", "find", "give", "list", "name", "tell"}


def salient_values(text: str) -> list[str]:
    """Values a question states: quoted strings, capitalized names (not the first word when
    it is a question word), numbers with 3+ digits, dates."""
    out: list[str] = []
    out += [m.group(1).strip() for m in _QUOTED.finditer(text)]
    for m in _CAPS.finditer(text):
        phrase = m.group(1).strip()
        words = phrase.split()
        while words and words[0].lower() in _QWORDS:
            words = words[1:]
        if words and len(" ".join(words)) >= 3:
            out.append(" ".join(words))
    out += re.findall(r"\b\d{4}-\d{2}-\d{2}\b", text)
    out += [m for m in re.findall(r"(?<![\w.])\d[\d,]{2,}(?:\.\d+)?(?![\w])", text)]
    return list(dict.fromkeys(v for v in out if v))


def _leak_worthy(value: str) -> bool:
    """Too short or too generic values are not leaks (a "3" or a "yes" in a description)."""
    v = str(value).strip()
    if normalize_text(v) in ("yes", "no", "true", "false", "none", ""):
        return False
    num = parse_number(v)
    if num is not None:
        return len(re.sub(r"\D", "", v)) >= 3
    return len(normalize_text(v)) >= 3


def _spec_texts(tool: Tool) -> list[str]:
    texts = [tool.name.replace("_", " "), tool.description]

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("type", "required", "additionalProperties"):
                    continue
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif x is not None and not isinstance(x, bool):
            texts.append(str(x))

    walk(tool.parameters)
    texts += list(tool.parameters.get("properties", {}))
    return texts


def spec_leaks(tool: Tool, values: list[tuple[str, str | None]]) -> list[str]:
    """The values (``(value, answer_type)``) that the tool's spec reveals: its name,
    description, parameter names/descriptions, enums, defaults and examples are searched
    with typed matching (whole tokens, numbers by value)."""
    texts = _spec_texts(tool)
    found = []
    for value, atype in values:
        if not _leak_worthy(value):
            continue
        kind = atype if atype in ("int", "float", "date") else (
            None if parse_number(value) is not None or parse_date(value) is not None else "entity")
        if any(answer_in_output(value, t, kind) for t in texts):
            found.append(value)
    return list(dict.fromkeys(found))


def leak_values(inst: QAInstance, sub: SubTask) -> list[tuple[str, str | None]]:
    """What a sub-task's tool spec must not contain: its answer, the values its sub-question
    states, and (offline) its plan key."""
    plan = (inst.meta.get("plan") or {}).get(sub.id) or {}
    vals: list[tuple[str, str | None]] = [(sub.sub_answer, plan.get("answer_type"))]
    if plan.get("entity") is not None:
        vals.append((str(plan["entity"]), None))
    vals += [(v, None) for v in salient_values(sub.sub_question)]
    return vals


def _ptype(schema: dict[str, Any]) -> Any:
    return schema.get("type")


def scaling_problems(base: Tool, scaled: Tool) -> list[str]:
    """Why ``scaled`` is not a backward-compatible extension of ``base`` (empty = fine)."""
    probs = []
    if scaled.name != base.name:
        probs.append(f"the tool was renamed {base.name!r} -> {scaled.name!r}")
    bp, sp = base.properties, scaled.properties
    for name, schema in bp.items():
        if name not in sp:
            probs.append(f"parameter {name!r} was removed")
        elif _ptype(sp[name]) != _ptype(schema):
            probs.append(f"parameter {name!r} changed type {_ptype(schema)} -> {_ptype(sp[name])}")
        elif schema.get("enum") and sp[name].get("enum") and not set(map(str, schema["enum"])) <= set(
                map(str, sp[name]["enum"])):
            probs.append(f"parameter {name!r} lost enum values")
    new_required = set(scaled.required) - set(base.required)
    if new_required:
        probs.append(f"new required parameters {sorted(new_required)} (added parameters must be optional)")
    return probs


def forbidden_imports(code: str) -> list[str]:
    """Modules the code imports that are not allowed: anything outside the standard library
    (``sys.stdlib_module_names``), the :data:`DENIED_STDLIB` modules, relative imports and
    dynamic imports (``__import__``, ``importlib``). Raises SyntaxError."""
    tree = pyast.parse(code)
    bad: list[str] = []
    allowed = set(sys.stdlib_module_names) - DENIED_STDLIB
    for node in ast.walk(tree):
        mods: list[str] = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                bad.append("." * node.level + (node.module or ""))
                continue
            mods = [node.module or ""]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            bad.append("__import__(...)")
        for m in mods:
            top = m.split(".")[0]
            if top not in allowed:
                bad.append(m)
    return list(dict.fromkeys(bad))


def signature_problems(code: str, tool: Tool) -> list[str]:
    """Whether the code defines ``tool.name`` at module level with exactly the spec's
    parameters (required ones without defaults, optional ones with defaults)."""
    tree = pyast.parse(code)
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == tool.name),
              None)
    if fn is None:
        return [f"the code defines no module-level function {tool.name!r}"]
    if isinstance(fn, ast.AsyncFunctionDef):
        return [f"{tool.name} must be a plain (not async) function"]
    a = fn.args
    probs = []
    if a.vararg or a.kwarg:
        probs.append("no *args/**kwargs: declare exactly the spec's parameters")
    if a.posonlyargs:
        probs.append("no positional-only parameters")
    pos = a.args
    pos_defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    params = {p.arg: d is not None for p, d in zip(pos, pos_defaults, strict=True)}
    params.update({p.arg: d is not None for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)})
    spec = tool.properties
    req = set(tool.required)
    if set(params) != set(spec):
        missing = [p for p in spec if p not in params]
        extra = [p for p in params if p not in spec]
        if missing:
            probs.append(f"missing parameters {missing}")
        if extra:
            probs.append(f"parameters not in the spec {extra}")
    for p, has_default in params.items():
        if p in spec and p in req and has_default:
            probs.append(f"required parameter {p!r} must not have a default")
        if p in spec and p not in req and not has_default:
            probs.append(f"optional parameter {p!r} needs a default")
    return probs


def static_check(code: str, tool: Tool) -> tuple[str, str] | None:
    """``(reason, detail)`` when the code fails a static check, else None."""
    try:
        bad = forbidden_imports(code)
    except SyntaxError as e:
        return "code_error", f"SyntaxError: {e.msg} (line {e.lineno})"
    if bad:
        return "forbidden_import", (f"imports outside the allowed standard library: {', '.join(bad)} "
                                    "(use only the Python standard library, no os/sys/network/processes)")
    probs = signature_problems(code, tool)
    if probs:
        return "code_error", f"signature of {tool.name}: " + "; ".join(probs)
    return None


# ---------------------------------------------------------------------------------
# Sandbox verification
# ---------------------------------------------------------------------------------


async def probe_defensive(code: str, tool: Tool, kwargs: dict[str, Any], *, pool: SandboxPool) -> dict[str, Any]:
    """Call the tool with a bad input; record how it answers (a ValueError is what a good
    tool does). Recorded, not enforced, for LLM-written code."""
    res = await pool.acall_function(code, tool.name, kwargs, timeout=CALL_TIMEOUT)
    return {"kwargs": kwargs, "outcome": res.outcome, "error": res.error,
            "value": excerpt(res.value, 120) if res.ok else None}


# ---------------------------------------------------------------------------------
# Per sub-task results
# ---------------------------------------------------------------------------------


def tool_subtasks(inst: QAInstance) -> list[SubTask]:
    return [s for s in inst.sub_tasks if s.needs_tool]


# -- offline (templates) -------------------------------------------------------------


async def template_subenv(inst: QAInstance, sub: SubTask, *, world: World, pool: SandboxPool,
                          scale: int = 2) -> SubEnv:
    """Steps 1-5 for one sub-task from its plan entry (no LLM)."""
    entry = (inst.meta.get("plan") or {}).get(sub.id)
    if entry is None:
        raise Rejected("no_plan", f"{sub.id} has no plan entry")
    r = render_plan_tool(entry, world, scale=scale)
    leaks = spec_leaks(r.tool, leak_values(inst, sub))
    if leaks:
        raise Rejected("spec_leak", f"{sub.id}: the rendered spec of {r.tool.name} contains {leaks}")
    bad = static_check(r.code, r.tool)
    if bad:
        raise Rejected(bad[0], f"{sub.id}: {bad[1]}")
    check = await verify_call(r.code, r.call, sub.sub_answer, entry.get("answer_type"), sub_id=sub.id,
                              tool=r.tool.name, pool=pool)
    if not check.ok:
        raise Rejected(check.reason or "code_error", f"{sub.id}: {check.feedback()}"[:800])
    notes: dict[str, Any] = {"synthesizer": "offline", "scale": scale}
    if entry["operation"] == "lookup":
        notes["defensive"] = await probe_defensive(r.code, r.tool, {param_name(entry): probe_value(entry, world)},
                                                   pool=pool)
    return SubEnv(sub_id=sub.id, tool=r.tool, code=r.code, call=r.call, intent=r.intent, check=check, notes=notes)


# -- LLM ----------------------------------------------------------------------------------


def _tool_line(t: Tool) -> str:
    req = set(t.required)
    ps = ", ".join(f"{n}: {s.get('type', 'any')}" + ("" if n in req else " = optional")
                   for n, s in t.properties.items())
    return f"{t.name}({ps}) — {t.description}"


class LLMSynth:
    """Steps 1-5 with an LLM (structured output), the error fed back on every retry."""

    def __init__(self, client: LLMClient, *, pool: SandboxPool, max_attempts: int = 3, temperature: float = 0.2,
                 max_repairs: int = 2, max_tokens: int = 1500, scale: bool = True) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.client = client
        self.pool = pool
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.max_repairs = max_repairs
        self.max_tokens = max_tokens
        self.scale = scale

    async def _ask(self, prompt: str, schema: type[BaseModel], attempt: int) -> Any:
        try:
            return await self.client.structured([{"role": "user", "content": prompt}], schema,
                                                max_repairs=self.max_repairs, temperature=self.temperature,
                                                max_tokens=self.max_tokens, sample_index=attempt)
        except LLMError as e:  # StructuredOutputError is an LLMError
            if is_endpoint_failure(e):
                raise  # an outage: the instance fails (retried by a rerun), it is not rejected
            raise Rejected("llm_failed", f"{schema.__name__}: {e}"[:500]) from None

    async def spec(self, inst: QAInstance, sub: SubTask, existing: list[Tool]) -> Tool:
        values = leak_values(inst, sub)
        feedback = ""
        for attempt in range(self.max_attempts):
            draft = await self._ask(render("env_tool_spec", domain=inst.domain, question=inst.question,
                                           sub_question=sub.sub_question,
                                           existing=[_tool_line(t) for t in existing], feedback=feedback),
                                    ToolSpecDraft, attempt)
            try:
                tool = draft.to_tool()
            except ValueError as e:
                feedback = f"The spec is unusable: {e}."
                continue
            leaks = spec_leaks(tool, values)
            if not leaks:
                return tool
            feedback = (f"The spec leaks values from the question or its answer: {', '.join(map(repr, leaks))}. "
                        "Descriptions and examples must be generic (use made-up example values).")
        raise Rejected("spec_leak", f"{sub.id}: {feedback}")

    async def scaled(self, inst: QAInstance, sub: SubTask, tool: Tool) -> tuple[Tool, dict[str, Any]]:
        if not self.scale:
            return tool, {"scaling": "off"}
        draft = await self._ask(render("env_scale", spec=json.dumps(ToolSpecDraft.of(tool).model_dump(),
                                                                     ensure_ascii=False, indent=1),
                                       sub_question=sub.sub_question), ToolSpecDraft, 0)
        try:
            new = draft.to_tool()
        except ValueError as e:
            return tool, {"scaling": f"rejected: {e}"}
        probs = scaling_problems(tool, new)
        leaks = spec_leaks(new, leak_values(inst, sub))
        if probs or leaks:
            why = "; ".join(probs + ([f"leaks {leaks}"] if leaks else []))
            return tool, {"scaling": f"rejected: {why}"}
        added = [p for p in new.properties if p not in tool.properties]
        return new, {"scaling": "applied", "added_parameters": added}

    async def subenv(self, inst: QAInstance, sub: SubTask, existing: list[Tool]) -> SubEnv:
        base = await self.spec(inst, sub, existing)
        tool, notes = await self.scaled(inst, sub, base)
        atype = answer_type_of(inst, sub.id)
        feedback = ""
        last: tuple[str, str] = ("code_error", "no attempt made")
        for attempt in range(self.max_attempts):
            spec_json = json.dumps(tool.openai()["function"], ensure_ascii=False, indent=1)
            cd = await self._ask(render("env_call", spec=spec_json, question=inst.question,
                                        sub_question=sub.sub_question, feedback=feedback), CallDraft, attempt)
            statement = cd.call.strip().strip("`").strip()
            probs = call_problems(statement, tool)
            if probs:
                last = ("code_error", f"call statement {statement!r}: " + "; ".join(probs))
                feedback = f"Attempt {attempt + 1} failed: {last[1]}"
                continue
            arg_values: list[tuple[str, str | None]] = [(str(v), None) for v in parse_call_statement(statement).kwargs.values()
                          if isinstance(v, str)]
            leaks = spec_leaks(tool, arg_values)
            if leaks:
                raise Rejected("spec_leak", f"{sub.id}: the spec of {tool.name} contains the call's values {leaks}")
            code_d = await self._ask(render("env_code", spec=spec_json, call=statement, sub_question=sub.sub_question,
                                            answer=sub.sub_answer, feedback=feedback), CodeDraft, attempt)
            code = _strip_fences(code_d.code)
            bad = static_check(code, tool)
            if bad:
                last = bad
                feedback = f"Attempt {attempt + 1} failed ({bad[0]}): {bad[1]}"
                continue
            check = await verify_call(code, statement, sub.sub_answer, atype, sub_id=sub.id, tool=tool.name,
                                      pool=self.pool)
            if not check.ok:
                last = (check.reason or "code_error", check.feedback())
                feedback = f"Attempt {attempt + 1} failed ({last[0]}): {last[1]}"
                continue
            notes.update(synthesizer="llm", defensive=await probe_defensive(code, tool, _bad_kwargs(tool),
                                                                            pool=self.pool))
            return SubEnv(sub_id=sub.id, tool=tool, code=code, call=statement, intent=tool.name,
                          attempts=attempt + 1, check=check, notes=notes)
        raise Rejected(last[0], f"{sub.id} after {self.max_attempts} attempts: {last[1]}"[:800])


def _strip_fences(code: str) -> str:
    m = re.search(r"```(?:python|py)?\s*\n(.*?)```", code, re.S)
    return (m.group(1) if m else code).strip() + "\n"


def _bad_kwargs(tool: Tool) -> dict[str, Any]:
    """Required arguments no record has / of the wrong type (a probe for defensive errors)."""
    return {name: "__no_such_value__" if tool.properties.get(name, {}).get("type") == "string" else "not-a-value"
            for name in tool.required}


# ---------------------------------------------------------------------------------
# Assembling an environment
# ---------------------------------------------------------------------------------


def has_plan(inst: QAInstance) -> bool:
    plan = inst.meta.get("plan") or {}
    return bool(plan) and all(s.id in plan for s in tool_subtasks(inst))


async def synthesize_environment(
    inst: QAInstance, *, synthesizer: Synthesizer = "offline", client: LLMClient | None = None,
    pool: SandboxPool | None = None, max_attempts: int = 3, on_merge_fail: Literal["drop", "keep"] = "drop",
    scale: int = 2, seed: int = 0, world: World | None = None, model: str | None = None,
) -> Environment:
    """One verified, merged :class:`Environment` for ``inst``; raises :class:`Rejected`."""
    from astra import __version__

    pool = pool or default_pool()
    subs = tool_subtasks(inst)
    if not subs:
        raise Rejected("no_tool_step", "the instance has no tool sub-task")
    sub_envs: list[SubEnv] = []
    if synthesizer == "offline":
        if not has_plan(inst):
            raise Rejected("no_plan", "the offline synthesizer needs meta['plan'] (use --synthesizer llm)")
        world = world or load_world(inst.meta.get("world", inst.domain))
        sub_envs = list(await asyncio.gather(*(template_subenv(inst, s, world=world, pool=pool, scale=scale)
                                               for s in subs)))
    elif synthesizer == "llm":
        if client is None:
            raise ValueError("the llm synthesizer needs a client")
        synth = LLMSynth(client, pool=pool, max_attempts=max_attempts, scale=scale > 0)
        for s in subs:  # sequential: later sub-tasks see earlier tools (same intent -> same tool)
            sub_envs.append(await synth.subenv(inst, s, [e.tool for e in sub_envs]))
    else:
        raise ValueError(f"unknown synthesizer {synthesizer!r}")

    plan = inst.meta.get("plan") or {}
    golds = {s.id: s.sub_answer for s in inst.sub_tasks}
    types = {s.id: answer_type_of(inst, s.id) for s in inst.sub_tasks}
    tools, checks, merges = await merge_subenvs(sub_envs, golds, types, pool=pool, on_merge_fail=on_merge_fail,
                                                intents={sid: e["tool_intent"] for sid, e in plan.items()}
                                                if synthesizer == "offline" else None)
    record_tools: dict[str, Any] = {}
    for t in tools:
        record_tools[t.tool.name] = {
            "serves": t.serves,
            "calls": [c.model_dump(exclude={"tool"}) for c in checks if c.tool == t.tool.name],
            "sub_envs": {e.sub_id: {"attempts": e.attempts, **e.notes} for e in sub_envs if e.sub_id in t.serves},
        }
    verification = {
        "ok": all(c.ok for c in checks), "calls": len(checks), "tools": record_tools, "merges": merges,
        "total_seconds": round(sum(c.duration for c in checks), 4),
    }
    meta = dict(inst.meta)
    if synthesizer == "llm" and not plan:
        meta.setdefault("answer_types", {k: v for k, v in types.items() if v})
    instance = inst.model_copy(update={"meta": meta})
    provenance = {"generator": "template" if synthesizer == "offline" else "llm", "synthesizer": synthesizer,
                  "model": (model or (client.provider_id if client is not None else None)) if synthesizer == "llm" else None, "prompts_version": prompts_version(),
                  "seed": seed, "max_attempts": max_attempts, "scale": scale, "on_merge_fail": on_merge_fail,
                  "astra_version": __version__, "source": inst.meta.get("source", "")}
    return Environment(id=inst.id, instance=instance, tools=tools, verification=verification,
                       provenance=provenance)


__all__ = [
    "DENIED_STDLIB", "REASONS", "CallCheck", "CallDraft", "CodeDraft", "LLMSynth", "ParamDraft", "SubEnv",
    "ToolSpecDraft", "answer_type_of", "call_problems", "excerpt", "forbidden_imports", "has_plan", "leak_values",
    "probe_defensive", "prompts_version", "salient_values", "scaling_problems", "signature_problems",
    "spec_leaks", "static_check", "synthesize_environment", "template_subenv", "tool_subtasks", "verify_call",
    "verify_calls",
]
