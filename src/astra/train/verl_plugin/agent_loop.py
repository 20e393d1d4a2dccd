"""astra environments as a veRL agent loop (written by ``astra train rl --backend verl``).

Registered as ``astra_env_agent`` (the dataset's ``agent_name`` column, and
``agent_loop.yaml`` for ``actor_rollout_ref.rollout.agent.agent_loop_config_path``).
Each sample runs in its own ``EnvSession`` (tools executed in astra's sandbox); the loop,
the masks and the reward are :func:`astra.train.verl_plugin.core.run_episode`. The reward
(F1 / recall / precision, from the row's ``extra_info.reward_kind``) is returned as
``reward_score``, so veRL does not call a reward function for these samples.

Needs ``astra`` installed on every node (``pip install astra``) and this directory on
``PYTHONPATH`` (``run.sh`` does both for a single node and passes them to Ray workers).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
os.environ.setdefault("ASTRA_VERL_DIR", str(_HERE))

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register  # noqa: E402

from astra.train.verl_plugin.core import AGENT_NAME, make_session, run_episode  # noqa: E402


@register(AGENT_NAME)
class AstraEnvAgentLoop(AgentLoopBase):
    """One ASTRA environment episode per sample."""

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        cfg = self.config.actor_rollout_ref.rollout
        multi_turn = cfg.multi_turn
        max_turns = multi_turn.get("max_assistant_turns") or None
        extra_info = kwargs.get("extra_info") or {}
        session = make_session(extra_info, max_turns=max_turns)
        request_id = uuid4().hex

        async def generate(prompt_ids: list[int]) -> Any:
            out = await self.server_manager.generate(request_id=request_id, prompt_ids=prompt_ids,
                                                     sampling_params=sampling_params)
            ids = getattr(out, "token_ids", out)
            lps = getattr(out, "log_probs", None)
            return (list(ids), lps) if lps is not None else list(ids)

        res = await run_episode(session, self.tokenizer, generate, max_response_tokens=int(cfg.response_length),
                                max_turns=max_turns)
        return AgentLoopOutput(
            prompt_ids=res.prompt_ids,
            response_ids=res.response_ids[: cfg.response_length],
            response_mask=res.response_mask[: cfg.response_length],
            response_logprobs=res.response_logprobs[: cfg.response_length] if res.response_logprobs else None,
            reward_score=res.reward_score,
            num_turns=res.num_turns,
            metrics=res.metrics,
            extra_fields={"reward_extra_info": res.reward_info},
        )
