"""Isolated execution of untrusted (LLM-written) Python code.

Every execution unit runs in its own process, which is discarded afterwards. On Linux the
process gets, as far as the machine allows: its own network, mount, IPC and UTS
namespaces (no network interfaces; a read-only view of the filesystem with home
directories, the project and ``/tmp`` hidden, and a private size-capped tmpfs as its
working directory); a private unprivileged uid; Landlock (reads limited to the stdlib and
system directories, writes to the working directory, no TCP, no signals out); a seccomp
filter (no sockets, no new processes, no exec, no ptrace/mount/bpf/...); rlimits (address
space, CPU, file size, processes, open files); an audit hook blocking ctypes, subprocesses
and writes outside the working directory; a scrubbed environment; a wall-clock timeout and
capped stdout/stderr. What was applied is reported in every result
(``result.isolation``), and anything missing is logged and listed in
``isolation.degraded``. See ``docs/sandbox.md``.

    from astra.sandbox import run_code, call_function, run_call_statement
    run_code("print(1 + 1)").stdout                          # '2\\n'
    call_function(code, "get_weather", {"city": "Oslo"}).value
    run_call_statement(code, 'get_weather(city="Oslo")')
"""

from astra.sandbox.models import (
    CallResult,
    CallStatementError,
    Isolation,
    ParsedCall,
    SandboxConfig,
    SandboxError,
    SandboxResult,
)
from astra.sandbox.pool import (
    SandboxPool,
    acall_function,
    arun_call_statement,
    arun_code,
    call_function,
    default_pool,
    isolation_report,
    parse_call_statement,
    run_call_statement,
    run_code,
)

__all__ = [
    "CallResult",
    "CallStatementError",
    "Isolation",
    "ParsedCall",
    "SandboxConfig",
    "SandboxError",
    "SandboxPool",
    "SandboxResult",
    "acall_function",
    "arun_call_statement",
    "arun_code",
    "call_function",
    "default_pool",
    "isolation_report",
    "parse_call_statement",
    "run_call_statement",
    "run_code",
]
