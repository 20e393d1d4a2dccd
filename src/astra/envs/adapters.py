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
class}``) and rows from :func:`trl_dataset_rows` (``{"prompt", "environment", "env_id"}``);
:func:`trl_grpo_trainer` wires all of it into a ``GRPOTrainer``.

**Response parsing.** TRL parses a completion's tool calls with the tokenizer's
``response_template`` (transformers' response parsing) and only knows the templates of a
few model families; astra's tool template (``astra/llm/templates/chatml_tools.jinja``,
Hermes-style ``<tool_call>`` JSON blocks, no reasoning block) is not among them, so
``GRPOTrainer`` refuses to build ("Unrecognized chat template"). :func:`attach_response_template`
sets :data:`CHATML_TOOLS_RESPONSE_TEMPLATE` on the tokenizer after checking that its chat
template renders tool calls that way — any ChatML template with Hermes tool calls passes.

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
        return Literal[tuple(enum)]
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
        content, rec = run_sync(self._session.acall_tool(name, kwargs, call_id=f"trl_{self._session.calls}"))
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


def trl_dataset_rows(envs: Sequence[Environment], *, system_prompt: bool | str = False) -> list[dict[str, Any]]:
    """One dataset row per environment: ``{"prompt": [user question], "environment": id, "env_id": id}``;
    with ``system_prompt`` (True: the runtime's default, or a string) the prompt starts with it."""
    head: list[dict[str, str]] = []
    if system_prompt:
        from astra.envs.runtime import default_system_prompt

        text = default_system_prompt() if system_prompt is True else str(system_prompt)
        head = [{"role": "system", "content": text}]
    return [{"prompt": [*head, {"role": "user", "content": e.instance.question}], "environment": e.id, "env_id": e.id}
            for e in envs]


#: transformers' response template (``tokenizer.response_template``, transformers >= 5.13) for
#: ChatML with Hermes-style tool calls: optional text, then ``<tool_call>\n{"name": ...,
#: "arguments": {...}}\n</tool_call>`` blocks, then ``<|im_end|>``.
CHATML_TOOLS_RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {"open": "<tool_call>", "close_pattern": r"</tool_call>\s*", "repeats": True, "content": "json",
                       "transform": {"type": "function", "function": "{content}"}},
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}
_PROBE_CALL = {"type": "function", "function": {"name": "probe_tool", "arguments": {"a": 1}}}
_PROBE_TEXT = '<tool_call>\n{"name": "probe_tool", "arguments": {"a": 1}}\n</tool_call><|im_end|>'


def attach_response_template(tokenizer: Any) -> Any:
    """Set :data:`CHATML_TOOLS_RESPONSE_TEMPLATE` on ``tokenizer`` (returned) so that TRL's
    ``GRPOTrainer`` can parse its tool calls. ConfigError when the tokenizer's chat template
    does not render tool calls as ChatML + Hermes ``<tool_call>`` blocks, or when the parse
    of a probe call does not give the call back."""
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [_PROBE_CALL]}]
    try:
        rendered = tokenizer.apply_chat_template(msgs, tokenize=False)
    except Exception as e:  # any template failure means: not this format
        raise ConfigError(f"the tokenizer's chat template cannot render a tool call ({type(e).__name__}: {e})") from None
    if "<|im_start|>assistant\n" + _PROBE_TEXT not in rendered:
        raise ConfigError("the tokenizer's chat template is not ChatML with Hermes <tool_call> blocks (astra's "
                          "llm/templates/chatml_tools.jinja); set tokenizer.response_template for it yourself")
    tokenizer.response_template = CHATML_TOOLS_RESPONSE_TEMPLATE
    try:
        prefix = tokenizer.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
        parsed = tokenizer.parse_response(_PROBE_TEXT, prefix=prefix)
    except Exception as e:
        raise ConfigError(f"transformers cannot parse with the response template ({type(e).__name__}: {e})") from None
    calls = parsed.get("tool_calls") if isinstance(parsed, dict) else None
    if not calls or calls[0].get("function") != _PROBE_CALL["function"]:
        raise ConfigError(f"the response template does not give the probe call back (got {parsed!r})")
    return tokenizer


def trl_grpo_trainer(envs: Sequence[Environment], *, model: Any, tokenizer: Any, args: Any,
                     sampler: DistractorSampler | None = None, reward: str = "f1", pool: SandboxPool | None = None,
                     seed: int = 0, system_prompt: bool = True, **kw: Any) -> Any:
    """A TRL ``GRPOTrainer`` over ``envs``: one environment class per environment, one dataset
    row each (with the runtime's system prompt unless ``system_prompt=False``), the response
    template attached, :func:`final_answer_hook` first in ``reward_funcs`` so each
    environment's ``get_reward`` sees the final answer. ``args``: a ``trl.GRPOConfig``."""
    from datasets import Dataset
    from trl import GRPOTrainer

    attach_response_template(tokenizer)
    rows = trl_dataset_rows(envs, system_prompt=system_prompt)
    factories = trl_environment_factories(envs, sampler=sampler, reward=reward, pool=pool, seed=seed)
    return GRPOTrainer(model=model, processing_class=tokenizer, args=args, train_dataset=Dataset.from_list(rows),
                       environment_factory=factories,  # type: ignore[arg-type]  # dict is invariant; the classes are factories
                       reward_funcs=[final_answer_hook, *kw.pop("reward_funcs", [])],
                       **kw)


def _final_text(completion: Any) -> str | None:
    """The final answer of a completion: the content of its last message when that is an
    assistant message without tool calls (a rollout cut while calling tools has none)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        m = completion[-1]
        if isinstance(m, dict) and m.get("role") == "assistant" and not m.get("tool_calls") and m.get("content"):
            return str(m["content"])
    return None


def final_answer_hook(completions: list[Any], environments: list[Any] | None = None,
                      **_: Any) -> list[float | None]:
    """A TRL reward function that records each rollout's final answer in its environment
    (so ``get_reward`` can judge leaf non-tool steps) and contributes no reward (``None``)."""
    for completion, env in zip(completions, environments or [], strict=False):
        if isinstance(env, AstraTRLEnv):
            env._finish(_final_text(completion))
    return [None] * len(completions)


__all__ = [
    "CHATML_TOOLS_RESPONSE_TEMPLATE", "AstraTRLEnv", "annotation_of", "attach_response_template", "final_answer_hook", "tool_docstring", "tool_method", "trl_dataset_rows",
    "trl_environment_class", "trl_environment_factories", "trl_grpo_trainer",
]
