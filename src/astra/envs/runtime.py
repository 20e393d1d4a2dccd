"""The environment runtime an RL trainer drives: reset / step / reward.

    session = EnvSession(env, max_turns=8, reward="f1", distractors=sampler.sample(env), seed=0)
    messages, tools = session.reset()          # [system, user question], OpenAI tools (shuffled)
    while not session.done:
        reply = policy(messages, tools)        # an assistant message
        if not reply.tool_calls:
            session.finish(reply.content); break
        messages += [reply.message(), *await session.astep(reply.tool_calls)]
    info = session.reward()                    # RewardInfo: reward, recall, precision, f1, solved, calls

Semantics (docs/environments.md, "Runtime and reward", gives the formula with examples)
---------
- **Isolation**: every tool call runs in a fresh sandbox unit (:mod:`astra.sandbox`):
  the tool's code is loaded anew for each call, so nothing a call does (module globals,
  files) survives into another call, session or instance.
- **Calls** ``c``: every tool call the agent makes counts — unknown tools, arguments that
  are not a JSON object / too long / nested too deep / against the tool's schema, calls
  that raise, calls beyond :attr:`EnvSession.max_calls_per_turn`, and calls to distractor
  tools included. Each gets a tool message (``{"role": "tool", "tool_call_id",
  "content"}``; errors start with ``Error:``); nothing an agent sends raises out of
  :meth:`EnvSession.astep`.
- **Solved tool sub-tasks**: a tool sub-task is solved when a call **to a tool that serves
  it** (``EnvTool.serves``) returns an output that contains its gold answer by typed
  matching (:func:`astra.envs.match.answer_in_output`), not counting what the output
  merely echoes from the call's own arguments. A distractor, or an in-scope tool that does
  not serve the sub-task, never solves it.
- **The final answer** (the text given to :meth:`EnvSession.finish`) is checked in every
  environment against exactly one gold value, the instance's answer ``a0``, by
  :func:`astra.envs.match.check_final_answer`: typed, and an answer that also names
  another value the environment knows (its mock data, sub-answers, anything a tool returned
  in the episode), or that is much longer than the gold needs, fails.
- **The gate** ``G``: 1 iff the final answer passes *and* every sub-task the answer rests on
  (the tool sub-tasks at the end of the DAG: the final step when it is a tool step, else the
  tool inputs of the final non-tool step) was solved by the agent's own calls. A non-tool
  sub-task is credited iff the final answer passes and its tool inputs were solved.
- **Reward**: ``G · kind(r, p)`` (:func:`astra.envs.reward.episode_reward`) with ``n`` = all
  sub-tasks, ``n̂`` = solved tool sub-tasks + credited non-tool sub-tasks, ``kind`` = ``f1``
  | ``recall`` | ``precision``; all three (gated) are in the :class:`RewardInfo`.
- **Termination** (``done``): ``max_turns`` :meth:`astep` calls or :meth:`finish` (the
  agent stopped calling tools; ``astep([])`` is ``finish(None)``). Solving every tool
  sub-task does not end the episode: the answer is still to come. After ``max_turns`` the
  agent may still :meth:`finish` (once). Stepping a finished episode raises
  :class:`EpisodeOver`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from astra.choices import check_choice
from astra.envs.arguments import SchemaUnusable, argument_problem, parse_arguments
from astra.envs.reward import REWARD_KINDS, episode_reward, reward_parts, trajectory_reward
from astra.errors import AstraError
from astra.llm.types import ToolCall
from astra.tools.sync import run_sync
from astra.types import Environment, EnvTool, QAInstance

if TYPE_CHECKING:
    from astra.envs.match import AnswerVerdict
    from astra.sandbox import SandboxPool


class EpisodeOver(AstraError):
    """:meth:`EnvSession.astep` on an episode that is already done."""


class RewardInfo(BaseModel):
    """The reward of one episode and its parts (``recall``/``precision``/``f1`` gated like the reward)."""

    model_config = ConfigDict(extra="forbid")

    reward: float
    kind: str
    recall: float
    precision: float
    f1: float
    solved: list[str] = Field(default_factory=list)
    n_subtasks: int
    calls: int
    answer_ok: bool = False  # the final answer states a0 and nothing competing with it
    answer_check: str = "empty"  # ok | empty | too_long | missing | several_values (match.ANSWER_REASONS)
    answer_detail: str = ""
    grounded: bool = False  # the sub-tasks the answer rests on were solved by the agent's calls
    gate: bool = False  # answer_ok and grounded: the reward is kind(r, p) times this
    success: bool = False  # gate and every sub-task solved


def default_system_prompt() -> str:
    from astra.prompts import render

    return render("env_agent_system")


def _normalize_call(tc: Any, default_id: str) -> tuple[str, str, Any, str | None]:
    """``(id, name, raw arguments, problem)`` of a ToolCall or an OpenAI-style / flat dict;
    ``problem`` says why an entry is not a tool call at all."""
    if isinstance(tc, ToolCall):
        return tc.id or default_id, str(tc.name or ""), tc.arguments, None
    if isinstance(tc, dict):
        function = tc.get("function")
        fn = function if isinstance(function, dict) else tc
        args = fn.get("arguments", fn.get("args", {}))
        cid = tc.get("id")
        cid = cid if isinstance(cid, str) and cid and len(cid) <= 200 else default_id
        name = fn.get("name")
        if not isinstance(name, str):
            return cid, "", args, f"the tool name must be a string, got {type(name).__name__}"
        return cid, name, args, None
    return default_id, "", None, f"a tool call must be an object with a name and arguments, got {type(tc).__name__}"


def _canonical(name: str, kwargs: dict[str, Any]) -> str:
    """A call's identity: identical calls (same tool, same arguments up to case and spacing)
    solve at most one sub-task between them."""
    try:
        return name + "\x00" + json.dumps(_norm_args(kwargs), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return name + "\x00" + repr(sorted(kwargs))


def _norm_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    from astra.envs.match import normalize_text

    return {k: normalize_text(v) if isinstance(v, str) else v for k, v in kwargs.items()}


def _gold_arguments(env: Environment) -> dict[str, dict[str, Any] | None]:
    """Per tool sub-task, the (normalized) keyword arguments of its gold call."""
    from astra.sandbox import CallStatementError, parse_call_statement

    out: dict[str, dict[str, Any] | None] = {}
    for t in env.tools:
        for sid, stmt in t.calls.items():
            try:
                out[sid] = _norm_args(dict(parse_call_statement(stmt).kwargs))
            except CallStatementError:  # an unreadable gold call only loses the tie-break
                out[sid] = None
    return out


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _mock_data(code: str) -> Any:
    """The literal module-level ``MOCK_DATA`` of a tool's code, or None when it has none."""
    from astra.envs.verify import MockDataError, mock_data_of

    try:
        return mock_data_of(code)
    except (MockDataError, ValueError, MemoryError):
        return None


@lru_cache(maxsize=4096)
def _code_value_runs(code: str) -> frozenset[tuple[str, ...]]:
    from astra.envs.match import value_runs

    data = _mock_data(code)
    return value_runs(data, keys=True) if data is not None else frozenset()


def environment_values(env: Environment) -> frozenset[tuple[str, ...]]:
    """The values an environment knows, as token runs (:func:`astra.envs.match.value_runs`):
    every key and value of its tools' ``MOCK_DATA``, every sub-answer, the entities its plan
    and aggregate name. A final answer may name none of them except the gold."""
    from astra.envs.match import value_runs

    inst = env.instance
    extra: list[Any] = [s.sub_answer for s in inst.sub_tasks]
    for entry in (inst.meta.get("plan") or {}).values():
        if isinstance(entry, dict):
            extra.append(entry.get("entity"))
    agg = inst.meta.get("aggregate") or {}
    if isinstance(agg, dict):
        extra.extend(agg.get("entities") or [])
    runs = set(value_runs(extra))
    for t in env.tools:
        runs |= _code_value_runs(t.code)
    return frozenset(runs)


def answer_structure(inst: QAInstance) -> tuple[list[str], dict[str, frozenset[str]]]:
    """``(grounding, inputs)``: the tool sub-tasks the final answer rests on (for each sink
    of the DAG: itself when it is a tool step, else the tool steps it depends on, through
    non-tool steps), and per non-tool sub-task the tool sub-tasks it depends on."""
    by_id = {s.id: s for s in inst.sub_tasks}
    deps = {s.id: [d for d in (s.dependency or []) if d in by_id] for s in inst.sub_tasks}

    def tool_inputs(sid: str) -> frozenset[str]:
        out: set[str] = set()
        stack, seen = list(deps[sid]), {sid}
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            if by_id[d].needs_tool:
                out.add(d)
            else:
                stack.extend(deps[d])
        return frozenset(out)

    dependents = {d for ds in deps.values() for d in ds}
    grounding: set[str] = set()
    for s in inst.sub_tasks:
        if s.id in dependents:
            continue
        grounding |= {s.id} if s.needs_tool else tool_inputs(s.id)
    inputs = {s.id: tool_inputs(s.id) for s in inst.sub_tasks if not s.needs_tool}
    order = [s.id for s in inst.sub_tasks]
    return [x for x in order if x in grounding], inputs


def final_answer_type(inst: QAInstance) -> str | None:
    """The typed-matching hint of the final answer: that of the DAG's only sink, if one."""
    from astra.envs.verify import answer_type_of

    dependents = {d for s in inst.sub_tasks for d in (s.dependency or [])}
    sinks = [s.id for s in inst.sub_tasks if s.id not in dependents]
    return answer_type_of(inst, sinks[0]) if len(sinks) == 1 else None


class SessionBase:
    """What every episode session shares, whatever its kind: argument checks, the tool list
    the agent sees, turns and calls, and the call-limit rules. A subclass judges one call
    (``_one``) and the final answer (``finish``)."""

    #: Seconds one tool call may run in the sandbox.
    call_timeout: float = 10.0
    #: Longest tool message content (longer outputs are cut, and judged as cut).
    max_content_chars: int = 8000
    #: Calls of one turn that are run; the rest get an error (and count).
    max_calls_per_turn: int = 32
    #: Whether one turn's calls run concurrently (independent sandboxed calls) or in order
    #: (calls that share one state).
    concurrent_calls: bool = True

    env: Any
    seed: int
    max_turns: int
    reward_kind: str
    system_prompt: str | None
    turns: int
    calls: int
    done: bool
    finished: bool
    log: list[dict[str, Any]]
    _pool: SandboxPool | None
    tools_in_scope: dict[str, EnvTool]
    distractors: dict[str, EnvTool]

    def _keep_settings(self, env: Any, *, max_turns: int, reward: str, seed: int, system_prompt: str | None,
                       pool: SandboxPool | None) -> None:
        """Check and keep the settings every session takes."""
        check_choice(reward, REWARD_KINDS, "reward kind")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.env = env
        self.max_turns = max_turns
        self.reward_kind = reward
        self.seed = seed
        self.system_prompt = system_prompt
        self._pool = pool

    def _keep_distractors(self, distractors: list[EnvTool] | None, *, need_code: bool = False) -> None:
        """The distractor tools by name: the first of each name, none named like a tool in scope
        (with ``need_code``, only those with code to run)."""
        self.distractors = {}
        for t in distractors or []:
            if (t.tool.name not in self.tools_in_scope and t.tool.name not in self.distractors
                    and (t.code or not need_code)):
                self.distractors[t.tool.name] = t

    @property
    def pool(self) -> SandboxPool:
        if self._pool is None:
            from astra.sandbox import default_pool

            self._pool = default_pool()
        return self._pool

    def tools(self) -> list[dict[str, Any]]:
        """The OpenAI tools list the agent sees: in-scope tools and distractors, shuffled by seed."""
        items = [t.tool.openai() for t in self.tools_in_scope.values()] + \
                [t.tool.openai() for t in self.distractors.values()]
        random.Random(f"astra.envs/{self.env.id}/{self.seed}").shuffle(items)
        return items

    def _content(self, value: Any) -> tuple[str, bool]:
        """A tool result as message text, cut at :attr:`max_content_chars` (and whether it was)."""
        if isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, ensure_ascii=False, default=str)
            except (TypeError, ValueError, RecursionError):
                text = str(value)
        if len(text) > self.max_content_chars:
            return text[: self.max_content_chars] + " … [output truncated]", True
        return text, False

    async def _one(self, call_id: str, name: str, raw: Any, problem: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _check_answer(self, final_answer: str | None) -> AnswerVerdict:
        raise NotImplementedError

    def _credit_answer(self, verdict: AnswerVerdict) -> None:
        """Credit what an accepted final answer stands for (nothing by default)."""

    def finish(self, final_answer: Any) -> None:
        """The agent stopped calling tools: check ``final_answer`` (:meth:`_check_answer`; an
        answer that defeats the checker fails) and credit it (:meth:`_credit_answer`). Only the
        first call of an episode counts; it is accepted after ``max_turns`` too."""
        from astra.envs.match import AnswerVerdict

        if not self.finished:
            self.finished = True
            if final_answer is not None and not isinstance(final_answer, str):
                final_answer = str(final_answer)
            self.final_answer = final_answer
            try:
                verdict = self._check_answer(final_answer)
            except (RecursionError, MemoryError) as e:  # defensive: an answer that defeats the checker fails
                verdict = AnswerVerdict(False, "missing", f"could not be read ({type(e).__name__})")
            self.answer_verdict = verdict
            self._credit_answer(verdict)
        self.done = True

    async def _run_calls(self, tool_calls: Any) -> list[dict[str, Any]]:
        """Execute and count calls (no turn accounting, no done check)."""
        if isinstance(tool_calls, ToolCall | dict) or not isinstance(tool_calls, list | tuple):
            tool_calls = [tool_calls]
        norm = [_normalize_call(tc, f"call_{self.turns}_{i}") for i, tc in enumerate(tool_calls)]
        self.calls += len(norm)
        over = f"more than {self.max_calls_per_turn} calls in one turn (this one was not run)"
        jobs = [(cid, name, raw, problem if i < self.max_calls_per_turn else over)
                for i, (cid, name, raw, problem) in enumerate(norm)]
        if self.concurrent_calls:
            recs = list(await asyncio.gather(*(self._one(*job) for job in jobs)))
        else:
            recs = [await self._one(*job) for job in jobs]
        self.log.extend(recs)
        return [{"role": "tool", "tool_call_id": r["id"], "content": r["content"]} for r in recs]

    def _update_done(self) -> None:
        if self.turns >= self.max_turns or self.finished:
            self.done = True

    async def astep(self, tool_calls: Sequence[ToolCall | dict[str, Any]]) -> list[dict[str, Any]]:
        """Execute one assistant turn's tool calls; returns one tool message per call, in order."""
        if self.done:
            raise EpisodeOver(f"the episode of {self.env.id!r} is over (turns={self.turns}, "
                              f"finished={self.finished}); call reset() to start again")
        if not tool_calls:
            self.finish(None)
            return []
        msgs = await self._run_calls(tool_calls)
        self.turns += 1
        self._update_done()
        return msgs

    def step(self, tool_calls: Sequence[ToolCall | dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`astep` from sync code."""
        return run_sync(self.astep(tool_calls))

    async def acall_tool(self, name: str, arguments: Any, *, call_id: str | None = None) -> tuple[str, dict[str, Any]]:
        """One tool call outside the turn structure (adapters whose agent calls tools one at a
        time: TRL, MCP): counted and judged like a call of :meth:`astep`, no turn used.
        Returns ``(content, log record)``; the record's ``status`` is ``ok`` or the error kind."""
        if self.finished:
            raise EpisodeOver(f"the episode of {self.env.id!r} is over: the answer was given")
        cid = call_id or f"call_{self.calls}"
        msgs = await self._run_calls([{"id": cid, "function": {"name": name, "arguments": arguments}}])
        return msgs[0]["content"], self.log[-1]


class EnvSession(SessionBase):
    """One episode of one environment (see the module docstring)."""

    def __new__(cls, env: Environment | None = None, *args: Any, **kwargs: Any) -> Any:
        # A stateful environment (astra.envs.stateful) gets its own session class, with
        # this interface, so every consumer that builds EnvSession(env, ...) takes both kinds.
        if cls is EnvSession and getattr(env, "kind", None) == "stateful":
            from astra.envs.stateful import StatefulSession

            return StatefulSession(env, *args, **kwargs)  # type: ignore[arg-type]
        return super().__new__(cls)

    def __init__(self, env: Environment, *, max_turns: int = 8, reward: str = "f1",
                 distractors: list[EnvTool] | None = None, pool: SandboxPool | None = None, seed: int = 0,
                 system_prompt: str | None = None) -> None:
        self._keep_settings(env, max_turns=max_turns, reward=reward, seed=seed, system_prompt=system_prompt,
                            pool=pool)
        if not env.instance.sub_tasks:
            raise ValueError(f"environment {env.id!r} has no sub-tasks")
        self.tools_in_scope = {}
        for t in env.tools:
            if t.tool.name in self.tools_in_scope:
                raise ValueError(f"environment {env.id!r} has two tools named {t.tool.name!r}")
            self.tools_in_scope[t.tool.name] = t
        self._keep_distractors(distractors)
        from astra.envs.verify import answer_type_of

        inst = env.instance
        self._gold = {s.id: s.sub_answer for s in inst.sub_tasks}
        self._types = {s.id: answer_type_of(inst, s.id) for s in inst.sub_tasks}
        self._tool_ids = {s.id for s in inst.sub_tasks if s.needs_tool}
        self._order = [s.id for s in inst.sub_tasks]
        self.grounding, self._inputs = answer_structure(inst)
        self.answer_type = final_answer_type(inst)
        self._values = environment_values(env)
        self._gold_args = _gold_arguments(env)
        self._init_state()

    # -- state -----------------------------------------------------------------------
    def _init_state(self) -> None:
        from astra.envs.match import AnswerVerdict

        self.turns = 0
        self.calls = 0
        self.done = False
        self.final_answer: str | None = None
        self.finished = False
        self.answer_verdict = AnswerVerdict(False, "empty")
        self._solved: dict[str, str] = {}  # sub id -> how (tool call id / "final_answer")
        self._seen_values: set[tuple[str, ...]] = set()
        self._credited: set[str] = set()  # canonical calls that solved a sub-task
        self.log: list[dict[str, Any]] = []

    @property
    def solved(self) -> list[str]:
        return [s for s in self._order if s in self._solved]

    @property
    def n_subtasks(self) -> int:
        return len(self._order)

    def reset(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Start (over): ``([system, user question], tools)``."""
        self._init_state()
        system = self.system_prompt if self.system_prompt is not None else default_system_prompt()
        messages = [{"role": "system", "content": system}, {"role": "user", "content": self.env.instance.question}]
        return messages, self.tools()

    # -- stepping ------------------------------------------------------------------
    async def _one(self, call_id: str, name: str, raw: Any, problem: str | None = None) -> dict[str, Any]:
        from astra.envs.match import answer_in_output, value_runs

        rec: dict[str, Any] = {"turn": self.turns, "id": call_id, "tool": name[:200], "status": "ok", "solved": []}
        if problem is not None:
            rec["status"] = "bad_call"
            rec["content"] = f"Error: {problem}."
            return rec
        tool = self.tools_in_scope.get(name) or self.distractors.get(name)
        if tool is None:
            names = ", ".join(sorted(list(self.tools_in_scope) + list(self.distractors)))
            rec["status"] = "unknown_tool"
            rec["content"] = f"Error: unknown tool {_short(name)!r}. Available tools: {names}."
            return rec
        rec["distractor"] = name in self.distractors
        kwargs, err = parse_arguments(raw)
        if kwargs is None:
            rec["status"] = "bad_arguments"
            rec["content"] = f"Error: {err}."
            return rec
        try:
            err = argument_problem(tool.tool.parameters, kwargs)
        except SchemaUnusable as e:
            rec["schema_check"] = str(e)  # the code's own checks are all there is
            err = None
        if err:
            rec["status"] = "bad_arguments"
            rec["content"] = f"Error: {err}."
            return rec
        rec["arguments"] = kwargs
        try:
            res = await self.pool.acall_function(tool.code, name, kwargs, timeout=self.call_timeout)
        except (TypeError, ValueError, RecursionError) as e:  # arguments that are not plain literal data
            rec["status"] = "bad_arguments"
            rec["content"] = f"Error: {_short(str(e), 300)}."
            return rec
        if not res.ok:
            rec["status"] = res.outcome
            rec["content"] = f"Error: {res.error}" if res.error else "Error: the tool failed."
            return rec
        content, cut = self._content(res.value)
        rec["content"] = content
        self._seen_values |= value_runs(res.value)
        key = _canonical(name, kwargs)
        if name in self.tools_in_scope and key not in self._credited:
            judged = content if cut else res.value
            hits = [sid for sid in tool.serves if sid not in self._solved and sid in self._tool_ids
                    and answer_in_output(self._gold[sid], judged, self._types.get(sid), exclude=kwargs)]
            if hits:  # one sub-task per call: the one whose gold call this is, else the first
                norm = _norm_args(kwargs)
                exact = [sid for sid in hits if self._gold_args.get(sid) is not None
                         and all(norm.get(k) == v for k, v in (self._gold_args[sid] or {}).items())]
                sid = (exact or hits)[0]
                self._solved[sid] = call_id
                self._credited.add(key)
                rec["solved"].append(sid)
        return rec

    def _check_answer(self, final_answer: str | None) -> AnswerVerdict:
        """``final_answer`` against the instance's answer."""
        from astra.envs.match import check_final_answer

        return check_final_answer(self.env.instance.answer, final_answer, self.answer_type,
                                  values=self._values | frozenset(self._seen_values))

    def _credit_answer(self, verdict: AnswerVerdict) -> None:
        """An accepted answer solves the non-tool steps whose inputs are solved (see the
        module docstring)."""
        if verdict.ok:
            for sid, needs in self._inputs.items():
                if sid not in self._solved and all(d in self._solved for d in needs):
                    self._solved[sid] = "final_answer"

    # -- reward --------------------------------------------------------------------
    @property
    def grounded(self) -> bool:
        """Whether every sub-task the final answer rests on was solved by the agent's calls."""
        return all(sid in self._solved for sid in self.grounding)

    def reward(self) -> RewardInfo:
        n_hat = len(self._solved)
        v = self.answer_verdict
        gate = v.ok and self.grounded
        r, p, f1 = reward_parts(n_hat, self.n_subtasks, self.calls)
        g = 1.0 if gate else 0.0
        return RewardInfo(reward=episode_reward(n_hat, self.n_subtasks, self.calls, gate, self.reward_kind),
                          kind=self.reward_kind, recall=g * r, precision=g * p, f1=g * f1, solved=self.solved,
                          n_subtasks=self.n_subtasks, calls=self.calls, answer_ok=v.ok, answer_check=v.reason,
                          answer_detail=v.detail, grounded=self.grounded, gate=gate,
                          success=gate and n_hat == self.n_subtasks)


__all__ = ["EnvSession", "EpisodeOver", "RewardInfo", "answer_structure", "default_system_prompt",
           "environment_values", "episode_reward", "final_answer_type", "reward_parts", "run_sync",
           "trajectory_reward"]
