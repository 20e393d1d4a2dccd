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
import functools
import itertools
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from pydantic import ValidationError

from astra.errors import ConfigError, EndpointDown, InputError, OutputError
from astra.io import append_lines, ensure_parent, read_records, repair_jsonl, wrap_os_errors, write_json
from astra.llm.usage import USAGE, Usage
from astra.pipeline.executors import Executor, make_executor
from astra.pipeline.failures import ENDPOINT
from astra.pipeline.ledger import Ledger, truncate_outputs
from astra.pipeline.manifest import Manifest, RunStatus, StagePaths, load_manifest
from astra.pipeline.outcome import Outcome, usage_dict, usage_minus
from astra.pipeline.progress import Progress
from astra.pipeline.stage import Stage

log = logging.getLogger("astra.pipeline")

P = ParamSpec("P")
R = TypeVar("R")

#: Endpoint failures in a row after which a run stops (``ASTRA_MAX_ENDPOINT_FAILURES``
#: overrides it for the CLI; 0 turns the breaker off).
DEFAULT_MAX_ENDPOINT_FAILURES = 5


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


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
    """Run ``stage`` over ``inputs`` (records, dicts, or a JSONL path) into ``output``.

    Resumes from the ledger next to ``output``: decided inputs are skipped, failed ones
    processed again (unless ``skip_failed``). Stops with :class:`~astra.errors.EndpointDown`
    after ``max_endpoint_failures`` endpoint failures in a row (``None`` or 0: never).
    Returns the final :class:`Manifest`. :func:`run_stage` is the same from sync code.
    """
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
        run = _StageRun(stage, inputs, paths, concurrency=concurrency, limit=limit, executor=executor,
                        skip_failed=skip_failed, max_endpoint_failures=max_endpoint_failures or 0,
                        manifest_interval=manifest_interval, fsync=fsync, progress=progress)
        ex = make_executor(executor, stage, concurrency, ray_address=ray_address, ray_workers=ray_workers,
                           ray_actor_options=ray_actor_options)
        return await run.execute(ex)


def _blocking(afn: Callable[P, Coroutine[Any, Any, R]], name: str) -> Callable[P, R]:
    """``afn`` run to completion from sync code, as a function called ``name``; refused
    inside a running event loop (await ``afn`` there)."""

    @functools.wraps(afn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise ConfigError(f"{name}() was called inside a running event loop; await {afn.__name__}() instead")
        return asyncio.run(afn(*args, **kwargs))

    run.__name__ = run.__qualname__ = name
    run.__doc__ = (f"The sync form of :func:`{afn.__name__}` (same arguments); from inside a running "
                   f"event loop await :func:`{afn.__name__}`.")
    return run


run_stage = _blocking(arun_stage, "run_stage")


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


class _StageRun:
    """One run of a stage into ``paths``. Made, it has recovered what earlier runs left
    and written the manifest of a running stage; :meth:`execute` then feeds the inputs to
    an executor's workers and commits each outcome (outputs, then its ledger line),
    keeping the manifest current."""

    def __init__(self, stage: Stage, inputs: Any, paths: StagePaths, *, concurrency: int, limit: int | None,
                 executor: str, skip_failed: bool, max_endpoint_failures: int, manifest_interval: float,
                 fsync: bool, progress: bool) -> None:
        self.stage, self.paths = stage, paths
        self.concurrency, self.limit, self.executor = concurrency, limit, executor
        self.skip_failed, self.max_endpoint_failures = skip_failed, max_endpoint_failures
        self.manifest_interval, self.fsync = manifest_interval, fsync
        source, self.input_path, total = _iter_inputs(stage, inputs)
        if limit is not None:
            source = itertools.islice(source, limit)
            total = limit if total is None else min(total, limit)
        self.source: Iterable[Any] = source
        self.warnings: list[str] = []
        self.config = stage.config()
        self.ledger, self.dropped, self.prev = self._recover()
        self.started, self.t0 = _now(), time.monotonic()
        self.run = Counter[str]()
        self.prior_usage = Usage()
        self.prior_usage.add(self.ledger.usage)  # the usage earlier runs left in the ledger
        self.usage_start = USAGE.get(stage.name)  # this run's usage = the book's growth from here
        self.committed = Usage()  # per-record usage written to ledger lines by this run
        self.streak: list[str | None] = []  # the current run of endpoint failures (their errors)
        self.last_write = time.monotonic()
        write_json(paths.manifest, self.manifest("running"))
        self.bar = Progress(progress and sys.stderr.isatty(), stage.name, total)

    # -- before the run ---------------------------------------------------------------

    def _recover(self) -> tuple[Ledger, int, Manifest | None]:
        """Repair and read what earlier runs left: the ledger, the output lines dropped as
        orphans, the previous manifest."""
        paths, stage = self.paths, self.stage
        resumed = paths.ledger.exists()
        if not resumed and paths.output.exists() and paths.output.stat().st_size > 0:
            raise InputError(f"output exists without its ledger {paths.ledger.name}; it was not written by "
                             "this stage runner: delete it or choose another output", path=str(paths.output))
        repair_jsonl(paths.ledger)
        repair_jsonl(paths.output)
        ledger = Ledger.load(paths.ledger)
        dropped = truncate_outputs(paths, ledger.output_lines)
        ensure_parent(paths.ledger)
        paths.ledger.touch()  # exists before any output line, so orphans are always detectable
        paths.output.touch()  # the output always exists, empty when nothing is accepted

        prev: Manifest | None = None
        if resumed and paths.manifest.exists():
            try:
                prev = load_manifest(paths.manifest)
            except InputError as e:
                log.warning("ignoring previous manifest: %s", e)
        if prev is not None and prev.config != json.loads(json.dumps(self.config, default=str)):
            self.warnings.append("stage config differs from the previous run's; this output mixes both")
            log.warning("%s: %s", stage.name, self.warnings[-1])
        if dropped:
            log.warning("%s: dropped %d output lines of inputs whose ledger line never landed",
                        stage.name, dropped)
        return ledger, dropped, prev

    # -- the manifest -----------------------------------------------------------------

    def run_usage(self) -> Usage:
        return usage_minus(USAGE.get(self.stage.name), self.usage_start)

    def manifest(self, status: RunStatus, error: str | None = None) -> Manifest:
        run = self.run
        use = Usage()
        use.add(self.prior_usage)
        use.add(self.run_usage())
        warns = list(self.warnings)
        if run["duplicate_inputs"]:
            warns.append(f"{run['duplicate_inputs']} inputs repeated a key already seen; processed once")
        return Manifest(
            stage=self.stage.name, stage_class=_class_path(self.stage), config=self.config,
            input=self.input_path, output=str(self.paths.output), ledger=str(self.paths.ledger),
            executor=self.executor, concurrency=self.concurrency, limit=self.limit, skip_failed=self.skip_failed,
            status=status, error=error, started_at=self.started, updated_at=_now(),
            finished_at=_now() if status != "running" else None,
            seconds=round(time.monotonic() - self.t0, 3), runs=(self.prev.runs + 1) if self.prev else 1,
            inputs_seen=run["inputs_seen"], duplicate_inputs=run["duplicate_inputs"],
            skipped_done=run["skipped_done"], processed=run["processed"],
            processed_failed=run["processed_failed"], dropped_orphans=self.dropped,
            llm_usage=use.to_dict(), warnings=warns, **self.ledger.totals(),
        )

    # -- during the run ---------------------------------------------------------------

    def advance(self) -> None:
        s = self.ledger.status
        self.bar.advance(ok=s["accepted"], rej=s["rejected"] + s["empty"], fail=s["failed"],
                         skip=self.run["skipped_done"] + self.run["duplicate_inputs"])

    def commit(self, out: Outcome) -> None:
        """Write one outcome: its outputs first (one write), then its ledger line, with
        nothing in between; trip the endpoint breaker; refresh the manifest now and then."""
        if out.outputs:
            append_lines(self.paths.output, out.outputs, fsync=self.fsync)
        entry = out.ledger_entry()
        append_lines(self.paths.ledger, [entry], fsync=self.fsync)
        self.ledger.apply(entry)
        if out.record_usage:
            self.committed.add(Usage.from_dict(out.record_usage))
        self.run["processed"] += 1
        if out.error:
            self.run["processed_failed"] += 1
        self.advance()
        if out.failure == ENDPOINT:
            self.streak.append(out.error)
            if self.max_endpoint_failures and len(self.streak) >= self.max_endpoint_failures:
                raise _Stop(_stop_message(self.stage, len(self.streak), self.streak[-1]))
        else:
            self.streak.clear()
        if time.monotonic() - self.last_write >= self.manifest_interval:
            write_json(self.paths.manifest, self.manifest("running"))
            self.last_write = time.monotonic()

    async def produce(self, queue: asyncio.Queue[tuple[str, Any] | None]) -> None:
        """Validate and key the inputs; queue those not yet decided, then one stop per worker."""
        stage, run = self.stage, self.run
        seen: set[str] = set()
        for item in self.source:
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
                self.advance()
                continue
            seen.add(key)
            if self.ledger.is_done(key, self.skip_failed):
                run["skipped_done"] += 1
                self.advance()
                continue
            await queue.put((key, rec))
        for _ in range(self.concurrency):
            await queue.put(None)

    async def work(self, ex: Any, queue: asyncio.Queue[tuple[str, Any] | None], slot: int) -> None:
        while (item := await queue.get()) is not None:
            key, rec = item
            self.commit(await ex.run(slot, key, rec))

    def commit_rest_usage(self) -> None:
        """A ledger line for the usage outside any committed record (setup, records
        cancelled by a stop)."""
        rest = usage_dict(usage_minus(self.run_usage(), self.committed))
        if rest is not None:
            entry = {"key": None, "usage": rest}
            append_lines(self.paths.ledger, [entry], fsync=self.fsync)
            self.ledger.apply(entry)

    # -- the run ----------------------------------------------------------------------

    async def execute(self, ex: Any) -> Manifest:
        """Run every input through ``ex``; the final manifest (written whatever happens)."""
        queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue(maxsize=2 * self.concurrency)
        status: RunStatus = "complete"
        error: str | None = None
        try:
            with self.bar:
                await ex.start()
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self.produce(queue))
                        for i in range(self.concurrency):
                            tg.create_task(self.work(ex, queue, i))
                finally:
                    await ex.close()
                    self.commit_rest_usage()
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
            final = self.manifest(status, error)
            write_json(self.paths.manifest, final)
            log.info("%s: %s (%d processed, %d skipped, %d outputs total)", self.stage.name, status,
                     final.processed, final.skipped_done, final.outputs)
        return final


__all__ = ["DEFAULT_MAX_ENDPOINT_FAILURES", "arun_stage", "run_stage"]
