"""Held-out evaluation of a local model on the training rollout loop (``--engine hf``).

``astra eval envs --engine hf`` plays every environment with
:class:`astra.train.rl_rollout.RolloutEngine`, the loop that ``astra train rl`` samples its
rollouts with: all sessions of a chunk generate together, each episode keeps its KV cache
across turns (a turn runs the model on the new tokens only: tool results and the next
assistant header) and a prompt prefix shared by the chunk (the system prompt) is prefilled
once. The chat-client path (``--engine chat``) renders and prefills each whole conversation
again every turn; on a CPU most of an evaluation's time is that prefill.

Episodes are scored by the same session reward as the chat path
(:func:`astra.eval.envs.episode_result`); the turn cap is the same (after the session's
``max_turns`` tool turns, one last reply is the answer and its tool calls are not run).
One difference in what ends an episode: a reply cut at ``--max-tokens`` ends it here (the
rollout engine never runs the calls of a truncated reply), where the chat path runs the
calls it can parse from it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from astra.types import Environment


def is_local(spec: str) -> bool:
    """Whether a provider spec (``astra.eval.model_spec``) names a model this process loads."""
    return spec in ("embedded", "default") or spec.startswith("embedded:")


#: The files of a model directory that decide what it generates (JSON ones compared without
#: the tokenizer's padding/truncation state, which a save records but generation ignores:
#: the engines pad explicitly).
_MODEL_FILES = ("*.safetensors", "pytorch_model*.bin", "adapter_model.bin", "config.json", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
_IGNORED_KEYS = frozenset({"padding", "truncation", "padding_side", "truncation_side", "max_length",
                           "pad_to_multiple_of", "pad_token_type_id", "stride"})


def weights_digest(spec: str) -> str | None:
    """A content digest of a local model directory (weights, config, tokenizer, chat
    template), or None when the spec is not a local directory. Two directories with the
    same digest generate the same greedy replies."""
    if not is_local(spec):
        return None
    from astra.llm.embedded import resolve_model_path

    ref = spec.split(":", 1)[1] if ":" in spec else None
    path = Path(resolve_model_path(ref))
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for pattern in _MODEL_FILES:
        for f in sorted(path.glob(pattern)):
            h.update(f.name.encode() + b"\0")
            if f.suffix == ".json":
                data = json.loads(f.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    data = {k: v for k, v in data.items() if k not in _IGNORED_KEYS}
                h.update(json.dumps(data, sort_keys=True).encode())
                continue
            with f.open("rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
    return h.hexdigest()


def evaluate_local(envs: Sequence[Environment], spec: str, *, label: str, max_turns: int, sampler: Any,
                   seed: int, temperature: float, max_tokens: int, batch: int,
                   session_factory: Callable[..., Any] | None = None,
                   on_episode: Callable[[str, Any], None] | None = None) -> Any:
    """One model (``embedded`` or ``embedded:DIR``) on every environment; a ``ModelResult``."""
    from astra.envs.runtime import EnvSession
    from astra.eval.envs import episode_result, summarize
    from astra.train.rl import load_policy
    from astra.train.rl_rollout import RolloutEngine

    t0 = time.perf_counter()
    model, tok = load_policy(spec)
    model.eval()
    engine = RolloutEngine(model, tok, max_new_tokens=max_tokens, temperature=temperature, top_p=1.0,
                           max_batch=max(1, batch), engine="hf")
    factory = session_factory or EnvSession
    sessions = []
    for env in envs:
        ds = sampler.sample(env) if sampler is not None else None
        sessions.append(factory(env, max_turns=max_turns, reward="f1", distractors=ds, seed=seed))
    # Chunks of similar prompts: one kind of environment (one system prompt, prefilled once
    # per chunk) and similar lengths (little padding).
    order = sorted(range(len(sessions)), key=lambda i: (type(sessions[i]).__name__, _prompt_size(envs[i]), i))
    episodes = engine.run([sessions[i] for i in order])
    results: list[Any] = [None] * len(sessions)
    for i, e in zip(order, episodes, strict=True):
        error = e.error if e.end_reason == "error" else None
        results[i] = episode_result(envs[i], e.session, error)
        if on_episode:
            on_episode(label, results[i])
    return summarize(label, results, time.perf_counter() - t0)


def _prompt_size(env: Environment) -> int:
    return len(str(env.instance.question)) + sum(len(str(t.tool.model_dump())) for t in env.tools)
