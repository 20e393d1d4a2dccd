"""astra's trajectory reward as a veRL custom reward function (written by the export).

``custom_reward_function.path=<this file>``, ``custom_reward_function.name=compute_score``.
The agent loop (``astra_agent_loop.py``) already returns the reward of each episode; this
function is the fallback veRL calls for samples without one (another agent loop, or
validation with the standard tool agent): it replays the tool calls of the decoded
response in a fresh environment session and returns the trajectory reward (F1 / recall /
precision as the row's ``extra_info.reward_kind`` says) with its parts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))
os.environ.setdefault("ASTRA_VERL_DIR", str(_HERE))

from astra.train.verl_plugin.core import DATA_SOURCE, replay_reward  # noqa: E402


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None,
                  **kwargs: Any) -> dict[str, Any] | float:
    if data_source != DATA_SOURCE or not extra_info:
        return 0.0
    return replay_reward(solution_str, extra_info)
