"""Multi-turn rollouts on real, live and emulated tools.

- :func:`~astra.rollout.agent.run_agent` -- the agent loop over OpenAI chat messages;
- :func:`~astra.rollout.chain_executor.run_chain_executor` -- the offline teacher;
- :mod:`~astra.rollout.backends` / :mod:`~astra.rollout.emulator` -- Python, MCP and
  emulated execution, failure injection;
- :class:`~astra.rollout.stages.RolloutStage` -- the ``rollout`` stage;
- :func:`~astra.rollout.cli.rollout_command` -- ``astra rollout``.
"""

from astra.rollout.agent import AgentRun, RolloutFailure, run_agent
from astra.rollout.backends import BackendUnavailable, MCPBackend, PythonBackend
from astra.rollout.chain_executor import run_chain_executor
from astra.rollout.emulator import EmulatorBackend, FailureInjector
from astra.rollout.outcome import STATUSES, ToolOutcome
from astra.rollout.stages import CHAIN_EXECUTOR, RolloutStage, load_servers
from astra.rollout.toolset import BackendPool, ToolSet

__all__ = [
    "AgentRun", "BackendPool", "BackendUnavailable", "CHAIN_EXECUTOR", "EmulatorBackend", "FailureInjector",
    "MCPBackend", "PythonBackend", "RolloutFailure", "RolloutStage", "STATUSES", "ToolOutcome", "ToolSet",
    "load_servers", "run_agent", "run_chain_executor",
]
