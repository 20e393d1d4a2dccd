"""Python functions/classes/modules as tools (astra.tools.pyfunc)."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Literal, TypedDict

import pytest
from pydantic import BaseModel

from astra.errors import InputError, ToolCallError, ToolSchemaError
from astra.tools.pyfunc import (
    load_python_target,
    make_python_executor,
    server_from_class,
    server_from_module,
    tool_from_callable,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tools"
NOTES_FILE = FIXTURES / "notes_server.py"


class Forecast(TypedDict):
    city: str
    highs: list[float]


class Place(BaseModel):
    name: str
    lat: float


def get_forecast(city: str, days: int = 3, unit: Literal["c", "f"] = "c", near: Place | None = None) -> Forecast:
    """Get the daily forecast for a city.

    Highs only, in the requested unit.

    Args:
        city: Name of the city,
            for example Oslo.
        days: How many days to cover.
        unit: Temperature unit.

    Returns:
        The forecast per day.
    """
    return {"city": city, "highs": [1.0] * days}


def test_tool_from_google_docstring_and_type_hints():
    tool = tool_from_callable(get_forecast)
    assert tool.name == "get_forecast"
    assert tool.description == "Get the daily forecast for a city.\n\nHighs only, in the requested unit."
    props = tool.parameters["properties"]
    assert props["city"] == {"type": "string", "description": "Name of the city, for example Oslo."}
    assert props["days"] == {"type": "integer", "default": 3, "description": "How many days to cover."}
    assert props["unit"]["enum"] == ["c", "f"] and props["unit"]["type"] == "string"
    assert props["near"]["anyOf"][0] == {"type": "object", "properties": {
        "name": {"type": "string"}, "lat": {"type": "number"}}, "required": ["name", "lat"]}
    assert tool.parameters["required"] == ["city"]
    assert tool.output_schema == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "highs": {"type": "array", "items": {"type": "number"}}},
        "required": ["city", "highs"],
        "description": "The forecast per day.",
    }
    assert tool.openai()["function"]["parameters"] is tool.parameters


def rest_style(text: str, times: int = 2) -> list[str]:
    """Repeat a text.

    :param text: What to repeat.
    :param times: How often.
    """
    return [text] * times


def no_hints(a, b=1):
    """Add two things together."""
    return a + b


def test_rest_docstring_list_output_and_missing_hints():
    tool = tool_from_callable(rest_style, name="repeat")
    assert tool.name == "repeat"
    assert tool.parameters["properties"]["text"]["description"] == "What to repeat."
    assert tool.output_schema == {"type": "array", "items": {"type": "string"}}
    loose = tool_from_callable(no_hints)
    assert loose.parameters["properties"]["a"] == {}
    assert loose.parameters["required"] == ["a"]
    assert loose.output_schema is None


def test_pydantic_model_output_and_scalar_output():
    def find(name: str) -> Place:
        """Find a place by name."""
        return Place(name=name, lat=0.0)

    def count() -> int:
        """Count all places."""
        return 0

    assert tool_from_callable(find).output_schema == {
        "type": "object", "properties": {"name": {"type": "string"}, "lat": {"type": "number"}},
        "required": ["name", "lat"]}
    assert tool_from_callable(count).output_schema == {"type": "integer"}


def test_varargs_cannot_be_tools():
    def bad(*args: int) -> None:
        """Takes anything."""

    with pytest.raises(ToolSchemaError, match=r"python tool 'bad' parameter 'args'"):
        tool_from_callable(bad)


def test_server_from_class_file_target():
    cls = load_python_target(f"{NOTES_FILE}:NotesServer")
    server = server_from_class(cls, source="test")
    assert server.name == "notes" and server.title == "Notes" and server.domain == "productivity"
    assert server.description.startswith("Keep short notes in memory")
    assert [t.name for t in server.tools] == ["add_note", "list_notes", "get_note", "count_notes"]
    assert server.call.kind == "python" and server.call.target == f"{NOTES_FILE.resolve()}:NotesServer"
    add = server.tool("add_note")
    assert add.parameters["properties"]["tags"] == {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
        "default": None, "description": "Labels to file the note under."}
    # typing.TypedDict return (Python 3.11) is supported
    assert add.output_schema["properties"]["note_id"] == {"type": "integer"}
    assert server.tool("list_notes").output_schema["type"] == "array"


def test_server_from_module_excludes_private_and_imported():
    module = importlib.import_module("tests.fixtures.tools.text_tools")
    server = server_from_module(module)
    assert server.name == "text_tools" and server.domain == "utilities"
    assert [t.name for t in server.tools] == ["word_count", "repeat_text", "shout"]
    assert server.call.target == "tests.fixtures.tools.text_tools"
    assert server_from_module(module, name="txt", domain="nlp").name == "txt"


def test_load_python_target_errors():
    with pytest.raises(InputError, match="module 'no_such_module_xyz' not found"):
        load_python_target("no_such_module_xyz:Foo")
    with pytest.raises(InputError, match="has no attribute 'Missing'"):
        load_python_target("tests.fixtures.tools.text_tools:Missing")
    with pytest.raises(InputError, match="not a class"):
        load_python_target("tests.fixtures.tools.text_tools:shout")
    with pytest.raises(InputError, match="Python file not found"):
        load_python_target("/nonexistent/tools.py:X")


def test_executor_state_validation_and_errors():
    ex = make_python_executor(f"{NOTES_FILE}:NotesServer")
    assert ex.call("add_note", {"title": "a", "tags": ["x"]}) == {"note_id": 1, "title": "a", "tags": ["x"]}
    assert ex.call("add_note", '{"title": "b"}')["note_id"] == 2  # JSON-string arguments
    assert ex.call("get_note", {"note_id": "1"})["title"] == "a"  # lax coercion "1" -> 1
    assert ex.call("count_notes", None) == 2
    assert make_python_executor(f"{NOTES_FILE}:NotesServer").call("count_notes", {}) == 0  # fresh state

    cases = [
        (("nope", {}), "unknown tool 'nope'; available tools: add_note, list_notes, get_note, count_notes"),
        (("get_note", {}), "missing required argument 'note_id'"),
        (("get_note", {"note_id": 1, "x": 2}), "unexpected argument 'x'"),
        (("get_note", {"note_id": "one"}), "'note_id': Input should be a valid integer"),
        (("get_note", "{not json"), "not valid JSON"),
        (("get_note", [1]), "must be a JSON object"),
        (("get_note", {"note_id": 99}), "no note with id 99"),  # raised by the implementation
    ]
    for args, message in cases:
        with pytest.raises(ToolCallError) as ei:
            ex.call(*args)
        assert message in str(ei.value)


def test_module_executor_and_async_tools(tmp_path):
    ex = make_python_executor("tests.fixtures.tools.text_tools")
    assert ex.call("repeat_text", {"text": "ab", "times": 3, "separator": "-"}) == "ab-ab-ab"
    assert ex.call("word_count", {"text": "one two three"}) == 3

    f = tmp_path / "async_tools.py"
    f.write_text(
        "class Clock:\n"
        "    name = 'clock'\n"
        "    async def now(self, tz: str = 'UTC') -> str:\n"
        "        '''Tell the current time in a time zone.'''\n"
        "        return 'noon ' + tz\n")
    aex = make_python_executor(f"{f}:Clock")
    assert aex.call("now", {}) == "noon UTC"
    assert asyncio.run(aex.acall("now", {"tz": "CET"})) == "noon CET"
