"""Serve one environment as an MCP server (``astra envs serve envs/ENV_ID``): its question,
its tools, a ``submit_answer`` tool, and the reward.

    python -m astra.envs.mcp envs/ENV_ID.json              # stdio
    python -m astra.envs.mcp envs/ENV_ID.json --http 8765  # http://127.0.0.1:8765/mcp

Built on the MCP SDK's low-level ``Server`` (like :mod:`astra.tools.mcp_serve`). Each MCP
connection plays one episode of an :class:`~astra.envs.runtime.EnvSession` — the same
runtime an RL trainer drives, so calls are counted, judged and rewarded exactly as there
(over stdio one episode per server process; over HTTP one per client session — a stateless
HTTP exchange cannot hold an episode):

- **prompts**: ``question`` — the question as a user message (the runtime's system
  prompt is the server's ``instructions``);
- **resources**: ``astra://envs/<id>/question`` (text) and ``astra://envs/<id>/reward``
  (JSON: the :class:`~astra.envs.runtime.RewardInfo` so far, plus ``finished``);
- **tools**: the environment's tools (and any distractors) with their exact input schema,
  plus ``submit_answer(answer: str)``, which gives the final answer, ends the episode and
  returns the reward (also as ``structuredContent``).

A tool call's arguments are checked against the tool's JSON schema **before** its code
runs (:mod:`astra.envs.arguments`): a missing argument answers ``isError`` with "missing
required argument 'x' (required: …)", never a Python ``TypeError``. A tool that raises,
hits a limit, or is called after the answer was submitted also answers ``isError``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import weakref
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server

from astra.envs.arguments import argument_problem, parse_arguments
from astra.envs.bundle import load_environment
from astra.envs.runtime import EnvSession, default_system_prompt
from astra.errors import ConfigError
from astra.tools.mcp_serve import run_http, run_main, run_stdio
from astra.types import Environment, EnvTool

log = logging.getLogger("astra.envs.mcp")

SUBMIT = "submit_answer"
SUBMIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "description": "The final answer: the one name, number, date or "
                                                               "yes/no the question asks for, nothing else."}},
    "required": ["answer"], "additionalProperties": False,
}


def _err(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


def build_env_mcp_server(env: Environment, *, pool: Any = None, timeout: float = 10.0,
                         distractors: list[EnvTool] | None = None, reward: str = "f1", seed: int = 0,
                         max_turns: int = 10**6) -> Server[Any]:
    """A low-level MCP ``Server`` for ``env`` (see the module docstring)."""
    tools: dict[str, EnvTool] = {}
    for t in list(env.tools) + list(distractors or []):
        tools.setdefault(t.tool.name, t)
    if SUBMIT in tools:
        raise ConfigError(f"environment {env.id!r} has a tool named {SUBMIT!r}, which the server reserves")
    advertised = [types.Tool(name=t.tool.name, description=t.tool.description or None,
                             input_schema=t.tool.parameters) for t in tools.values()]
    advertised.append(types.Tool(
        name=SUBMIT, input_schema=SUBMIT_SCHEMA,
        description="Give your final answer to the question. This ends the episode and returns the reward "
                    "(recall, precision, F1 over the sub-tasks, gated by the answer)."))
    schemas = {t.tool.name: t.tool.parameters for t in tools.values()} | {SUBMIT: SUBMIT_SCHEMA}
    question_uri = f"astra://envs/{env.id}/question"
    reward_uri = f"astra://envs/{env.id}/reward"
    episodes: weakref.WeakKeyDictionary[Any, EnvSession] = weakref.WeakKeyDictionary()
    state: dict[str, Any] = {"pool": pool}

    def get_pool() -> Any:
        if state["pool"] is None:
            from astra.sandbox import default_pool

            state["pool"] = default_pool()
        return state["pool"]

    def episode(ctx: Any) -> EnvSession:
        # The SDK builds a ServerSession per request; the connection behind it is what
        # lasts (a stdio process, an HTTP client session), so episodes are keyed by it.
        key = getattr(ctx.session, "_connection", None) or ctx.session
        s = episodes.get(key)
        if s is None:
            s = EnvSession(env, max_turns=max_turns, reward=reward, distractors=list(distractors or []),
                           pool=get_pool(), seed=seed)
            s.call_timeout = timeout
            s.reset()
            episodes[key] = s
        return s

    def reward_of(s: EnvSession) -> dict[str, Any]:
        return {**s.reward().model_dump(), "finished": s.finished, "final_answer": s.final_answer}

    async def on_list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=advertised)

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        s = episode(ctx)
        name = params.name
        if s.finished:
            return _err("the episode is over: the answer was already submitted (read the reward resource)")
        if name == SUBMIT:
            args, problem = parse_arguments(params.arguments)
            problem = problem or argument_problem(SUBMIT_SCHEMA, args or {})
            if problem:
                return _err(problem)
            s.finish(args["answer"])  # type: ignore[index]
            info = reward_of(s)
            text = (f"answer recorded; reward {info['reward']:.4f} ({info['kind']}): answer check "
                    f"{info['answer_check']}, grounded {info['grounded']}, solved {len(info['solved'])}/"
                    f"{info['n_subtasks']} sub-tasks with {info['calls']} calls")
            return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=info)
        content, rec = await s.acall_tool(name, params.arguments)
        if rec.get("status") != "ok":
            return _err(content.removeprefix("Error: "))
        structured = None
        try:
            value = json.loads(content)
            structured = value if isinstance(value, dict) else None
        except ValueError:
            pass
        return types.CallToolResult(content=[types.TextContent(text=content)], structured_content=structured)

    async def on_list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[types.Prompt(
            name="question", description=f"The question of environment {env.id}, to answer with the tools "
                                         f"and {SUBMIT}.")])

    async def on_get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        if params.name != "question":
            raise ValueError(f"unknown prompt {params.name!r}; the server has 'question'")
        return types.GetPromptResult(description=f"environment {env.id}", messages=[
            types.PromptMessage(role="user", content=types.TextContent(text=env.instance.question))])

    async def on_list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[
            types.Resource(name="question", uri=question_uri, mime_type="text/plain",
                           description="The question this environment asks."),
            types.Resource(name="reward", uri=reward_uri, mime_type="application/json",
                           description="The episode's reward so far (final once the answer is submitted)."),
        ])

    async def on_read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri == question_uri:
            return types.ReadResourceResult(contents=[types.TextResourceContents(
                uri=question_uri, mime_type="text/plain", text=env.instance.question)])
        if uri == reward_uri:
            return types.ReadResourceResult(contents=[types.TextResourceContents(
                uri=reward_uri, mime_type="application/json", text=json.dumps(reward_of(episode(ctx))))])
        raise ValueError(f"unknown resource {uri!r}; the server has {question_uri} and {reward_uri}")

    return Server(
        f"astra-env-{env.id}", version="1", title=f"astra environment {env.id}",
        description=f"Synthesized tools of the {env.instance.domain} environment {env.id}, its question and reward.",
        instructions=default_system_prompt() + f"\nGive the final answer with the {SUBMIT} tool.\n\n"
                     f"Question: {env.instance.question}",
        on_list_tools=on_list_tools, on_call_tool=on_call_tool, on_list_prompts=on_list_prompts,
        on_get_prompt=on_get_prompt, on_list_resources=on_list_resources, on_read_resource=on_read_resource,
        get_tool_input_schema=lambda n: schemas.get(n),
    )


async def serve_env_stdio_async(env: Environment, **kw: Any) -> None:
    await run_stdio(build_env_mcp_server(env, **kw))


def serve_env_stdio(env: Environment, **kw: Any) -> None:
    """Serve over stdin/stdout until the client closes the connection."""
    anyio.run(lambda: serve_env_stdio_async(env, **kw))


async def serve_env_http_async(env: Environment, port: int, *, host: str = "127.0.0.1", **kw: Any) -> None:
    await run_http(build_env_mcp_server(env, **kw), port, host)


def serve_env_http(env: Environment, port: int, *, host: str = "127.0.0.1", **kw: Any) -> None:
    """Serve streamable HTTP at ``http://{host}:{port}/mcp`` until interrupted."""
    anyio.run(lambda: serve_env_http_async(env, port, host=host, **kw))


__all__ = ["SUBMIT", "SUBMIT_SCHEMA", "build_env_mcp_server", "main", "serve_env_http", "serve_env_http_async",
           "serve_env_stdio", "serve_env_stdio_async"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m astra.envs.mcp",
                                     description="Serve an astra environment (question, tools, submit_answer, "
                                                 "reward) as an MCP server.")
    parser.add_argument("env", help="environment file (envs/ID.json) or envs/ID")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on this port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--reward", default="f1", choices=["f1", "recall", "precision"])
    args = parser.parse_args(argv)

    def serve() -> None:
        env = load_environment(args.env)
        if args.http is not None:
            serve_env_http(env, args.http, host=args.host, reward=args.reward)
        else:
            serve_env_stdio(env, reward=args.reward)

    return run_main(serve)


if __name__ == "__main__":
    sys.exit(main())
