"""Filtering of tool servers: every dropped tool or server gets a reason.

Reason codes are stable strings (use them in manifests and reports):

- ``tool_description_missing`` -- no description, or only whitespace;
- ``tool_description_vague``   -- a placeholder ("todo", "n/a", ...), a restatement of the
  tool name, or fewer than ``min_description_words`` words;
- ``tool_schema_unmappable``   -- a parameter/output schema that cannot be mapped to the
  OpenAI function format (see :mod:`astra.tools.schema`);
- ``tool_name_invalid``        -- a name the OpenAI format rejects (``^[A-Za-z0-9_-]{1,64}$``);
- ``tool_duplicate_name``      -- a second tool of the same name in one server;
- ``server_duplicate_name``    -- a second server of the same name;
- ``server_too_few_tools``     -- fewer than ``min_tools`` tools left after the above.

Rejection keys are ``server`` or ``server/tool``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from astra.errors import ToolSchemaError
from astra.tools.schema import normalize_output_schema, normalize_parameters
from astra.types import Rejection, Tool, ToolServer

TOOL_DESCRIPTION_MISSING = "tool_description_missing"
TOOL_DESCRIPTION_VAGUE = "tool_description_vague"
TOOL_SCHEMA_UNMAPPABLE = "tool_schema_unmappable"
TOOL_NAME_INVALID = "tool_name_invalid"
TOOL_DUPLICATE_NAME = "tool_duplicate_name"
SERVER_DUPLICATE_NAME = "server_duplicate_name"
SERVER_TOO_FEW_TOOLS = "server_too_few_tools"

REASONS = (
    TOOL_DESCRIPTION_MISSING,
    TOOL_DESCRIPTION_VAGUE,
    TOOL_SCHEMA_UNMAPPABLE,
    TOOL_NAME_INVALID,
    TOOL_DUPLICATE_NAME,
    SERVER_DUPLICATE_NAME,
    SERVER_TOO_FEW_TOOLS,
)

OPENAI_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

PLACEHOLDERS = {
    "tool", "function", "method", "api", "endpoint", "todo", "tbd", "tbc", "fixme", "xxx",
    "n/a", "na", "none", "null", "nil", "undefined", "description", "no description",
    "no description provided", "description here", "placeholder", "lorem ipsum", "test",
    "...", "-", "?", "todo: add description", "add description", "same as above",
}

# Words that add nothing when a description merely restates the tool name.
_FILLER = {
    "a", "an", "the", "this", "that", "it", "is", "to", "for", "of", "and", "or", "with",
    "tool", "function", "method", "api", "endpoint", "call", "calls", "used", "use", "uses",
    "will", "can", "which", "simply", "just",
}

_LATIN_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def word_count(text: str) -> int:
    """Words in ``text``; CJK scripts (written without spaces) count one word per two
    characters."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN_WORD.findall(_CJK.sub(" ", text)))
    return latin + math.ceil(cjk / 2)


def _name_words(name: str) -> set[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return {w.lower() for w in re.split(r"[\W_]+", spaced) if w}


def _stem(word: str) -> str:
    """A crude stem, enough to see that "Gets user profiles" restates ``get_user_profile``."""
    for suffix in ("ing", "es", "s", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


#: Words of parameter and result documentation that make a terse description enough
#: ("Place an order." with every argument and result field described).
DOCUMENTED_WORDS = 8


def schema_text(tool: Tool) -> str:
    """The documentation a tool carries besides its description: parameter and result
    field descriptions (nested ones included)."""
    parts: list[str] = []

    def walk(schema: object, depth: int = 0) -> None:
        if not isinstance(schema, dict) or depth > 6:
            return
        d = schema.get("description")
        if isinstance(d, str) and d.strip():
            parts.append(d.strip())
        for sub in (schema.get("properties") or {}).values():
            walk(sub, depth + 1)
        walk(schema.get("items"), depth + 1)
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in schema.get(key) or []:
                walk(sub, depth + 1)

    walk(tool.parameters)
    walk(tool.output_schema)
    return " ".join(parts)


def description_problem(name: str, description: str | None, *, min_words: int = 3,
                        documentation: str = "") -> tuple[str, str] | None:
    """``(reason, detail)`` when a tool description is missing or too vague, else ``None``.

    ``documentation`` is the rest of the tool's documentation (:func:`schema_text`): a
    short description that restates the name ("Place an order.") is not vague when the
    parameters and results are described (at least :data:`DOCUMENTED_WORDS` words)."""
    text = (description or "").strip()
    if not text:
        return TOOL_DESCRIPTION_MISSING, "the tool has no description"
    canon = " ".join(text.lower().rstrip(".!").split())
    if canon in PLACEHOLDERS:
        return TOOL_DESCRIPTION_VAGUE, f"description {text!r} is a placeholder"
    if word_count(documentation) >= DOCUMENTED_WORDS:
        return None
    words = [w.lower() for w in _LATIN_WORD.findall(_CJK.sub(" ", text))]
    if not _CJK.search(text) and words:
        content = {_stem(w) for w in words if w not in _FILLER}
        if not content or content <= {_stem(w) for w in _name_words(name)}:
            return TOOL_DESCRIPTION_VAGUE, f"description {text!r} only restates the tool name {name!r}"
    n = word_count(text)
    if n < min_words:
        return TOOL_DESCRIPTION_VAGUE, f"description {text!r} has {n} word(s), fewer than {min_words}"
    return None


def check_tool_schema(server: str, tool: Tool) -> Tool:
    """The tool with normalized schemas; raises :class:`ToolSchemaError` if unmappable."""
    where = f"server {server!r} tool {tool.name!r}"
    params = normalize_parameters(tool.parameters, where=where)
    output = normalize_output_schema(tool.output_schema, where=where)
    if params == tool.parameters and output == tool.output_schema:
        return tool
    return tool.model_copy(update={"parameters": params, "output_schema": output})


def filter_servers(
    servers: Iterable[ToolServer], *, min_tools: int = 3, min_description_words: int = 3
) -> tuple[list[ToolServer], list[Rejection]]:
    """Drop bad tools, then servers with fewer than ``min_tools`` tools left.

    Returns the kept servers (tool order preserved) and one :class:`Rejection` per dropped
    tool or server. Pure: the input servers are not modified.
    """
    kept: list[ToolServer] = []
    rejections: list[Rejection] = []
    seen_servers: set[str] = set()
    for server in servers:
        if server.name in seen_servers:
            rejections.append(Rejection(
                key=server.name, reason=SERVER_DUPLICATE_NAME,
                detail=f"another server named {server.name!r} was already kept (source {server.source or '?'})"))
            continue
        tools: list[Tool] = []
        names: set[str] = set()
        for tool in server.tools:
            key = f"{server.name}/{tool.name}"
            if not OPENAI_TOOL_NAME.match(tool.name):
                rejections.append(Rejection(
                    key=key, reason=TOOL_NAME_INVALID,
                    detail=f"tool name {tool.name!r} does not match {OPENAI_TOOL_NAME.pattern}"))
                continue
            if tool.name in names:
                rejections.append(Rejection(key=key, reason=TOOL_DUPLICATE_NAME,
                                            detail="a tool of this name appears earlier in the server"))
                continue
            problem = description_problem(tool.name, tool.description, min_words=min_description_words,
                                          documentation=schema_text(tool))
            if problem:
                rejections.append(Rejection(key=key, reason=problem[0], detail=problem[1]))
                continue
            try:
                tool = check_tool_schema(server.name, tool)
            except ToolSchemaError as e:
                rejections.append(Rejection(key=key, reason=TOOL_SCHEMA_UNMAPPABLE, detail=str(e)))
                continue
            names.add(tool.name)
            tools.append(tool)
        if len(tools) < min_tools:
            dropped = len(server.tools) - len(tools)
            rejections.append(Rejection(
                key=server.name, reason=SERVER_TOO_FEW_TOOLS,
                detail=f"{len(tools)} usable tool(s) ({dropped} dropped), fewer than {min_tools}"))
            continue
        seen_servers.add(server.name)
        kept.append(server if tools == server.tools else server.model_copy(update={"tools": tools}))
    return kept, rejections
