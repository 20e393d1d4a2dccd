"""The veRL side of ``astra train rl --backend verl --export DIR``.

* :mod:`astra.train.verl_plugin.core` — environment lookup, one episode against an async
  token generator, replayed reward: importable and tested without veRL;
* ``agent_loop.py`` and ``reward_fn.py`` — templates copied into the export directory as
  ``astra_agent_loop.py`` (a veRL ``AgentLoopBase``) and ``astra_reward.py`` (a veRL
  ``compute_score``); they import veRL and delegate to ``core``.
"""

from importlib import resources

TEMPLATES = {"agent_loop.py": "astra_agent_loop.py", "reward_fn.py": "astra_reward.py"}


def template_text(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text("utf-8")
