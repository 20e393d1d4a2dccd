"""A small MCP client for astra: connect to a live server, list its tools, call them.

Used by :mod:`astra.tools.ingest` to read tool documents from live servers and reusable
by later stages that execute tools through MCP::

    async with open_session(CallInfo(kind="mcp_stdio", target="python -m my.server")) as s:
        result = await call_tool(s, "get_weather", {"city": "Oslo"})

Transports: ``mcp_stdio`` (``target`` = command line, shlex-split) and ``mcp_http``
(``target`` = streamable-HTTP URL). Connection problems raise :class:`MCPConnectionError`
with the command/URL and, for stdio, the tail of the server's stderr.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TextIO, cast

import anyio
import mcp_types
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from astra.errors import AstraError
from astra.types import CallInfo

DEFAULT_TIMEOUT = 30.0
MAX_PAGES = 1000


class MCPConnectionError(AstraError):
    """An MCP server could not be started, reached, or did not answer in time."""


@dataclass
class ServerInfo:
    """What a server says about itself in its initialize result."""

    name: str
    version: str = ""
    title: str = ""
    description: str = ""
    instructions: str = ""


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    leaf = _leaf(exc)
    if isinstance(leaf, TimeoutError):
        return "timed out"
    text = str(leaf).strip()
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__


def _stderr_tail(f: Any, limit: int = 1500) -> str:
    if f is None:
        return ""
    try:
        f.flush()
        f.seek(0)
        text = f.read()
    except (OSError, ValueError):
        return ""
    text = text.strip()
    if not text:
        return ""
    return "\nserver stderr (last lines):\n" + text[-limit:]


def _where(call: CallInfo) -> str:
    if call.kind == "mcp_stdio":
        return f"MCP stdio server {call.target!r}"
    if call.kind == "mcp_sse":
        return f"MCP SSE server {call.target!r}"
    return f"MCP HTTP server {call.target!r}"


def _single_leaf(group: BaseExceptionGroup) -> BaseException | None:
    """The one real exception inside nested task-group wrappers, if there is exactly one."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        elif not isinstance(e, anyio.get_cancelled_exc_class()):
            leaves.append(e)

    walk(group)
    return leaves[0] if len(leaves) == 1 else None


@asynccontextmanager
async def open_session(call: CallInfo, timeout: float = DEFAULT_TIMEOUT) -> AsyncIterator[ClientSession]:
    """Start/connect to the server of ``call`` and yield an initialized :class:`ClientSession`.

    ``timeout`` bounds the handshake and every request on the session (per request).
    Exceptions raised in the body come out as themselves, not wrapped in the transport's
    task-group exception groups.
    """
    if call.kind not in ("mcp_stdio", "mcp_http", "mcp_sse"):
        raise MCPConnectionError(
            f"call kind {call.kind!r} is not an MCP transport (expected mcp_stdio, mcp_http or mcp_sse)")
    if not call.target:
        raise MCPConnectionError(f"{call.kind} call info has no target")
    failure: MCPConnectionError | None = None
    yielded = False
    errlog = (tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
              if call.kind == "mcp_stdio" else None)

    def connection_error(e: BaseException) -> MCPConnectionError:
        return MCPConnectionError(
            f"{_where(call)} did not start or answer the MCP handshake within {timeout:g} s "
            f"({_describe(e)}){_stderr_tail(errlog)}")

    try:
        async with AsyncExitStack() as stack:
            session: ClientSession | None = None
            try:
                if call.kind == "mcp_stdio":
                    argv = shlex.split(call.target)
                    if not argv:
                        raise ValueError("empty command")
                    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(call.env) or None)
                    read, write = await stack.enter_async_context(stdio_client(params, errlog=cast(TextIO, errlog)))  # opened for stdio
                elif call.kind == "mcp_sse":
                    read, write = await stack.enter_async_context(sse_client(call.target, timeout=timeout))
                else:
                    read, write = await stack.enter_async_context(streamable_http_client(call.target))
                session = await stack.enter_async_context(
                    ClientSession(read, write, read_timeout_seconds=timeout))
                await session.initialize()
            except Exception as e:
                failure = connection_error(e)
            if failure is None and session is not None:
                yielded = True
                yield session
    except BaseExceptionGroup as group:
        if failure is not None:
            raise failure from None
        leaf = _single_leaf(group)
        if not yielded:  # the transport failed during the handshake (the host task was cancelled)
            raise connection_error(leaf or group) from None
        if leaf is None:
            raise
        raise leaf from None
    except Exception:
        if failure is not None:
            raise failure from None
        raise
    finally:
        if errlog is not None:
            errlog.close()
    if failure is not None:
        raise failure


async def list_all_tools(session: ClientSession) -> list[mcp_types.Tool]:
    """All tools of a session, following pagination cursors."""
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        result = await session.list_tools(params=params)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if not cursor:
            return tools
        if cursor in seen:
            raise MCPConnectionError(f"tools/list pagination repeats cursor {cursor!r}")
        seen.add(cursor)
    raise MCPConnectionError(f"tools/list returned more than {MAX_PAGES} pages")


def server_info_of(session: ClientSession) -> ServerInfo:
    info = session.server_info
    return ServerInfo(
        name=(info.name if info else "") or "",
        version=(info.version if info else "") or "",
        title=(getattr(info, "title", None) or "") if info else "",
        description=(getattr(info, "description", None) or "") if info else "",
        instructions=session.instructions or "",
    )


async def list_server(
    target: str, kind: str, *, timeout: float = DEFAULT_TIMEOUT, env: dict[str, str] | None = None
) -> tuple[ServerInfo, list[mcp_types.Tool]]:
    """Connect, read the server info and all tools, disconnect. Whole operation is bounded
    by ``timeout`` (plus the same again for process shutdown)."""
    call = CallInfo(kind=kind, target=target, env=env or {})
    try:
        with anyio.fail_after(2 * timeout):
            async with open_session(call, timeout) as session:
                info = server_info_of(session)
                try:
                    tools = await list_all_tools(session)
                except MCPConnectionError:
                    raise
                except Exception as e:
                    raise MCPConnectionError(f"{_where(call)}: tools/list failed ({_describe(e)})") from None
    except TimeoutError:
        raise MCPConnectionError(f"{_where(call)} did not answer within {timeout:g} s") from None
    return info, tools


async def call_tool(session: ClientSession, name: str, args: dict[str, Any] | None = None, *,
                    timeout: float | None = None) -> mcp_types.CallToolResult:
    """Call one tool; the MCP result is returned as is (``is_error`` marks tool errors)."""
    return await session.call_tool(name, args or {}, read_timeout_seconds=timeout)


def result_payload(result: mcp_types.CallToolResult) -> Any:
    """The value of a tool result: its structured content when present, else its text
    content (JSON-decoded when it is JSON), else a list of the content blocks as dicts."""
    if result.structured_content is not None:
        return result.structured_content
    texts = [b.text for b in result.content if isinstance(b, mcp_types.TextContent)]
    if texts and len(texts) == len(result.content):
        text = "\n".join(texts)
        try:
            return json.loads(text)
        except ValueError:
            return text
    return [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]
