"""Data models of the sandbox: configuration, isolation report, results."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from astra.errors import AstraError

KilledReason = Literal["timeout", "memory", "cpu", "output", "signal"]
Outcome = Literal["returned", "raised", "violation", "limit", "crashed"]
ErrorPhase = Literal["load", "call", "serialize", "sandbox"]


class SandboxError(AstraError):
    """The sandbox itself could not run the code (a worker failed to start, or a required
    isolation layer is missing in strict mode). Never raised for what the code does."""


class CallStatementError(AstraError, ValueError):
    """A call statement that is not a single call with literal arguments."""


def _default_hide_paths() -> list[str]:
    """Directories replaced by an empty read-only tmpfs inside the sandbox's mount view."""
    paths = ["/tmp", "/var", "/dev/shm", "/root", "/home", "/run", "/mnt", "/media", "/srv",
             "/opt", "/boot", "/snap"]
    try:
        paths.append(os.path.expanduser("~"))
        paths.append(os.getcwd())
    except OSError:
        pass
    paths.append(sys.prefix)
    pkg = Path(__file__).resolve().parents[1]  # .../astra
    paths.append(str(pkg))
    if pkg.parent.name == "src":  # src layout: hide the whole project checkout
        paths.append(str(pkg.parent.parent))
    return paths


class SandboxConfig(BaseModel):
    """Pool-level settings (the per-call limits are arguments of each call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Default per-call limits (each call may override them).
    timeout: float = 10.0
    memory_mb: int = 512
    cpu_seconds: float | None = None
    max_output: int = 1_000_000
    #: Process/thread count for the unit's uid (RLIMIT_NPROC), open files, file size.
    max_processes: int = 16
    max_open_files: int = 64
    max_file_size_mb: int = 16
    #: Size of the private tmpfs working directory (mount namespace mode).
    disk_mb: int = 64
    #: Largest JSON return value accepted from ``call_function``.
    max_result_bytes: int = 16 * 1024 * 1024
    #: Layers (all on by default; switch off only to test degraded modes).
    use_namespaces: bool = True
    use_landlock: bool = True
    use_seccomp: bool = True
    use_audit_hook: bool = True
    drop_privileges: bool = True
    #: Use a fork server for the warm pool (falls back to fresh interpreters if it fails).
    use_zygote: bool = True
    #: Raise :class:`SandboxError` instead of running when any layer is degraded.
    strict: bool = Field(default_factory=lambda: os.environ.get("ASTRA_SANDBOX_STRICT", "") in ("1", "true"))
    #: Extra directories to hide, and extra directories the code may read (Landlock).
    hide_paths: list[str] = Field(default_factory=list)
    read_paths: list[str] = Field(default_factory=list)
    #: Stdlib modules imported in the fork server so units start warm.
    warm_imports: list[str] | None = None
    python: str = Field(default_factory=lambda: sys.executable)
    startup_timeout: float = 30.0

    def worker_config(self) -> dict[str, Any]:
        from astra.sandbox import _worker

        return {
            "use_namespaces": self.use_namespaces, "use_landlock": self.use_landlock,
            "use_seccomp": self.use_seccomp, "use_audit_hook": self.use_audit_hook,
            "drop_privileges": self.drop_privileges, "disk_mb": self.disk_mb,
            "hide_paths": _default_hide_paths() + list(self.hide_paths),
            "read_paths": list(self.read_paths),
            "warm_imports": list(self.warm_imports if self.warm_imports is not None
                                 else _worker.DEFAULT_WARM_IMPORTS),
            "env": worker_env(), "python_flags": PYTHON_FLAGS,
        }


PYTHON_FLAGS = ["-S", "-s", "-P", "-B", "-X", "utf8"]


def worker_env() -> dict[str, str]:
    """The whole environment of a worker: nothing of the parent's leaks in."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}


class Isolation(BaseModel):
    """What was actually applied to the process that ran the code."""

    model_config = ConfigDict(extra="allow")

    mode: str = "none"  #: "namespaces" (root), "userns" (unprivileged user namespace) or "none"
    process: bool = True
    userns: bool = False
    netns: bool = False
    mountns: bool = False
    ipcns: bool = False
    utsns: bool = False
    readonly_root: bool = False
    hidden_paths: list[str] = Field(default_factory=list)
    proc_hidepid: bool = False
    minimal_dev: bool = False
    workdir_tmpfs: bool = False
    uid: int | None = None
    dropped_privileges: bool = False
    #: the uid is used by this unit alone (so RLIMIT_NPROC counts only its threads)
    private_uid: bool = False
    caps_dropped: bool = False
    no_new_privs: bool = False
    landlock: int = 0  #: Landlock ABI version enforced (0: none)
    seccomp: bool = False
    audit_hook: bool = False
    rlimits: dict[str, int] = Field(default_factory=dict)
    python_flags: list[str] = Field(default_factory=list)
    env_scrubbed: bool = True
    workdir: str | None = None
    zygote: bool = False  #: forked from the warm fork server (False: a fresh interpreter)
    degraded: list[str] = Field(default_factory=list)


class SandboxResult(BaseModel):
    """The outcome of one execution unit."""

    ok: bool
    exit_code: int | None = None
    signal: str | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration: float = 0.0
    cpu_time: float | None = None
    max_rss_kb: int | None = None
    timed_out: bool = False
    killed_reason: KilledReason | None = None
    #: "Type: message" when the code raised (or the sandbox failed).
    error: str | None = None
    #: Actions the audit-hook layer refused ("event: what").
    violations: list[str] = Field(default_factory=list)
    isolation: Isolation = Field(default_factory=Isolation)

    @property
    def truncated(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


class ParsedCall(BaseModel):
    """A call statement such as ``get_weather(city="Oslo")``, arguments as Python values."""

    name: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class CallResult(BaseModel):
    """The outcome of calling one function in the sandbox.

    ``outcome``: ``returned`` (``value`` holds the JSON-decoded return value), ``raised`` (the
    code raised an ordinary exception: a normal, reportable tool error), ``violation`` (it
    raised because the sandbox refused an action), ``limit`` (timeout, memory, CPU or output
    limit), ``crashed`` (the process died without a result)."""

    ok: bool
    outcome: Outcome
    name: str
    value: Any = None
    value_json: str | None = None
    #: The return value was not plain JSON and was converted (tuple→list, object→str, …).
    value_coerced: bool = False
    error_type: str | None = None
    error_message: str | None = None
    error_phase: ErrorPhase | None = None
    traceback: str | None = None
    sandbox: SandboxResult

    @property
    def error(self) -> str | None:
        if self.error_type is None:
            return None
        return f"{self.error_type}: {self.error_message}" if self.error_message else self.error_type

    @property
    def violations(self) -> list[str]:
        return self.sandbox.violations
