"""Serve one environment's tools as an MCP server (``astra envs serve envs/ENV_ID``).

    python -m astra.envs.mcp envs/ENV_ID.json              # stdio
    python -m astra.envs.mcp envs/ENV_ID.json --http 8765  # http://127.0.0.1:8765/mcp

Built on the MCP SDK's low-level ``Server`` like :mod:`astra.tools.mcp_serve`: tools/list
advertises each tool's exact input schema; tools/call runs the tool's code **in the
sandbox** (a fresh unit per call, :mod:`astra.sandbox`). A tool that raises, hits a limit
or gets unknown arguments answers with ``isError`` and the error text. Results are the
JSON text of the return value, with ``structuredContent`` when it is an object. The
server is stateless (so is every tool): it does not judge answers or keep a reward — use
:class:`astra.envs.runtime.EnvSession` (or ``astra envs play``) for that.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

from astra.envs.bundle import load_environment
from astra.errors import AstraError
from astra.tools.mcp_serve import _jsonable, _text_of
from astra.types import Environment, EnvTool

log = logging.getLogger("astra.envs.mcp")


def build_env_mcp_server(env: Environment, *, pool: Any = None, timeout: float = 10.0,
                         distractors: list[EnvTool] | None = None) -> Server[Any]:
    """A low-level MCP ``Server`` exposing ``env``'s tools (and ``distractors``)."""
    tools: dict[str, EnvTool] = {}
    for t in list(env.tools) + list(distractors or []):
        tools.setdefault(t.tool.name, t)
    advertised = [types.Tool(name=t.tool.name, description=t.tool.description or None,
                             input_schema=t.tool.parameters) for t in tools.values()]

    def get_pool() -> Any:
        nonlocal pool
        if pool is None:
            from astra.sandbox import default_pool

            pool = default_pool()
        return pool

    async def on_list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=advertised)

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        t = tools.get(name)
        if t is None:
            return types.CallToolResult(content=[types.TextContent(
                text=f"unknown tool {name!r}; available tools: {', '.join(tools)}")], is_error=True)
        try:
            res = await get_pool().acall_function(t.code, name, dict(params.arguments or {}), timeout=timeout)
        except (TypeError, ValueError) as e:
            return types.CallToolResult(content=[types.TextContent(text=f"bad arguments: {e}")], is_error=True)
        if not res.ok:
            return types.CallToolResult(content=[types.TextContent(text=res.error or "the tool failed")],
                                        is_error=True)
        data = _jsonable(res.value)
        return types.CallToolResult(content=[types.TextContent(text=_text_of(data))],
                                    structured_content=data if isinstance(data, dict) else None)

    q = env.instance.question
    return Server(
        f"astra-env-{env.id}", version="1", title=f"astra environment {env.id}",
        description=f"Synthesized tools of the {env.instance.domain} environment {env.id}.",
        instructions=f"Tools of an astra environment (domain {env.instance.domain}). Its question: {q}",
        on_list_tools=on_list_tools, on_call_tool=on_call_tool,
        get_tool_input_schema=lambda n: tools[n].tool.parameters if n in tools else None,
    )


async def serve_env_stdio_async(env: Environment, **kw: Any) -> None:
    from mcp.server.stdio import stdio_server

    server = build_env_mcp_server(env, **kw)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def serve_env_stdio(env: Environment, **kw: Any) -> None:
    """Serve over stdin/stdout until the client closes the connection."""
    anyio.run(lambda: serve_env_stdio_async(env, **kw))


async def serve_env_http_async(env: Environment, port: int, *, host: str = "127.0.0.1", **kw: Any) -> None:
    import uvicorn

    server = build_env_mcp_server(env, **kw)
    app = server.streamable_http_app(host=host)
    await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).serve()


def serve_env_http(env: Environment, port: int, *, host: str = "127.0.0.1", **kw: Any) -> None:
    """Serve streamable HTTP at ``http://{host}:{port}/mcp`` until interrupted."""
    anyio.run(lambda: serve_env_http_async(env, port, host=host, **kw))


__all__ = ["build_env_mcp_server", "main", "serve_env_http", "serve_env_http_async", "serve_env_stdio",
           "serve_env_stdio_async"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astra.envs.mcp",
                                     description="Serve an astra environment's tools as an MCP server.")
    parser.add_argument("env", help="environment file (envs/ID.json) or envs/ID")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        env = load_environment(args.env)
        if args.http is not None:
            serve_env_http(env, args.http, host=args.host)
        else:
            serve_env_stdio(env)
    except AstraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
