"""Normalize JSON schemas to what the OpenAI function-tool format accepts.

Tool documents in the wild use many dialects: BFCL/ASTRA write ``"type": "dict"`` and
``"float"``, pydantic adds ``title`` keys and ``$defs``, OpenAPI writes ``nullable``, old
drafts put ``"required": true`` on a property. :func:`normalize_parameters` maps all of
these onto plain JSON Schema (``object``/``string``/``number``/``integer``/``boolean``/
``array``/``null``) with inlined local references, and raises
:class:`~astra.errors.ToolSchemaError` -- naming where -- for anything it cannot map.
Nothing is silently replaced: every change is appended to an optional ``fixes`` list.
:func:`json_types` reads the types a (normalized or raw) schema admits.

The functions are pure: they never mutate their input.
"""

from __future__ import annotations

from typing import Any

from astra.errors import ToolSchemaError

JSON_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")

TYPE_ALIASES: dict[str, str | None] = {
    **{t: t for t in JSON_TYPES},
    "dict": "object",
    "map": "object",
    "float": "number",
    "double": "number",
    "decimal": "number",
    "int": "integer",
    "long": "integer",
    "bool": "boolean",
    "str": "string",
    "text": "string",
    "list": "array",
    "tuple": "array",
    "none": "null",
    "any": None,  # no constraint: the key is dropped
}

# JSON-Schema keywords kept as they are (after a type check where one makes sense).
_KEEP_SCALAR = {
    "description",
    "format",
    "default",
    "const",
    "examples",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "contentMediaType",
    "contentEncoding",
    "deprecated",
    "readOnly",
    "writeOnly",
}
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
# Keys dropped without changing the meaning for a function-calling model.
_DROP_QUIETLY = {"title", "$schema", "$id", "$comment", "$defs", "definitions", "example"}

_PY_CHECK = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def json_types(schema: Any, *, enum_value_types: bool = False) -> set[str]:
    """The JSON types a schema admits (``null`` dropped; BFCL's ``dict`` read as ``object``);
    empty when unknown. ``anyOf`` / ``oneOf`` / ``allOf`` admit what their members admit.

    A schema with no type but an ``enum`` admits ``string`` when every value is a string
    (else its type is unknown); with ``enum_value_types``, each non-null value admits its own
    kind instead: ``string`` for a string, ``number`` for anything else."""
    if not isinstance(schema, dict):
        return set()
    out: set[str] = set()
    t = schema.get("type")
    if isinstance(t, str):
        out.add(t)
    elif isinstance(t, list):
        out.update(x for x in t if isinstance(x, str))
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            out |= json_types(sub, enum_value_types=enum_value_types)
    values = schema.get("enum")
    if not out and isinstance(values, list):
        if enum_value_types:
            out.update("string" if isinstance(v, str) else "number" for v in values if v is not None)
        elif values and all(isinstance(v, str) for v in values):
            out.add("string")
    out.discard("null")
    if "dict" in out:
        out.discard("dict")
        out.add("object")
    return out


def normalize_parameters(schema: Any, *, where: str, fixes: list[str] | None = None) -> dict[str, Any]:
    """Normalize a tool's parameter schema; the result is always an ``object`` schema
    with ``properties`` and ``required``.

    ``where`` names the tool for error messages (``"server 'x' tool 'y'"``); ``fixes``,
    when given, receives one line per change made (dropped ``required`` entries, type
    aliases, added defaults, ...). Raises :class:`ToolSchemaError` when the schema
    cannot be mapped.
    """
    if schema is None:
        schema = {}
    if not isinstance(schema, dict):
        raise ToolSchemaError(f"{where}: parameters must be a JSON object, got {type(schema).__name__}")
    n = _Normalizer(schema, where=where, fixes=fixes)
    top = dict(schema)
    if "type" not in top and "$ref" not in top:
        top["type"] = "object"
        n.fix("", "missing top-level type set to 'object'")
    out = n.node(top, path="")
    if out.get("type") != "object":
        raise ToolSchemaError(
            f"{where}: top-level parameters must be of type 'object', got {out.get('type')!r}"
        )
    out.setdefault("properties", {})
    if "required" not in out:
        out["required"] = []
        n.fix("", "missing 'required' set to []")
    return out


def normalize_output_schema(
    schema: Any, *, where: str, fixes: list[str] | None = None
) -> dict[str, Any] | None:
    """Normalize a tool's output (response) schema; any top-level type is allowed.

    ``None`` stays ``None`` (no output schema). Raises :class:`ToolSchemaError` like
    :func:`normalize_parameters`.
    """
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise ToolSchemaError(f"{where} output: schema must be a JSON object, got {type(schema).__name__}")
    n = _Normalizer(schema, where=f"{where} output", fixes=fixes, noun="field", fix_prefix="output ")
    top = dict(schema)
    if "type" not in top and "$ref" not in top and "properties" in top:
        top["type"] = "object"
        n.fix("", "missing top-level type set to 'object'")
    return n.node(top, path="")


def normalize_type(value: Any, *, where: str = "schema") -> str | list[str] | None:
    """Map a type name (or list of names) to JSON-Schema; ``None`` means unconstrained."""
    return _Normalizer({}, where=where, fixes=None).type_of(value, path="")


class _Normalizer:
    def __init__(self, root: dict[str, Any], *, where: str, fixes: list[str] | None,
                 noun: str = "parameter", fix_prefix: str = ""):
        self.root = root
        self.where = where
        self.fixes = fixes
        self.noun = noun
        self.fix_prefix = fix_prefix
        self.ref_stack: list[str] = []

    # -- reporting ---------------------------------------------------------------
    def at(self, path: str) -> str:
        return f"{self.where} {self.noun} {path!r}" if path else self.where

    def error(self, path: str, message: str) -> ToolSchemaError:
        return ToolSchemaError(f"{self.at(path)}: {message}")

    def fix(self, path: str, message: str) -> None:
        if self.fixes is not None:
            self.fixes.append(f"{self.fix_prefix}{path or '<root>'}: {message}")

    # -- references ----------------------------------------------------------------
    def resolve(self, ref: Any, path: str) -> dict[str, Any]:
        if not isinstance(ref, str):
            raise self.error(path, f"$ref must be a string, got {ref!r}")
        if not ref.startswith("#"):
            raise self.error(path, f"non-local $ref {ref!r} cannot be inlined")
        if ref in self.ref_stack or ref in ("#", "#/"):
            raise self.error(path, f"cyclic $ref {ref!r} cannot be inlined")
        node: Any = self.root
        for raw in ref[1:].lstrip("/").split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.error(path, f"$ref {ref!r} does not resolve")
        if not isinstance(node, dict):
            raise self.error(path, f"$ref {ref!r} does not point to a schema object")
        return node

    # -- types ---------------------------------------------------------------------
    def type_name(self, value: str, path: str) -> str | None:
        """The JSON type a type name stands for (None: any)."""
        key = value.strip().lower()
        if key not in TYPE_ALIASES:
            raise self.error(path, f"unknown type {value!r} (expected one of {', '.join(JSON_TYPES)})")
        mapped = TYPE_ALIASES[key]
        if mapped != value:
            self.fix(path, f"type {value!r} -> {mapped!r}" if mapped else f"type {value!r} dropped")
        return mapped

    def type_of(self, value: Any, path: str) -> str | list[str] | None:
        if isinstance(value, str):
            return self.type_name(value, path)
        if isinstance(value, list):
            if not value:
                raise self.error(path, "empty type list")
            out: list[str] = []
            for item in value:
                if not isinstance(item, str):
                    raise self.error(path, f"type list entries must be strings, got {item!r}")
                mapped = self.type_name(item, path)
                if mapped is None:  # "any" in a union: the union is unconstrained
                    return None
                if mapped not in out:
                    out.append(mapped)
            return out[0] if len(out) == 1 else out
        raise self.error(path, f"type must be a string or list of strings, got {value!r}")

    # -- nodes ---------------------------------------------------------------------
    def node(self, schema: Any, path: str) -> dict[str, Any]:
        if isinstance(schema, bool):
            if schema:
                return {}
            raise self.error(path, "schema 'false' accepts nothing")
        if isinstance(schema, str):
            # shorthand {"city": "string"}: a bare type name
            t = self.type_of(schema, path)
            self.fix(path, f"bare type name {schema!r} expanded to a schema")
            return self.node({"type": t} if t else {}, path)
        if not isinstance(schema, dict):
            raise self.error(path, f"schema must be a JSON object, got {type(schema).__name__}")

        if "$ref" in schema:
            ref = schema["$ref"]
            target = self.resolve(ref, path)
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            self.ref_stack.append(ref)
            try:
                merged = {**target, **siblings}
                return self.node(merged, path)
            finally:
                self.ref_stack.pop()

        out: dict[str, Any] = {}
        t = None
        if "type" in schema:
            t = self.type_of(schema["type"], path)
        elif "properties" in schema:
            t = "object"
            self.fix(path, "missing type set to 'object' (has properties)")
        elif "items" in schema:
            t = "array"
            self.fix(path, "missing type set to 'array' (has items)")
        if schema.get("nullable") is True and t is not None:
            union = [t] if isinstance(t, str) else list(t)
            if "null" not in union:
                union.append("null")
            t = union
            self.fix(path, "'nullable: true' -> type includes 'null'")
        if t is not None:
            out["type"] = t
        types = set([t] if isinstance(t, str) else (t or []))

        for key, value in schema.items():
            if key in ("type", "nullable", "$ref"):
                continue
            if key in _DROP_QUIETLY:
                continue
            if key == "description":
                if value is None:
                    continue
                if not isinstance(value, str):
                    raise self.error(path, f"description must be a string, got {value!r}")
                out[key] = value
            elif key in _KEEP_SCALAR:
                out[key] = value
            elif key == "enum":
                out[key] = self.enum(value, t, path)
            elif key in _SUBSCHEMA_LISTS:
                if not isinstance(value, list) or not value:
                    raise self.error(path, f"{key} must be a non-empty list of schemas")
                out[key] = [self.node(s, f"{path}<{key}[{i}]>" if path else f"<{key}[{i}]>")
                            for i, s in enumerate(value)]
            elif key == "not":
                out[key] = self.node(value, path)
            elif key in ("properties", "required", "items", "additionalProperties", "optional"):
                pass  # handled below with the type
            elif key == "prefixItems":
                pass
            else:
                self.fix(path, f"non-standard key {key!r} dropped")

        if "object" in types or "properties" in schema:
            self.object_parts(schema, out, path)
        if "array" in types or "items" in schema or "prefixItems" in schema:
            self.array_parts(schema, out, path, is_array="array" in types)

        for key in _SUBSCHEMA_LISTS:
            if key in out:
                simplified = _simple_union(out, key)
                if simplified is not None:
                    out = simplified
                    self.fix(path, f"{key} of bare types -> type list")
        return out

    def enum(self, value: Any, t: str | list[str] | None, path: str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.error(path, f"enum must be a non-empty list, got {value!r}")
        if t is None:
            return list(value)
        types = [t] if isinstance(t, str) else t
        for v in value:
            if not any(_PY_CHECK[x](v) for x in types):
                raise self.error(path, f"enum value {v!r} does not match type {t!r}")
        return list(value)

    def object_parts(self, schema: dict[str, Any], out: dict[str, Any], path: str) -> None:
        props = schema.get("properties", {})
        if props is None:
            props = {}
        if not isinstance(props, dict):
            raise self.error(path, f"properties must be a JSON object, got {type(props).__name__}")
        if "properties" not in schema:
            self.fix(path, "missing 'properties' set to {}")
        out_props: dict[str, Any] = {}
        implied_required: list[str] = []
        for pname, pschema in props.items():
            if not isinstance(pname, str) or not pname:
                raise self.error(path, f"property names must be non-empty strings, got {pname!r}")
            ppath = f"{path}.{pname}" if path else pname
            if isinstance(pschema, dict):
                # draft-3 style "required": true / "optional": false on the property itself
                preq = pschema.get("required")
                popt = pschema.get("optional")
                if isinstance(preq, bool) or isinstance(popt, bool):
                    pschema = {k: v for k, v in pschema.items() if not (
                        (k == "required" and isinstance(v, bool)) or (k == "optional" and isinstance(v, bool)))}
                    if preq is True or popt is False:
                        implied_required.append(pname)
                    self.fix(ppath, "property-level required/optional flag moved to the parent's 'required'")
            out_props[pname] = self.node(pschema, ppath)
        out["properties"] = out_props

        req = schema.get("required")
        if req is None or isinstance(req, bool):
            req_list: list[str] = []
        elif isinstance(req, str):
            req_list = [req]
            self.fix(path, "'required' given as a string -> list")
        elif isinstance(req, list):
            req_list = []
            for r in req:
                if not isinstance(r, str):
                    raise self.error(path, f"required entries must be strings, got {r!r}")
                req_list.append(r)
        else:
            raise self.error(path, f"required must be a list of property names, got {req!r}")
        kept: list[str] = []
        for r in [*req_list, *implied_required]:
            if r in kept:
                continue
            if r not in out_props:
                self.fix(path, f"required entry {r!r} is not a property: dropped")
                continue
            kept.append(r)
        if "required" in schema or implied_required:
            out["required"] = kept

        if "additionalProperties" in schema:
            ap = schema["additionalProperties"]
            out["additionalProperties"] = ap if isinstance(ap, bool) else self.node(
                ap, f"{path}{{*}}" if path else "{*}")

    def array_parts(self, schema: dict[str, Any], out: dict[str, Any], path: str, *, is_array: bool) -> None:
        ipath = f"{path}[]" if path else "[]"
        items = schema.get("items", schema.get("prefixItems"))
        if items is None:
            if is_array:
                out["items"] = {}
                self.fix(path, "missing 'items' set to {}")
            return
        if isinstance(items, list):
            if not items:
                out["items"] = {}
                return
            normalized = [self.node(s, f"{ipath}{i}") for i, s in enumerate(items)]
            unique: list[dict[str, Any]] = []
            for s in normalized:
                if s not in unique:
                    unique.append(s)
            out["items"] = unique[0] if len(unique) == 1 else {"anyOf": unique}
            self.fix(path, "tuple-style 'items' list -> a single items schema")
            return
        out["items"] = self.node(items, ipath)


def _simple_union(out: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``{"anyOf": [{"type": "integer"}, {"type": "null"}]}`` -> ``{"type": [...]}``."""
    if key == "allOf" or "type" in out:
        return None
    branches = out[key]
    names: list[str] = []
    for b in branches:
        if set(b) != {"type"} or not isinstance(b["type"], str):
            return None
        if b["type"] not in names:
            names.append(b["type"])
    new = {k: v for k, v in out.items() if k != key}
    new["type"] = names[0] if len(names) == 1 else names
    return new
