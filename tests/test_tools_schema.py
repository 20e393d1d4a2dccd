"""Normalization of tool JSON schemas to the OpenAI function format (astra.tools.schema)."""

from __future__ import annotations

import copy

import pytest

from astra.errors import ToolSchemaError
from astra.tools.schema import normalize_output_schema, normalize_parameters, normalize_type

W = "server 's' tool 't'"


def norm(schema, fixes=None):
    return normalize_parameters(schema, where=W, fixes=fixes)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("dict", "object"), ("float", "number"), ("double", "number"), ("int", "integer"), ("long", "integer"),
        ("bool", "boolean"), ("str", "string"), ("text", "string"), ("list", "array"), ("tuple", "array"),
        ("array", "array"), ("String", "string"), ("any", None), (["string", "null"], ["string", "null"]),
        (["int", "float"], ["integer", "number"]), (["str"], "string"), (["string", "any"], None),
    ],
)
def test_type_aliases(given, expected):
    assert normalize_type(given) == expected


def test_bfcl_style_dict_schema_is_mapped_and_fixes_are_listed():
    fixes: list[str] = []
    out = norm({
        "type": "dict",
        "properties": {
            "city": {"type": "string", "description": "City.", "title": "City"},
            "days": {"type": "int", "default": 3, "minimum": 1, "maximum": 14},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "when": {"type": "string", "format": "date"},
            "extra": {"type": "any", "description": "Anything."},
            "tags": {"type": "list"},
        },
        "required": ["city", "country"],
    }, fixes)
    assert out == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City."},
            "days": {"type": "integer", "default": 3, "minimum": 1, "maximum": 14},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "when": {"type": "string", "format": "date"},
            "extra": {"description": "Anything."},
            "tags": {"type": "array", "items": {}},
        },
        "required": ["city"],
    }
    joined = "\n".join(fixes)
    assert "type 'dict' -> 'object'" in joined
    assert "required entry 'country' is not a property: dropped" in joined
    assert "tags: missing 'items' set to {}" in joined


def test_missing_pieces_at_top_level():
    fixes: list[str] = []
    assert norm({"properties": {"a": {"type": "string"}}}, fixes) == {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    assert any("missing top-level type" in f for f in fixes)
    assert norm({}) == {"type": "object", "properties": {}, "required": []}
    assert norm(None) == {"type": "object", "properties": {}, "required": []}
    assert norm({"type": "object"}) == {"type": "object", "properties": {}, "required": []}


def test_nested_objects_and_arrays_are_normalized_recursively():
    out = norm({
        "type": "object",
        "properties": {
            "items": {"type": "list", "items": {"type": "dict", "properties": {
                "sku": {"type": "str"}, "qty": {"type": "long"}}, "required": ["sku", "nope"]}},
            "address": {"properties": {"zip": {"type": "string"}}},
        },
    })
    assert out["properties"]["items"] == {"type": "array", "items": {
        "type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["sku"]}}
    assert out["properties"]["address"] == {"type": "object", "properties": {"zip": {"type": "string"}}}


def test_type_list_nullable_and_draft3_required_flags():
    out = norm({"type": "object", "properties": {
        "a": {"type": ["string", "null"]},
        "b": {"type": "integer", "nullable": True},
        "c": {"type": "string", "required": True},
        "d": {"type": "string", "optional": True},
    }})
    assert out["properties"]["a"] == {"type": ["string", "null"]}
    assert out["properties"]["b"] == {"type": ["integer", "null"]}
    assert out["properties"]["c"] == {"type": "string"}
    assert out["required"] == ["c"]


def test_local_refs_are_inlined_and_pydantic_titles_stripped():
    schema = {
        "title": "Args",
        "type": "object",
        "$defs": {"Loc": {"title": "Loc", "type": "object", "properties": {
            "lat": {"title": "Lat", "type": "number"}}, "required": ["lat"]}},
        "properties": {
            "loc": {"$ref": "#/$defs/Loc", "description": "Where."},
            "maybe": {"anyOf": [{"$ref": "#/$defs/Loc"}, {"type": "null"}], "default": None},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "N"},
        },
        "required": ["loc"],
    }
    before = copy.deepcopy(schema)
    out = norm(schema)
    assert schema == before  # pure
    loc = {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]}
    assert out["properties"]["loc"] == {**loc, "description": "Where."}
    assert out["properties"]["maybe"] == {"anyOf": [loc, {"type": "null"}], "default": None}
    assert out["properties"]["n"] == {"type": ["integer", "null"]}
    assert "$defs" not in out and "title" not in out


def test_property_named_title_is_kept():
    out = norm({"type": "object", "properties": {"title": {"type": "string", "title": "Title"}}})
    assert out["properties"] == {"title": {"type": "string"}}


def test_normalization_is_idempotent():
    once = norm({"type": "dict", "properties": {"x": {"type": "list", "items": {"type": "dict"}}}, "required": ["x"]})
    assert norm(once) == once


def test_tuple_items_list_becomes_one_items_schema():
    out = norm({"type": "object", "properties": {"p": {"type": "tuple", "items": [{"type": "int"}, {"type": "int"}]}}})
    assert out["properties"]["p"] == {"type": "array", "items": {"type": "integer"}}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("not a schema", "parameters must be a JSON object"),
        ({"type": "object", "properties": {"when": {"type": "datetime"}}}, "parameter 'when': unknown type 'datetime'"),
        ({"type": "array", "items": {"type": "string"}}, "top-level parameters must be of type 'object'"),
        ({"type": "object", "properties": {"n": {"$ref": "https://example.com/n.json"}}}, "non-local $ref"),
        ({"type": "object", "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
          "properties": {"head": {"$ref": "#/$defs/Node"}}}, "cyclic $ref '#/$defs/Node'"),
        ({"type": "object", "properties": {"n": {"$ref": "#/$defs/Missing"}}}, "does not resolve"),
        ({"type": "object", "properties": {"k": {"type": "integer", "enum": [1, "two"]}}}, "enum value 'two' does not match"),
        ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "date"}}}}},
          "parameter 'a.b': unknown type 'date'"),
        ({"type": "object", "properties": []}, "properties must be a JSON object"),
        ({"type": "object", "properties": {"a": {"type": "string", "description": 5}}}, "description must be a string"),
    ],
)
def test_unmappable_schemas_raise_with_location(schema, message):
    with pytest.raises(ToolSchemaError) as ei:
        norm(schema)
    assert str(ei.value).startswith(W)
    assert message in str(ei.value)


def test_output_schema_any_root_type_and_none():
    assert normalize_output_schema(None, where=W) is None
    assert normalize_output_schema({"type": "list", "items": {"type": "float"}}, where=W) == {
        "type": "array", "items": {"type": "number"}}
    fixes: list[str] = []
    out = normalize_output_schema({"type": "dict", "properties": {"id": {"type": "str"}}}, where=W, fixes=fixes)
    assert out == {"type": "object", "properties": {"id": {"type": "string"}}}
    assert fixes and all(f.startswith("output ") for f in fixes)
    with pytest.raises(ToolSchemaError, match=r"tool 't' output field 'x': unknown type"):
        normalize_output_schema({"type": "object", "properties": {"x": {"type": "bogus"}}}, where=W)
