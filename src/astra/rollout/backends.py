"""Tool execution backends, chosen per server (hybrid execution, the ASTRA method §1.4).

- :class:`PythonBackend` -- ``call.kind == "python"``: the server's implementation; every
  rollout gets a fresh instance (a deep copy of a pristine one), so no state leaks between
  rollouts.
- :class:`MCPBackend` -- ``mcp_stdio`` / ``mcp_http`` / ``mcp_sse``: a live server through
  :func:`astra.tools.mcp_client.open_session`, opened lazily on the first call of a rollout
  and closed at its end (a stdio server is therefore a fresh process per rollout); a
  per-call timeout; one reconnect on a dropped session; at most ``concurrency`` calls in
  flight per server across all rollouts of the process.
- :class:`~astra.rollout.emulator.EmulatorBackend` -- ``doc_only``: the stateful tool
  emulator with failure injection.

A backend's :meth:`call` never raises for a failed call: it returns a
:class:`~astra.rollout.outcome.ToolOutcome`. It raises :class:`BackendUnavailable` only when
the server cannot be used at all (the module does not import, the MCP server does not
start twice in a row); the rollout then ends as a recorded failure.

Arguments arrive already validated against the tool's schema (:mod:`astra.rollout.toolset`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Protocol

import anyio

from astra.errors import AstraError, EndpointError, InputError, ToolCallError
from astra.rollout.outcome import (
    INVALID_ARGUMENTS,
    TIMEOUT,
    TOOL_ERROR,
    UNAVAILABLE,
    ToolOutcome,
)
from astra.types import CallInfo, Tool, ToolServer

log = logging.getLogger("astra.rollout")

MCP_KINDS = ("mcp_stdio", "mcp_http", "mcp_sse")


class BackendUnavailable(AstraError):
    """A server that cannot be used at all in this rollout."""

    reason = "backend_unavailable"


class ServerUnreachable(BackendUnavailable, EndpointError):
    """A live (MCP) server that cannot be reached: an outage, not the task's fault; the
    task is *failed* and rolled out again on a rerun."""


class EmulatorUnavailable(BackendUnavailable):
    """A doc-only server, but no emulator LLM (none set, or the tiny embedded default)."""

    reason = "no_emulator"


class Backend(Protocol):
    name: str  # python | mcp | emulator

    async def call(self, tool: Tool, args: dict[str, Any]) -> ToolOutcome: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------
# Python
# ---------------------------------------------------------------------------------


class PythonBackend:
    """Calls the tools of a Python server on one fresh instance."""

    name = "python"

    def __init__(self, executor: Any):
        self.executor = executor

    async def call(self, tool: Tool, args: dict[str, Any]) -> ToolOutcome:
        try:
            value = await self.executor.acall(tool.name, args)
        except ToolCallError as e:
            msg = str(e)
            status = INVALID_ARGUMENTS if msg.startswith(("invalid arguments", "arguments for tool")) else TOOL_ERROR
            return ToolOutcome.failure(status, msg, backend=self.name)
        except Exception as e:  # a bug in the tool: the agent sees an error
            return ToolOutcome.failure(TOOL_ERROR, f"{type(e).__name__}: {e}", backend=self.name)
        return ToolOutcome.success(value, backend=self.name)

    async def aclose(self) -> None:
        return None


class PythonFactory:
    """Fresh executors for one Python target: one pristine executor is built (never
    called) and deep-copied for each rollout; targets that cannot be copied are rebuilt."""

    def __init__(self, target: str):
        from astra.tools.pyfunc import make_python_executor

        self.target = target
        self._make = make_python_executor
        try:
            self._pristine = make_python_executor(target)
        except InputError as e:
            raise BackendUnavailable(f"python server {target!r}: {e}") from None

    def __call__(self) -> PythonBackend:
        try:
            ex = copy.deepcopy(self._pristine)
        except Exception:
            ex = self._make(self.target)
        return PythonBackend(ex)


# ---------------------------------------------------------------------------------
# MCP
# ---------------------------------------------------------------------------------

SessionOpener = Callable[[CallInfo, float], AbstractAsyncContextManager[Any]]


def _default_opener(call: CallInfo, timeout: float) -> AbstractAsyncContextManager[Any]:
    from astra.tools.mcp_client import open_session

    return open_session(call, timeout)


def _is_drop(exc: BaseException) -> bool:
    """A dropped session (worth one reconnect) rather than a tool-level error."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED
    return isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream
                      | ConnectionError | BrokenPipeError | EOFError)


def _is_timeout(exc: BaseException) -> bool:
    from mcp.shared.exceptions import MCPError
    from mcp_types import REQUEST_TIMEOUT

    if isinstance(exc, MCPError):
        return exc.code == REQUEST_TIMEOUT
    return isinstance(exc, TimeoutError)


def _unwrap(value: Any, tool: Tool) -> Any:
    """MCP wraps non-object outputs as ``{"result": value}``; unwrap when our schema of the
    tool is the bare value (a Python server's record served over MCP)."""
    if isinstance(value, dict) and set(value) == {"result"}:
        schema = tool.output_schema
        if schema and schema.get("type") != "object":
            return value["result"]
    return value


class _Limits:
    """Per-event-loop semaphores bounding in-flight calls per MCP server."""

    def __init__(self) -> None:
        self._sems: dict[tuple[int, str], asyncio.Semaphore] = {}

    def get(self, key: str, n: int) -> asyncio.Semaphore:
        loop = id(asyncio.get_running_loop())
        sem = self._sems.get((loop, key))
        if sem is None:
            sem = self._sems[(loop, key)] = asyncio.Semaphore(n)
        return sem


_LIMITS = _Limits()


class MCPBackend:
    """Calls the tools of a live MCP server over one session per rollout.

    All calls of a rollout run in the rollout's task (sequentially), which is what the
    transports' cancel scopes require; :meth:`aclose` must be awaited in the same task.
    """

    name = "mcp"

    def __init__(self, server: ToolServer, *, timeout: float = 30.0, connect_timeout: float = 30.0,
                 concurrency: int = 4, opener: SessionOpener | None = None):
        self.server = server
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.concurrency = concurrency
        self._opener = opener or _default_opener
        self._stack: AsyncExitStack | None = None
        self._session: Any = None
        self.reconnects = 0

    async def _connect(self) -> Any:
        stack = AsyncExitStack()
        try:
            session = await stack.enter_async_context(self._opener(self.server.call, self.connect_timeout))
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._session = stack, session
        return session

    async def _disconnect(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as e:  # a dead transport may fail to close
                log.debug("closing MCP session of %s: %s", self.server.name, e)

    async def _session_or_connect(self) -> Any:
        if self._session is not None:
            return self._session
        try:
            return await self._connect()
        except Exception as e:
            raise ServerUnreachable(f"MCP server {self.server.name!r} unavailable: {e}") from None

    async def _call_once(self, session: Any, tool: Tool, args: dict[str, Any]) -> Any:
        from astra.tools.mcp_client import call_tool

        async with _LIMITS.get(f"{self.server.call.kind}:{self.server.call.target}", self.concurrency):
            return await call_tool(session, tool.name, args, timeout=self.timeout)

    async def call(self, tool: Tool, args: dict[str, Any]) -> ToolOutcome:
        from astra.tools.mcp_client import result_payload

        session = await self._session_or_connect()
        try:
            result = await self._call_once(session, tool, args)
        except Exception as e:
            if _is_timeout(e):
                return ToolOutcome.failure(TIMEOUT, f"{tool.name} did not answer within {self.timeout:g} s",
                                           backend=self.name)
            if not _is_drop(e):
                return ToolOutcome.failure(TOOL_ERROR, f"{type(e).__name__}: {e}", backend=self.name)
            # the session dropped: reconnect once and retry the call
            log.info("MCP session of %s dropped (%s); reconnecting", self.server.name, type(e).__name__)
            await self._disconnect()
            self.reconnects += 1
            try:
                session = await self._connect()
                result = await self._call_once(session, tool, args)
            except Exception as e2:
                if _is_timeout(e2):
                    return ToolOutcome.failure(TIMEOUT, f"{tool.name} did not answer within {self.timeout:g} s",
                                               backend=self.name, reconnected=True)
                await self._disconnect()
                return ToolOutcome.failure(UNAVAILABLE, f"{self.server.name} is unreachable: "
                                           f"{type(e2).__name__}: {e2}", backend=self.name, reconnected=True)
        if result.is_error:
            texts = [getattr(b, "text", "") for b in result.content]
            msg = " ".join(t for t in texts if t) or "the tool reported an error"
            return ToolOutcome.failure(TOOL_ERROR, msg, backend=self.name)
        return ToolOutcome.success(_unwrap(result_payload(result), tool), backend=self.name)

    async def aclose(self) -> None:
        await self._disconnect()
