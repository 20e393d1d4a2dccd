"""Ingest tool documents from files, live MCP servers and Python code.

Accepted sources (see :data:`SOURCE_FORMS`):

- ``sample`` -- the bundled sample servers (:mod:`astra.data.servers`);
- ``FILE.jsonl`` -- one server per line in the ASTRA reference format (``mcp_servers.jsonl``);
- ``FILE.json`` -- OpenAI tools: a list of tool entries, ``{"tools": [...], "name": ...}``
  or one bare function ``{"name", "description", "parameters"}``;
- ``stdio:COMMAND ARGS...`` -- a live MCP server started over stdio;
- ``http://...`` / ``https://...`` -- a live MCP server over streamable HTTP;
- ``py:module``, ``py:module:Class``, ``FILE.py`` or ``FILE.py:Class`` -- Python code.

Every tool is normalized to the OpenAI function schema (:mod:`astra.tools.schema`) and
every server filtered (:mod:`astra.tools.filter`). Per-record problems in files (bad JSON
line, missing field) become ``errors`` naming file, line and field, and the rest still
ingests; an unmappable schema becomes a ``tool_schema_unmappable`` rejection. A source
that cannot be read at all (missing file, unknown form, server that does not start)
raises :class:`~astra.errors.InputError`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from astra.errors import InputError, ToolSchemaError
from astra.io import json_depth, parse_json_line, read_text_file
from astra.tools import sync
from astra.tools.filter import TOOL_SCHEMA_UNMAPPABLE, filter_servers
from astra.tools.schema import normalize_output_schema, normalize_parameters
from astra.types import CallInfo, Rejection, Tool, ToolServer

SOURCE_FORMS = (
    "sample",
    "FILE.jsonl (ASTRA mcp_servers.jsonl format)",
    "FILE.json (OpenAI tools)",
    "stdio:COMMAND [ARGS...] (live MCP server over stdio)",
    "http(s)://HOST/PATH (live MCP server, streamable HTTP)",
    "sse:http(s)://HOST/PATH (live MCP server, legacy SSE transport)",
    "py:MODULE, py:MODULE:CLASS, FILE.py or FILE.py:CLASS (Python tools)",
)

#: The deepest nesting a tool's parameter or output schema may have; a deeper tool is
#: rejected (``tool_schema_unmappable``) and the rest of its file still ingests.
MAX_SCHEMA_DEPTH = 64

_PY_FILE = re.compile(r"^(?P<file>.+\.py)(?::(?P<cls>[A-Za-z_][\w.]*))?$")

T = TypeVar("T")


@dataclass
class IngestResult:
    servers: list[ToolServer] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fixes: dict[str, list[str]] = field(default_factory=dict)
    """Schema repairs made while normalizing, keyed ``server/tool`` (for the manifest)."""


@dataclass
class Source:
    """A parsed source string."""

    kind: str  # sample | jsonl | json | mcp_stdio | mcp_http | mcp_sse | python
    value: str
    raw: str


def parse_source(source: str) -> Source:
    """Detect the kind of a source string; raises :class:`InputError` for unknown forms."""
    s = source.strip()
    accepted = "; ".join(SOURCE_FORMS)
    if not s:
        raise InputError(f"empty tool source; accepted forms: {accepted}")
    if s == "sample":
        return Source("sample", s, source)
    if s.startswith("stdio:"):
        cmd = s[len("stdio:"):].strip()
        try:
            argv = shlex.split(cmd)
        except ValueError as e:
            raise InputError(f"bad stdio command {cmd!r}: {e}") from None
        if not argv:
            raise InputError("'stdio:' needs a command, e.g. 'stdio:python -m my.server'")
        return Source("mcp_stdio", cmd, source)
    if s.startswith(("http://", "https://")):
        return Source("mcp_http", s, source)
    if s.startswith("sse:"):
        url = s[4:].strip()
        if not url.startswith(("http://", "https://")):
            raise InputError("'sse:' needs the server's SSE URL, e.g. 'sse:http://host:8000/sse'")
        return Source("mcp_sse", url, source)
    if s.startswith("py:"):
        if not s[3:].strip():
            raise InputError("'py:' needs a module, e.g. 'py:my.tools' or 'py:my.tools:MyServer'")
        return Source("python", s[3:].strip(), source)
    m = _PY_FILE.match(s)
    if m:
        if not Path(m["file"]).is_file():
            raise InputError(f"Python file not found: {m['file']}")
        return Source("python", s, source)
    if s.endswith(".jsonl") or s.endswith(".json"):
        if not Path(s).is_file():
            raise InputError(f"tool file not found: {s}")
        _check_text(s)
        return Source("jsonl" if s.endswith(".jsonl") else "json", s, source)
    raise InputError(f"unknown tool source {source!r}; accepted forms: {accepted}")


def _check_text(path: str) -> None:
    """Refuse a binary file (NUL bytes in its first 8 KiB) before reading it as JSON."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError as e:
        raise InputError(e.strerror or str(e), path=path) from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("UTF-16 text: save the file as UTF-8", path=path)
    if b"\x00" in head:
        raise InputError("a binary file, not JSON or JSON Lines text: is this the right file?", path=path)


# ---------------------------------------------------------------------------------
# Raw tools -> normalized tools
# ---------------------------------------------------------------------------------


@dataclass
class RawTool:
    name: str
    description: str
    parameters: Any
    output_schema: Any = None


@dataclass
class _Collector:
    rejections: list[Rejection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fixes: dict[str, list[str]] = field(default_factory=dict)
    servers: list[ToolServer] = field(default_factory=list)


def _make_tool(server: str, raw: RawTool, out: _Collector) -> Tool | None:
    where = f"server {server!r} tool {raw.name!r}"
    depth = max(json_depth(raw.parameters, MAX_SCHEMA_DEPTH), json_depth(raw.output_schema, MAX_SCHEMA_DEPTH))
    if depth > MAX_SCHEMA_DEPTH:
        out.rejections.append(Rejection(key=f"{server}/{raw.name}", reason=TOOL_SCHEMA_UNMAPPABLE,
                                        detail=f"{where}: schema nested more than {MAX_SCHEMA_DEPTH} levels deep"))
        return None
    fixes: list[str] = []
    try:
        params = normalize_parameters(raw.parameters, where=where, fixes=fixes)
        output = normalize_output_schema(raw.output_schema, where=where, fixes=fixes)
    except ToolSchemaError as e:
        out.rejections.append(Rejection(key=f"{server}/{raw.name}", reason=TOOL_SCHEMA_UNMAPPABLE, detail=str(e)))
        return None
    if fixes:
        out.fixes[f"{server}/{raw.name}"] = fixes
    return Tool(name=raw.name, description=raw.description, parameters=params, output_schema=output)


def _add_server(out: _Collector, *, name: str, title: str, description: str, domain: str,
                raw_tools: list[RawTool], call: CallInfo, source: str) -> None:
    tools = [t for t in (_make_tool(name, r, out) for r in raw_tools) if t is not None]
    out.servers.append(ToolServer(name=name, title=title or "", description=description or "",
                                  domain=domain or "general", tools=tools, call=call, source=source))


def _renormalize(server: ToolServer, out: _Collector) -> None:
    raws = [RawTool(t.name, t.description, t.parameters, t.output_schema) for t in server.tools]
    _add_server(out, name=server.name, title=server.title, description=server.description,
                domain=server.domain, raw_tools=raws, call=server.call, source=server.source)


# ---------------------------------------------------------------------------------
# Lenient key lookup, strict meaning
# ---------------------------------------------------------------------------------


class _FieldError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _first(d: dict[str, Any], *keys: str) -> tuple[str | None, Any]:
    for k in keys:
        if k in d and d[k] is not None:
            return k, d[k]
    return None, None


def _text(d: dict[str, Any], path: str, *keys: str, required: bool = False) -> str:
    key, value = _first(d, *keys)
    if value is None:
        if required:
            raise _FieldError(f"{path}{keys[0]}", "missing")
        return ""
    if not isinstance(value, str):
        raise _FieldError(f"{path}{key}", f"expected a string, got {type(value).__name__}")
    return value.strip()


def _decode_json_object(value: Any) -> Any:
    """Some datasets store schemas as JSON text: decode it when it is a JSON object."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(decoded, dict):
            return decoded
    return value


def _raw_tool(entry: Any, path: str) -> RawTool:
    """One tool entry: OpenAI ``{"type":"function","function":{...}}`` (optionally with a
    sibling ``output_schema``) or a bare ``{"name","description","parameters"|...}``."""
    if not isinstance(entry, dict):
        raise _FieldError(path.rstrip("."), f"expected a JSON object, got {type(entry).__name__}")
    body, body_path = entry, path
    if isinstance(entry.get("function"), dict):
        body, body_path = entry["function"], f"{path}function."
    elif "function" in entry:
        raise _FieldError(f"{path}function", "expected a JSON object")
    name = _text(body, body_path, "name", required=True)
    if not name:
        raise _FieldError(f"{body_path}name", "empty")
    description = _text(body, body_path, "description", "desc")
    _, params = _first(body, "parameters", "input_schema", "inputSchema")
    _, output = _first(body, "output_schema", "outputSchema", "response")
    if output is None and body is not entry:
        _, output = _first(entry, "output_schema", "outputSchema", "response")
    params = _decode_json_object(params)
    output = _decode_json_object(output)
    if isinstance(output, str):  # a prose description of the result
        output = {"description": output.strip()} if output.strip() else None
    return RawTool(name=name, description=description, parameters=params, output_schema=output)


def _raw_tools(entries: Any, path: str, errors: list[str], where: str) -> list[RawTool]:
    """Parse a tool list; a bad entry is reported in ``errors`` and skipped."""
    tools = []
    for i, entry in enumerate(entries):
        try:
            tools.append(_raw_tool(entry, f"{path}[{i}]."))
        except _FieldError as e:
            errors.append(f"{where} [{e.field}]: {e.message}")
    return tools


# ---------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------

_STDIO_TYPES = {"stdio", "mcp_stdio", "command"}
_HTTP_TYPES = {"http", "streamable_http", "streamable-http", "streamablehttp", "mcp_http", "https"}
_SSE_TYPES = {"sse", "mcp_sse"}


#: ``call_info`` flags that mark a server as documentation only (no implementation to
#: call): public ASTRA-style files write ``{"mock_tool": true}``.
DOC_ONLY_FLAGS = ("mock_tool", "mock", "doc_only", "mocked", "emulated", "is_mock")
#: ``call_info`` transport types that mean the same.
DOC_ONLY_TYPES = {"mock", "mock_tool", "doc_only", "doc-only", "docs", "none", "emulated", "emulator", "simulated"}


def _doc_only_marker(ci: dict[str, Any]) -> str | None:
    """The doc-only marker of a ``call_info`` block (``mock_tool: true``, ``type: "mock"``), if any."""
    for key in DOC_ONLY_FLAGS:
        value = ci.get(key)
        if value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "1")):
            return f"{key}: true"
    _, transport = _first(ci, "type", "transport")
    if isinstance(transport, str) and transport.strip().lower() in DOC_ONLY_TYPES:
        return f"type: {transport!r}"
    return None


def _call_info(ci: Any, path: str) -> tuple[CallInfo, str | None]:
    """(call info, warning) from an ASTRA ``call_info`` block. A block carrying a doc-only
    marker (:data:`DOC_ONLY_FLAGS`, :data:`DOC_ONLY_TYPES`) is doc-only even when it also
    names a command or URL."""
    if ci is None or ci == {}:
        return CallInfo(kind="doc_only"), None
    if not isinstance(ci, dict):
        raise _FieldError(path.rstrip("."), f"expected a JSON object, got {type(ci).__name__}")
    if _doc_only_marker(ci) is not None:
        return CallInfo(kind="doc_only"), None
    tkey, transport = _first(ci, "type", "transport")
    command = ci.get("command")
    url = ci.get("url")
    env = ci.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise _FieldError(f"{path}env", "expected an object of string values")
    if transport is None:
        transport = "stdio" if command else "http" if url else None
    if transport is None:
        raise _FieldError(path.rstrip("."), "neither 'type'/'transport', 'command' nor 'url' given")
    if not isinstance(transport, str):
        raise _FieldError(f"{path}{tkey}", "expected a string")
    t = transport.strip().lower()
    if t in _STDIO_TYPES:
        if not isinstance(command, str) or not command.strip():
            raise _FieldError(f"{path}command", "missing (needed for stdio transport)")
        args = ci.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
            raise _FieldError(f"{path}args", "expected a list of strings")
        target = shlex.join([command.strip(), *(str(a) for a in args)])
        return CallInfo(kind="mcp_stdio", target=target, env=dict(env)), None
    if t in _HTTP_TYPES | _SSE_TYPES:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _FieldError(f"{path}url", "missing or not an http(s) URL")
        kind = "mcp_sse" if t in _SSE_TYPES else "mcp_http"
        return CallInfo(kind=kind, target=url, env=dict(env)), None
    raise _FieldError(f"{path}{tkey}", f"unknown transport {transport!r} (expected stdio, sse, streamable_http or http)")


def _astra_line(obj: Any, where: str, out: _Collector, source: str) -> None:
    if not isinstance(obj, dict):
        raise _FieldError("<line>", f"expected a JSON object, got {type(obj).__name__}")
    if "base_info" in obj:
        base, bpath = obj["base_info"], "base_info."
        if not isinstance(base, dict):
            raise _FieldError("base_info", "expected a JSON object")
    else:
        base, bpath = obj, ""
    group, gpath = base.get("group_info"), f"{bpath}group_info."
    if group is None:
        group, gpath = base, bpath
    if not isinstance(group, dict):
        raise _FieldError(f"{bpath}group_info", "expected a JSON object")
    name = _text(group, gpath, "server_name", "name", required=True)
    if not name:
        raise _FieldError(f"{gpath}server_name", "empty")
    title = _text(group, gpath, "server_title", "title")
    description = _text(group, gpath, "server_description", "description")
    domain = _text(group, gpath, "domain", "category")
    tkey, tool_list = _first(base, "tool_list", "tools")
    if tool_list is None:
        raise _FieldError(f"{bpath}tool_list", "missing")
    if not isinstance(tool_list, list):
        raise _FieldError(f"{bpath}{tkey}", f"expected a list, got {type(tool_list).__name__}")
    call, warning = _call_info(obj.get("call_info"), "call_info.")
    if warning:
        out.errors.append(f"{where} {warning}")
    raw = _raw_tools(tool_list, f"{bpath}{tkey}", out.errors, where)
    _add_server(out, name=name, title=title, description=description, domain=domain,
                raw_tools=raw, call=call, source=source)


_SERVER_KEYS = ("base_info", "tool_list", "group_info", "tools", "server_name")


def is_tool_entry(obj: Any) -> bool:
    """Whether a JSON object is one tool (OpenAI ``{"type":"function","function":{...}}`` or
    a bare ``{"name", "description", "parameters"}`` as in BFCL's function docs) rather
    than a server."""
    if not isinstance(obj, dict) or any(k in obj for k in _SERVER_KEYS):
        return False
    if isinstance(obj.get("function"), dict):
        return True
    return isinstance(obj.get("name"), str) and any(
        k in obj for k in ("parameters", "input_schema", "inputSchema", "response", "output_schema"))


def ingest_jsonl(path: str, out: _Collector, *, server_name: str | None = None) -> None:
    """One server per line (ASTRA ``mcp_servers.jsonl``), or one *tool* per line (BFCL's
    function docs): lines that are tools form one server named after the file (or
    ``server_name``). Bad lines go to ``out.errors``; the other lines still ingest."""
    p = Path(path)
    tools: list[RawTool] = []
    with p.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{p.name}:{lineno}"
            try:  # not UTF-8, not JSON, too deep: this line is an error, the others still ingest
                obj = parse_json_line(line, path=p.name, line=lineno, max_depth=None)
            except InputError as e:
                out.errors.append(str(e))
                continue
            try:
                if is_tool_entry(obj):
                    tools.append(_raw_tool(obj, ""))
                else:
                    _astra_line(obj, where, out, source=f"{path}:{lineno}")
            except _FieldError as e:
                out.errors.append(f"{where} [{e.field}]: {e.message}")
    if tools:
        _add_server(out, name=server_name or p.stem, title="", description="", domain="", raw_tools=tools,
                    call=CallInfo(kind="doc_only"), source=path)


def _openai_doc(doc: Any, where: str, out: _Collector, *, default_name: str, source: str,
                call: CallInfo, name_override: str | None = None) -> None:
    meta: dict[str, Any] = {}
    if isinstance(doc, list):
        entries, path = doc, "tools"
    elif isinstance(doc, dict) and "tools" in doc:
        meta, entries, path = doc, doc["tools"], "tools"
        if not isinstance(entries, list):
            raise _FieldError("tools", f"expected a list, got {type(entries).__name__}")
    elif isinstance(doc, dict) and ("function" in doc or "parameters" in doc or "input_schema" in doc
                                    or "inputSchema" in doc):
        entries, path = [doc], "tools"
    else:
        raise _FieldError("<document>", "expected a list of tools, {\"tools\": [...]} or one function object")
    name = name_override or _text(meta, "", "name", "server_name") or default_name
    raw = _raw_tools(entries, path, out.errors, where)
    _add_server(out, name=name, title=_text(meta, "", "title", "server_title"),
                description=_text(meta, "", "description", "server_description"),
                domain=_text(meta, "", "domain", "category"), raw_tools=raw, call=call, source=source)


def _load_json(path: str) -> Any:
    return parse_json_line(read_text_file(path), path=path, max_depth=None)


def _is_json_lines(path: str) -> bool:
    lines = [ln for ln in read_text_file(path).splitlines() if ln.strip()]
    if len(lines) < 2:
        return False
    try:
        return all(isinstance(json.loads(ln), dict) for ln in lines[:3])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return False


def ingest_json(path: str, out: _Collector, *, server_name: str | None = None) -> None:
    """OpenAI tools JSON; a ``.json`` file that holds JSON Lines (BFCL's function docs)
    is read as :func:`ingest_jsonl`."""
    try:
        doc = _load_json(path)
    except InputError:
        if _is_json_lines(path):
            ingest_jsonl(path, out, server_name=server_name)
            return
        raise
    p = Path(path)
    try:
        _openai_doc(doc, p.name, out, default_name=p.stem, source=path, call=CallInfo(kind="doc_only"),
                    name_override=server_name)
    except _FieldError as e:
        raise InputError(e.message, path=path, field=e.field) from None


def ingest_sample(out: _Collector) -> None:
    try:
        import astra.data.servers as samples
    except ImportError as e:
        raise InputError(f"the bundled sample servers (astra.data.servers) are not available: {e}") from None
    py_servers = getattr(samples, "PYTHON_SERVERS", None)
    doc_dir = getattr(samples, "DOC_ONLY_DIR", None)
    if py_servers is None or doc_dir is None:
        raise InputError("astra.data.servers must define PYTHON_SERVERS and DOC_ONLY_DIR")
    from astra.tools.pyfunc import SkippedTool, server_from_class

    for cls in dict(py_servers).values():
        skipped: list[SkippedTool] = []
        server = server_from_class(cls, source="sample", skipped=skipped)
        for sk in skipped:
            out.rejections.append(Rejection(key=f"{server.name}/{sk.name}", reason=TOOL_SCHEMA_UNMAPPABLE,
                                            detail=sk.reason))
        _renormalize(server, out)
    for path in sorted(Path(doc_dir).glob("*.json")):
        doc = _load_json(str(path))
        try:
            _openai_doc(doc, path.name, out, default_name=path.stem, source=f"sample:{path.name}",
                        call=CallInfo(kind="doc_only"))
        except _FieldError as e:
            raise InputError(e.message, path=str(path), field=e.field) from None


# ---------------------------------------------------------------------------------
# Python and MCP
# ---------------------------------------------------------------------------------


def ingest_python(target: str, out: _Collector, *, server_name: str | None, source: str) -> None:
    from astra.tools.pyfunc import SkippedTool, server_from_target

    skipped: list[SkippedTool] = []
    try:
        server = server_from_target(target, name=server_name, source=source, skipped=skipped)
    except ToolSchemaError as e:
        out.rejections.append(Rejection(key=server_name or target, reason=TOOL_SCHEMA_UNMAPPABLE, detail=str(e)))
        return
    for sk in skipped:  # one tool that cannot be described drops that tool, not the server
        out.rejections.append(Rejection(key=f"{server.name}/{sk.name}", reason=TOOL_SCHEMA_UNMAPPABLE,
                                        detail=sk.reason))
    _renormalize(server, out)


async def ingest_mcp_async(kind: str, target: str, out: _Collector, *, server_name: str | None,
                           source: str, timeout: float) -> None:
    from astra.tools.mcp_client import MCPConnectionError, list_server

    try:
        info, tools = await list_server(target, kind, timeout=timeout)
    except MCPConnectionError as e:
        raise InputError(str(e)) from None
    name = server_name or info.name
    if not name:
        raise InputError(f"MCP server {target!r} reports no name; pass server_name")
    raw = [RawTool(name=t.name, description=(t.description or "").strip(), parameters=t.input_schema,
                   output_schema=t.output_schema) for t in tools]
    _add_server(out, name=name, title=info.title, description=info.instructions or info.description,
                domain="", raw_tools=raw, call=CallInfo(kind=kind, target=target),
                source=source)


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``factory()`` makes to completion from sync code (see
    :func:`astra.tools.sync.run_sync`)."""
    return sync.run_sync(factory())


# ---------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------


async def ingest_async(sources: list[str], *, server_name: str | None = None, domain: str | None = None,
                       min_tools: int = 3, min_description_words: int = 3,
                       timeout: float = 30.0) -> IngestResult:
    """Async :func:`ingest` (use it from inside an event loop)."""
    if not sources:
        raise InputError(f"no tool source given; accepted forms: {'; '.join(SOURCE_FORMS)}")
    parsed = [parse_source(s) for s in sources]  # fail on a bad form before starting anything
    if server_name and (len(parsed) > 1 or parsed[0].kind in ("sample", "jsonl")):
        raise InputError("server_name applies to exactly one single-server source (json, MCP or Python)")
    out = _Collector()
    for src in parsed:
        if src.kind == "sample":
            ingest_sample(out)
        elif src.kind == "jsonl":
            ingest_jsonl(src.value, out)
        elif src.kind == "json":
            ingest_json(src.value, out, server_name=server_name)
        elif src.kind == "python":
            ingest_python(src.value, out, server_name=server_name, source=src.raw)
        else:
            await ingest_mcp_async(src.kind, src.value, out, server_name=server_name, source=src.raw,
                                   timeout=timeout)
    servers = out.servers
    if domain:
        servers = [s.model_copy(update={"domain": domain}) for s in servers]
    kept, rejections = filter_servers(servers, min_tools=min_tools, min_description_words=min_description_words)
    return IngestResult(servers=kept, rejections=[*out.rejections, *rejections], errors=out.errors,
                        fixes=out.fixes)


def ingest(sources: list[str], *, server_name: str | None = None, domain: str | None = None,
           min_tools: int = 3, min_description_words: int = 3, timeout: float = 30.0) -> IngestResult:
    """Ingest, normalize and filter tool servers from ``sources`` (see :data:`SOURCE_FORMS`).

    ``server_name`` names the server of a single single-server source; ``domain`` is set on
    every ingested server. ``timeout`` (seconds) bounds each live MCP server's start-up
    and answers. Raises :class:`InputError` for an unknown/missing source or a server that
    cannot be reached; per-record problems are returned in ``errors``.
    """
    return run_sync(lambda: ingest_async(sources, server_name=server_name, domain=domain, min_tools=min_tools,
                                         min_description_words=min_description_words, timeout=timeout))


__all__ = ["IngestResult", "RawTool", "SOURCE_FORMS", "Source", "ingest", "ingest_async", "parse_source",
           "run_sync"]
