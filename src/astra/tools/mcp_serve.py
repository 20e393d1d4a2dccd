"""Serve a Python tool server over MCP (stdio or streamable HTTP).

    python -m astra.tools.mcp_serve MODULE:CLASS            # stdio
    python -m astra.tools.mcp_serve MODULE:CLASS --http 8765 # http://127.0.0.1:8765/mcp

The server advertises exactly the input/output schemas of our :class:`~astra.types.Tool`
objects (built by :mod:`astra.tools.pyfunc`) through the SDK's low-level ``Server`` and
runs calls through :func:`~astra.tools.pyfunc.make_python_executor` (one instance of the
class per server process). A :class:`~astra.errors.ToolCallError` -- or any exception of
the implementation -- becomes a tool result with ``isError`` set, so the agent sees it.

Output schemas whose root is not an object are advertised wrapped as
``{"type": "object", "properties": {"result": <schema>}, "required": ["result"]}`` with
``structuredContent = {"result": value}``, as MCP (through 2025-11-25) requires and as the
SDK's ``MCPServer`` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from pydantic_core import to_jsonable_python

from astra.errors import AstraError, ToolCallError
from astra.tools.pyfunc import PythonExecutor, make_python_executor, server_from_target
from astra.types import Tool, ToolServer

log = logging.getLogger("astra.tools.mcp_serve")


def wrap_output_schema(schema: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    """``(advertised schema, wrapped?)`` for a tool's output schema."""
    if schema is None:
        return None, False
    if schema.get("type") == "object":
        return schema, False
    return {"type": "object", "properties": {"result": schema}, "required": ["result"]}, True


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=str)


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(_jsonable(value), ensure_ascii=False)


def build_mcp_server(server: ToolServer | str, *, page_size: int | None = None) -> Server[Any]:
    """A low-level MCP ``Server`` for a Python tool server.

    ``server`` is a python target (``module:Class`` / ``module`` / ``file.py[:Class]``) or a
    :class:`ToolServer` with ``call.kind == "python"`` (its -- possibly filtered -- tools are
    advertised). ``page_size`` splits tools/list into pages (to exercise cursors).
    """
    if isinstance(server, str):
        server = server_from_target(server)
    if server.call.kind != "python" or not server.call.target:
        raise AstraError(f"server {server.name!r} has no python call target (call kind {server.call.kind!r})")
    executor: PythonExecutor = make_python_executor(server.call.target)
    tools: dict[str, Tool] = {t.name: t for t in server.tools}
    advertised: list[types.Tool] = []
    wrapped: dict[str, bool] = {}
    for t in tools.values():
        out, is_wrapped = wrap_output_schema(t.output_schema)
        wrapped[t.name] = is_wrapped
        advertised.append(types.Tool(name=t.name, description=t.description or None,
                                     input_schema=t.parameters, output_schema=out))

    async def on_list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        if not page_size:
            return types.ListToolsResult(tools=advertised)
        start = int(params.cursor) if params and params.cursor else 0
        end = start + page_size
        return types.ListToolsResult(tools=advertised[start:end],
                                     next_cursor=str(end) if end < len(advertised) else None)

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        try:
            if name not in tools:
                raise ToolCallError(f"unknown tool {name!r}; available tools: {', '.join(tools)}")
            value = await executor.acall(name, params.arguments or {})
        except ToolCallError as e:
            return types.CallToolResult(content=[types.TextContent(text=str(e))], is_error=True)
        except Exception as e:  # the implementation failed: the agent sees it as a tool error
            log.exception("tool %r raised", name)
            return types.CallToolResult(content=[types.TextContent(text=f"{type(e).__name__}: {e}")],
                                        is_error=True)
        data = _jsonable(value)
        structured: Any = None
        if wrapped.get(name):
            structured = {"result": data}
        elif isinstance(data, dict):
            structured = data
        return types.CallToolResult(content=[types.TextContent(text=_text_of(data))],
                                    structured_content=structured)

    return Server(
        server.name,
        version="1",
        title=server.title or None,
        description=server.description or None,
        instructions=server.description or None,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        get_tool_input_schema=lambda n: tools[n].parameters if n in tools else None,
    )


# -- transports and the command line, shared with astra.envs.mcp ------------------------


async def run_stdio(server: Server[Any]) -> None:
    """Run ``server`` over stdin/stdout until the client closes the connection."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def run_asgi(app: Any, port: int, host: str) -> None:
    """Serve the ASGI ``app`` (an MCP transport) on ``host:port`` until interrupted."""
    import uvicorn

    await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()


async def run_http(server: Server[Any], port: int, host: str) -> None:
    """Run ``server`` over streamable HTTP at ``http://{host}:{port}/mcp`` until interrupted."""
    await run_asgi(server.streamable_http_app(host=host), port, host)


def run_main(serve: Callable[[], None]) -> int:
    """The exit status of a ``python -m`` MCP server that ``serve`` runs: warnings are
    logged to stderr, an astra error is printed as ``error: ...`` (1), Ctrl-C ends it (0)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        serve()
    except AstraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


async def serve_stdio_async(target: str | ToolServer, *, page_size: int | None = None) -> None:
    await run_stdio(build_mcp_server(target, page_size=page_size))


def serve_stdio(target: str | ToolServer, *, page_size: int | None = None) -> None:
    """Serve over stdin/stdout until the client closes the connection."""
    anyio.run(lambda: serve_stdio_async(target, page_size=page_size))


async def serve_http_async(target: str | ToolServer, port: int, *, host: str = "127.0.0.1",
                           page_size: int | None = None) -> None:
    await run_http(build_mcp_server(target, page_size=page_size), port, host)


def serve_http(target: str | ToolServer, port: int, *, host: str = "127.0.0.1",
               page_size: int | None = None) -> None:
    """Serve streamable HTTP at ``http://{host}:{port}/mcp`` until interrupted."""
    anyio.run(lambda: serve_http_async(target, port, host=host, page_size=page_size))


async def serve_sse_async(target: str | ToolServer, port: int, *, host: str = "127.0.0.1",
                          page_size: int | None = None) -> None:
    from mcp.server.sse import SseServerTransport
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    server = build_mcp_server(target, page_size=page_size)
    transport = SseServerTransport("/messages/")

    async def handle_sse(request):  # starlette request
        async with transport.connect_sse(request.scope, request.receive, request._send) as (read, write):
            await server.run(read, write, server.create_initialization_options())
        return Response()

    app = Starlette(routes=[Route("/sse", endpoint=handle_sse, methods=["GET"]),
                            Mount("/messages/", app=transport.handle_post_message)])
    await run_asgi(app, port, host)


def serve_sse(target: str | ToolServer, port: int, *, host: str = "127.0.0.1",
              page_size: int | None = None) -> None:
    """Serve the legacy SSE transport at ``http://{host}:{port}/sse`` until interrupted."""
    anyio.run(lambda: serve_sse_async(target, port, host=host, page_size=page_size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m astra.tools.mcp_serve",
        description="Serve a Python tool class or module as an MCP server.")
    parser.add_argument("target", help="module:Class, module, file.py or file.py:Class")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port")
    parser.add_argument("--sse", type=int, metavar="PORT", help="serve the legacy SSE transport on this port")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1)")
    parser.add_argument("--page-size", type=int, default=None, help="tools/list page size (default: one page)")
    args = parser.parse_args(argv)

    def serve() -> None:
        if args.sse is not None:
            serve_sse(args.target, args.sse, host=args.host, page_size=args.page_size)
        elif args.http is not None:
            serve_http(args.target, args.http, host=args.host, page_size=args.page_size)
        else:
            serve_stdio(args.target, page_size=args.page_size)

    return run_main(serve)


if __name__ == "__main__":
    sys.exit(main())
