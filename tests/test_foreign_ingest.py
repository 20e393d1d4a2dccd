"""Ingestion of tool sets written outside this project: doc-only markers seen in public
files, BFCL-style function docs, library tool markers, per-tool rejection, targets as typed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from astra.cli import app
from astra.tools.filter import description_problem, filter_servers
from astra.tools.ingest import ingest
from astra.tools.pyfunc import make_python_executor, returns_fields, server_from_target
from astra.types import Tool, ToolServer

FIX = Path(__file__).parent / "fixtures" / "foreign"
KITS = (FIX / "toolkits.py").resolve()


def test_mock_tool_marker_is_doc_only_and_a_bad_line_loses_nothing_else():
    res = ingest([str(FIX / "astra_mock_servers.jsonl")])
    assert [s.name for s in res.servers] == ["stock_quotes", "city_guide"]
    assert all(s.call.kind == "doc_only" for s in res.servers)
    assert [len(s.tools) for s in res.servers] == [4, 3]
    assert len(res.errors) == 1 and "astra_mock_servers.jsonl:3" in res.errors[0]
    assert "tool_list" in res.errors[0]


def test_bfcl_function_docs_json_lines_form_one_server():
    res = ingest([str(FIX / "bfcl_style_docs.json")])
    assert [s.name for s in res.servers] == ["bfcl_style_docs"]
    server = res.servers[0]
    assert [t.name for t in server.tools] == ["list_notes", "read_note", "delete_note"]
    assert server.tool("list_notes").output_schema["properties"]["note_ids"]["type"] == "array"
    assert server.tool("read_note").parameters["properties"]["note_id"]["type"] == "integer"


def test_library_markers_only_marked_methods_and_the_typed_target_is_stored():
    target = f"{KITS}:Shop"
    server = server_from_target(target)
    assert [t.name for t in server.tools] == ["find_user_id_by_email", "get_user_details", "get_order_details"]
    assert server.call.target == target  # not ..._make_wrapper.<locals>.Shop
    ex = make_python_executor(server.call.target)
    assert ex.call("find_user_id_by_email", {"email": "ana@example.com"}) == "ana_1"
    assert ex.kind("get_user_details") == "read"
    # a bare str result keeps its description; a docstring whose text sits in Args is kept
    assert server.tool("find_user_id_by_email").output_schema == {"type": "string",
                                                                   "description": "The user id if found."}
    assert "Returns the status" in server.tool("get_order_details").description


def test_one_bad_method_drops_that_tool_with_its_reason_not_the_server(tmp_path):
    res = ingest([f"{KITS}:PlainKit"])
    assert [t.name for t in res.servers[0].tools] == ["add", "negate", "double"]
    (rej,) = res.rejections
    assert rej.key == "plain_kit/configure" and rej.reason == "tool_schema_unmappable"
    assert "**kwargs" in rej.detail
    out = tmp_path / "tools.jsonl"
    r = CliRunner().invoke(app, ["tools", "ingest", f"{KITS}:PlainKit", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "plain_kit/configure" in r.output and "kwargs" in r.output
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["dropped"][0]["key"] == "plain_kit/configure"
    assert "kwargs" in manifest["dropped"][0]["detail"]


def test_terse_description_with_documented_arguments_is_not_vague():
    place = Tool(name="place_order", description="Place an order.", parameters={
        "type": "object", "required": ["symbol", "amount"], "properties": {
            "symbol": {"type": "string", "description": "Symbol of the stock to trade."},
            "amount": {"type": "integer", "description": "Number of shares to buy or sell."}}})
    bare = Tool(name="place_order", description="Place an order.")
    kept, rej = filter_servers([ToolServer(name="s", tools=[place, bare.model_copy(update={"name": "cancel_order",
                                                                                          "description": "Cancel an order."}),
                                                            Tool(name="x", description="Does a useful described thing.")])],
                               min_tools=1)
    assert [t.name for t in kept[0].tools] == ["place_order", "x"]
    assert rej[0].key == "s/cancel_order"
    assert description_problem("get_watchlist", "Get the watchlist.") is not None


def test_bfcl_style_returns_section_becomes_output_fields():
    doc = """Get the details of an order.

    Args:
        order_id (int): ID of the order.

    Returns:
        id (int): ID of the order.
        symbol (str): Symbol of the stock in the order.
        MA(5) (float): 5-day moving average.
        history (List[str]): Earlier states.
            - state (str): one state
    """
    import inspect

    fields = returns_fields(inspect.cleandoc(doc))
    assert fields == {"id": {"type": "integer", "description": "ID of the order."},
                      "symbol": {"type": "string", "description": "Symbol of the stock in the order."},
                      "history": {"type": "array", "items": {"type": "string"}, "description": "Earlier states."}}
