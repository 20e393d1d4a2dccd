"""The warm worker pool and the calls that run code in the sandbox."""

from __future__ import annotations

import ast
import asyncio
import atexit
import errno
import json
import logging
import math
import os
import signal as _signal
import threading
import time
from collections import deque
from typing import Any

from astra import pyast
from astra.sandbox.models import (
    CallResult,
    CallStatementError,
    Isolation,
    ParsedCall,
    SandboxConfig,
    SandboxError,
    SandboxResult,
)
from astra.sandbox.process import RawRun, WorkerProcess, Zygote, execute, spawn_fresh

log = logging.getLogger("astra.sandbox")

_warned: set[tuple[str, ...]] = set()
_warned_lock = threading.Lock()


def _check_isolation(cfg: SandboxConfig, iso: dict) -> None:
    degraded = tuple(iso.get("degraded") or ())
    if degraded and cfg.strict:
        raise SandboxError("sandbox isolation is degraded and strict mode is on: " + "; ".join(degraded))
    if degraded:
        with _warned_lock:
            if degraded not in _warned:
                _warned.add(degraded)
                log.warning("sandbox isolation degraded: %s", "; ".join(degraded))


class SandboxPool:
    """Pre-started, already-isolated worker processes.

    Each worker runs ONE execution unit and is then discarded (never reused: the code may
    have tampered with it). A background thread keeps ``size`` workers ready. Workers are
    forked from a warm fork server (stdlib imported once) when possible, else started as
    fresh interpreters. Thread-safe; the ``a*`` methods are asyncio-friendly.
    """

    def __init__(self, size: int = 2, config: SandboxConfig | None = None, **overrides: Any) -> None:
        cfg = config or SandboxConfig()
        if overrides:
            cfg = cfg.model_copy(update=overrides)
        self.config = cfg
        self.size = max(0, int(size))
        self._ready: deque[WorkerProcess] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._zygote: Zygote | None = None
        self._zygote_lock = threading.Lock()
        self._zygote_retry_at = 0.0
        self._failures = 0
        self._thread: threading.Thread | None = None
        if self.size:
            self._thread = threading.Thread(target=self._replenish, daemon=True,
                                            name="astra-sandbox-pool")
            self._thread.start()

    # ---- workers -------------------------------------------------------------------------
    def _get_zygote(self) -> Zygote | None:
        if not self.config.use_zygote:
            return None
        with self._zygote_lock:
            z = self._zygote
            if z is not None and not z.dead:
                return z
            if z is not None:
                self._zygote = None
                try:
                    z.close()
                except Exception:
                    pass
            if time.monotonic() < self._zygote_retry_at or self._closed:
                return None
            try:
                self._zygote = Zygote(self.config)
                _check_isolation(self.config, self._zygote.isolation)
            except SandboxError as e:
                if self._zygote is not None and self.config.strict:
                    self._zygote.close()
                    self._zygote = None
                    raise
                log.warning("sandbox fork server unavailable, starting fresh interpreters: %s", e)
                self._zygote = None
                self._zygote_retry_at = time.monotonic() + 30.0
            return self._zygote

    def _new_worker(self) -> WorkerProcess:
        z = self._get_zygote()
        w = None
        if z is not None:
            try:
                w = z.spawn()
            except SandboxError as e:
                log.warning("sandbox fork server failed to start a unit (%s); using a fresh interpreter", e)
        if w is None:
            w = spawn_fresh(self.config)
        try:
            _check_isolation(self.config, w.isolation)
        except SandboxError:
            w.close()
            raise
        return w

    def _replenish(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._ready) >= self.size:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                w = self._new_worker()
                self._failures = 0
            except Exception as e:  # keep the thread alive; callers fall back to spawning
                self._failures += 1
                log.warning("sandbox pool could not start a worker: %s", e)
                time.sleep(min(5.0, 0.1 * 2 ** self._failures))
                continue
            with self._cond:
                if self._closed:
                    w.close()
                    return
                self._ready.append(w)
                self._cond.notify_all()

    def acquire(self) -> WorkerProcess:
        """A ready worker (from the pool, or started now if none is ready)."""
        if self._closed:
            raise SandboxError("the sandbox pool is closed")
        while True:
            with self._cond:
                w = self._ready.popleft() if self._ready else None
                self._cond.notify_all()
            if w is None:
                return self._new_worker()
            if w.alive():
                return w
            w.close()

    def warm(self, timeout: float = 30.0) -> bool:
        """Block until the pool holds ``size`` ready workers (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._ready) < self.size and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            ready, self._ready = list(self._ready), deque()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        for w in ready:
            w.close()
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> SandboxPool:
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- calls ---------------------------------------------------------------------------
    def run_code(self, code: str, *, fresh: bool = False, **limits: Any) -> SandboxResult:
        return _run(self, code, mode="exec", fresh=fresh, **limits)[0]

    def call_function(self, code: str, name: str, kwargs: dict[str, Any] | None = None, *,
                      fresh: bool = False, **limits: Any) -> CallResult:
        return _call(self, code, name, [], kwargs or {}, fresh=fresh, **limits)

    def run_call_statement(self, code: str, statement: str, *, fresh: bool = False,
                           **limits: Any) -> CallResult:
        call = parse_call_statement(statement)
        return _call(self, code, call.name, call.args, call.kwargs, fresh=fresh, **limits)

    async def arun_code(self, code: str, **kw: Any) -> SandboxResult:
        return await asyncio.to_thread(self.run_code, code, **kw)

    async def acall_function(self, code: str, name: str, kwargs: dict[str, Any] | None = None,
                             **kw: Any) -> CallResult:
        return await asyncio.to_thread(self.call_function, code, name, kwargs, **kw)

    async def arun_call_statement(self, code: str, statement: str, **kw: Any) -> CallResult:
        return await asyncio.to_thread(self.run_call_statement, code, statement, **kw)


# ---- the default pool ------------------------------------------------------------------------

_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool (2 workers), created on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            size = int(os.environ.get("ASTRA_SANDBOX_POOL_SIZE", "2"))
            _default = SandboxPool(size=size)
        return _default


def _close_default() -> None:
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.close()


def _forget_default_after_fork() -> None:
    # threads and the fork server belong to the parent process: start over in a child
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


atexit.register(_close_default)
os.register_at_fork(after_in_child=_forget_default_after_fork)


# ---- call statements ---------------------------------------------------------------------------


def parse_call_statement(statement: str) -> ParsedCall:
    """Parse ``name(arg, key=value, ...)`` where every argument is a Python literal.

    Only a single call of a plain function name is accepted: no attribute calls, no
    ``*args``/``**kwargs``, no expressions (``1 + 1``, ``f(g())``, names) as arguments."""
    if not isinstance(statement, str):
        raise CallStatementError(f"call statement must be a string, not {type(statement).__name__}")
    text = statement.strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise CallStatementError("empty call statement")
    if len(text) > 200_000:
        raise CallStatementError("call statement too long")
    try:
        tree = pyast.parse(text, mode="eval")
    except SyntaxError as e:
        raise CallStatementError(f"call statement is not a single Python call expression: {e.msg} "
                                 f"(in {text[:200]!r})") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise CallStatementError(f"call statement could not be parsed: {type(e).__name__}") from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise CallStatementError(f"call statement must be one function call like f(x=1), got "
                                 f"{type(node).__name__}: {text[:200]!r}")
    if not isinstance(node.func, ast.Name):
        raise CallStatementError(f"call statement must call a plain function name, got "
                                 f"{ast.unparse(node.func)[:100]!r}")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for i, a in enumerate(node.args):
        if isinstance(a, ast.Starred):
            raise CallStatementError("*args are not allowed in a call statement")
        args.append(_literal(a, f"positional argument {i + 1}"))
    for kw in node.keywords:
        if kw.arg is None:
            raise CallStatementError("**kwargs are not allowed in a call statement")
        kwargs[kw.arg] = _literal(kw.value, f"argument {kw.arg!r}")
    return ParsedCall(name=node.func.id, args=args, kwargs=kwargs)


def _literal(node: ast.AST, what: str) -> Any:
    try:
        value = pyast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        src = ast.unparse(node)
        raise CallStatementError(f"{what} must be a literal (string, number, bool, None, list, "
                                 f"dict, tuple, set), got {src[:100]!r}") from None
    return value


def _literal_src(value: Any, what: str) -> str:
    src = repr(value)
    try:
        ok = pyast.literal_eval(src) == value
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        ok = False
    if not ok:
        raise TypeError(f"{what} must be plain literal data (JSON-like values); got {src[:100]}")
    return src


# ---- running ---------------------------------------------------------------------------------


def _limits(cfg: SandboxConfig, timeout: float | None, memory_mb: int | None,
            cpu_seconds: float | None, max_output: int | None) -> tuple[float, int, dict]:
    timeout = float(cfg.timeout if timeout is None else timeout)
    max_output = int(cfg.max_output if max_output is None else max_output)
    memory_mb = int(cfg.memory_mb if memory_mb is None else memory_mb)
    cpu = cpu_seconds if cpu_seconds is not None else cfg.cpu_seconds
    limits = {
        "memory_mb": memory_mb,
        # without an explicit CPU limit, RLIMIT_CPU backs up the wall clock
        "cpu_seconds": float(cpu) if cpu is not None else math.ceil(timeout) + 1,
        "fsize_mb": cfg.max_file_size_mb, "nproc": cfg.max_processes,
        "nofile": cfg.max_open_files,
    }
    return timeout, max_output, limits


def _signame(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


def _run(pool: SandboxPool | None, code: str, *, mode: str, fresh: bool = False,
         timeout: float | None = None, memory_mb: int | None = None,
         cpu_seconds: float | None = None, max_output: int | None = None,
         files: dict[str, str] | None = None, name: str | None = None,
         args_src: str | None = None, kwargs_src: str | None = None,
         config: SandboxConfig | None = None) -> tuple[SandboxResult, dict | None]:
    if not isinstance(code, str):
        raise TypeError("code must be a string")
    cfg = config or (pool.config if pool is not None else SandboxConfig())
    timeout, max_output, limits = _limits(cfg, timeout, memory_mb, cpu_seconds, max_output)
    for k, v in (files or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("files must map relative path strings to text")
    job = {"mode": mode, "code": code, "name": name, "args_src": args_src,
           "kwargs_src": kwargs_src, "files": files or {}, "limits": limits,
           "max_result": cfg.max_result_bytes}
    if fresh or pool is None:
        w = spawn_fresh(cfg)
        try:
            _check_isolation(cfg, w.isolation)
        except SandboxError:
            w.close()
            raise
    else:
        w = pool.acquire()
    try:
        raw = execute(w, job, timeout=timeout, max_output=max_output, max_result=cfg.max_result_bytes)
    finally:
        w.close()
    return _sandbox_result(raw, w, limits), raw.result


def _sandbox_result(raw: RawRun, w: WorkerProcess, limits: dict) -> SandboxResult:
    res = raw.result or {}
    exit_code = sig = None
    if raw.status is not None:
        if os.WIFSIGNALED(raw.status):
            sig = os.WTERMSIG(raw.status)
        elif os.WIFEXITED(raw.status):
            exit_code = os.WEXITSTATUS(raw.status)
    err = res.get("error") if isinstance(res.get("error"), dict) else None
    error = f"{err.get('type')}: {err.get('message')}" if err else None
    if "fatal" in res:
        error = f"SandboxError: worker setup failed: {res['fatal']}"
    killed = raw.killed_reason
    stderr = raw.stderr.decode("utf-8", "replace")
    if killed is None:
        if err and (err.get("type") == "MemoryError" or err.get("errno") == errno.ENOMEM):
            killed = "memory"
        elif sig == _signal.SIGXCPU or (
                sig == _signal.SIGKILL and raw.cpu is not None
                and raw.cpu >= float(limits.get("cpu_seconds") or math.inf) - 0.05):
            killed = "cpu"
        elif sig is not None:
            killed = "memory" if "MemoryError" in stderr[-2000:] else "signal"
    if raw.result_too_large and error is None:
        error = "SandboxError: result larger than the limit"
    if raw.result is None and error is None and killed is None and exit_code not in (0, None):
        error = f"SandboxError: the process exited with status {exit_code} without a result"
    iso = dict(w.isolation)
    iso["rlimits"] = res.get("rlimits") or {}
    return SandboxResult(
        ok=killed is None and error is None and exit_code == 0,
        exit_code=exit_code, signal=_signame(sig) if sig is not None else None,
        stdout=raw.stdout.decode("utf-8", "replace"), stderr=stderr,
        stdout_truncated=raw.stdout_truncated, stderr_truncated=raw.stderr_truncated,
        duration=round(raw.duration, 6), cpu_time=raw.cpu, max_rss_kb=raw.maxrss_kb,
        timed_out=raw.timed_out, killed_reason=killed, error=error,
        violations=list(res.get("violations") or []), isolation=Isolation(**iso),
    )


_LIMIT_ERRORS = {"timeout": "Timeout", "memory": "MemoryError", "cpu": "CPULimitExceeded",
                 "output": "OutputLimitExceeded", "signal": "Crashed"}


def _call(pool: SandboxPool | None, code: str, name: str, args: list, kwargs: dict, *,
          fresh: bool = False, **limits: Any) -> CallResult:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"function name must be an identifier, got {name!r}")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError("kwargs must be a dict with string keys")
    args_src = _literal_src(list(args), "args")
    kwargs_src = _literal_src(dict(kwargs), "kwargs")
    sb, res = _run(pool, code, mode="call", fresh=fresh, name=name, args_src=args_src,
                   kwargs_src=kwargs_src, **limits)
    res = res or {}
    err = res.get("error") if isinstance(res.get("error"), dict) else None
    common = {"name": name, "sandbox": sb}
    if sb.killed_reason is not None:
        timeout = limits.get("timeout")
        msg = {"timeout": f"the call did not finish within {timeout if timeout is not None else 'the'}s limit",
               "output": "the call printed or returned more than the output limit",
               "cpu": "the call used more CPU time than allowed",
               "memory": "the call ran out of memory (memory limit)",
               "signal": f"the process was killed by {sb.signal}"}[sb.killed_reason]
        if err and sb.killed_reason == "memory":
            msg = err.get("message") or msg
        outcome = "crashed" if sb.killed_reason == "signal" else "limit"
        return CallResult(ok=False, outcome=outcome, error_type=_LIMIT_ERRORS[sb.killed_reason],
                          error_message=msg, error_phase=(err or {}).get("phase", "sandbox"),
                          traceback=(err or {}).get("traceback"), **common)
    if res.get("status") == "ok" and res.get("value_json") is not None:
        text = res["value_json"]
        try:
            value = json.loads(text)
        except ValueError:
            return CallResult(ok=False, outcome="crashed", error_type="SandboxError",
                              error_message="unreadable return value", error_phase="sandbox", **common)
        return CallResult(ok=True, outcome="returned", value=value, value_json=text,
                          value_coerced=bool(res.get("coerced")), **common)
    if err:
        outcome = "violation" if (sb.violations or err.get("type") == "SandboxViolation") else "raised"
        return CallResult(ok=False, outcome=outcome, error_type=err.get("type"),
                          error_message=err.get("message"), error_phase=err.get("phase"),
                          traceback=err.get("traceback"), **common)
    why = sb.error or (f"the process was killed by {sb.signal}" if sb.signal else
                       f"the process exited with status {sb.exit_code} without a result")
    return CallResult(ok=False, outcome="crashed", error_type="SandboxError", error_message=why,
                      error_phase="sandbox", **common)


# ---- module-level API ------------------------------------------------------------------------


def _pool_for(fresh: bool, pool: SandboxPool | None) -> SandboxPool | None:
    if pool is not None:
        return pool
    return None if fresh else default_pool()


def run_code(code: str, *, timeout: float = 10, memory_mb: int = 512,
             cpu_seconds: float | None = None, max_output: int = 1_000_000,
             files: dict[str, str] | None = None, fresh: bool = False,
             pool: SandboxPool | None = None) -> SandboxResult:
    """Run ``code`` as a script in the sandbox (one isolated process, then discarded)."""
    return _run(_pool_for(fresh, pool), code, mode="exec", fresh=fresh, timeout=timeout,
                memory_mb=memory_mb, cpu_seconds=cpu_seconds, max_output=max_output, files=files)[0]


def call_function(code: str, name: str, kwargs: dict[str, Any] | None = None, *,
                  timeout: float = 10, memory_mb: int = 512, cpu_seconds: float | None = None,
                  max_output: int = 1_000_000, files: dict[str, str] | None = None,
                  fresh: bool = False, pool: SandboxPool | None = None) -> CallResult:
    """Execute ``code`` (a module defining ``name``), call ``name(**kwargs)`` and return its
    JSON-serialized value, or the exception it raised, in a :class:`CallResult`."""
    return _call(_pool_for(fresh, pool), code, name, [], kwargs or {}, fresh=fresh,
                 timeout=timeout, memory_mb=memory_mb, cpu_seconds=cpu_seconds,
                 max_output=max_output, files=files)


def run_call_statement(code: str, statement: str, *, timeout: float = 10, memory_mb: int = 512,
                       cpu_seconds: float | None = None, max_output: int = 1_000_000,
                       files: dict[str, str] | None = None, fresh: bool = False,
                       pool: SandboxPool | None = None) -> CallResult:
    """Run a call written as text, e.g. ``get_weather(city="Oslo", date="2025-03-02")``,
    against ``code``. Raises :class:`CallStatementError` unless the statement is a single
    call of a plain name with literal arguments."""
    call = parse_call_statement(statement)
    return _call(_pool_for(fresh, pool), code, call.name, call.args, call.kwargs, fresh=fresh,
                 timeout=timeout, memory_mb=memory_mb, cpu_seconds=cpu_seconds,
                 max_output=max_output, files=files)


async def arun_code(code: str, **kw: Any) -> SandboxResult:
    return await asyncio.to_thread(run_code, code, **kw)


async def acall_function(code: str, name: str, kwargs: dict[str, Any] | None = None,
                         **kw: Any) -> CallResult:
    return await asyncio.to_thread(call_function, code, name, kwargs, **kw)


async def arun_call_statement(code: str, statement: str, **kw: Any) -> CallResult:
    return await asyncio.to_thread(run_call_statement, code, statement, **kw)


def isolation_report(fresh: bool = False) -> Isolation:
    """Run a no-op unit and return the isolation it got on this machine."""
    return run_code("pass", fresh=fresh).isolation
