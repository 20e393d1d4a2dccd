"""The environment runtime an RL trainer drives: reset / step / reward.

    session = EnvSession(env, max_turns=8, reward="f1", distractors=sampler.sample(env), seed=0)
    messages, tools = session.reset()          # [system, user question], OpenAI tools (shuffled)
    while not session.done:
        reply = policy(messages, tools)        # an assistant message
        if not reply.tool_calls:
            session.finish(reply.content); break
        messages += [reply.message(), *await session.astep(reply.tool_calls)]
    info = session.reward()                    # RewardInfo: reward, recall, precision, f1, solved, calls

Semantics
---------
- **Isolation**: every tool call runs in a fresh sandbox unit (:mod:`astra.sandbox`):
  the tool's code is loaded anew for each call, so nothing a call does (module globals,
  files) survives into another call, session or instance.
- **Calls** ``c``: every tool call the agent makes counts — unknown tools, unparseable JSON
  arguments, calls that raise, and calls to distractor tools included. Each gets a tool
  message (``{"role": "tool", "tool_call_id", "content"}``; errors start with ``Error:``).
- **Solved sub-tasks** ``n̂``: a tool sub-task is solved when a call **to a tool that serves
  it** (``EnvTool.serves``) returns an output that contains its gold answer by typed
  matching (:func:`astra.envsynth.match.answer_in_output`), not counting what the output
  merely echoes from the call's own arguments. A distractor, or an in-scope tool that
  does not serve the sub-task, never solves it — even if its output happens to contain the
  value — so the reward cannot be collected by accident or by calling everything. A leaf
  non-tool step (compare / sum / pick) is solved when the final answer passed to
  :meth:`EnvSession.finish` contains its gold answer (typed).
- **Termination** (``done``): ``max_turns`` :meth:`astep` calls, :meth:`finish` (the agent
  stopped calling tools; ``astep([])`` is the same as ``finish(None)``), or every sub-task
  solved. Stepping a finished episode raises :class:`EpisodeOver`.
- **Reward**: :func:`astra.envs.reward.trajectory_reward` with ``n`` = all sub-tasks of
  the instance (tool and non-tool), ``kind`` = ``f1`` | ``recall`` | ``precision``; all three
  are always in the :class:`RewardInfo`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from astra.envs.reward import REWARD_KINDS, reward_parts, trajectory_reward
from astra.errors import AstraError
from astra.llm.types import ToolCall
from astra.types import Environment, EnvTool

if TYPE_CHECKING:
    from astra.sandbox import SandboxPool

T = TypeVar("T")


class EpisodeOver(AstraError):
    """:meth:`EnvSession.astep` on an episode that is already done."""


class RewardInfo(BaseModel):
    """The reward of one episode and its parts."""

    model_config = ConfigDict(extra="forbid")

    reward: float
    kind: str
    recall: float
    precision: float
    f1: float
    solved: list[str] = Field(default_factory=list)
    n_subtasks: int
    calls: int


def default_system_prompt() -> str:
    from astra.prompts import render

    return render("env_agent_system")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, also when the calling thread already
    runs an event loop (then in a helper thread with its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=target, name="astra-envs-sync")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _normalize_call(tc: ToolCall | dict[str, Any], default_id: str) -> tuple[str, str, Any]:
    """``(id, name, raw arguments)`` of a ToolCall or an OpenAI-style / flat dict."""
    if isinstance(tc, ToolCall):
        return tc.id or default_id, tc.name, tc.arguments
    if isinstance(tc, dict):
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
        args = fn.get("arguments", fn.get("args", {}))
        return str(tc.get("id") or default_id), str(fn.get("name") or ""), args
    return default_id, "", None


def _parse_args(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    if isinstance(raw, dict):
        return raw, None
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError as e:
            return None, f"the arguments are not valid JSON ({e}); send a JSON object"
        if not isinstance(value, dict):
            return None, f"the arguments must be a JSON object, got {type(value).__name__}"
        return value, None
    return None, f"the arguments must be a JSON object, got {type(raw).__name__}"


class EnvSession:
    """One episode of one environment (see the module docstring)."""

    #: Seconds one tool call may run in the sandbox.
    call_timeout: float = 10.0
    #: Longest tool message content (longer outputs are cut, and judged as cut).
    max_content_chars: int = 8000

    def __init__(self, env: Environment, *, max_turns: int = 8, reward: str = "f1",
                 distractors: list[EnvTool] | None = None, pool: SandboxPool | None = None, seed: int = 0,
                 system_prompt: str | None = None) -> None:
        if reward not in REWARD_KINDS:
            raise ValueError(f"unknown reward kind {reward!r} (use {', '.join(REWARD_KINDS)})")
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if not env.instance.sub_tasks:
            raise ValueError(f"environment {env.id!r} has no sub-tasks")
        self.env = env
        self.max_turns = max_turns
        self.reward_kind = reward
        self.seed = seed
        self.system_prompt = system_prompt
        self._pool = pool
        self.tools_in_scope: dict[str, EnvTool] = {}
        for t in env.tools:
            if t.tool.name in self.tools_in_scope:
                raise ValueError(f"environment {env.id!r} has two tools named {t.tool.name!r}")
            self.tools_in_scope[t.tool.name] = t
        self.distractors: dict[str, EnvTool] = {}
        for t in distractors or []:
            if t.tool.name not in self.tools_in_scope and t.tool.name not in self.distractors:
                self.distractors[t.tool.name] = t
        from astra.envsynth.synth import answer_type_of

        self._gold = {s.id: s.sub_answer for s in env.instance.sub_tasks}
        self._types = {s.id: answer_type_of(env.instance, s.id) for s in env.instance.sub_tasks}
        self._leaves = [s.id for s in env.instance.sub_tasks if not s.needs_tool]
        self._order = [s.id for s in env.instance.sub_tasks]
        self._init_state()

    # -- state -----------------------------------------------------------------------
    def _init_state(self) -> None:
        self.turns = 0
        self.calls = 0
        self.done = False
        self.final_answer: str | None = None
        self.finished = False
        self._solved: dict[str, str] = {}  # sub id -> how (tool call id / "final_answer")
        self.log: list[dict[str, Any]] = []

    @property
    def pool(self) -> SandboxPool:
        if self._pool is None:
            from astra.sandbox import default_pool

            self._pool = default_pool()
        return self._pool

    @property
    def solved(self) -> list[str]:
        return [s for s in self._order if s in self._solved]

    @property
    def n_subtasks(self) -> int:
        return len(self._order)

    def tools(self) -> list[dict[str, Any]]:
        """The OpenAI tools list the agent sees: in-scope tools and distractors, shuffled by seed."""
        items = [t.tool.openai() for t in self.tools_in_scope.values()] + \
                [t.tool.openai() for t in self.distractors.values()]
        random.Random(f"astra.envs/{self.env.id}/{self.seed}").shuffle(items)
        return items

    def reset(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Start (over): ``([system, user question], tools)``."""
        self._init_state()
        system = self.system_prompt if self.system_prompt is not None else default_system_prompt()
        messages = [{"role": "system", "content": system}, {"role": "user", "content": self.env.instance.question}]
        return messages, self.tools()

    # -- stepping ------------------------------------------------------------------
    def _content(self, value: Any) -> tuple[str, bool]:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        if len(text) > self.max_content_chars:
            return text[: self.max_content_chars] + " … [output truncated]", True
        return text, False

    async def _one(self, call_id: str, name: str, raw: Any) -> dict[str, Any]:
        from astra.envsynth.match import answer_in_output

        rec: dict[str, Any] = {"turn": self.turns, "id": call_id, "tool": name, "status": "ok", "solved": []}
        tool = self.tools_in_scope.get(name) or self.distractors.get(name)
        kwargs, err = _parse_args(raw)
        if tool is None:
            names = ", ".join(sorted(list(self.tools_in_scope) + list(self.distractors)))
            rec["status"] = "unknown_tool"
            rec["content"] = f"Error: unknown tool {name!r}. Available tools: {names}."
            return rec
        rec["distractor"] = name in self.distractors
        if kwargs is None:
            rec["status"] = "bad_arguments"
            rec["content"] = f"Error: {err}."
            return rec
        rec["arguments"] = kwargs
        try:
            res = await self.pool.acall_function(tool.code, name, kwargs, timeout=self.call_timeout)
        except (TypeError, ValueError) as e:  # arguments that are not plain literal data
            rec["status"] = "bad_arguments"
            rec["content"] = f"Error: {e}."
            return rec
        if not res.ok:
            rec["status"] = res.outcome
            rec["content"] = f"Error: {res.error}" if res.error else "Error: the tool failed."
            return rec
        content, cut = self._content(res.value)
        rec["content"] = content
        if name in self.tools_in_scope:
            judged = content if cut else res.value
            for sid in tool.serves:
                if sid in self._solved or sid not in self._gold:
                    continue
                gold, atype = self._gold[sid], self._types.get(sid)
                if answer_in_output(gold, judged, atype, exclude=kwargs):
                    self._solved[sid] = call_id
                    rec["solved"].append(sid)
        return rec

    async def _run_calls(self, tool_calls: Sequence[ToolCall | dict[str, Any]]) -> list[dict[str, Any]]:
        """Execute and count calls (no turn accounting, no done check)."""
        norm = [_normalize_call(tc, f"call_{self.turns}_{i}") for i, tc in enumerate(tool_calls)]
        self.calls += len(norm)
        recs = await asyncio.gather(*(self._one(cid, name, raw) for cid, name, raw in norm))
        self.log.extend(recs)
        return [{"role": "tool", "tool_call_id": r["id"], "content": r["content"]} for r in recs]

    def _update_done(self) -> None:
        if len(self._solved) == self.n_subtasks or self.turns >= self.max_turns or self.finished:
            self.done = True

    async def astep(self, tool_calls: Sequence[ToolCall | dict[str, Any]]) -> list[dict[str, Any]]:
        """Execute one assistant turn's tool calls (concurrently, each in its own sandbox
        unit); returns one tool message per call, in order."""
        if self.done:
            raise EpisodeOver(f"the episode of {self.env.id!r} is over (turns={self.turns}, "
                              f"finished={self.finished}); call reset() to start again")
        if not tool_calls:
            self.finish(None)
            return []
        msgs = await self._run_calls(list(tool_calls))
        self.turns += 1
        self._update_done()
        return msgs

    def step(self, tool_calls: Sequence[ToolCall | dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`astep` from sync code."""
        return run_sync(self.astep(tool_calls))

    def finish(self, final_answer: str | None) -> None:
        """The agent stopped calling tools: judge the leaf non-tool steps on ``final_answer``."""
        from astra.envsynth.match import answer_in_output

        if not self.finished:
            self.finished = True
            self.final_answer = final_answer
            if final_answer:
                for sid in self._leaves:
                    if sid not in self._solved and answer_in_output(self._gold[sid], final_answer,
                                                                    self._types.get(sid)):
                        self._solved[sid] = "final_answer"
        self.done = True

    # -- reward --------------------------------------------------------------------
    def reward(self) -> RewardInfo:
        n_hat = len(self._solved)
        r, p, f1 = reward_parts(n_hat, self.n_subtasks, self.calls)
        return RewardInfo(reward=trajectory_reward(n_hat, self.n_subtasks, self.calls, self.reward_kind),
                          kind=self.reward_kind, recall=r, precision=p, f1=f1, solved=self.solved,
                          n_subtasks=self.n_subtasks, calls=self.calls)


__all__ = ["EnvSession", "EpisodeOver", "RewardInfo", "default_system_prompt", "reward_parts", "run_sync",
           "trajectory_reward"]
