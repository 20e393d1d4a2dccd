"""What the veRL plugin does, without veRL: environment lookup, one episode, the reward.

The files ``astra train rl --backend verl --export DIR`` writes into ``DIR``
(``astra_agent_loop.py``, ``astra_reward.py``) are thin wrappers around these functions,
so everything here is importable and tested on a machine without veRL:

* :class:`EnvCatalog` — the environments copied into ``DIR/envs`` (one JSON file each),
  loaded once per process and looked up by id;
* :func:`make_session` — an isolated :class:`~astra.envs.runtime.EnvSession` for one
  dataset row (``extra_info``: env id, reward kind, max turns, the row's distractors, seed);
* :func:`run_episode` — the multi-turn loop against an async token-in/token-out
  ``generate`` (veRL's ``AsyncLLMServerManager.generate``), built from the same turn logic
  as the local trainer (:mod:`astra.train.rl_rollout`): policy tokens mask 1, tool-result
  tokens mask 0, episode end on an answer, on the last turn after the turn cap (taken as
  the final answer, its calls not run) or on the response budget;
  returns veRL's ``AgentLoopOutput`` fields plus the reward from ``EnvSession.reward()``;
* :func:`replay_reward` — the reward of a decoded response (``compute_score``'s
  ``solution_str``): its tool calls are replayed turn by turn in a fresh session (the
  environments are deterministic; the turn after the cap is the final answer, as in the
  rollout), then ``trajectory_reward``. A fallback for agent loops
  that do not return ``reward_score`` themselves.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astra.llm.toolparse import parse_tool_calls
from astra.train.rl_rollout import ChatCodec, apply_reply, apply_tool_results, finish_episode, start_episode

DATA_SOURCE = "astra_env"
AGENT_NAME = "astra_env_agent"
#: Environment variable naming the export directory (run.sh sets it; else the plugin's own dir).
DIR_ENV = "ASTRA_VERL_DIR"

#: generate(prompt_ids) -> new token ids, or (new token ids, their log-probs)
GenerateFn = Callable[[list[int]], Awaitable[Any]]


class EnvCatalog:
    """Environments of an export directory (``<dir>/envs/*.json``), loaded lazily, by id."""

    _shared: dict[str, EnvCatalog] = {}
    _lock = threading.Lock()

    def __init__(self, env_dir: str | Path):
        self.env_dir = Path(env_dir)
        self._envs: dict[str, Any] | None = None

    @classmethod
    def for_dir(cls, env_dir: str | Path) -> EnvCatalog:
        key = str(Path(env_dir).resolve())
        with cls._lock:
            if key not in cls._shared:
                cls._shared[key] = cls(key)
            return cls._shared[key]

    def _load(self) -> dict[str, Any]:
        if self._envs is None:
            from astra.envs.bundle import load_environments

            self._envs = {e.id: e for e in load_environments(self.env_dir)}
        return self._envs

    def get(self, env_id: str) -> Any:
        envs = self._load()
        if env_id not in envs:
            raise KeyError(f"environment {env_id!r} is not in {self.env_dir}")
        return envs[env_id]

    def tool(self, env_id: str, tool_name: str) -> Any:
        env = self.get(env_id)
        for t in env.tools:
            if t.tool.name == tool_name:
                # a distractor serves nothing in the environment it is shown in
                return t.model_copy(update={"serves": [], "calls": {}})
        raise KeyError(f"tool {tool_name!r} is not in environment {env_id!r}")

    def __len__(self) -> int:
        return len(self._load())


def resolve_base_dir(default: str | Path | None = None) -> Path:
    return Path(os.environ.get(DIR_ENV) or default or ".").resolve()


def _as_dict(extra_info: Any) -> dict[str, Any]:
    if extra_info is None:
        return {}
    if isinstance(extra_info, str):
        return json.loads(extra_info)
    return dict(extra_info)


def _json_field(value: Any, default: Any) -> Any:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return json.loads(value)
    return value


def make_session(extra_info: Any, *, base_dir: str | Path | None = None, catalog: EnvCatalog | None = None,
                 max_turns: int | None = None, pool: Any = None) -> Any:
    """An isolated ``EnvSession`` for one dataset row (``extra_info`` written by the export)."""
    from astra.envs.runtime import EnvSession

    info = _as_dict(extra_info)
    base = resolve_base_dir(base_dir)
    cat = catalog or EnvCatalog.for_dir(base / info.get("env_dir", "envs"))
    env = cat.get(info["env_id"])
    distractors = [cat.tool(eid, name) for eid, name in _json_field(info.get("distractors"), [])]
    return EnvSession(env, max_turns=int(max_turns or info.get("max_turns", 8)),
                      reward=str(info.get("reward_kind", "f1")), distractors=distractors, pool=pool,
                      seed=int(info.get("seed", 0)))


@dataclass
class EpisodeResult:
    """The fields of veRL's ``AgentLoopOutput`` (+ what the reward was made of)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    reward_score: float
    reward_info: dict[str, Any]
    num_turns: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


async def run_episode(session: Any, tokenizer: Any, generate: GenerateFn, *, max_response_tokens: int,
                      max_turns: int | None = None, max_new_tokens: int | None = None,
                      codec: ChatCodec | None = None) -> EpisodeResult:
    """Roll out one episode of ``session`` with ``generate``; see the module docstring."""
    codec = codec or ChatCodec(tokenizer)
    e = start_episode(session, codec)
    limit = e.prompt_len + max_response_tokens
    logprobs: list[float] = []
    have_logprobs = True
    t_gen = t_tool = 0.0
    while not e.done:
        budget = min(max_new_tokens or max_response_tokens, limit - len(e.ids) - 1)
        if budget <= 0:
            finish_episode(e, "context")
            break
        t0 = time.perf_counter()
        out = await generate(list(e.ids))
        t_gen += time.perf_counter() - t0
        new, lps = (out if isinstance(out, tuple) else (out, None))
        new = [int(t) for t in new]
        stops = set(codec.stop_ids)
        cut = next((i + 1 for i, t in enumerate(new) if t in stops), None)
        stopped = cut is not None
        if stopped:
            new = new[:cut]
        before = len(e.ids)
        calls = apply_reply(e, new, stopped, budget, codec)
        added = len(e.ids) - before
        if lps is None:
            have_logprobs = False
        else:
            kept = [float(x) for x in list(lps)[: min(len(new), budget)]]
            logprobs += kept + [0.0] * (added - len(kept))
        if not calls:
            break
        t0 = time.perf_counter()
        try:
            res: Any = await session.astep(calls)
        except Exception as ex:  # reported as the episode's error, reward as it stands
            res = ex
        t_tool += time.perf_counter() - t0
        before = len(e.ids)
        apply_tool_results(e, res, codec, max_total_tokens=limit, max_turns=max_turns)
        logprobs += [0.0] * (len(e.ids) - before)
    r = session.reward()
    info = {"reward": float(r.reward), "recall": float(r.recall), "precision": float(r.precision),
            "f1": float(r.f1), "solved": len(r.solved), "n_subtasks": int(r.n_subtasks), "calls": int(r.calls),
            "turns": e.turns, "end_reason": e.end_reason}
    return EpisodeResult(
        prompt_ids=e.ids[: e.prompt_len], response_ids=e.ids[e.prompt_len:], response_mask=e.mask[e.prompt_len:],
        response_logprobs=logprobs if have_logprobs else None, reward_score=float(r.reward), reward_info=info,
        num_turns=e.turns, messages=e.messages, metrics={"generate_sequences": t_gen, "tool_calls": t_tool})


_RESPONSE = re.compile(r"<tool_response>.*?</tool_response>", re.DOTALL)
_ROLE_WORDS = re.compile(r"^\s*(?:(?:user|assistant|tool)\s*\n)+|(?:\n\s*(?:user|assistant)\s*)+$")


def split_turns(solution_str: str) -> list[str]:
    """The assistant turns of a decoded multi-turn response: the text between tool results."""
    turns = []
    for part in _RESPONSE.split(solution_str):
        part = _ROLE_WORDS.sub("", part.replace("<|im_start|>", "").replace("<|im_end|>", "")).strip()
        if part:
            turns.append(part)
    return turns


def replay_reward(solution_str: str, extra_info: Any, *, base_dir: str | Path | None = None,
                  catalog: EnvCatalog | None = None, session: Any = None) -> dict[str, Any]:
    """Reward of a decoded response: replay its tool calls in a fresh session, then score."""
    from astra.envs.runtime import run_sync

    s = session or make_session(extra_info, base_dir=base_dir, catalog=catalog)
    s.reset()

    async def play(turns: Sequence[str]) -> None:
        for text in turns:
            parsed = parse_tool_calls(text)
            if parsed.tool_calls and not s.done:
                await s.astep(parsed.tool_calls)
            else:  # an answer, or the last turn after the turn cap (its calls are not run)
                s.finish(parsed.content)
                break
        if not s.finished:
            s.finish(None)

    run_sync(play(split_turns(solution_str)))
    r = s.reward()
    return {"score": float(r.reward), "recall": float(r.recall), "precision": float(r.precision),
            "f1": float(r.f1), "solved": len(r.solved), "n_subtasks": int(r.n_subtasks), "calls": int(r.calls)}
