"""Environments for RL: the bundle format, the runtime an RL trainer
drives (reset / step / reward with the trajectory F1), distractor mixing, and adapters.

- :mod:`~astra.envs.bundle` — ``envs/<id>.json`` + ``envs/index.jsonl``; load, write, re-verify;
- :mod:`~astra.envs.runtime` — :class:`EnvSession`, :class:`RewardInfo` (the final answer
  checked against the instance's answer, gating the sub-task F1);
- :mod:`~astra.envs.reward` — :func:`trajectory_reward`, :func:`episode_reward` (pure);
- :mod:`~astra.envs.arguments` — untrusted tool-call arguments: bounded, schema-checked;
- :mod:`~astra.envs.exploits` — the exploit suite ``astra envs verify`` and synthesis run;
- :mod:`~astra.envs.distractors` — :class:`DistractorSampler` (banded / random / none);
- :mod:`~astra.envs.adapters` — TRL ``environment_factory`` classes;
- :mod:`~astra.envs.mcp` — serve an environment's tools over MCP (imported on demand).

Environments are made by :mod:`astra.envsynth` (``astra envs synthesize``). See
docs/environments.md.
"""

from astra.envs.adapters import (
    AstraTRLEnv,
    attach_response_template,
    final_answer_hook,
    trl_dataset_rows,
    trl_environment_class,
    trl_environment_factories,
    trl_grpo_trainer,
)
from astra.envs.bundle import (
    EnvIndexEntry,
    EnvVerification,
    load_environment,
    load_environments,
    verify_environment,
    verify_environments,
    write_environment,
)
from astra.envs.distractors import DistractorSampler, HashEmbedder, MiniLMEmbedder, tool_doc
from astra.envs.reward import REWARD_KINDS, episode_reward, reward_parts, trajectory_reward
from astra.envs.runtime import EnvSession, EpisodeOver, RewardInfo

__all__ = [
    "REWARD_KINDS", "AstraTRLEnv", "DistractorSampler", "EnvIndexEntry", "EnvSession", "EnvVerification",
    "EpisodeOver", "HashEmbedder", "MiniLMEmbedder", "RewardInfo", "attach_response_template", "episode_reward",
    "final_answer_hook", "load_environment", "load_environments", "reward_parts", "tool_doc", "trajectory_reward",
    "trl_dataset_rows", "trl_environment_class", "trl_environment_factories", "trl_grpo_trainer",
    "verify_environment", "verify_environments", "write_environment",
]
