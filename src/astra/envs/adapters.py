"""Adapters from :class:`~astra.envs.runtime.EnvSession` to trainers: TRL's ``environment_factory``.

TRL 1.16 (``GRPOTrainer(..., environment_factory=Cls | {name: Cls})``) creates one
instance per rollout, calls ``reset(**row)`` (a returned string is appended to the last
user message), exposes every public method **of the class** (found with
``inspect.getmembers(type(instance))``) as a tool — its JSON schema comes from
``transformers.utils.get_json_schema``: type hints + a Google-style docstring — and, when
the class defines ``get_reward()``, uses it as a reward source.

Tools differ per environment, so the methods are generated per environment:
:func:`trl_environment_class` builds a subclass of :class:`AstraTRLEnv` with one method
per tool (the environment's tools and its distractors), each with the tool's name, a
signature typed from its JSON schema (keyword-only; enums as ``Literal``; optional
parameters default to their schema default or ``None``) and a docstring holding the
description and one ``Args:`` line per parameter. A call runs through the session (in the
sandbox, counted, judged) and returns the tool message content; a tool error is raised as
:class:`~astra.errors.ToolCallError` (TRL shows ``{"error": ...}`` and counts a failure).

For a dataset mixing environments use :func:`trl_environment_factories` (``{env id:
class}``) and rows from :func:`trl_dataset_rows` (``{"prompt", "environment", "env_id"}``).

TRL calls ``get_reward()`` without the completion, so a leaf non-tool step (judged on the
final answer) can only count when the answer was recorded first: put
:func:`final_answer_hook` in ``reward_funcs`` — it records each completion's final text
(``_finish``) and returns ``None`` (TRL ignores it as a reward); TRL evaluates the
environment's ``get_reward`` after the listed reward functions. Turns are not limited here
(TRL's ``max_tool_calling_iterations`` is), and calls made after every sub-task is solved
still count against precision.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from astra.envs.runtime import EnvSession, run_sync
from astra.errors import ConfigError, ToolCallError
from astra.types import Environment, EnvTool, Tool

if TYPE_CHECKING:
    from astra.envs.distractors import DistractorSampler
    from astra.sandbox import SandboxPool

_PY: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict,
                       "array": list}
RESERVED = ("reset", "get_reward")


def _json_type(schema: dict[str, Any]) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    return t


def annotation_of(schema: dict[str, Any]) -> Any:
    """A Python type hint for a JSON-schema property (what ``get_json_schema`` maps back)."""
    enum = schema.get("enum")
    if enum and all(isinstance(v, str | int | float | bool) for v in enum):
        return Literal[tuple(enum)]  # type: ignore[valid-type]
    t = _json_type(schema)
    if t == "array":
        item = _PY.get(_json_type(schema.get("items") or {}) or "", None)
        return list[item] if item is not None else list  # type: ignore[valid-type]
    return _PY.get(t or "string", str)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def tool_docstring(tool: Tool) -> str:
    """Google-style docstring: the description, then ``Args:`` with one line per parameter."""
    lines = [_one_line(tool.description) or f"The {tool.name} tool.", "", "Args:"]
    for name, schema in tool.properties.items():
        desc = _one_line(schema.get("description") or f"The {name.replace('_', ' ')}.")
        desc = re.sub(r"\(choices:.*\)\s*$", "", desc).strip() or f"The {name}."
        lines.append(f"    {name}: {desc}")
    if not tool.properties:
        lines = lines[:-2]
    return "\n".join(lines)


def tool_method(tool: Tool) -> Any:
    """A method ``(self, *, <params>) -> str`` that calls ``tool`` through the session."""
    if not tool.name.isidentifier() or tool.name.startswith("_") or tool.name in RESERVED:
        raise ConfigError(f"tool name {tool.name!r} cannot be a TRL environment method")
    name = tool.name
    required = set(tool.required)
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    for pname, schema in tool.properties.items():
        if not pname.isidentifier():
            raise ConfigError(f"parameter {pname!r} of {name} is not an identifier")
        ann = annotation_of(schema)
        if pname in required:
            params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=ann))
        else:
            default = schema.get("default")
            if default is None:
                ann = ann | None
            params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default))
        annotations[pname] = ann
    annotations["return"] = str

    def method(self: AstraTRLEnv, **kwargs: Any) -> str:
        return self._call_tool(name, kwargs)

    method.__name__ = name
    method.__qualname__ = f"AstraTRLEnv.{name}"
    method.__doc__ = tool_docstring(tool)
    method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    return method


class AstraTRLEnv:
    """Base of the generated TRL environment classes (see the module docstring).

    Instances are created by TRL without arguments; ``reset(**row)`` starts a new episode
    (a fresh :class:`EnvSession`), the tool methods step it, ``get_reward()`` scores it."""

    environment: ClassVar[Environment | None] = None
    distractor_tools: ClassVar[list[EnvTool]] = []
    reward_kind: ClassVar[str] = "f1"
    seed: ClassVar[int] = 0
    sandbox_pool: ClassVar[Any] = None
    system_prompt: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._session: EnvSession | None = None

    def reset(self, **row: Any) -> str | None:
        """Start an episode. ``row`` may name the environment (``env_id``); the question is
        returned (to be appended to the prompt) only when the row carries no ``prompt``."""
        env = type(self).environment
        if env is None:
            raise ConfigError("AstraTRLEnv is a base class: build one per environment with trl_environment_class()")
        want = row.get("env_id")
        if want is not None and want != env.id:
            raise ConfigError(f"row is for environment {want!r}, this class serves {env.id!r}")
        seed = int(row.get("seed", type(self).seed))
        self._session = EnvSession(env, max_turns=10**9, reward=type(self).reward_kind,
                                   distractors=list(type(self).distractor_tools), pool=type(self).sandbox_pool,
                                   seed=seed, system_prompt=type(self).system_prompt)
        self._session.reset()
        return None if row.get("prompt") else env.instance.question

    def _call_tool(self, name: str, kwargs: dict[str, Any]) -> str:
        if self._session is None:
            raise ToolCallError("the environment was not reset")
        before = len(self._session.log)
        msgs = run_sync(self._session._run_calls([{"id": f"trl_{before}", "name": name, "arguments": kwargs}]))
        rec = self._session.log[-1]
        content = msgs[0]["content"]
        if rec.get("status") != "ok":
            raise ToolCallError(content)
        return content

    def _finish(self, final_answer: str | None) -> None:
        """Record the final answer (judges leaf non-tool steps)."""
        if self._session is not None:
            self._session.finish(final_answer)

    def get_reward(self) -> float:
        """The episode's reward (``reward_kind``; F1 by default)."""
        if self._session is None:
            return 0.0
        return self._session.reward().reward

    def _reward_info(self) -> Any:
        return None if self._session is None else self._session.reward()


def trl_environment_class(env: Environment, *, distractors: Sequence[EnvTool] | None = None, reward: str = "f1",
                          pool: SandboxPool | None = None, seed: int = 0,
                          system_prompt: str | None = None) -> type[AstraTRLEnv]:
    """A TRL environment class for one environment: its tools (and ``distractors``) as methods."""
    ns: dict[str, Any] = {"environment": env, "distractor_tools": list(distractors or []), "reward_kind": reward,
                          "seed": seed, "sandbox_pool": pool, "system_prompt": system_prompt,
                          "__doc__": f"TRL environment for {env.id}: {env.instance.question}"}
    for t in list(env.tools) + list(distractors or []):
        if t.tool.name in ns:
            if t.tool.name in RESERVED or not isinstance(ns[t.tool.name], type(tool_method)):
                raise ConfigError(f"tool name {t.tool.name!r} clashes with the environment class")
            continue  # a distractor with an in-scope tool's name: the in-scope one wins
        ns[t.tool.name] = tool_method(t.tool)
    cls_name = "AstraTRLEnv_" + re.sub(r"\W", "_", env.id)
    return type(cls_name, (AstraTRLEnv,), ns)


def trl_environment_factories(envs: Sequence[Environment], *, sampler: DistractorSampler | None = None,
                              reward: str = "f1", pool: SandboxPool | None = None,
                              seed: int = 0) -> dict[str, type[AstraTRLEnv]]:
    """``{env id: class}`` for ``GRPOTrainer(environment_factory=...)`` with rows that carry
    ``environment`` (see :func:`trl_dataset_rows`)."""
    return {e.id: trl_environment_class(e, distractors=sampler.sample(e) if sampler else None, reward=reward,
                                        pool=pool, seed=seed) for e in envs}


def trl_dataset_rows(envs: Sequence[Environment]) -> list[dict[str, Any]]:
    """One dataset row per environment: ``{"prompt": [user question], "environment": id, "env_id": id}``."""
    return [{"prompt": [{"role": "user", "content": e.instance.question}], "environment": e.id, "env_id": e.id}
            for e in envs]


def _final_text(completion: Any) -> str | None:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        for m in reversed(completion):
            if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content"):
                return str(m["content"])
    return None


def final_answer_hook(completions: list[Any], environments: list[Any] | None = None, **_: Any) -> list[None]:
    """A TRL reward function that records each rollout's final answer in its environment
    (so ``get_reward`` can judge leaf non-tool steps) and contributes no reward (``None``)."""
    for completion, env in zip(completions, environments or [], strict=False):
        if isinstance(env, AstraTRLEnv):
            env._finish(_final_text(completion))
    return [None] * len(completions)


__all__ = [
    "AstraTRLEnv", "annotation_of", "final_answer_hook", "tool_docstring", "tool_method", "trl_dataset_rows",
    "trl_environment_class", "trl_environment_factories",
]
