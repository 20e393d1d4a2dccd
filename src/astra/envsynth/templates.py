"""The offline synthesizer: tools, call statements and code rendered from a plan entry.

For an instance composed from a knowledge world (``QAInstance.meta["plan"]``, see
:mod:`astra.envsynth.compose`), every tool sub-task is turned into a tool without an LLM:

- **name** = the plan's ``tool_intent`` (``get_<field>_of_<type>`` / ``find_<type>_by_<field>``);
- **parameters**: the key — for a lookup the entity's name (``film: str``), for a search the
  value searched for (``director: str``; typed from the world for attribute searches) —
  plus the *complexity scaling* of the ASTRA method §2.3 (``scale`` = how many optional parameters):
  ``response_format`` (``"object"`` | ``"sentence"``), then ``strict_match`` (lookups:
  exact-name matching instead of case/space-insensitive) or ``limit`` (searches, 1..50).
  Every added parameter is optional with a default that keeps the gold call's result;
- **description**: a docstring-style text from the world's labels, with no entity value
  and no answer in it (checked by :func:`astra.envsynth.synth.spec_leaks` like any spec);
- **code** (standard library only): ``MOCK_DATA`` = the field for **every** entity of the
  type in the world (so the tool is a lookup over a table, not a constant), input checks
  that raise ``ValueError`` with a clear message (wrong types, unknown names — saying how
  to find valid ones, bad enum values), returning ``{"<type>": name, "<field>": value}``
  (lookup) or ``{"<field>": value, "count": n, "matches": [{"<type>": name}, ...]}`` (search);
- **call statement** ``tool_intent(<param>="<key>")``.

The result is verified in the sandbox exactly like LLM-written code
(:func:`astra.envsynth.synth.verify_tool`). Because the table holds the whole entity type,
every sub-task of one instance with the same intent is served by the same code — merging
 still re-runs every member's call against it.
"""

from __future__ import annotations

import keyword
import pprint
from dataclasses import dataclass
from typing import Any

from astra.envsynth.worlds import AttributeSpec, World, load_world
from astra.types import Tool

MAX_SCALE = 2
_JSON_TYPE = {"str": "string", "int": "integer", "float": "number", "date": "string", "entity": "string"}


@dataclass
class RenderedTool:
    """A tool rendered for one plan entry."""

    tool: Tool
    code: str
    call: str
    intent: str


def _ident(s: str) -> str:
    out = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in s).strip("_") or "value"
    if out[0].isdigit():
        out = "v_" + out
    if keyword.iskeyword(out):
        out += "_"
    return out


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def param_name(entry: dict[str, Any]) -> str:
    """The key parameter of a plan entry's tool."""
    return _ident(entry["entity_type"] if entry["operation"] == "lookup" else entry["attribute"])


def _key_type(world: World, entry: dict[str, Any]) -> str:
    """``str|int|float|date`` of the key parameter."""
    if entry["operation"] == "lookup":
        return "str"
    spec = world.field_spec(entry["entity_type"], entry["attribute"])
    return spec.type if isinstance(spec, AttributeSpec) else "str"


def _key_value(world: World, entry: dict[str, Any]) -> Any:
    """The call's key as a typed Python literal."""
    t = _key_type(world, entry)
    v = entry["entity"]
    if t == "int":
        return int(float(str(v).replace(",", "")))
    if t == "float":
        return float(str(v).replace(",", ""))
    return str(v)


def render_call(name: str, kwargs: dict[str, Any]) -> str:
    """``name(a="x", b=2)`` with literal arguments (``repr`` of plain data)."""
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


def plan_call(world: World, entry: dict[str, Any]) -> str:
    """The gold call statement of a plan entry."""
    return render_call(entry["tool_intent"], {param_name(entry): _key_value(world, entry)})


def _table(world: World, etype: str, field: str) -> dict[str, Any]:
    """``{entity name: field value}`` for every entity of ``etype`` (None where an optional
    relation is absent). Values are JSON-ready: names, ints, floats, ISO date strings."""
    return {name: world.get(etype, name, field) for name in sorted(world.names(etype))}


def _describe(world: World, entry: dict[str, Any], scale: int) -> tuple[str, dict[str, Any]]:
    etype, field = entry["entity_type"], entry["attribute"]
    et = world.types[etype]
    spec = world.field_spec(etype, field)
    label = spec.label
    tdesc = (et.description or "").strip().rstrip(".")
    about = f" ({tdesc[:1].lower() + tdesc[1:]})" if tdesc else ""
    pname = param_name(entry)
    ktype = _key_type(world, entry)
    props: dict[str, Any] = {}
    if entry["operation"] == "lookup":
        desc = (f"Look up the {label} of {_article(etype)} {etype}{about}. Takes the {etype}'s name and returns "
                f"the {etype} with its {label}. An unknown name is an error.")
        props[pname] = {"type": "string",
                        "description": f"Name of the {etype}, as written (case and extra spaces are ignored)."}
    else:
        what = "name of the " + spec.target if not isinstance(spec, AttributeSpec) else label
        desc = (f"Find every {etype}{about} whose {label} is the given value. Returns the names of the "
                f"matching {_plural(etype)} and how many there are.")
        pdesc = f"The {what} to search for" + (" (YYYY-MM-DD)." if ktype == "date" else ".")
        props[pname] = {"type": _JSON_TYPE[ktype], "description": pdesc}
    if scale >= 1:
        props["response_format"] = {"type": "string", "enum": ["object", "sentence"], "default": "object",
                                    "description": "'object' (default) returns structured fields; 'sentence' "
                                                   "returns one line of text."}
    if scale >= 2:
        if entry["operation"] == "lookup":
            props["strict_match"] = {"type": "boolean", "default": False,
                                     "description": f"If true, the {etype} name must match exactly (case "
                                                    "included); default false."}
        else:
            props["limit"] = {"type": "integer", "minimum": 1, "maximum": 50, "default": 10,
                              "description": "Most matches to return (1-50, default 10)."}
    params = {"type": "object", "properties": props, "required": [pname], "additionalProperties": False}
    return desc, params


_COMMON = '''

def _norm(text):
    return " ".join(str(text).split()).casefold()


def _fmt(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(value)


def _check_format(response_format):
    if response_format not in ("object", "sentence"):
        raise ValueError(f"response_format must be 'object' or 'sentence', got {response_format!r}")
'''


def _module_head(name: str, doc: str, table: dict[str, Any], p: str, scale: int, scale2_param: str,
                 check: list[str]) -> list[str]:
    """A generated tool module up to its checked ``response_format``: the docstring, the
    embedded data, the shared helpers, the signature (``response_format`` from scale 1,
    ``scale2_param`` from scale 2) and the ``check`` lines of the main argument ``p``."""
    sig = [p]
    if scale >= 1:
        sig.append('response_format="object"')
    if scale >= 2:
        sig.append(scale2_param)
    return [
        doc,
        "",
        "MOCK_DATA = " + pprint.pformat(table, width=100),
        _COMMON,
        "",
        f"def {name}({', '.join(sig)}):",
        *check,
        '    response_format = "object"' if scale < 1 else "    _check_format(response_format)",
    ]


def _lookup_code(name: str, entry: dict[str, Any], table: dict[str, Any], label: str, scale: int) -> str:
    etype, field = entry["entity_type"], entry["attribute"]
    p = param_name(entry)
    doc = (f'"""{name}: the {label} of {_article(etype)} {etype}, looked up in embedded mock data '
           f'(synthesized by astra from a plan; standard library only)."""')
    lines = _module_head(name, doc, table, p, scale, "strict_match=False", [
        f"    if not isinstance({p}, str) or not {p}.strip():",
        f'        raise ValueError("{p} must be a non-empty string: the name of the {etype}")',
    ])
    if scale >= 2:
        lines += [
            "    if not isinstance(strict_match, bool):",
            '        raise ValueError(f"strict_match must be true or false, got {strict_match!r}")',
            "    if strict_match:",
            f"        key = {p} if {p} in MOCK_DATA else None",
            "    else:",
        ]
        ind = "        "
    else:
        ind = "    "
    lines += [
        f"{ind}found = [k for k in MOCK_DATA if _norm(k) == _norm({p})]",
        f"{ind}key = found[0] if len(found) == 1 else None",
        "    if key is None:",
        f'        raise ValueError(f"unknown {etype} {{{p}!r}}: no {etype} of that name is on record. Use the '
        f'{etype}\'s name exactly as the question or an earlier tool result gives it; a search tool that '
        f'returns {_plural(etype)} can find it")',
        "    value = MOCK_DATA[key]",
        '    if response_format == "sentence":',
        "        if value is None:",
        f'            return f"{{key}} has no {label} on record."',
        f'        return f"The {label} of {{key}} is {{_fmt(value)}}."',
        f"    return {{{etype!r}: key, {field!r}: value}}",
        "",
    ]
    return "\n".join(lines)


def _search_code(name: str, entry: dict[str, Any], table: dict[str, Any], label: str, ktype: str,
                 scale: int) -> str:
    etype, field = entry["entity_type"], entry["attribute"]
    p = param_name(entry)
    if ktype in ("int", "float"):
        check = [
            f"    if isinstance({p}, bool) or not isinstance({p}, (int, float, str)):",
            f'        raise ValueError("{p} must be a number")',
            "    try:",
            f'        wanted = float(str({p}).replace(",", ""))',
            "    except ValueError:",
            f'        raise ValueError(f"{p} must be a number, got {{{p}!r}}") from None',
            "    def same(v):",
            "        return v is not None and abs(float(v) - wanted) < 1e-9",
        ]
    else:
        check = [
            f"    if not isinstance({p}, str) or not {p}.strip():",
            f'        raise ValueError("{p} must be a non-empty string")',
            f"    wanted = _norm({p})",
            "    def same(v):",
            "        return v is not None and _norm(v) == wanted",
        ]
    doc = (f'"""{name}: find {_plural(etype)} by {label} in embedded mock data (synthesized by astra from a plan; '
           f'standard library only)."""')
    lines = _module_head(name, doc, table, p, scale, "limit=10", check)
    if scale >= 2:
        lines += [
            "    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:",
            '        raise ValueError(f"limit must be an integer from 1 to 50, got {limit!r}")',
        ]
    else:
        lines.append("    limit = 50")
    lines += [
        "    hits = [n for n, v in MOCK_DATA.items() if same(v)]",
        "    shown = hits[:limit]",
        '    if response_format == "sentence":',
        "        if not shown:",
        f'            return f"No {etype} has the {label} {{_fmt({p})}}."',
        f'        return f"{_plural(etype).capitalize()} with the {label} {{_fmt({p})}}: " + ", ".join(shown) + "."',
        f"    return {{{field!r}: {p}, \"count\": len(hits), \"matches\": [{{{etype!r}: n}} for n in shown]}}",
        "",
    ]
    return "\n".join(lines)


def render_plan_tool(entry: dict[str, Any], world: World | None = None, *, scale: int = MAX_SCALE) -> RenderedTool:
    """The tool, code and gold call of one plan entry (see the module docstring)."""
    if not 0 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be 0..{MAX_SCALE}, got {scale}")
    world = world or load_world(entry["world"])
    name = entry["tool_intent"]
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"tool intent {name!r} is not a Python identifier")
    etype, field = entry["entity_type"], entry["attribute"]
    label = world.field_spec(etype, field).label
    desc, params = _describe(world, entry, scale)
    table = _table(world, etype, field)
    if entry["operation"] == "lookup":
        code = _lookup_code(name, entry, table, label, scale)
    elif entry["operation"] == "search":
        code = _search_code(name, entry, table, label, _key_type(world, entry), scale)
    else:
        raise ValueError(f"unknown plan operation {entry['operation']!r}")
    return RenderedTool(tool=Tool(name=name, description=desc, parameters=params), code=code,
                        call=plan_call(world, entry), intent=name)


def probe_value(entry: dict[str, Any], world: World | None = None) -> Any:
    """A key no entity has (for the defensive-error probe of a lookup)."""
    world = world or load_world(entry["world"])
    return "__no_such_" + entry["entity_type"] + "__" if _key_type(world, entry) in ("str", "date") else -987654321


__all__ = ["MAX_SCALE", "RenderedTool", "param_name", "plan_call", "probe_value", "render_call",
           "render_plan_tool"]
