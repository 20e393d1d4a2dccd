"""The trajectory reward of the ASTRA method §3.2, with the final answer as its gate (pure).

For an instance with ``n`` sub-tasks, an agent that makes ``c`` tool calls and solves
``n̂`` sub-tasks:

- recall ``r = n̂ / n``
- precision ``p = min(1, n̂ / (c + ε))``
- **F1** ``= 2pr / (p + r)``, and 0 when ``n̂ = 0``.

``kind`` selects what the reward is: ``f1`` (the paper's choice), ``recall`` or
``precision`` (the ablations; recall-only makes turn counts explode, precision-only makes
the agent stop calling tools). All three are always reported by the runtime.

**(ours)** The episode's reward is that value times the **answer gate** ``G`` ∈ {0, 1}
(:func:`episode_reward`): ``G = 1`` iff the final answer states the instance's answer and
nothing competing with it (:func:`astra.envs.match.check_final_answer`) *and* the
sub-tasks that answer rests on were solved by the agent's own calls (see
:mod:`astra.envs.runtime`). Without the gate, calls alone would be paid whatever the agent
answers, and an answer listing every candidate would be paid in full.

**(ours)** precision is capped at 1: a non-tool step is credited through the final answer,
not by a call, so ``n̂`` can exceed ``c``; uncapped, the reward would leave [0, 1].
"""

from __future__ import annotations

from astra.choices import check_choice

REWARD_KINDS = ("f1", "recall", "precision")


def reward_parts(n_solved: int, n_subtasks: int, calls: int, eps: float = 1e-6) -> tuple[float, float, float]:
    """``(recall, precision, f1)`` of the method's formula (no gate)."""
    if n_subtasks <= 0:
        raise ValueError(f"an instance has at least one sub-task, got n_subtasks={n_subtasks}")
    if not 0 <= n_solved <= n_subtasks:
        raise ValueError(f"n_solved must be in [0, {n_subtasks}], got {n_solved}")
    if calls < 0:
        raise ValueError(f"calls must be >= 0, got {calls}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if n_solved == 0:
        return 0.0, 0.0, 0.0
    r = n_solved / n_subtasks
    p = min(1.0, n_solved / (calls + eps))
    f1 = 2 * p * r / (p + r)
    return r, p, f1


def trajectory_reward(n_solved: int, n_subtasks: int, calls: int, kind: str = "f1", eps: float = 1e-6) -> float:
    """The method's formula: ``f1`` (default), ``recall`` or ``precision`` (no gate)."""
    check_choice(kind, REWARD_KINDS, "reward kind")
    r, p, f1 = reward_parts(n_solved, n_subtasks, calls, eps)
    return {"f1": f1, "recall": r, "precision": p}[kind]


def episode_reward(n_solved: int, n_subtasks: int, calls: int, answer_gate: bool, kind: str = "f1",
                   eps: float = 1e-6) -> float:
    """The reward of an episode: ``G · kind(r, p)`` with ``G = answer_gate`` (see the module docstring)."""
    value = trajectory_reward(n_solved, n_subtasks, calls, kind, eps)
    return value if answer_gate else 0.0


__all__ = ["REWARD_KINDS", "episode_reward", "reward_parts", "trajectory_reward"]
