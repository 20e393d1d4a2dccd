"""Stateful domains synthesized from doc-only servers: CRUD mapping, SQLite state, the
sandbox probe, the rejection reasons, and an environment made on a synthesized domain."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from astra.types import CallInfo, Task, Tool, ToolServer


def _tool(name: str, params: dict, required: list[str], out: dict, desc: str = "") -> Tool:
    return Tool(name=name, description=desc or name.replace("_", " "),
                parameters={"type": "object", "properties": params, "required": required}, output_schema=out)


NOTE = {"type": "object", "properties": {"note_id": {"type": "string"}, "title": {"type": "string"},
                                         "done": {"type": "boolean"}, "tags": {"type": "array",
                                                                              "items": {"type": "string"}}}}


def notes_doc(**extra_tools: Tool) -> ToolServer:
    tools = [
        _tool("search_notes", {"query": {"type": "string", "description": "Words, e.g. 'groceries' or 'taxes'."}},
              [], {"type": "array", "items": NOTE}),
        _tool("get_note", {"note_id": {"type": "string", "description": "Note id such as 'N-204'."}}, ["note_id"],
              NOTE),
        _tool("create_note", {"title": {"type": "string", "description": "The title."}}, ["title"], NOTE),
        _tool("update_note", {"note_id": {"type": "string"}, "done": {"type": "boolean"}}, ["note_id"], NOTE),
        _tool("delete_note", {"note_id": {"type": "string"}}, ["note_id"],
              {"type": "object", "properties": {"note_id": {"type": "string"}, "deleted": {"type": "boolean"}}}),
        *extra_tools.values(),
    ]
    return ToolServer(name="notes_doc", domain="productivity", tools=tools, call=CallInfo(kind="doc_only"))


def test_generate_maps_crud_and_seeds_documented_examples() -> None:
    from astra.envsynth.stateful_domains import entities, generate

    server = notes_doc(scale=_tool("summarize_notes", {}, [], {"type": "object", "properties": {"text": {}}}))
    ents = entities(server)
    assert list(ents) == ["note"] and ents["note"].ids[0] == "N-204" and ents["note"].names[:2] == [
        "groceries", "taxes"]
    code, mapped, unmapped, _, plan = generate(server)
    assert {m.tool.name: m.op for m in mapped} == {"search_notes": "search", "get_note": "get",
                                                   "create_note": "create", "update_note": "update",
                                                   "delete_note": "delete"}
    assert unmapped == ["summarize_notes"]
    assert "import sqlite3" in code and "_astra_probe" in code


def test_domain_is_probed_in_the_sandbox_and_its_state_snapshots(tmp_path: Path) -> None:
    from astra.envs.state import capture, diff, restore
    from astra.envsynth.stateful_domains import synthesize_domain
    from astra.tools.pyfunc import make_python_executor

    res, server = asyncio.run(synthesize_domain(notes_doc(), tmp_path))
    assert res.kept, res.detail
    assert set(res.checks.values()) == {"ok"} and len(res.checks) == 5
    assert server is not None and server.call.kind == "python"
    ex = make_python_executor(server.call.target)
    snap = capture(ex.instance)
    assert set(snap.data["_db"]["note"]) >= {"N-204"}
    assert ex.call("search_notes", {"query": "groceries"})[0]["title"] == "Groceries"
    made = ex.call("create_note", {"title": "call mum"})
    was = ex.call("get_note", {"note_id": "N-204"})["done"]
    assert ex.call("update_note", {"note_id": "N-204", "done": not was})["done"] is (not was)
    ops = sorted((c.op, c.path[-1]) for c in diff(snap.data, capture(ex.instance).data))
    assert ops == [("created", "note"), ("set", "done")] and made["note_id"].startswith("N-")
    restore(ex.instance, snap)
    assert capture(ex.instance).digest == snap.digest


def test_domain_rejections(tmp_path: Path) -> None:
    from astra.envsynth.stateful_domains import synthesize_domain

    def reason(server: ToolServer) -> str | None:
        return asyncio.run(synthesize_domain(server, tmp_path))[0].reason

    assert reason(notes_doc().model_copy(update={"call": CallInfo(kind="python", target="json")})) == "not_doc_only"
    plain = ToolServer(name="calc", tools=[_tool("add", {"a": {"type": "number"}}, ["a"],
                                                 {"type": "object", "properties": {"sum": {"type": "number"}}})])
    assert reason(plain) == "no_entities"
    reads = notes_doc().model_copy(update={"tools": notes_doc().tools[:2]})
    assert reason(reads) == "no_crud_shape"
    # a required parameter that is not a Python name cannot be implemented: the probe fails
    bad = notes_doc(make=_tool("create_tag", {"from": {"type": "string"}, "note_id": {"type": "string"}},
                               ["from"], {"type": "object", "properties": {"tag_id": {"type": "string"},
                                                                           "note_id": {"type": "string"}}}))
    bad = bad.model_copy(update={"tools": [t for t in bad.tools if t.name != "create_note"]})
    assert reason(bad) == "tool_failed"


def test_stateful_environment_on_a_synthesized_domain(tmp_path: Path) -> None:
    from astra.envs.runtime import EnvSession
    from astra.envsynth.stateful import make_environment
    from astra.envsynth.stateful_domains import synthesize_domain

    _, server = asyncio.run(synthesize_domain(notes_doc(), tmp_path))
    plan = {"format": "astra.plan/v1", "mentions": [], "steps": [
        {"tool": "create_note", "user_args": {"title": "call mum"}, "derived_args": {}}]}
    t = Task(id="t1", server=server.name, query='Create a note titled "call mum".', target_tools=["create_note"],
             arguments=plan)
    out = asyncio.run(make_environment(t, server))
    assert out.env is not None, f"{out.reason}: {out.detail}"
    env = out.env
    assert env.mode == "write" and out.probe["gold"] == 1.0
    s = EnvSession(env)
    s.reset()
    s.step([{"function": {"name": "create_note", "arguments": json.dumps({"title": "call mum"})}}])
    s.finish(env.verifier["answer"])
    assert s.reward().reward == pytest.approx(1.0)
