"""Stateful environments: the user's own tool class, an initial state, a request, and a
verifier that reads the state the agent leaves behind (docs/stateful.md).

    env = load_environment("envs/shop.stateful.1a2b3c.json")   # a StatefulEnvironment
    session = EnvSession(env, max_turns=8)       # a StatefulSession (EnvSession dispatches on the kind)
    messages, tools = session.reset()            # the state restored to the initial snapshot
    ... session.astep(tool_calls) ... session.finish(answer)
    info = session.reward()                      # StatefulRewardInfo

The kind
--------
A :class:`StatefulEnvironment` is an :class:`~astra.types.Environment` (so every consumer
of environments reads its ``id``, ``instance.question``, ``tools``) with

- ``backend``: the Python tool class (``CallInfo`` of kind ``python``, ``module:Class``);
  every session holds its own instance, and :meth:`StatefulSession.reset` puts the instance
  back to the initial state (:func:`astra.envs.state.restore`);
- ``initial_digest`` (and ``initial_state`` itself when it is small): the canonical snapshot
  of a fresh instance; a session refuses to start when the class no longer builds it;
- ``verifier``: ``mode`` ``write`` (the gold plan changed the state: ``required`` is its
  diff) or ``read`` (it did not); ``answer``, the one fact the final answer must state, and
  ``answer_step``, the plan step whose output first holds it.

The reward
----------
With ``n`` required changes (``n = 1`` for a read task: the answer), ``m`` of them found in
the agent's diff of the state and ``e`` changes of the agent's diff that match no required
change (side effects nobody asked for, wrong values; a read task has ``m = 1``)::

    reward = G · max(0, (m − e) / n)

``G`` ∈ {0, 1} is the answer gate: the final answer passes
:func:`astra.envs.match.check_final_answer` against ``verifier.answer`` (typed; several
values, or a much longer answer, fail), and that value was returned by one of the agent's
own successful calls in the episode (an answer known without doing the work earns 0).
A required ``set`` is matched by its path and new value, a ``deleted`` record by its key, a
``created`` record by its content (its id fields aside: a record created under another id
is the same record). The path the agent takes does not matter, only the state it leaves.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from astra.envs.arguments import SchemaUnusable, argument_problem, parse_arguments
from astra.envs.runtime import RewardInfo, SessionBase, _short
from astra.envs.state import Change, Snapshot, StateError, capture, diff, restore
from astra.errors import AstraError
from astra.types import CallInfo, Environment, EnvTool

if TYPE_CHECKING:
    from astra.envs.match import AnswerVerdict
    from astra.sandbox import SandboxPool

KIND: Literal["stateful"] = "stateful"


class StatefulEnvironment(Environment):
    """An environment over a stateful tool class (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["stateful"] = KIND
    server: str
    backend: CallInfo
    initial_digest: str
    initial_rows: int = 0
    initial_state: dict[str, Any] | None = None  # omitted when larger than INLINE_STATE_CHARS
    verifier: dict[str, Any] = Field(default_factory=dict)

    @property
    def mode(self) -> str:
        return str(self.verifier.get("mode", ""))

    def required(self) -> list[Change]:
        return [Change.from_json(c) for c in self.verifier.get("required", [])]


#: Largest initial state (JSON characters) written into the environment file.
INLINE_STATE_CHARS = 200_000


class StateDrift(AstraError):
    """The tool class no longer builds the environment's initial state."""


class StatefulRewardInfo(RewardInfo):
    """:class:`RewardInfo` of a stateful episode, with the state match."""

    mode: str = "write"
    required: int = 0
    matched: int = 0
    extra: int = 0
    state_score: float = 0.0
    extra_changes: list[dict[str, Any]] = Field(default_factory=list)
    missing_changes: list[dict[str, Any]] = Field(default_factory=list)


# ---------------------------------------------------------------------------------
# The backend: one pristine instance per tool class and process
# ---------------------------------------------------------------------------------


class Backend:
    """Fresh executors of one Python tool class, and the snapshot of its initial state."""

    def __init__(self, target: str) -> None:
        from astra.tasks.plan import ExecutorFactory

        self.target = target
        self.factory = ExecutorFactory(target)
        probe = self.factory()
        instance = getattr(probe, "instance", None)
        if instance is None:
            raise StateError("non_json", "", f"{target!r} is a module of functions: it has no state to restore")
        self.initial: Snapshot = capture(instance)
        self._values: frozenset[tuple[str, ...]] | None = None

    @property
    def values(self) -> frozenset[tuple[str, ...]]:
        """The token runs of every value (and record key) of the initial state, computed once."""
        if self._values is None:
            from astra.envs.match import value_runs

            self._values = value_runs(self.initial.data, keys=True)
        return self._values

    def executor(self) -> Any:
        """A fresh executor in the initial state: a shallow copy of the pristine one around a
        new instance whose attributes are unpickled from the initial snapshot (much cheaper
        than a deep copy of a large state); a full copy when that cannot be done."""
        import copy
        import dataclasses

        pristine = self.factory._pristine
        specs = getattr(pristine, "_specs", None)
        if isinstance(specs, dict) and pristine.instance is not None:
            try:
                inst = object.__new__(type(pristine.instance))
                restore(inst, self.initial)
                ex = copy.copy(pristine)
                ex.instance = inst
                ex._specs = {k: dataclasses.replace(v, fn=getattr(inst, k)) for k, v in specs.items()}
                return ex
            except Exception:
                pass
        ex = self.factory()
        restore(ex.instance, self.initial)
        return ex


_BACKENDS: dict[str, Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def backend_for(call: CallInfo) -> Backend:
    """The (process-wide, cached) backend of a ``python`` ``module:Class`` call target."""
    if call.kind != "python" or not call.target:
        raise StateError("non_json", "", f"a {call.kind} server has no Python instance whose state can be restored")
    with _BACKENDS_LOCK:
        b = _BACKENDS.get(call.target)
        if b is None:
            b = Backend(call.target)
            _BACKENDS[call.target] = b
        return b


def default_stateful_prompt() -> str:
    from astra.prompts import render

    return render("env_stateful_system")


# ---------------------------------------------------------------------------------
# Matching the agent's diff to the required one
# ---------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _content(record: Any, key: str) -> Any:
    """A created record without its id fields (those equal to its key)."""
    if not isinstance(record, dict):
        return record
    return {k: v for k, v in record.items() if str(v) != key}


def match_changes(required: Sequence[Change], actual: Sequence[Change]) -> tuple[list[int], list[int]]:
    """``(matched required indices, unmatched actual indices)`` (see the module docstring)."""
    used: set[int] = set()
    matched: list[int] = []
    for i, r in enumerate(required):
        for j, a in enumerate(actual):
            if j in used or a.op != r.op or a.path != r.path:
                continue
            if r.op == "set" and not _same(a.new, r.new):
                continue
            if r.op == "deleted" and a.key != r.key:
                continue
            if r.op == "created" and a.key != r.key and not _same(_content(a.new, a.key), _content(r.new, r.key)):
                continue
            if r.op == "created" and a.key == r.key and not _same(a.new, r.new):
                continue
            used.add(j)
            matched.append(i)
            break
    return matched, [j for j in range(len(actual)) if j not in used]


def state_score(n_required: int, matched: int, extra: int) -> float:
    """``max(0, (m − e) / n)``."""
    if n_required <= 0:
        raise ValueError(f"a stateful environment has at least one required change, got {n_required}")
    return max(0.0, (matched - extra) / n_required)


# ---------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------


class StatefulSession(SessionBase):
    """One episode of a :class:`StatefulEnvironment`, with :class:`~astra.envs.runtime.EnvSession`'s interface."""

    concurrent_calls = False  # the calls of a turn share one state: in order

    def __init__(self, env: StatefulEnvironment, *, max_turns: int = 8, reward: str = "f1",
                 distractors: list[EnvTool] | None = None, pool: SandboxPool | None = None, seed: int = 0,
                 system_prompt: str | None = None) -> None:
        self._keep_settings(env, max_turns=max_turns, reward=reward, seed=seed, system_prompt=system_prompt,
                            pool=pool)
        if env.mode not in ("write", "read"):
            raise ValueError(f"environment {env.id!r} has no stateful verifier (mode {env.mode!r})")
        self.backend = backend_for(env.backend)
        if self.backend.initial.digest != env.initial_digest:
            raise StateDrift(f"environment {env.id!r}: {env.backend.target} now starts from another state "
                             f"(digest {self.backend.initial.digest}, the environment was made from "
                             f"{env.initial_digest}); make the environment again")
        self.executor = self.backend.executor()
        self.instance = self.executor.instance
        self.tools_in_scope = {t.tool.name: t for t in env.tools}
        self._keep_distractors(distractors, need_code=True)
        self.required = env.required()
        self.answer = str(env.verifier.get("answer", ""))
        self.answer_type = env.verifier.get("answer_type")
        self.grounding = [str(env.verifier.get("answer_step", ""))] if env.verifier.get("answer_step") else []
        self._gold_values: frozenset[tuple[str, ...]] | None = None
        self._init_state()

    # -- state -----------------------------------------------------------------------
    def _init_state(self) -> None:
        from astra.envs.match import AnswerVerdict

        self.turns = 0
        self.calls = 0
        self.done = False
        self.finished = False
        self.final_answer: str | None = None
        self.answer_verdict = AnswerVerdict(False, "empty")
        self._outputs: list[Any] = []  # results of the agent's successful in-scope calls
        self._changes: list[Change] | None = None
        self.log: list[dict[str, Any]] = []

    def restore_initial(self) -> None:
        """Put the instance back to the initial state."""
        restore(self.instance, self.backend.initial)
        self._changes = None

    def snapshot(self) -> Snapshot:
        """The canonical snapshot of the current state."""
        return capture(self.instance, restorable=False)

    def changes(self) -> list[Change]:
        """The diff from the initial state to now."""
        if self._changes is None:
            self._changes = diff(self.backend.initial.data, self.snapshot().data)
        return self._changes

    @property
    def n_subtasks(self) -> int:
        return max(1, len(self.required)) if self.env.mode == "write" else 1

    @property
    def solved(self) -> list[str]:
        info = self.reward()
        return list(info.solved)

    def reset(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Start (over) from the initial state: ``([system, user request], tools)``."""
        self.restore_initial()
        self._init_state()
        system = self.system_prompt if self.system_prompt is not None else default_stateful_prompt()
        messages = [{"role": "system", "content": system}, {"role": "user", "content": self.env.instance.question}]
        return messages, self.tools()

    # -- stepping ------------------------------------------------------------------
    async def _one(self, call_id: str, name: str, raw: Any, problem: str | None = None) -> dict[str, Any]:
        from astra.tasks.plan import error_result

        rec: dict[str, Any] = {"turn": self.turns, "id": call_id, "tool": name[:200], "status": "ok"}
        if problem is not None:
            rec.update(status="bad_call", content=f"Error: {problem}.")
            return rec
        tool = self.tools_in_scope.get(name) or self.distractors.get(name)
        if tool is None:
            names = ", ".join(sorted(list(self.tools_in_scope) + list(self.distractors)))
            rec.update(status="unknown_tool", content=f"Error: unknown tool {_short(name)!r}. Available tools: {names}.")
            return rec
        rec["distractor"] = name in self.distractors
        kwargs, err = parse_arguments(raw)
        if kwargs is None:
            rec.update(status="bad_arguments", content=f"Error: {err}.")
            return rec
        try:
            err = argument_problem(tool.tool.parameters, kwargs)
        except SchemaUnusable as e:
            rec["schema_check"] = str(e)
            err = None
        if err:
            rec.update(status="bad_arguments", content=f"Error: {err}.")
            return rec
        rec["arguments"] = kwargs
        if rec["distractor"]:
            try:
                res = await self.pool.acall_function(tool.code, name, kwargs, timeout=self.call_timeout)
            except (TypeError, ValueError, RecursionError) as e:
                rec.update(status="bad_arguments", content=f"Error: {_short(str(e), 300)}.")
                return rec
            if not res.ok:
                rec.update(status=res.outcome, content=f"Error: {res.error}" if res.error else "Error: the tool failed.")
                return rec
            rec["content"] = self._content(res.value)[0]
            return rec
        self._changes = None
        try:
            value = await self.executor.acall(name, kwargs)
        except RecursionError:
            rec.update(status="tool_error", content="Error: the call nested too deeply.")
            return rec
        except Exception as e:
            msg = str(e) if type(e).__name__ == "ToolCallError" else f"{type(e).__name__}: {e}"
            rec.update(status="tool_error", content=f"Error: {_short(msg, 500)}")
            return rec
        value = plain_value(value)
        err = error_result(value)
        rec["content"] = self._content(value)[0]
        if err is not None:
            rec["status"] = "tool_error"
            return rec
        self._outputs.append(value)
        return rec

    def _known_values(self) -> frozenset[tuple[str, ...]]:
        from astra.envs.match import value_runs

        if self._gold_values is None:
            self._gold_values = value_runs(self.env.verifier.get("gold_outputs") or []) | self.backend.values
        return self._gold_values | value_runs(self._outputs)

    def _check_answer(self, final_answer: str | None) -> AnswerVerdict:
        """``final_answer`` against the verifier's fact."""
        from astra.envs.match import check_final_answer

        return check_final_answer(self.answer, final_answer, self.answer_type, values=self._known_values())

    # -- reward --------------------------------------------------------------------
    @property
    def grounded(self) -> bool:
        """Whether one of the agent's own successful calls returned the fact."""
        from astra.envs.match import answer_in_output

        return any(answer_in_output(self.answer, out, self.answer_type) for out in self._outputs)

    def reward(self) -> StatefulRewardInfo:
        changes = self.changes()
        v = self.answer_verdict
        grounded = self.grounded
        gate = bool(v.ok and grounded)
        if self.env.mode == "write":
            matched, extra_idx = match_changes(self.required, changes)
            n, m = len(self.required), len(matched)
            solved = [f"c{i + 1}" for i in matched]
            missing = [self.required[i].to_json() for i in range(n) if i not in set(matched)]
        else:
            n, m, extra_idx = 1, 1, list(range(len(changes)))
            solved, missing = ["answer"], []
        e = len(extra_idx)
        score = state_score(n, m, e)
        g = 1.0 if gate else 0.0
        recall = m / n
        precision = m / (m + e) if m + e else 0.0
        f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        return StatefulRewardInfo(
            reward=g * score, kind=self.reward_kind, recall=g * recall, precision=g * precision, f1=g * f1,
            solved=solved if gate else [], n_subtasks=n, calls=self.calls, answer_ok=v.ok, answer_check=v.reason,
            answer_detail=v.detail, grounded=grounded, gate=gate, success=gate and score >= 1.0,
            mode=self.env.mode, required=n, matched=m, extra=e, state_score=score,
            extra_changes=[changes[j].to_json() for j in extra_idx[:20]], missing_changes=missing[:20])


def plain_value(value: Any, _depth: int = 0) -> Any:
    """A tool's result as JSON data: pydantic models by ``model_dump(mode="json")``, dataclasses
    by their fields, containers item by item, anything else JSON-encoded (``str`` as last resort)."""
    import dataclasses

    if _depth > 64:
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):
        try:
            return plain_value(dump(mode="json"), _depth + 1)
        except Exception:
            return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_value(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_value(v, _depth + 1) for v in value]
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError, RecursionError):
        return str(value)


def is_stateful(env: Any) -> bool:
    return getattr(env, "kind", None) == KIND


__all__ = ["INLINE_STATE_CHARS", "KIND", "Backend", "StateDrift", "StatefulEnvironment", "StatefulRewardInfo",
           "StatefulSession", "backend_for", "default_stateful_prompt", "is_stateful", "match_changes", "plain_value",
           "state_score"]
