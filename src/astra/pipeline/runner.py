"""Run a :class:`~astra.pipeline.stage.Stage` over JSONL records: resumable, concurrent,
crash-safe, with a manifest of what happened.

Files for an output ``X.jsonl``
-------------------------------
- ``X.jsonl``: the output records, one per line, each exactly the output model's JSON
  (no extra fields: any reader can ``model_validate`` a line).
- ``X.ledger.jsonl``: one line per finished input:
  ``{"key", "n_outputs", "out_keys", "rejections": [...], "error", "error_type",
  "failure", "seconds", "usage"}``. An input is *decided* when its latest ledger line
  has no ``error``. ``failure`` is the kind of a failed input (``endpoint`` or
  ``error``, see :mod:`astra.pipeline.failures`). ``usage`` is the LLM usage of that
  input's own processing (omitted when zero; exact under concurrency: each record runs
  in its own :func:`~astra.llm.usage.record_scope`); a line ``{"key": null, "usage":
  {...}}`` carries the stage's usage outside any record (``setup``, records cancelled
  by a stop). The manifest's ``llm_usage`` is the sum over the ledger, so it is exact
  across runs and kills (only the usage of records in flight at a kill is lost).
- ``X.manifest.json``: a :class:`Manifest` (counts, rejection reasons, errors, LLM
  usage), rewritten atomically every ``manifest_interval`` seconds and at the end.
- ``X.lock``: an empty file flock-ed while a run writes ``X`` (a second concurrent run is
  refused; the OS releases the lock when a run dies).

Crash safety and resume
-----------------------
The driver is the only writer. For each finished input it appends all of the input's
outputs in ONE :func:`astra.io.append_lines` call, then its ledger line in a second one,
with nothing in between. So at any kill, the output file is: the outputs accounted for by
the ledger (the sum of ``n_outputs`` over its lines, in ledger order), then possibly
orphan lines of one input whose ledger line never landed, possibly ending in a torn line.
On (re)start the runner repairs both files (drops a torn final line) and truncates the
output file to the length the ledger accounts for, which removes exactly the orphans
(the source of each output is thus known from its position; ``out_keys`` in the ledger
also lists each output's own ``record_key()`` for tracing). Inputs whose key is in the
ledger are skipped; the others are processed again. A run killed with SIGKILL and rerun
therefore ends with the same set of records as an uninterrupted run.

Failures, rejections and stops
------------------------------
An exception raised by ``process`` is recorded in the ledger (``error``, ``failure``) and
counted as *failed*; the run goes on. A failure is not a decision about the record (an
endpoint that was down, a timeout, a bug): the next run processes failed inputs again
(the later ledger line wins) unless ``skip_failed=True``. Rejections are decisions and
are never redone. After ``max_endpoint_failures`` endpoint failures in a row (no input
decided in between) the run stops early (status ``stopped``) and raises
:class:`~astra.errors.EndpointDown`; the inputs not yet processed are simply not in the
ledger, so a rerun picks them up. The output file always exists after a run, empty when
nothing was accepted. :func:`read_outputs` reads only the ledger-accounted records, so it
is safe on the output of a running or killed stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from astra.errors import ConfigError, EndpointDown, InputError, OutputError
from astra.io import append_lines, ensure_parent, read_records, repair_jsonl, wrap_os_errors, write_json
from astra.llm.usage import USAGE, Usage, record_scope, stage_scope
from astra.pipeline.failures import ENDPOINT, ENDPOINT_ERROR_NAMES, ERROR, failure_kind
from astra.pipeline.stage import Stage, StageResult
from astra.types import Record, Rejection

log = logging.getLogger("astra.pipeline")

M = TypeVar("M", bound=BaseModel)

Executor = Literal["local", "ray"]

#: Endpoint failures in a row after which a run stops (``ASTRA_MAX_ENDPOINT_FAILURES``
#: overrides it for the CLI; 0 turns the breaker off).
DEFAULT_MAX_ENDPOINT_FAILURES = 5


# ---------------------------------------------------------------------------------
# Paths and manifest
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagePaths:
    """The three files of a stage output ``X.jsonl``."""

    output: Path
    ledger: Path
    manifest: Path
    lock: Path

    @classmethod
    def of(cls, output: str | os.PathLike[str]) -> StagePaths:
        p = Path(output)
        if p.name.endswith(".manifest.json"):
            stem = p.name[: -len(".manifest.json")]
            p = p.with_name(stem + ".jsonl")
        stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
        return cls(p, p.with_name(stem + ".ledger.jsonl"), p.with_name(stem + ".manifest.json"),
                   p.with_name(stem + ".lock"))


class Manifest(BaseModel):
    """What a stage run did. Run counts are about the latest run; totals are over the
    whole ledger (every run that wrote this output), so a resumed run's manifest is
    complete."""

    model_config = ConfigDict(extra="ignore")

    stage: str
    stage_class: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    input: str | None = None  # input path, or None for an in-memory iterable
    output: str
    ledger: str = ""
    executor: str = "local"
    concurrency: int = 1
    limit: int | None = None
    skip_failed: bool = False  # failed inputs of earlier runs were left failed, not retried
    # complete: every input read was decided or failed; stopped: the endpoint breaker
    # stopped the run early; error: the run itself raised; interrupted: Ctrl-C
    status: Literal["running", "complete", "interrupted", "error", "stopped"] = "running"
    error: str | None = None  # why the run itself stopped (status "error" / "stopped")
    started_at: str = ""
    updated_at: str = ""
    finished_at: str | None = None
    seconds: float = 0.0  # wall time of the latest run
    runs: int = 1  # runs that contributed to this output
    # -- the latest run
    inputs_seen: int = 0  # inputs read (after ``limit``)
    duplicate_inputs: int = 0  # inputs whose key already appeared in this run's stream
    skipped_done: int = 0  # inputs already in the ledger
    processed: int = 0  # inputs processed by this run
    processed_failed: int = 0  # of those, inputs that failed
    dropped_orphans: int = 0  # output lines removed on start (outputs without ledger line)
    # -- totals over the ledger (latest line per input key)
    done: int = 0  # distinct input keys in the ledger
    accepted: int = 0  # inputs with >= 1 output
    rejected: int = 0  # inputs with 0 outputs and >= 1 rejection
    empty: int = 0  # inputs with 0 outputs, no rejection, no error
    failed: int = 0  # inputs whose latest processing raised (retried by a rerun)
    outputs: int = 0  # records in the output file
    rejections: int = 0  # rejection entries (an accepted input may also reject some)
    rejections_by_reason: dict[str, int] = Field(default_factory=dict)
    errors_by_type: dict[str, int] = Field(default_factory=dict)
    failures_by_kind: dict[str, int] = Field(default_factory=dict)  # endpoint / error
    # -- LLM usage of this stage, summed over every run (Usage fields)
    llm_usage: dict[str, Any] = Field(default_factory=lambda: Usage().to_dict())  # over the ledger
    warnings: list[str] = Field(default_factory=list)

    @property
    def usage(self) -> Usage:
        return Usage.from_dict(self.llm_usage)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Load ``X.manifest.json`` (``path`` may also be the output ``X.jsonl``)."""
    p = Path(path)
    if not p.name.endswith(".manifest.json"):
        p = StagePaths.of(p).manifest
    if not p.exists():
        raise InputError("manifest not found (has the stage run?)", path=str(p))
    try:
        return Manifest.model_validate_json(p.read_text(encoding="utf-8"))
    except ValidationError as e:
        raise InputError(f"not a stage manifest: {e.errors()[0].get('msg')}", path=str(p)) from None


def collect_manifests(run_dir: str | os.PathLike[str]) -> list[Manifest]:
    """Every stage manifest under ``run_dir`` (recursively), sorted by path.
    Unreadable manifests are skipped with a warning."""
    out = []
    for p in sorted(Path(run_dir).rglob("*.manifest.json")):
        try:
            out.append(load_manifest(p))
        except (InputError, OSError, ValueError) as e:
            log.warning("skipping %s: %s", p, e)
    return out


# ---------------------------------------------------------------------------------
# Processing one record (shared by the local and Ray executors)
# ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The serialized result of one input, ready for the driver to write."""

    key: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    out_keys: list[str | None] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    failure: str | None = None  # the kind of a failure: "endpoint" or "error"
    seconds: float = 0.0
    record_usage: dict[str, Any] | None = None  # the LLM usage of this record's processing
    usage: dict[str, dict[str, Any]] | None = None  # usage deltas from a remote worker

    def ledger_entry(self) -> dict[str, Any]:
        entry = {
            "key": self.key,
            "n_outputs": len(self.outputs),
            "out_keys": self.out_keys,
            "rejections": self.rejections,
            "error": self.error,
            "error_type": self.error_type,
            "seconds": round(self.seconds, 3),
        }
        if self.failure:
            entry["failure"] = self.failure
        if self.record_usage:
            entry["usage"] = self.record_usage
        return entry


def failure(key: str, exc: BaseException, seconds: float = 0.0) -> Outcome:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return Outcome(key=key, error=f"{name}: {msg}" if msg else name, error_type=name,
                   failure=failure_kind(exc), seconds=seconds)


def _usage_dict(u: Usage, *, exact_seconds: bool = False) -> dict[str, Any] | None:
    """The non-zero fields of ``u`` (None when all are zero); ``exact_seconds`` keeps the
    seconds unrounded (per-record lines, so that their sum matches the stage's)."""
    d = u.to_dict() | ({"seconds": u.seconds} if exact_seconds else {})
    d = {k: v for k, v in d.items() if v}
    return d or None


def _minus(a: Usage, b: Usage) -> Usage:
    out = Usage(**{k: getattr(a, k) - getattr(b, k) for k in Usage.__dataclass_fields__})
    out.seconds = round(out.seconds, 6)
    return out


def _out_key(rec: Record) -> str | None:
    try:
        return rec.record_key()
    except Exception:  # noqa: BLE001 - a model without a key is still a valid output
        return None


async def process_one(stage: Stage, key: str, record: Record) -> Outcome:
    """Run ``stage.process`` on one record under ``stage_scope`` and a per-record
    ``record_scope`` (its usage goes with the outcome) and serialize the result.
    Exceptions become a failed :class:`Outcome`; cancellation propagates."""
    t0 = time.perf_counter()
    with stage_scope(stage.name), record_scope() as used:
        out = await _process(stage, key, record, t0)
    out.record_usage = _usage_dict(used, exact_seconds=True)
    return out


async def _process(stage: Stage, key: str, record: Record, t0: float) -> Outcome:
    try:
        result = await stage.process(record)
        if not isinstance(result, StageResult):
            raise TypeError(f"{type(stage).__name__}.process returned {type(result).__name__}, "
                            "expected StageResult")
        outputs, out_keys = [], []
        for o in result.outputs:
            if not isinstance(o, stage.output_model):
                raise TypeError(f"{type(stage).__name__} produced a {type(o).__name__}, "
                                f"expected {stage.output_model.__name__}")
            outputs.append(o.model_dump(mode="json"))
            out_keys.append(_out_key(o))
        rejections = [
            (r if isinstance(r, Rejection) else Rejection.model_validate(r)).model_dump(mode="json")
            for r in result.rejections
        ]
    except Exception as e:  # noqa: BLE001 - recorded in the ledger, the run goes on
        log.warning("%s: input %r failed: %s: %s", stage.name, key, type(e).__name__, e)
        log.debug("traceback", exc_info=True)
        return failure(key, e, time.perf_counter() - t0)
    return Outcome(key=key, outputs=outputs, out_keys=out_keys, rejections=rejections,
                   seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------
# Ledger state
# ---------------------------------------------------------------------------------


class _Entry(NamedTuple):
    n_outputs: int
    reasons: tuple[str, ...]
    error_type: str | None
    failure: str | None = None  # "endpoint" / "error" for a failed input

    @property
    def status(self) -> str:
        if self.error_type:
            return "failed"
        if self.n_outputs:
            return "accepted"
        return "rejected" if self.reasons else "empty"


def _entry(obj: dict[str, Any]) -> _Entry:
    err = obj.get("error")
    etype = obj.get("error_type") or (str(err).split(":", 1)[0] if err else None)
    reasons = tuple(str(r.get("reason", "?")) for r in obj.get("rejections") or ())
    kind = None
    if etype:  # ledgers written before the kind was recorded: judge by the exception name
        kind = obj.get("failure") or (ENDPOINT if etype in ENDPOINT_ERROR_NAMES else ERROR)
    return _Entry(int(obj.get("n_outputs", 0)), reasons, etype, kind)


class Ledger:
    """The latest ledger entry per input key, with running totals."""

    def __init__(self) -> None:
        self.latest: dict[str, _Entry] = {}
        self.output_lines = 0  # sum of n_outputs over every line = records in the output
        self.usage = Usage()  # LLM usage over every line
        self.status: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    @classmethod
    def load(cls, path: Path, *, tolerant: bool = False) -> Ledger:
        """Read a ledger. ``tolerant`` ignores an unparsable final line (a torn write)."""
        led = cls()
        if not path.exists():
            return led
        with path.open("rb") as f:
            lines = f.readlines()
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
                if not isinstance(obj, dict) or "key" not in obj:
                    raise ValueError("a ledger line needs a 'key'")
            except (ValueError, RecursionError) as e:
                if tolerant and i == len(lines):
                    break
                raise InputError(f"bad ledger line ({e})", path=str(path), line=i) from None
            led.apply(obj)
        return led

    def apply(self, obj: dict[str, Any]) -> None:
        if obj.get("usage"):
            self.usage.add(Usage.from_dict(obj["usage"]))
        if obj["key"] is None:  # a usage-only line
            return
        key = str(obj["key"])
        new = _entry(obj)
        old = self.latest.get(key)
        if old is not None:
            self._count(old, -1)
        self.latest[key] = new
        self._count(new, 1)
        self.output_lines += new.n_outputs

    def _count(self, e: _Entry, sign: int) -> None:
        self.status[e.status] += sign
        for r in e.reasons:
            self.reasons[r] += sign
        if e.error_type:
            self.errors[e.error_type] += sign
            self.failures[e.failure or ERROR] += sign

    def is_done(self, key: str, skip_failed: bool = False) -> bool:
        """Decided (accepted / rejected / empty), or failed and ``skip_failed``."""
        e = self.latest.get(key)
        return e is not None and (not e.error_type or skip_failed)

    def totals(self) -> dict[str, Any]:
        return {
            "done": len(self.latest),
            "accepted": self.status["accepted"],
            "rejected": self.status["rejected"],
            "empty": self.status["empty"],
            "failed": self.status["failed"],
            "outputs": self.output_lines,
            "rejections": sum(self.reasons.values()),
            "rejections_by_reason": {k: v for k, v in sorted(self.reasons.items()) if v > 0},
            "errors_by_type": {k: v for k, v in sorted(self.errors.items()) if v > 0},
            "failures_by_kind": {k: v for k, v in sorted(self.failures.items()) if v > 0},
        }


def _truncate_outputs(paths: StagePaths, expected: int) -> int:
    """Cut the output file to its first ``expected`` lines; returns the lines dropped."""
    if not paths.output.exists():
        if expected:
            raise InputError(f"output file is missing but its ledger accounts for {expected} records; "
                             f"restore it or delete {paths.ledger.name} to start over",
                             path=str(paths.output))
        return 0
    kept = offset = dropped = 0
    with paths.output.open("rb") as f:
        for line in f:
            if kept < expected:
                kept += 1
                offset += len(line)
            else:
                dropped += 1
    if kept < expected:
        raise InputError(f"output has {kept} records but its ledger accounts for {expected}; it was "
                         f"edited or truncated: restore it or delete {paths.ledger.name} to start over",
                         path=str(paths.output))
    if dropped:
        os.truncate(paths.output, offset)  # one syscall: atomic against a kill
    return dropped


def read_outputs(path: str | os.PathLike[str], model: type[M]) -> Iterator[M]:
    """Read a stage's output records, validated as ``model``. With a ledger next to it,
    only the records the ledger accounts for are read (never orphans of a killed run)."""
    paths = StagePaths.of(path)
    if not paths.ledger.exists():
        yield from read_records(paths.output, model)
        return
    expected = Ledger.load(paths.ledger, tolerant=True).output_lines
    if not expected:
        return
    yield from itertools.islice(read_records(paths.output, model), expected)


# ---------------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------------


class _LocalExecutor:
    def __init__(self, stage: Stage, concurrency: int) -> None:
        self.stage = stage

    async def start(self) -> None:
        with stage_scope(self.stage.name):
            self.stage.setup()

    async def run(self, slot: int, key: str, record: Record) -> Outcome:
        return await process_one(self.stage, key, record)

    async def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------


class _Progress:
    def __init__(self, enabled: bool, name: str, total: int | None) -> None:
        self._p = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]} rej {task.fields[rej]} fail {task.fields[fail]}"
                       " skip {task.fields[skip]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._p.add_task(name, total=total, ok=0, rej=0, fail=0, skip=0)

    def __enter__(self) -> _Progress:
        if self._p is not None:
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()

    def advance(self, **fields: int) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1, **fields)


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


# ---------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _class_path(obj: object) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _iter_inputs(stage: Stage, inputs: Any) -> tuple[Iterable[Any], str | None, int | None]:
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs)
        if not path.exists():
            raise InputError("input file not found", path=str(path))
        return read_records(path, stage.input_model), str(path), _count_lines(path)
    total = len(inputs) if hasattr(inputs, "__len__") else None
    return inputs, None, total


def run_stage(
    stage: Stage,
    inputs: Iterable[Any] | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    concurrency: int = 4,
    limit: int | None = None,
    executor: Executor = "local",
    progress: bool = True,
    ray_address: str | None = None,
    skip_failed: bool = False,
    max_endpoint_failures: int | None = DEFAULT_MAX_ENDPOINT_FAILURES,
    manifest_interval: float = 5.0,
    fsync: bool = False,
    ray_workers: int | None = None,
    ray_actor_options: dict[str, Any] | None = None,
) -> Manifest:
    """Run ``stage`` over ``inputs`` (records, dicts, or a JSONL path) into ``output``.

    Resumes from the ledger next to ``output``: decided inputs are skipped, failed ones
    processed again (unless ``skip_failed``). Stops with :class:`~astra.errors.EndpointDown`
    after ``max_endpoint_failures`` endpoint failures in a row (``None`` or 0: never).
    Returns the final :class:`Manifest`. From inside a running event loop use
    :func:`arun_stage`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigError("run_stage() was called inside a running event loop; await arun_stage() instead")
    return asyncio.run(arun_stage(
        stage, inputs, output, concurrency=concurrency, limit=limit, executor=executor,
        progress=progress, ray_address=ray_address, skip_failed=skip_failed,
        max_endpoint_failures=max_endpoint_failures, manifest_interval=manifest_interval, fsync=fsync,
        ray_workers=ray_workers, ray_actor_options=ray_actor_options,
    ))


async def arun_stage(
    stage: Stage,
    inputs: Iterable[Any] | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    concurrency: int = 4,
    limit: int | None = None,
    executor: Executor = "local",
    progress: bool = True,
    ray_address: str | None = None,
    skip_failed: bool = False,
    max_endpoint_failures: int | None = DEFAULT_MAX_ENDPOINT_FAILURES,
    manifest_interval: float = 5.0,
    fsync: bool = False,
    ray_workers: int | None = None,
    ray_actor_options: dict[str, Any] | None = None,
) -> Manifest:
    """The async form of :func:`run_stage`."""
    if not getattr(stage, "name", ""):
        raise ConfigError(f"{type(stage).__name__} has no stage name")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r} (use 'local' or 'ray')")
    if max_endpoint_failures is not None and max_endpoint_failures < 0:
        raise ConfigError(f"max_endpoint_failures must be >= 0, got {max_endpoint_failures}")

    paths = StagePaths.of(output)
    for p in (paths.output, paths.ledger):
        if p.exists() and not p.is_file():
            raise OutputError(f"{p}: is {'a directory' if p.is_dir() else 'not a regular file'} — choose an "
                              "output file path (-o)")
    with wrap_os_errors(paths.output), _exclusive(paths):
        return await _run(stage, inputs, paths, concurrency=concurrency, limit=limit, executor=executor,
                          progress=progress, ray_address=ray_address, skip_failed=skip_failed,
                          max_endpoint_failures=max_endpoint_failures or 0,
                          manifest_interval=manifest_interval, fsync=fsync, ray_workers=ray_workers,
                          ray_actor_options=ray_actor_options)


@contextlib.contextmanager
def _exclusive(paths: StagePaths) -> Iterator[None]:
    """Hold ``X.lock`` (an advisory flock, released by the OS even on SIGKILL) so that two
    runs never write the same output at once."""
    if fcntl is None:  # pragma: no cover - not POSIX
        yield
        return
    ensure_parent(paths.lock)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another run is writing {paths.output} (lock {paths.lock} is held)") from None
        yield
    finally:
        os.close(fd)


class _Stop(Exception):
    """Raised inside the run's task group when the endpoint breaker trips."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _stop_message(stage: Stage, n: int, last: str | None) -> str:
    where = ""
    cfg = stage.config()
    for k in ("llm", "agent_llm"):
        v = cfg.get(k)
        if isinstance(v, dict) and (v.get("base_url") or v.get("spec")):
            where = f" ({v.get('spec') or ''}{' at ' + v['base_url'] if v.get('base_url') else ''})"
            break
    return (f"{stage.name}: stopped after {n} records in a row failed to reach the endpoint{where}; "
            f"last error: {last}. Check that the server is up and reachable (--base-url / "
            "ASTRA_BASE_URL), the model name (--llm) and the API key, then rerun the same command: "
            "failed and unprocessed records are retried")


async def _run(stage: Stage, inputs: Any, paths: StagePaths, *, concurrency: int, limit: int | None,
               executor: str, progress: bool, ray_address: str | None, skip_failed: bool,
               max_endpoint_failures: int, manifest_interval: float, fsync: bool, ray_workers: int | None,
               ray_actor_options: dict[str, Any] | None) -> Manifest:
    source, input_path, total = _iter_inputs(stage, inputs)
    if limit is not None:
        source = itertools.islice(source, limit)
        total = limit if total is None else min(total, limit)

    # -- recover the state left by earlier runs
    resumed = paths.ledger.exists()
    if not resumed and paths.output.exists() and paths.output.stat().st_size > 0:
        raise InputError(f"output exists without its ledger {paths.ledger.name}; it was not written by "
                         "this stage runner: delete it or choose another output", path=str(paths.output))
    repair_jsonl(paths.ledger)
    repair_jsonl(paths.output)
    ledger = Ledger.load(paths.ledger)
    dropped = _truncate_outputs(paths, ledger.output_lines)
    ensure_parent(paths.ledger)
    paths.ledger.touch()  # exists before any output line, so orphans are always detectable
    paths.output.touch()  # the output always exists, empty when nothing is accepted

    prev: Manifest | None = None
    if resumed and paths.manifest.exists():
        try:
            prev = load_manifest(paths.manifest)
        except InputError as e:
            log.warning("ignoring previous manifest: %s", e)
    warnings: list[str] = []
    config = stage.config()
    if prev is not None and prev.config != json.loads(json.dumps(config, default=str)):
        warnings.append("stage config differs from the previous run's; this output mixes both")
        log.warning("%s: %s", stage.name, warnings[-1])
    if dropped:
        log.warning("%s: dropped %d output lines of inputs whose ledger line never landed",
                    stage.name, dropped)

    started, t0 = _now(), time.monotonic()
    run = Counter[str]()
    prior_usage = Usage()
    prior_usage.add(ledger.usage)  # the usage earlier runs left in the ledger
    usage_start = USAGE.get(stage.name)  # this run's usage = the book's growth from here
    committed = Usage()  # per-record usage written to ledger lines by this run
    streak: list[str | None] = []  # the current run of endpoint failures (their errors)

    def run_usage() -> Usage:
        return _minus(USAGE.get(stage.name), usage_start)

    def manifest(status: str, error: str | None = None) -> Manifest:
        use = Usage()
        use.add(prior_usage)
        use.add(run_usage())
        warns = list(warnings)
        if run["duplicate_inputs"]:
            warns.append(f"{run['duplicate_inputs']} inputs repeated a key already seen; processed once")
        return Manifest(
            stage=stage.name, stage_class=_class_path(stage), config=config, input=input_path,
            output=str(paths.output), ledger=str(paths.ledger), executor=executor,
            concurrency=concurrency, limit=limit, skip_failed=skip_failed, status=status,
            error=error, started_at=started, updated_at=_now(),
            finished_at=_now() if status != "running" else None,
            seconds=round(time.monotonic() - t0, 3), runs=(prev.runs + 1) if prev else 1,
            inputs_seen=run["inputs_seen"], duplicate_inputs=run["duplicate_inputs"],
            skipped_done=run["skipped_done"], processed=run["processed"],
            processed_failed=run["processed_failed"], dropped_orphans=dropped,
            llm_usage=use.to_dict(), warnings=warns, **ledger.totals(),
        )

    last_write = time.monotonic()
    write_json(paths.manifest, manifest("running"))

    if executor == "ray":
        from astra.pipeline.ray_executor import RayExecutor

        ex: Any = RayExecutor(stage, concurrency, address=ray_address, workers=ray_workers,
                              actor_options=ray_actor_options)
    else:
        ex = _LocalExecutor(stage, concurrency)

    bar = _Progress(progress and sys.stderr.isatty(), stage.name, total)

    def advance() -> None:
        s = ledger.status
        bar.advance(ok=s["accepted"], rej=s["rejected"] + s["empty"], fail=s["failed"],
                    skip=run["skipped_done"] + run["duplicate_inputs"])

    def commit(out: Outcome) -> None:
        nonlocal last_write
        # outputs first (one write), then the ledger line: nothing may come in between
        if out.outputs:
            append_lines(paths.output, out.outputs, fsync=fsync)
        entry = out.ledger_entry()
        append_lines(paths.ledger, [entry], fsync=fsync)
        ledger.apply(entry)
        if out.record_usage:
            committed.add(Usage.from_dict(out.record_usage))
        run["processed"] += 1
        if out.error:
            run["processed_failed"] += 1
        advance()
        if out.failure == ENDPOINT:
            streak.append(out.error)
            if max_endpoint_failures and len(streak) >= max_endpoint_failures:
                raise _Stop(_stop_message(stage, len(streak), streak[-1]))
        else:
            streak.clear()
        if time.monotonic() - last_write >= manifest_interval:
            write_json(paths.manifest, manifest("running"))
            last_write = time.monotonic()

    queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(maxsize=2 * concurrency)

    async def produce() -> None:
        seen: set[str] = set()
        for item in source:
            run["inputs_seen"] += 1
            rec = item
            if not isinstance(item, stage.input_model):
                try:
                    rec = stage.input_model.model_validate(item)
                except ValidationError as e:
                    raise InputError(f"input #{run['inputs_seen']} is not a {stage.input_model.__name__}: "
                                     f"{e.errors()[0].get('msg')}") from None
            key = stage.key(rec)
            if key in seen:
                run["duplicate_inputs"] += 1
                advance()
                continue
            seen.add(key)
            if ledger.is_done(key, skip_failed):
                run["skipped_done"] += 1
                advance()
                continue
            await queue.put((key, rec))
        for _ in range(concurrency):
            await queue.put(None)

    async def work(slot: int) -> None:
        while (item := await queue.get()) is not None:
            key, rec = item
            commit(await ex.run(slot, key, rec))

    status, error = "complete", None
    try:
        with bar:
            await ex.start()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(produce())
                    for i in range(concurrency):
                        tg.create_task(work(i))
            finally:
                await ex.close()
                # usage outside any committed record (setup, records cancelled by a stop)
                rest = _usage_dict(_minus(run_usage(), committed))
                if rest is not None:
                    entry = {"key": None, "usage": rest}
                    append_lines(paths.ledger, [entry], fsync=fsync)
                    ledger.apply(entry)
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise
    except BaseException as e:
        inner = e.exceptions[0] if isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1 else e
        if isinstance(inner, _Stop):
            status, error = "stopped", inner.message
            raise EndpointDown(inner.message) from None
        status, error = "error", f"{type(inner).__name__}: {inner}"
        if inner is not e:
            raise inner from None
        raise
    finally:
        final = manifest(status, error)
        write_json(paths.manifest, final)
        log.info("%s: %s (%d processed, %d skipped, %d outputs total)", stage.name, status,
                 final.processed, final.skipped_done, final.outputs)
    return final


__all__ = [
    "DEFAULT_MAX_ENDPOINT_FAILURES", "Executor", "Ledger", "Manifest", "Outcome", "StagePaths", "arun_stage",
    "collect_manifests", "load_manifest", "process_one", "read_outputs", "run_stage",
]
