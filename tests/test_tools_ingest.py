"""Ingesting tool documents from files, Python and live MCP servers; filtering.

The MCP tests start real servers (``python -m astra.tools.mcp_serve``) over stdio and over
streamable HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from astra.errors import InputError
from astra.tools import filter as tfilter
from astra.tools.filter import description_problem, filter_servers, word_count
from astra.tools.ingest import ingest, ingest_async, parse_source
from astra.tools.mcp_client import call_tool, open_session, result_payload
from astra.tools.mcp_serve import wrap_output_schema
from astra.tools.pyfunc import server_from_target
from astra.types import CallInfo, Tool, ToolServer

FIXTURES = Path(__file__).parent / "fixtures" / "tools"
JSONL = FIXTURES / "mcp_servers.jsonl"
OPENAI_JSON = FIXTURES / "openai_tools.json"
NOTES = f"{(FIXTURES / 'notes_server.py').resolve()}:NotesServer"
SERVE = f"{sys.executable} -m astra.tools.mcp_serve"


# ---------------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------------


def _tool(name: str, description: str = "Does a clearly described useful thing.", **kw) -> Tool:
    return Tool(name=name, description=description, **kw)


def test_every_filter_reason():
    servers = [
        ToolServer(name="good", tools=[_tool("a"), _tool("b"), _tool("c")]),
        ToolServer(name="messy", tools=[
            _tool("ok_one"), _tool("ok_two"), _tool("ok_three"),
            _tool("no_desc", ""),
            _tool("vague", "TODO"),
            _tool("get_weather", "Get the weather."),
            _tool("short", "Fetch stuff."),
            _tool("bad.name"),
            _tool("ok_one"),
            _tool("bad_schema", parameters={"type": "object", "properties": {"x": {"type": "datetime"}}}),
        ]),
        ToolServer(name="good", tools=[_tool("x"), _tool("y"), _tool("z")]),
        ToolServer(name="tiny", tools=[_tool("only"), _tool("two")]),
    ]
    kept, rejections = filter_servers(servers)
    assert [s.name for s in kept] == ["good", "messy"]
    assert [t.name for t in kept[1].tools] == ["ok_one", "ok_two", "ok_three"]
    got = {(r.key, r.reason) for r in rejections}
    assert got == {
        ("messy/no_desc", "tool_description_missing"),
        ("messy/vague", "tool_description_vague"),
        ("messy/get_weather", "tool_description_vague"),
        ("messy/short", "tool_description_vague"),
        ("messy/bad.name", "tool_name_invalid"),
        ("messy/ok_one", "tool_duplicate_name"),
        ("messy/bad_schema", "tool_schema_unmappable"),
        ("good", "server_duplicate_name"),
        ("tiny", "server_too_few_tools"),
    }
    assert {r.reason for r in rejections} == set(tfilter.REASONS)
    assert all(r.detail for r in rejections)
    detail = {r.key: r.detail for r in rejections}
    assert "only restates the tool name" in detail["messy/get_weather"]
    assert "fewer than 3" in detail["messy/short"]
    assert "unknown type 'datetime'" in detail["messy/bad_schema"]


def test_description_rules():
    assert description_problem("x", None)[0] == "tool_description_missing"
    for placeholder in ("n/a", "Description", "function", "tool", "todo."):
        assert description_problem("x", placeholder)[0] == "tool_description_vague"
    assert description_problem("get_user_profile", "Get user profile tool")[0] == "tool_description_vague"
    assert description_problem("getUserProfile", "Gets the user profiles")[0] == "tool_description_vague"
    assert description_problem("get_user_profile", "Get the profile of a user by id") is None
    assert description_problem("f", "Two words", min_words=2) is None
    assert word_count("获取指定城市的天气预报") == 6  # CJK: one word per two characters
    assert description_problem("get_weather", "获取指定城市的天气预报") is None


# ---------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------


def test_astra_jsonl_with_malformed_lines():
    res = ingest([str(JSONL)])
    names = [s.name for s in res.servers]
    assert names == ["flight_booking", "recipes_lite", "crm", "news_feed"]
    assert res.errors == [
        "mcp_servers.jsonl:2: invalid JSON (Expecting value at column 71)",
        "mcp_servers.jsonl:3 [base_info.tool_list]: missing",
        "mcp_servers.jsonl:4 [base_info.tool_list[2].name]: missing",
        "mcp_servers.jsonl:7 [<line>]: expected a JSON object, got list",
        "mcp_servers.jsonl:9 [call_info.type]: unknown transport 'carrier_pigeon' "
        "(expected stdio, sse, streamable_http or http)",
    ]
    flights = res.servers[0]
    assert (flights.title, flights.domain, flights.description) == (
        "Flight Booking", "travel", "Search, book and cancel flights between airports.")
    assert flights.call == CallInfo(kind="mcp_stdio", target="python -m flight_server")
    search = flights.tool("search_flights")
    assert search.parameters["type"] == "object"
    assert search.parameters["properties"]["max_price"] == {
        "type": "number", "description": "Highest acceptable fare in USD.", "default": 1000.0}
    assert search.parameters["properties"]["passengers"]["type"] == "integer"
    assert search.parameters["required"] == ["origin", "destination", "date"]  # 'currency' dropped
    assert search.output_schema == {"type": "object", "properties": {"flights": {"type": "array", "items": {
        "type": "object", "properties": {"flight_id": {"type": "string"}, "price": {"type": "number"}}}}}}
    book = flights.tool("book_flight").parameters["properties"]
    assert book["extras"] == {"type": "array", "description": "Optional extras such as 'bag' or 'meal'.", "items": {}}
    assert book["window_seat"] == {"type": "boolean", "default": False}
    assert book["metadata"] == {"description": "Free-form booking notes."}
    assert flights.tool("cancel_booking").output_schema == {
        "description": "The refund in USD and the cancellation status."}
    assert any("required entry 'currency' is not a property" in f for f in res.fixes["flight_booking/search_flights"])

    recipes = res.servers[1]
    assert (recipes.domain, recipes.title) == ("food", "Recipes Lite")
    assert recipes.call == CallInfo(kind="mcp_http", target="https://recipes.example.com/mcp")
    assert [t.name for t in recipes.tools] == ["find_recipe", "scale_recipe", "recipe_nutrition"]
    assert recipes.tool("recipe_nutrition").output_schema == {"type": "object", "properties": {"kcal": {"type": "number"}}}
    assert res.servers[3].call.kind == "mcp_sse"

    reasons = {(r.key, r.reason) for r in res.rejections}
    assert reasons == {
        ("crm/schedule_call", "tool_schema_unmappable"),
        ("sketchy/get_data", "tool_description_missing"),
        ("sketchy/get_weather", "tool_description_vague"),
        ("sketchy/do_stuff", "tool_description_vague"),
        ("sketchy", "server_too_few_tools"),
    }
    # everything is in the OpenAI function format
    for server in res.servers:
        for entry in server.openai_tools():
            assert entry["type"] == "function"
            assert entry["function"]["parameters"]["type"] == "object"


def test_openai_json_variants(tmp_path):
    res = ingest([str(OPENAI_JSON)], domain="office")
    assert res.errors == ["openai_tools.json [tools[2].function.name]: missing"]
    (cal,) = res.servers
    assert (cal.name, cal.title, cal.domain, cal.call.kind) == ("calendar", "Calendar", "office", "doc_only")
    assert cal.tool("create_event").output_schema == {
        "type": "object", "properties": {"event_id": {"type": "string"}}, "required": ["event_id"]}
    assert cal.tool("create_event").parameters["properties"]["duration_min"] == {
        "type": "integer", "minimum": 5, "maximum": 480, "default": 30}

    fn = {"description": "Reverse the characters of a string.", "parameters": {"type": "object", "properties": {
        "s": {"type": "string"}}, "required": ["s"]}}
    plain = tmp_path / "strings.json"
    plain.write_text(json.dumps([
        {"type": "function", "function": {"name": "reverse", **fn}},
        {"name": "upper", **fn, "description": "Upper-case every letter of a string."},
        {"name": "lower", **fn, "description": "Lower-case every letter of a string."},
    ]))
    (s,) = ingest([str(plain)]).servers
    assert s.name == "strings" and [t.name for t in s.tools] == ["reverse", "upper", "lower"]
    assert ingest([str(plain)], server_name="text").servers[0].name == "text"

    as_text = tmp_path / "as_text.json"  # schemas stored as JSON text are decoded
    as_text.write_text(json.dumps({"tools": [
        {"name": n, "description": f"Convert a string to {n} case.", "parameters": json.dumps(fn["parameters"]),
         "response": "The converted string."} for n in ("upper", "lower", "title")]}))
    (s,) = ingest([str(as_text)]).servers
    assert s.tool("upper").parameters == {**fn["parameters"]}
    assert s.tool("upper").output_schema == {"description": "The converted string."}

    bare = tmp_path / "one.json"
    bare.write_text(json.dumps({"name": "reverse", **fn}))
    res = ingest([str(bare)], min_tools=1)
    assert [t.name for t in res.servers[0].tools] == ["reverse"]
    assert ingest([str(bare)]).rejections[0].reason == "server_too_few_tools"

    broken = tmp_path / "broken.json"
    broken.write_text('{"tools": [\n  {"name": }\n]}')
    with pytest.raises(InputError, match=r"broken.json:2: invalid JSON"):
        ingest([str(broken)])


def test_python_sources():
    res = ingest(["py:tests.fixtures.tools.text_tools", NOTES])
    assert [s.name for s in res.servers] == ["text_tools", "notes"]
    assert res.servers[0].call == CallInfo(kind="python", target="tests.fixtures.tools.text_tools")
    assert res.servers[1].call.target == NOTES
    assert res.servers[1].source == NOTES
    assert not res.errors and not res.rejections
    assert ingest(["py:tests.fixtures.tools.text_tools"], server_name="txt").servers[0].name == "txt"


def test_sample_servers():
    from astra.data.servers import PYTHON_SERVERS

    res = ingest(["sample"])
    by_name = {s.name: s for s in res.servers}
    assert set(PYTHON_SERVERS) <= set(by_name)
    for name in PYTHON_SERVERS:
        assert by_name[name].call.kind == "python"
        assert len(by_name[name].tools) >= 3
    assert any(s.call.kind == "doc_only" for s in res.servers)
    assert not res.errors


def test_source_errors():
    with pytest.raises(InputError, match=r"unknown tool source 'ftp://x'; accepted forms: sample; FILE.jsonl"):
        parse_source("ftp://x")
    with pytest.raises(InputError, match="tool file not found: /nonexistent/servers.jsonl"):
        ingest(["/nonexistent/servers.jsonl"])
    with pytest.raises(InputError, match="Python file not found"):
        ingest(["/nonexistent/tools.py:Foo"])
    with pytest.raises(InputError, match="no tool source given"):
        ingest([])
    with pytest.raises(InputError, match="server_name applies to exactly one"):
        ingest([str(JSONL)], server_name="x")
    with pytest.raises(InputError, match="'stdio:' needs a command"):
        ingest(["stdio:  "])
    assert parse_source("stdio:python -m srv").kind == "mcp_stdio"
    assert parse_source("https://h/mcp").kind == "mcp_http"
    assert parse_source(NOTES).kind == "python"


# ---------------------------------------------------------------------------------
# Live MCP servers
# ---------------------------------------------------------------------------------


def _expected_advertised() -> dict[str, tuple[dict, dict | None]]:
    server = server_from_target(NOTES)
    return {t.name: (t.parameters, wrap_output_schema(t.output_schema)[0]) for t in server.tools}


def test_live_stdio_server_is_ingested_with_schemas_intact():
    source = f"stdio:{SERVE} {NOTES} --page-size 3"  # two pages of tools/list
    res = ingest([source], domain="productivity", timeout=60)
    assert not res.errors and not res.rejections
    (server,) = res.servers
    assert server.name == "notes" and server.domain == "productivity"
    assert server.description.startswith("Keep short notes in memory")
    assert server.call == CallInfo(kind="mcp_stdio", target=f"{SERVE} {NOTES} --page-size 3")
    expected = _expected_advertised()
    assert [t.name for t in server.tools] == list(expected)
    for tool in server.tools:
        assert (tool.parameters, tool.output_schema) == expected[tool.name]
        assert tool.description
    assert res.fixes == {}  # our own schemas need no repair


async def test_mcp_session_calls_and_tool_errors():
    call = CallInfo(kind="mcp_stdio", target=f"{SERVE} {NOTES}")
    async with open_session(call, timeout=60) as session:
        r = await call_tool(session, "add_note", {"title": "milk", "tags": ["shop"]})
        assert not r.is_error and result_payload(r) == {"note_id": 1, "title": "milk", "tags": ["shop"]}
        r = await call_tool(session, "count_notes", {})
        assert result_payload(r) == {"result": 1}  # state kept; scalar output wrapped
        r = await call_tool(session, "get_note", {"note_id": 7})
        assert r.is_error and "no note with id 7" in r.content[0].text
        r = await call_tool(session, "get_note", {"note_id": "x"})
        assert r.is_error and "invalid arguments for tool 'get_note'" in r.content[0].text
        r = await call_tool(session, "nope", {})
        assert r.is_error and "unknown tool 'nope'" in r.content[0].text
    # the sync wrapper also works from inside a running event loop
    assert ingest(["py:tests.fixtures.tools.text_tools"]).servers[0].name == "text_tools"
    res = await ingest_async([f"stdio:{SERVE} tests.fixtures.tools.text_tools"], timeout=60)
    assert [t.name for t in res.servers[0].tools] == ["word_count", "repeat_text", "shout"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_live_http_server_is_ingested(transport):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "astra.tools.mcp_serve", NOTES, f"--{transport}", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"HTTP MCP server did not come up: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        if transport == "http":
            url, source, kind = f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{port}/mcp", "mcp_http"
        else:
            url, source, kind = f"http://127.0.0.1:{port}/sse", f"sse:http://127.0.0.1:{port}/sse", "mcp_sse"
        res = ingest([source], server_name="notes_http", timeout=30)
        (server,) = res.servers
        assert server.name == "notes_http"
        assert server.call == CallInfo(kind=kind, target=url)
        expected = _expected_advertised()
        assert {t.name: (t.parameters, t.output_schema) for t in server.tools} == expected
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_mcp_server_that_fails_or_hangs_gives_clear_errors():
    with pytest.raises(InputError) as ei:
        ingest([f"stdio:{sys.executable} -c \"import sys; print('boom', file=sys.stderr); sys.exit(3)\""], timeout=10)
    assert "did not start or answer the MCP handshake" in str(ei.value)
    assert "boom" in str(ei.value)  # the server's stderr is quoted
    with pytest.raises(InputError, match=r"within 1 s \(.*timed out"):
        ingest([f"stdio:{sys.executable} -c \"import time; time.sleep(30)\""], timeout=1)
    with pytest.raises(InputError, match="MCP HTTP server 'http://127.0.0.1:9/mcp' did not start"):
        ingest(["http://127.0.0.1:9/mcp"], timeout=5)
