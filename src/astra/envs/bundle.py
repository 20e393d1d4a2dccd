"""The environment bundle: one versioned JSON file per environment, plus an index.

Layout of an output directory (``astra envs synthesize valid.jsonl -o envs/``)::

    envs/
      <env id>.json            # one Environment, loadable alone (load_environment)
      index.jsonl              # one EnvIndexEntry per environment (the stage's output;
      index.ledger.jsonl       #   resumable: a rerun only synthesizes what is missing)
      index.manifest.json      # counts, rejection reasons (spec_leak, wrong_answer, ...)

``<env id>.json`` is :class:`astra.types.Environment` as JSON:

- ``schema_version`` (records written by a newer astra are refused with a clear message);
- ``tools``: per tool the OpenAI schema (``tool``), the standard-library ``code``, the
  sub-tasks it ``serves`` and their gold ``calls`` (``{sub id: call statement}``);
- ``instance``: the QA instance — question, answer, sub-tasks with gold answers and the
  dependency DAG, ``meta`` (plan, aggregate, answer types);
- ``provenance``: generator (``template`` | ``llm``), model, prompts version, seed,
  max_attempts, scale, astra version;
- ``verification``: ``ok``, per tool the gold calls run in the sandbox (``ok``, ``outcome``,
  ``output_excerpt``, ``duration``, ``isolation``), the defensive-error probe, attempts,
  scaling, and the merge records.

:func:`verify_environment` re-runs every gold call (``astra envs verify``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astra.errors import InputError
from astra.io import check_version, validation_message, write_json
from astra.pipeline import read_outputs
from astra.types import Environment, Record

INDEX_NAME = "index.jsonl"


class EnvIndexEntry(Record):
    """One line of ``index.jsonl``: where an environment's file is and what it holds."""

    id: str
    path: str  # relative to the index's directory
    domain: str = ""
    scenario: str = ""
    n_subtasks: int = 0
    n_tool_subtasks: int = 0
    tools: list[str] = Field(default_factory=list)
    verified: bool = False
    generator: str = ""

    def record_key(self) -> str:
        return self.id

    @classmethod
    def of(cls, env: Environment, path: str) -> EnvIndexEntry:
        return cls(id=env.id, path=path, domain=env.instance.domain, scenario=env.instance.scenario,
                   n_subtasks=len(env.instance.sub_tasks),
                   n_tool_subtasks=sum(s.needs_tool for s in env.instance.sub_tasks),
                   tools=[t.tool.name for t in env.tools], verified=bool(env.verification.get("ok")),
                   generator=str(env.provenance.get("generator", "")))


def env_filename(env_id: str) -> str:
    """A safe file name for an environment id (``film.mh.0123abcd`` -> ``film.mh.0123abcd.json``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", env_id).strip("._") or "env"
    return f"{safe}.json"


def write_environment(env: Environment, directory: str | os.PathLike[str]) -> Path:
    """Write ``<directory>/<id>.json`` atomically; returns its path."""
    path = Path(directory) / env_filename(env.id)
    write_json(path, env)
    return path


def resolve_environment_path(path: str | os.PathLike[str]) -> Path:
    """``envs/ID.json``, ``envs/ID`` (the ``.json`` added) or an id found in the parent's index."""
    p = Path(path)
    if p.is_file():
        return p
    if p.with_name(p.name + ".json").is_file():
        return p.with_name(p.name + ".json")
    if p.parent.is_dir():
        cand = p.parent / env_filename(p.name)
        if cand.is_file():
            return cand
        index = p.parent / INDEX_NAME
        if index.is_file():
            for e in read_outputs(index, EnvIndexEntry):
                if e.id == p.name:
                    return p.parent / e.path
    raise InputError("no environment file (expected ENV.json, or a directory and an environment id)", path=str(p))


def parse_environment(obj: Any, *, source: str, line: int | None = None) -> Environment:
    check_version(obj, path=source, line=line or 0)
    try:
        if isinstance(obj, dict) and obj.get("kind") == "stateful":  # astra.envs.stateful
            from astra.envs.stateful import StatefulEnvironment

            return StatefulEnvironment.model_validate(obj)
        return Environment.model_validate(obj)
    except ValidationError as e:
        loc, msg = validation_message(e)
        raise InputError(f"not an environment: {msg}", path=source, line=line, field=loc) from None


def load_environment(path: str | os.PathLike[str]) -> Environment:
    """One environment from its JSON file (see :func:`resolve_environment_path`)."""
    p = resolve_environment_path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", path=str(p)) from None
    return parse_environment(obj, source=str(p))


def environment_paths(src: str | os.PathLike[str]) -> list[Path]:
    """The environment files of a directory, sorted by file name: from ``index.jsonl`` when
    there is one (only records the ledger accounts for), else every ``*.json`` except
    manifests. (Synthesis appends to the index in completion order; sorting makes loading,
    ``--limit`` and everything downstream the same from run to run.)"""
    d = Path(src)
    index = d / INDEX_NAME
    if index.is_file():
        return sorted({d / e.path for e in read_outputs(index, EnvIndexEntry)})
    return sorted(p for p in d.glob("*.json") if not p.name.endswith(".manifest.json"))


def load_environments(src: str | os.PathLike[str], *, limit: int | None = None) -> list[Environment]:
    """Environments from a bundle directory, an ``index.jsonl``, a JSONL of environments, or
    one environment file."""
    p = Path(src)
    if p.is_dir():
        paths = environment_paths(p)
        if limit is not None:
            paths = paths[:limit]
        return [load_environment(x) for x in paths]
    if not p.exists():
        raise InputError("not found", path=str(p))
    if p.suffix == ".jsonl":
        out: list[Environment] = []
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if limit is not None and len(out) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"invalid JSON ({e.msg})", path=str(p), line=lineno) from None
                if isinstance(obj, dict) and "path" in obj and "tools" in obj and "instance" not in obj:
                    out.append(load_environment(p.parent / obj["path"]))  # an index line
                else:
                    out.append(parse_environment(obj, source=str(p), line=lineno))
        return out
    return [load_environment(p)]


# ---------------------------------------------------------------------------------
# Re-verification
# ---------------------------------------------------------------------------------


class EnvVerification(BaseModel):
    """The gold calls of one environment re-run in the sandbox."""

    model_config = ConfigDict(extra="forbid")

    id: str
    ok: bool
    calls: int
    failed: int
    seconds: float
    failures: list[dict[str, Any]] = Field(default_factory=list)


async def verify_environment(env: Environment, *, pool: Any = None) -> EnvVerification:
    """Re-run every tool's gold calls against its code with typed matching."""
    import time

    from astra.envs.verify import answer_type_of, verify_calls
    from astra.sandbox import default_pool

    if getattr(env, "kind", None) == "stateful":  # re-derived from the gold plan (astra.envs.stateful_verify)
        from astra.envs.stateful_verify import reverify_stateful

        return await reverify_stateful(env)  # type: ignore[arg-type]
    pool = pool or default_pool()
    t0 = time.perf_counter()
    golds = {s.id: s.sub_answer for s in env.instance.sub_tasks}
    types = {s.id: answer_type_of(env.instance, s.id) for s in env.instance.sub_tasks}
    checks = []
    for t in env.tools:
        unknown = [sid for sid in t.calls if sid not in golds]
        if unknown:
            checks.append({"sub_id": ",".join(unknown), "tool": t.tool.name, "ok": False,
                           "error": "calls for unknown sub-tasks"})
            continue
        for c in await verify_calls(t.code, t.tool.name, t.calls, golds, types, pool=pool):
            checks.append(c.model_dump())
    tool_subs = {s.id for s in env.instance.sub_tasks if s.needs_tool}
    served = {sid for t in env.tools for sid in t.calls}
    for sid in sorted(tool_subs - served):
        checks.append({"sub_id": sid, "tool": None, "ok": False, "error": "no tool call serves this sub-task"})
    failures = [c for c in checks if not c["ok"]]
    return EnvVerification(id=env.id, ok=not failures, calls=len(checks), failed=len(failures),
                           seconds=round(time.perf_counter() - t0, 4), failures=failures)


async def verify_environments(envs: list[Environment], *, pool: Any = None, concurrency: int = 4) -> list[
        EnvVerification]:
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(e: Environment) -> EnvVerification:
        async with sem:
            return await verify_environment(e, pool=pool)

    return list(await asyncio.gather(*(one(e) for e in envs)))


__all__ = [
    "INDEX_NAME", "EnvIndexEntry", "EnvVerification", "env_filename", "environment_paths", "load_environment",
    "load_environments", "parse_environment", "resolve_environment_path", "verify_environment",
    "verify_environments", "write_environment",
]
