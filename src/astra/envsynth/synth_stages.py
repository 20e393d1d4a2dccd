"""The environment synthesis stage: QAInstance -> environment file + index entry.

:class:`SynthesizeStage` (``envs.synthesize``) runs :func:`astra.envsynth.synth.synthesize_environment`
per validated instance, writes ``<out>/<id>.json`` (atomically) and returns an
:class:`~astra.envs.bundle.EnvIndexEntry`, which the stage runner appends to
``<out>/index.jsonl`` with its ledger and manifest — so a rerun resumes (only instances
missing from the ledger are synthesized; an environment file written just before a kill is
rewritten identically) and the manifest counts rejections by reason (``spec_leak``,
``code_error``, ``wrong_answer``, ``forbidden_import``, ``llm_failed``, ``no_plan``,
``merge_failed``, ``no_tool_step``, and from the exploit suite ``exploitable`` /
``gold_below_one``).

Every environment that passes synthesis then runs the exploit suite
(:func:`astra.envs.exploits.probe_environment`): it is kept only when its gold plan earns 1
and no exploit earns more than 0.05; the suite's rewards are stored in the environment's
``verification["exploits"]``. ``exploit_check=False`` skips it (``--skip-exploit-check``).

Synthesizer per instance (``synthesizer=None``, the default): ``offline`` (templates) when
the instance has a plan and the LLM is the tiny embedded default (``embedded`` without a
path), else ``llm``. The stage keeps only settings (picklable for Ray); the LLM client
and the sandbox pool are built in :meth:`SynthesizeStage.setup`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from astra.envs.bundle import EnvIndexEntry, env_filename, write_environment
from astra.envsynth.decompose import Rejected
from astra.envsynth.synth import has_plan, synthesize_environment
from astra.errors import ConfigError
from astra.llm import LLMClient, LLMSettings
from astra.pipeline import StageResult
from astra.pipeline.llm_stage import LLMStage, settings_config, tiny_default
from astra.types import QAInstance


def choose_synthesizer(inst: QAInstance, requested: str | None, llm: LLMSettings | None) -> str:
    if requested in ("offline", "llm"):
        return requested
    if requested is not None:
        raise ConfigError(f"unknown synthesizer {requested!r} (use 'offline' or 'llm')")
    return "offline" if has_plan(inst) and tiny_default(llm) else "llm"


class SynthesizeStage(LLMStage):
    """QAInstance -> EnvIndexEntry, writing the environment file (see the module docstring)."""

    name = "envs.synthesize"
    input_model = QAInstance
    output_model = EnvIndexEntry
    _NOT_PICKLED = ("_client", "_pool", "_injected", "_injected_pool")  # built in setup(), or injected

    def __init__(self, out_dir: str | os.PathLike[str], *, synthesizer: Literal["offline", "llm"] | None = None,
                 llm: LLMSettings | None = None, max_attempts: int = 3,
                 on_merge_fail: Literal["drop", "keep"] = "drop", scale: int = 2, seed: int = 0,
                 pool_size: int | None = None, client: LLMClient | None = None, pool: Any = None,
                 exploit_check: bool = True) -> None:
        if synthesizer not in (None, "offline", "llm"):
            raise ConfigError(f"unknown synthesizer {synthesizer!r} (use 'offline' or 'llm')")
        if max_attempts < 1:
            raise ConfigError(f"--max-attempts must be >= 1, got {max_attempts}")
        if on_merge_fail not in ("drop", "keep"):
            raise ConfigError(f"--on-merge-fail must be 'drop' or 'keep', got {on_merge_fail!r}")
        if not 0 <= scale <= 2:
            raise ConfigError(f"--scale must be 0, 1 or 2, got {scale}")
        self.out_dir = str(out_dir)
        self.synthesizer = synthesizer
        self.keep_llm(llm, client)
        self.max_attempts = max_attempts
        self.on_merge_fail = on_merge_fail
        self.scale = scale
        self.seed = seed
        self.pool_size = pool_size
        self.exploit_check = exploit_check
        self._injected_pool = pool
        self._pool: Any = None

    def setup(self) -> None:
        from astra.sandbox import SandboxPool, default_pool

        if self._injected_pool is not None:
            self._pool = self._injected_pool
        elif self.pool_size:
            self._pool = SandboxPool(size=self.pool_size)
        else:
            self._pool = default_pool()
        if self._injected is not None or self.synthesizer == "llm" or (
                self.synthesizer is None and not tiny_default(self.llm)):
            self.connect()
        Path(self.out_dir).mkdir(parents=True, exist_ok=True)

    def config(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "synthesizer": self.synthesizer,
                "llm": settings_config(self.llm),
                "max_attempts": self.max_attempts, "on_merge_fail": self.on_merge_fail, "scale": self.scale,
                "seed": self.seed, "exploit_check": self.exploit_check}

    def _client_for_llm(self) -> LLMClient:
        return self._client if self._client is not None else self.connect()

    async def process(self, record: QAInstance) -> StageResult:
        pool = self.from_setup(self._pool)
        which = choose_synthesizer(record, self.synthesizer, self.llm)
        client = self._client_for_llm() if which == "llm" else None
        try:
            env = await synthesize_environment(
                record, synthesizer=which, client=client, pool=pool,  # type: ignore[arg-type]
                max_attempts=self.max_attempts, on_merge_fail=self.on_merge_fail, scale=self.scale, seed=self.seed,
                model=client.provider_id if client is not None else None)
        except Rejected as r:
            return StageResult.reject(record.id, r.reason, r.detail)
        if self.exploit_check:
            from astra.envs.exploits import probe_environment

            report = await probe_environment(env, pool=pool)
            env.verification["exploits"] = report.summary()
            if not report.ok:
                return StageResult.reject(record.id, report.reason or "exploitable", report.describe())
        write_environment(env, self.out_dir)
        return StageResult.accept(EnvIndexEntry.of(env, env_filename(env.id)))


__all__ = ["SynthesizeStage", "choose_synthesizer", "tiny_default"]
