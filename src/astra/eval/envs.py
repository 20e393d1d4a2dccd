"""Held-out environment evaluation (``astra eval envs``).

::

    astra eval envs envs/heldout --model ckpt/rl [--model ckpt/sft --model embedded] \\
        [--limit N] [--max-turns 8] [--distractors none|banded] [-o results.json]

Each model plays the agent against every environment through the RL runtime
(:class:`astra.envs.runtime.EnvSession`) — the same reset / step / reward the trainer uses —
with deterministic decoding (temperature 0) by default. Environments run concurrently
(``asyncio.gather`` behind a semaphore, so the embedded provider batches requests).

Metrics per model: success rate (the answer right and every sub-task solved), mean F1 / recall / precision,
mean turns and tool calls, overall and per scenario type (``env.instance.scenario``).
Several ``--model`` values give a comparison on the same set (base vs SFT vs RL).

The set must be **held out**: environments never used in training.
:func:`astra.envs.split.split_environments` (``astra envs split``) splits a bundle directory into ``train/`` and ``heldout/`` by a
seeded hash of the environment id (stable: an environment never changes side when others
are added).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic import BaseModel, Field, computed_field
from rich.text import Text

from astra.choices import check_choice
from astra.cli_common import takes_llm_options
from astra.errors import ConfigError
from astra.eval.local import is_local, weights_digest
from astra.llm.options import LLMOptions
from astra.types import Environment

#: How local models play the environments (see :func:`evaluate_envs`).
ENGINES = ("hf", "chat")

SCENARIOS = ("single_hop", "parallel_single_hop", "multi_hop", "parallel_multi_hop")


class EpisodeResult(BaseModel):
    env_id: str
    scenario: str = ""
    domain: str = ""
    success: bool = False
    reward: float = 0.0
    f1: float = 0.0
    recall: float = 0.0
    precision: float = 0.0
    turns: int = 0
    calls: int = 0
    solved: list[str] = Field(default_factory=list)
    n_subtasks: int = 0
    final_answer: str | None = None
    error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def subtasks(self) -> float:
        """Share of the environment's tool sub-tasks whose call was made right (answer aside)."""
        return len(self.solved) / self.n_subtasks if self.n_subtasks else 0.0


class Metrics(BaseModel):
    n: int = 0
    success_rate: float = 0.0
    f1: float = 0.0
    recall: float = 0.0
    precision: float = 0.0
    turns: float = 0.0
    calls: float = 0.0
    #: Mean share of an environment's tool sub-tasks whose call was made correctly, whatever
    #: the final answer (a diagnostic of tool use; the reward is gated on the answer).
    subtasks: float = 0.0
    errors: int = 0
    #: 95% percentile-bootstrap intervals over the environments: ``{metric: [low, high]}``
    #: for success_rate / f1 / recall / precision, plus ``level``, ``method``, ``resamples``.
    ci: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, eps: Sequence[EpisodeResult], *, with_ci: bool = False) -> Metrics:
        n = len(eps)
        if not n:
            return cls()
        ci: dict[str, Any] = {}
        if with_ci and n >= 2:
            from astra.eval.stats import BOOTSTRAP_LEVEL, BOOTSTRAP_METHOD, BOOTSTRAP_RESAMPLES, bootstrap_ci

            for key, f in _CI_METRICS.items():
                lo_hi = bootstrap_ci([f(e) for e in eps])
                if lo_hi is not None:
                    ci[key] = [round(lo_hi[0], 4), round(lo_hi[1], 4)]
            ci.update(level=BOOTSTRAP_LEVEL, method=BOOTSTRAP_METHOD, resamples=BOOTSTRAP_RESAMPLES)

        def mean(f: Callable[[EpisodeResult], float]) -> float:
            return round(sum(f(e) for e in eps) / n, 4)

        return cls(n=n, success_rate=mean(lambda e: float(e.success)), f1=mean(lambda e: e.f1),
                   recall=mean(lambda e: e.recall), precision=mean(lambda e: e.precision),
                   turns=mean(lambda e: e.turns), calls=mean(lambda e: e.calls),
                   subtasks=mean(lambda e: e.subtasks), errors=sum(e.error is not None for e in eps), ci=ci)


_CI_METRICS: dict[str, Callable[[EpisodeResult], float]] = {
    "success_rate": lambda e: float(e.success), "f1": lambda e: e.f1, "recall": lambda e: e.recall,
    "precision": lambda e: e.precision, "subtasks": lambda e: e.subtasks}


class ModelResult(BaseModel):
    model: str
    overall: Metrics
    by_scenario: dict[str, Metrics] = Field(default_factory=dict)
    episodes: list[EpisodeResult] = Field(default_factory=list)
    seconds: float = 0.0
    #: Set when this model's weights are byte-identical to an earlier model's (e.g. an RL run
    #: that made no update): its greedy episodes are that model's, not played again.
    same_weights_as: str | None = None


class EnvEvalReport(BaseModel):
    kind: str = "envs"
    envs: str = ""
    n_envs: int = 0
    max_turns: int = 8
    distractors: str = "none"
    temperature: float = 0.0
    seed: int = 0
    #: how local models played (``hf``: the RL rollout loop; ``chat``: their chat client)
    engine: str = "chat"
    command: str | None = None
    models: list[ModelResult] = Field(default_factory=list)
    #: Each model against the one listed before it, on the environments both ran: paired
    #: bootstrap of the per-environment difference of F1 (the reward), then of ``subtasks``
    #: (see :mod:`astra.eval.stats`).
    comparisons: list[dict[str, Any]] = Field(default_factory=list)

    def compare(self, metric: str = "f1") -> list[dict[str, Any]]:
        from astra.eval.stats import paired_difference

        out = []
        for a, b in zip(self.models, self.models[1:], strict=False):
            va = {e.env_id: getattr(e, metric) for e in a.episodes}
            vb = {e.env_id: getattr(e, metric) for e in b.episodes}
            ids = sorted(va.keys() & vb.keys())
            if ids:
                out.append({"a": a.model, "b": b.model, "metric": metric, "n": len(ids),
                            **paired_difference([va[i] for i in ids], [vb[i] for i in ids])})
        return out

    def table(self) -> Any:
        """A rich table: one row per model (overall) and per model × scenario."""
        from rich.table import Table

        t = Table(title=f"held-out environments ({self.n_envs}, max {self.max_turns} turns, "
                        f"distractors {self.distractors})", title_justify="left")
        for col in ("model", "scenario", "n", "success", "F1", "recall", "precision", "sub-tasks", "turns",
                    "calls"):
            t.add_column(col, justify="left" if col in ("model", "scenario") else "right")
        for m in self.models:
            rows = [("all", m.overall)] + sorted(m.by_scenario.items(), key=lambda kv: _scenario_rank(kv[0]))
            for i, (sc, x) in enumerate(rows):
                f1 = f"{x.f1:.3f}" + (f" [{x.ci['f1'][0]:.2f}, {x.ci['f1'][1]:.2f}]" if "f1" in x.ci else "")
                t.add_row(m.model if i == 0 else "", sc if i else Text("all", style="bold"), str(x.n),
                          f"{x.success_rate:.3f}", f1, f"{x.recall:.3f}", f"{x.precision:.3f}",
                          f"{x.subtasks:.3f}", f"{x.turns:.2f}", f"{x.calls:.2f}")
            t.add_section()
        notes = ["sub-tasks: share of each environment's tool calls made right, answer aside (not the reward)"]
        if any("f1" in m.overall.ci for m in self.models):
            notes.insert(0, "F1 [95% bootstrap interval over the environments]")
        notes += [f"{m.model}: the same weights as {m.same_weights_as}, its episodes reused"
                  for m in self.models if m.same_weights_as]
        t.caption = "; ".join(notes)
        return t

    def comparison_lines(self) -> list[str]:
        """One line per paired comparison (``b`` against ``a``)."""
        lines = []
        for c in self.comparisons or self.compare():
            ci = f" [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}]" if c.get("ci") else ""
            p = f", P(not better) {c['p_not_better']:.3f}" if c.get("p_not_better") is not None else ""
            lines.append(f"{c['b']} vs {c['a']}: {c['metric']} {c['diff']:+.3f}{ci} on {c['n']} environments "
                         f"(paired bootstrap{p})")
        return lines


def _scenario_rank(s: str) -> tuple[int, str]:
    return (SCENARIOS.index(s) if s in SCENARIOS else len(SCENARIOS), s)


def _response_message(resp: Any) -> dict[str, Any]:
    return resp.message()


async def run_episode(env: Environment, client: Any, *, max_turns: int = 8, distractors: list | None = None,
                      seed: int = 0, temperature: float = 0.0, max_tokens: int = 512,
                      session_factory: Callable[..., Any] | None = None, pool: Any = None) -> EpisodeResult:
    """One episode of ``env`` with ``client`` as the agent."""
    from astra.envs.runtime import EnvSession

    factory = session_factory or EnvSession
    kwargs: dict[str, Any] = {"max_turns": max_turns, "reward": "f1", "distractors": distractors, "seed": seed}
    if pool is not None:
        kwargs["pool"] = pool
    session = factory(env, **kwargs)
    messages, tools = session.reset()
    error = None
    try:
        while not session.finished:
            resp = await client.chat(messages, tools=tools, temperature=temperature, max_tokens=max_tokens)
            # after the turn cap the reply is the final answer (its tool calls are not run), as in RL rollouts
            if not resp.tool_calls or session.done:
                session.finish(resp.content)
                break
            messages = [*messages, _response_message(resp), *await session.astep(resp.tool_calls)]
    except Exception as e:  # one failing episode must not end the evaluation
        error = f"{type(e).__name__}: {e}"[:500]
        if not session.finished:
            session.finish(None)
    return episode_result(env, session, error)


def episode_result(env: Environment, session: Any, error: str | None) -> EpisodeResult:
    """The scored result of a finished session."""
    info = session.reward()
    inst = env.instance
    return EpisodeResult(env_id=env.id, scenario=str(inst.scenario), domain=inst.domain,
                         success=bool(info.success),
                         reward=info.reward, f1=info.f1, recall=info.recall, precision=info.precision,
                         turns=int(getattr(session, "turns", 0)), calls=info.calls, solved=list(info.solved),
                         n_subtasks=info.n_subtasks, final_answer=getattr(session, "final_answer", None),
                         error=error)


def summarize(model: str, episodes: list[EpisodeResult], seconds: float = 0.0) -> ModelResult:
    groups: dict[str, list[EpisodeResult]] = defaultdict(list)
    for e in episodes:
        groups[e.scenario or "unknown"].append(e)
    return ModelResult(model=model, overall=Metrics.of(episodes, with_ci=True),
                       by_scenario={k: Metrics.of(v) for k, v in sorted(groups.items(),
                                                                         key=lambda kv: _scenario_rank(kv[0]))},
                       episodes=episodes, seconds=round(seconds, 2))


async def aevaluate_model(envs: Sequence[Environment], client: Any, *, label: str, max_turns: int = 8,
                          distractors: str = "none", seed: int = 0, temperature: float = 0.0,
                          max_tokens: int = 512, concurrency: int = 8,
                          session_factory: Callable[..., Any] | None = None,
                          distractor_pool: Sequence[Environment] | None = None,
                          on_episode: Callable[[str, EpisodeResult], None] | None = None) -> ModelResult:
    """All environments with one model, concurrently (at most ``concurrency`` at once)."""
    sampler = _distractor_sampler(distractors, distractor_pool or envs, seed)
    sem = asyncio.Semaphore(max(1, concurrency))
    t0 = time.perf_counter()

    async def one(env: Environment) -> EpisodeResult:
        async with sem:
            ds = sampler.sample(env) if sampler is not None else None
            r = await run_episode(env, client, max_turns=max_turns, distractors=ds, seed=seed,
                                  temperature=temperature, max_tokens=max_tokens, session_factory=session_factory)
            if on_episode:
                on_episode(label, r)
            return r

    episodes = await asyncio.gather(*(one(e) for e in envs))
    return summarize(label, list(episodes), time.perf_counter() - t0)


def _distractor_sampler(mode: str, pool: Sequence[Environment], seed: int) -> Any:
    if mode == "none":
        return None
    from astra.envs import DistractorSampler
    from astra.envs.distractors import Mode

    kind = cast(Mode, mode)  # DistractorSampler checks the value
    try:
        return DistractorSampler(list(pool), mode=kind, seed=seed)
    except TypeError:  # an older / different signature
        return DistractorSampler(list(pool), mode=kind)


def spread_sample(envs: Sequence[Environment], limit: int | None) -> list[Environment]:
    """``limit`` environments spread over the kinds and scenario types: one of each
    (kind, scenario) group in turn, groups in sorted order, each group in its given order
    (a bundle loads sorted by file name). All of them when ``limit`` is None or not smaller."""
    if limit is None or limit >= len(envs):
        return list(envs)
    groups: dict[tuple[str, str], list[Environment]] = defaultdict(list)
    for e in envs:
        groups[(str(getattr(e, "kind", "qa")), str(e.instance.scenario))].append(e)
    queues = [groups[k] for k in sorted(groups)]
    out: list[Environment] = []
    depth = 0
    while len(out) < limit:
        for q in queues:
            if depth < len(q) and len(out) < limit:
                out.append(q[depth])
        depth += 1
    return out


def evaluate_envs(envs: Sequence[Environment] | str | Path, models: Sequence[str | Any], *, limit: int | None = None,
                  max_turns: int = 8, distractors: str = "none", seed: int = 0, temperature: float = 0.0,
                  max_tokens: int = 512, concurrency: int = 8, settings: Any = None, command: str | None = None,
                  session_factory: Callable[..., Any] | None = None,
                  on_episode: Callable[[str, EpisodeResult], None] | None = None,
                  engine: str = "chat") -> EnvEvalReport:
    """Evaluate each model (a provider spec, a checkpoint directory, or a ready client with a
    ``chat`` coroutine) on the same environments; sequentially per model, concurrently per env.

    ``engine``: ``chat`` plays every model through its chat client; ``hf`` plays local
    models (``embedded``, checkpoint directories) on the RL rollout loop
    (:mod:`astra.eval.local`: KV cache across turns, ``concurrency`` sessions per batch) and
    the others through their client."""
    from astra.eval import model_spec
    from astra.llm import LLMSettings, make_client

    check_choice(engine, ENGINES, "evaluation engine", ConfigError)

    src = ""
    if isinstance(envs, (str, Path)):
        from astra.envs.bundle import load_environments

        src = str(envs)
        env_list = spread_sample(load_environments(envs), limit)
    else:
        env_list = spread_sample(list(envs), limit)
    report = EnvEvalReport(envs=src, n_envs=len(env_list), max_turns=max_turns, distractors=distractors,
                           temperature=temperature, seed=seed, command=command, engine=engine)
    played: dict[str, ModelResult] = {}  # weights digest -> the result of the model that had them
    for m in models:
        spec = model_spec(m) if isinstance(m, str) else None
        digest = weights_digest(spec) if spec is not None and temperature == 0 and len(models) > 1 else None
        if digest is not None and digest in played:
            first = played[digest]
            report.models.append(first.model_copy(update={"model": m, "seconds": 0.0,
                                                          "same_weights_as": first.model}))
            continue
        if spec is not None and engine == "hf" and is_local(spec):
            from astra.eval.local import evaluate_local

            sampler = _distractor_sampler(distractors, env_list, seed)
            report.models.append(evaluate_local(env_list, spec, label=str(m), max_turns=max_turns,
                                                sampler=sampler, seed=seed, temperature=temperature,
                                                max_tokens=max_tokens, batch=concurrency,
                                                session_factory=session_factory, on_episode=on_episode))
            if digest is not None:
                played[digest] = report.models[-1]
            continue
        client: Any
        if spec is not None:
            s = (settings or LLMSettings.from_env()).model_copy(update={"spec": spec})
            client, label = make_client(s), str(m)
        else:
            client, label = m, str(getattr(m, "provider_id", "client"))
        res = asyncio.run(aevaluate_model(env_list, client, label=label, max_turns=max_turns, distractors=distractors,
                                          seed=seed, temperature=temperature, max_tokens=max_tokens,
                                          concurrency=concurrency, session_factory=session_factory,
                                          on_episode=on_episode))
        report.models.append(res)
        if digest is not None:
            played[digest] = res
    report.comparisons = report.compare("f1") + report.compare("subtasks")
    return report


def write_report(report: EnvEvalReport, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(p)
    return p


# ---------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------


@takes_llm_options("base_url", "no_cache", help={
    "base_url": "OpenAI-compatible endpoint for --model openai:...", "no_cache": "Bypass the LLM response cache."})
def eval_envs_command(
    envs: Annotated[Path, typer.Argument(help="Held-out environments: a bundle directory (e.g. envs/heldout), "
                                              "an index.jsonl, a JSONL of environments or one ENV.json.")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m",
        help="A checkpoint directory (→ embedded:DIR), 'embedded', 'embedded:PATH' or 'openai:MODEL'. "
             "Repeat to compare models on the same set (e.g. base, SFT, RL).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help=(
        "N environments, spread over the kinds (QA, stateful) and scenario types in turn."))] = None,
    max_turns: Annotated[int, typer.Option("--max-turns", help="Assistant turns with tool calls per episode.")] = 8,
    distractors: Annotated[str, typer.Option(
        "--distractors", help="Distractor tools mixed into each environment: none | banded | random.")] = "none",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the results JSON here.")] = None,
    llm_options: LLMOptions = LLMOptions(),
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", help="Environments run at once.")] = 8,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = deterministic).")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Maximum tokens per model reply.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed for tool order and distractor sampling.")] = 0,
    engine: Annotated[str, typer.Option(
        "--engine", help="How local models (embedded, checkpoint directories) play: hf (the RL rollout loop: "
                         "KV cache kept across turns, -j sessions per batch) or chat (their chat client, "
                         "the whole conversation prefilled every turn). Endpoints always use chat.")
    ] = "hf",
) -> None:
    """Evaluate models as agents on held-out environments: success, F1, recall, precision, turns, calls."""
    import shlex
    import sys

    from astra.cli_common import console, print_error
    from astra.errors import AstraError

    if distractors not in ("none", "banded", "random"):
        print_error(f"--distractors must be none, banded or random, got {distractors!r}")
        raise typer.Exit(2)
    models = model or ["embedded"]
    settings = llm_options.settings(concurrency=max(8, concurrency))
    command = None
    if sys.argv and Path(sys.argv[0]).name == "astra":
        command = "astra " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    def progress(label: str, r: EpisodeResult) -> None:
        mark = Text("✓", "green") if r.success else Text("error" if r.error else "✗", "red")
        console.print(f"  {label} {r.env_id} f1={r.f1:.2f}", mark, highlight=False)

    try:
        report = evaluate_envs(envs, models, limit=limit, max_turns=max_turns, distractors=distractors, seed=seed,
                               temperature=temperature, max_tokens=max_tokens, concurrency=concurrency,
                               settings=settings, command=command, on_episode=progress, engine=engine)
    except AstraError as e:
        print_error(str(e))
        raise typer.Exit(1) from None
    if not report.n_envs:
        console.print(f"no environments in {envs}", style="yellow")
    console.print(report.table())
    for line in report.comparison_lines():
        console.print(line, highlight=False)
    if output is not None:
        write_report(report, output)
        console.print(f"results → {output}")
    else:
        print(json.dumps({m.model: m.overall.model_dump() for m in report.models}, indent=2))


__all__ = ["EnvEvalReport", "EpisodeResult", "Metrics", "ModelResult", "aevaluate_model", "eval_envs_command",
           "evaluate_envs", "run_episode", "summarize", "write_report"]
