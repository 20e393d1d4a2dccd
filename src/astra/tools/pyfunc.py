"""Python functions and classes as tools.

A function becomes a :class:`~astra.types.Tool` from its signature, type hints and
(Google / reST / numpy) docstring; a class becomes a :class:`~astra.types.ToolServer` whose
public methods are its tools; a module becomes a server of its public functions.
:func:`make_python_executor` runs such tools with arguments validated by pydantic.

Python targets are written ``module``, ``module:Class``, ``path/to/file.py`` or
``path/to/file.py:Class`` (an optional ``py:`` prefix is accepted).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
import types as pytypes
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import docstring_parser
import typing_extensions
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from astra.errors import InputError, ToolCallError, ToolSchemaError
from astra.tools.schema import normalize_output_schema, normalize_parameters
from astra.types import CallInfo, Tool, ToolServer

_ABSENT = inspect.Parameter.empty


# ---------------------------------------------------------------------------------
# Function -> Tool
# ---------------------------------------------------------------------------------


@dataclass
class _Spec:
    """What we derive once from a callable: the tool and the argument validator."""

    tool: Tool
    model: type[BaseModel]
    positional_only: list[str]
    fn: Callable[..., Any]


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Kwargs|Returns?|Yields?|Raises|"
                      r"Examples?|Notes?|Attributes|See Also)\s*:?\s*$", re.IGNORECASE)
_RETURN_FIELD = re.compile(r"^\s*[-*]?\s*([A-Za-z_][\w]*(?:\([^)]*\))?)\s*\(([^)]*(?:\)[^)]*)?)\)\s*:\s*(.*)$")


def _doc_text(parsed: docstring_parser.Docstring, raw: str = "") -> str:
    """The tool description: the docstring's summary and body without its sections
    (``Args:``, ``Returns:`` ...); when the docstring has no summary (everything sits in
    its sections), the whole docstring, so the tool keeps its documentation."""
    parts = [p.strip() for p in (parsed.short_description, parsed.long_description) if p and p.strip()]
    text = "\n\n".join(parts)
    if raw:
        lines = text.splitlines()
        cut = next((i for i, ln in enumerate(lines) if _SECTION.match(ln)), None)
        if cut is not None:
            text = "\n".join(lines[:cut]).strip()
        if not text:
            text = raw.strip()
    return text


_DOC_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
              "number": "number", "bool": "boolean", "boolean": "boolean", "dict": "object", "list": "array",
              "tuple": "array", "any": None}


def _doc_type(text: str) -> dict[str, Any]:
    t = text.strip().lower()
    m = re.match(r"(?:optional\[)?\s*(list|dict|tuple|set)\s*\[\s*([a-z]+)", t)
    if m:
        outer = "array" if m.group(1) != "dict" else "object"
        if outer == "array":
            inner = _DOC_TYPES.get(m.group(2))
            return {"type": "array", "items": {"type": inner}} if inner else {"type": "array"}
        return {"type": "object"}
    word = re.match(r"(?:optional\[)?\s*([a-z]+)", t)
    jt = _DOC_TYPES.get(word.group(1)) if word else None
    return {"type": jt} if jt else {}


def returns_fields(raw_doc: str) -> dict[str, dict[str, Any]]:
    """Named result fields a docstring's ``Returns:`` section lists, one per line as
    ``name (type): description`` (the BFCL style); only the outermost level."""
    lines = raw_doc.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"^\s*Returns?\s*:\s*$", ln)), None)
    if start is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    indent: int | None = None
    for ln in lines[start + 1:]:
        if not ln.strip():
            continue
        if _SECTION.match(ln):
            break
        depth = len(ln) - len(ln.lstrip())
        if indent is None:
            indent = depth
        if depth > indent:
            continue
        if depth < indent:
            break
        m = _RETURN_FIELD.match(ln)
        if not m:
            return {}  # prose, not a field list
        name = m.group(1)
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            continue  # "MA(5)": not an identifier
        schema = _doc_type(m.group(2))
        desc = " ".join(m.group(3).split())
        if desc:
            schema["description"] = desc
        out[name] = schema
    return out


def _with_doc_fields(schema: dict[str, Any] | None, fields: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """An output schema without named properties (``Dict[str, str]``, no annotation)
    completed with the fields the docstring lists."""
    if not fields:
        return schema
    if schema is not None:
        if schema.get("properties"):
            return schema
        types = schema.get("type")
        alts = [a for a in schema.get("anyOf") or [] if isinstance(a, dict)]
        objectish = types == "object" or any(a.get("type") == "object" for a in alts)
        if not objectish:
            return schema
    out: dict[str, Any] = {"type": "object", "properties": fields}
    if schema and schema.get("description"):
        out["description"] = schema["description"]
    return out


def _one_line(text: str | None) -> str | None:
    if not text:
        return None
    return " ".join(text.split())


_COMPAT_CACHE: dict[Any, Any] = {}


def _compat(tp: Any) -> Any:
    """Rewrite ``typing.TypedDict`` classes (which pydantic rejects on Python < 3.12) into
    equivalent ``typing_extensions.TypedDict`` ones, recursively through generics."""
    if sys.version_info >= (3, 12):
        return tp
    try:
        if tp in _COMPAT_CACHE:
            return _COMPAT_CACHE[tp]
    except TypeError:  # unhashable annotation
        return tp
    out: Any = tp
    if isinstance(tp, type) and typing.is_typeddict(tp) and type(tp).__module__ == "typing":
        required = cast(Any, tp).__required_keys__
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {}
        for key, hint in hints.items():
            inner = _compat(hint)
            fields[key] = typing_extensions.Required[inner] if key in required \
                else typing_extensions.NotRequired[inner]
        out = cast(Any, typing_extensions.TypedDict)(tp.__name__, fields)
        out.__doc__ = tp.__doc__
        out.__module__ = tp.__module__
    else:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is not None and args:
            new_args = tuple(_compat(a) if not isinstance(a, list) else [_compat(x) for x in a] for a in args)
            if new_args != args:
                if origin is typing.Annotated:
                    out = typing.Annotated[(new_args[0], *tp.__metadata__)]
                elif origin is typing.Union or origin is pytypes.UnionType:
                    out = typing.Union.__getitem__(new_args)
                else:
                    try:
                        out = tp.copy_with(new_args) if hasattr(tp, "copy_with") else origin[new_args]
                    except TypeError:
                        out = tp
    _COMPAT_CACHE[tp] = out
    return out


def _build_spec(fn: Callable[..., Any], name: str | None = None, *, skip_first: bool = False) -> _Spec:
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name or not isinstance(tool_name, str):
        raise ToolSchemaError(f"cannot name a tool for {fn!r}: pass name=")
    where = f"python tool {tool_name!r}"
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise ToolSchemaError(f"{where}: no inspectable signature ({e})") from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as e:  # NameError for unresolvable forward refs, TypeError, ...
        raise ToolSchemaError(f"{where}: cannot resolve type hints ({type(e).__name__}: {e})") from None

    raw_doc = inspect.getdoc(fn) or ""
    parsed = docstring_parser.parse(raw_doc)
    param_docs = {p.arg_name: _one_line(p.description) for p in parsed.params}

    params = list(sig.parameters.values())
    if skip_first and params:
        params = params[1:]

    fields: dict[str, Any] = {}
    positional_only: list[str] = []
    for i, p in enumerate(params):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ToolSchemaError(f"{where} parameter {p.name!r}: *args/**kwargs cannot be described as a tool parameter")
        if p.kind is p.POSITIONAL_ONLY:
            positional_only.append(p.name)
        annotation = _compat(hints.get(p.name, Any))
        field_kwargs: dict[str, Any] = {"alias": p.name}
        if param_docs.get(p.name):
            field_kwargs["description"] = param_docs[p.name]
        default = ... if p.default is _ABSENT else p.default
        fields[f"p{i}"] = (annotation, Field(default, **field_kwargs))
    try:
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        raw_params = model.model_json_schema(by_alias=True, mode="validation")
    except Exception as e:  # pydantic cannot build a schema for some annotation
        raise ToolSchemaError(f"{where}: parameters have no JSON schema ({type(e).__name__}: {e})") from None
    parameters = normalize_parameters(raw_params, where=where)

    output_schema = None
    ret = _compat(hints.get("return", _ABSENT))
    if ret is not _ABSENT and ret is not Any and ret is not None and ret is not type(None):
        try:
            raw_out = TypeAdapter(ret).json_schema(mode="serialization")
        except Exception as e:
            raise ToolSchemaError(f"{where}: return annotation has no JSON schema ({type(e).__name__}: {e})") from None
        output_schema = normalize_output_schema(raw_out, where=where)
        if output_schema == {}:
            output_schema = None
        elif (output_schema is not None and parsed.returns and parsed.returns.description
              and "description" not in output_schema):
            output_schema["description"] = _one_line(parsed.returns.description)
    doc_fields = returns_fields(raw_doc)
    if doc_fields:
        try:
            output_schema = normalize_output_schema(_with_doc_fields(output_schema, doc_fields), where=where)
        except ToolSchemaError:
            pass  # the annotation's schema stands

    tool = Tool(name=tool_name, description=_doc_text(parsed, raw_doc), parameters=parameters,
                output_schema=output_schema)
    return _Spec(tool=tool, model=model, positional_only=positional_only, fn=fn)


def tool_from_callable(fn: Callable[..., Any], name: str | None = None) -> Tool:
    """Describe a Python callable as a :class:`Tool`.

    Parameters come from the signature and type hints (via pydantic), their descriptions
    from the docstring's Args/params section; required = parameters without defaults;
    the tool description is the docstring's short + long description; the output schema
    comes from the return annotation when present. Raises :class:`ToolSchemaError`.
    """
    return _build_spec(fn, name).tool


# ---------------------------------------------------------------------------------
# Classes and modules -> ToolServer
# ---------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


#: Attributes by which libraries mark a function as a tool: ``__tool__`` (tau2-bench's
#: ``@is_tool``), ``__astra_tool__`` (:func:`tool`). When a class or module marks any of
#: its functions, only the marked ones are its tools.
TOOL_MARKERS = ("__astra_tool__", "__tool__")
#: Attributes that say whether a marked tool only reads (tau2-bench's ``__tool_type__``).
TOOL_KIND_MARKERS = ("__astra_tool_kind__", "__tool_type__")


def tool(fn: Callable[..., Any] | None = None, *, kind: str = "read") -> Any:
    """Mark a function or method as a tool (``@tool`` or ``@tool(kind="write")``): a
    class or module with any marked function exposes only the marked ones. ``kind`` is
    ``read`` (no side effects: task generation may call it to find real values) or
    ``write``."""
    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        f.__astra_tool__ = True  # type: ignore[attr-defined]
        f.__astra_tool_kind__ = kind  # type: ignore[attr-defined]
        return f
    return mark(fn) if fn is not None else mark


def _unwrap(raw: Any) -> Any:
    if isinstance(raw, staticmethod | classmethod):
        return raw.__func__
    if isinstance(raw, property):
        return raw.fget
    return raw


def is_marked(fn: Any) -> bool:
    f = _unwrap(fn)
    return any(getattr(f, m, False) is True for m in TOOL_MARKERS)


def tool_kind(fn: Any) -> str | None:
    """``read`` / ``write`` / another library kind (lower case) when the function says."""
    f = _unwrap(fn)
    for m in TOOL_KIND_MARKERS:
        v = getattr(f, m, None)
        if v is not None:
            return str(getattr(v, "value", v)).lower()
    return None


def _class_methods(cls: type) -> list[tuple[str, bool]]:
    """The tool methods of ``cls`` in definition order: ``(name, takes_self_or_cls)``.
    Public methods (base classes first); when any method of the class or its bases carries
    a tool marker (:data:`TOOL_MARKERS`), only the marked methods."""
    seen: dict[str, bool] = {}
    marked: set[str] = set()
    for klass in reversed(cls.__mro__[:-1]):  # base classes first, ``object`` excluded
        for attr, raw in vars(klass).items():
            if is_marked(raw) and not isinstance(raw, property):
                marked.add(attr)
            if attr.startswith("_"):
                continue
            if isinstance(raw, staticmethod):
                seen[attr] = False
            elif isinstance(raw, classmethod) or inspect.isfunction(raw):
                seen[attr] = True
            else:
                seen.pop(attr, None)  # shadowed by a non-method attribute
    if marked:
        return [(a, t) for a, t in seen.items() if a in marked]
    return list(seen.items())


@dataclass
class SkippedTool:
    """A method or function that could not be described as a tool, and why."""

    name: str
    reason: str


def _class_specs(cls: type, instance: Any | None = None,
                 skipped: list[SkippedTool] | None = None) -> dict[str, _Spec]:
    """Specs of the tool methods of ``cls``. A method that cannot be described (``**kwargs``,
    a type without a JSON schema) is appended to ``skipped`` when given (the other tools are
    kept); without ``skipped`` the first such error is raised."""
    specs: dict[str, _Spec] = {}
    for attr, _takes_self in _class_methods(cls):
        raw = inspect.getattr_static(cls, attr)
        try:
            if instance is not None:
                fn = getattr(instance, attr)  # bound: signature has no self
                specs[attr] = _build_spec(fn, attr)
            elif isinstance(raw, staticmethod | classmethod):
                specs[attr] = _build_spec(getattr(cls, attr), attr)
            else:
                specs[attr] = _build_spec(raw, attr, skip_first=True)
        except ToolSchemaError as e:
            if skipped is None:
                raise
            skipped.append(SkippedTool(attr, str(e)))
    return specs


def _module_functions(module: pytypes.ModuleType) -> list[tuple[str, Callable[..., Any]]]:
    """Public functions defined in ``module``; when any is marked as a tool
    (:data:`TOOL_MARKERS`), only the marked ones."""
    out: list[tuple[str, Callable[..., Any]]] = []
    for attr, obj in vars(module).items():
        if attr.startswith("_") or not inspect.isfunction(obj):
            continue
        if obj.__module__ != module.__name__:
            continue  # imported, not defined here
        out.append((attr, obj))
    if any(is_marked(fn) for _, fn in out):
        out = [(a, fn) for a, fn in out if is_marked(fn)]
    return out


def _module_specs(module: pytypes.ModuleType, skipped: list[SkippedTool] | None = None) -> dict[str, _Spec]:
    specs: dict[str, _Spec] = {}
    for attr, fn in _module_functions(module):
        try:
            specs[attr] = _build_spec(fn, attr)
        except ToolSchemaError as e:
            if skipped is None:
                raise
            skipped.append(SkippedTool(attr, str(e)))
    return specs


def _target_of(obj: type | pytypes.ModuleType) -> str:
    if isinstance(obj, pytypes.ModuleType):
        return getattr(obj, "__astra_file__", None) or obj.__name__
    module = sys.modules.get(obj.__module__)
    base = getattr(module, "__astra_file__", None) or obj.__module__
    return f"{base}:{obj.__qualname__}"


def typed_target(target: str) -> str:
    """The target as the user typed it, without ``py:`` (a file path made absolute, so
    later stages find it from any directory). Stored in ``CallInfo.target``: the class
    is imported again by this name, whatever its ``__module__``/``__qualname__`` say (a
    wrapper class built by a factory, a re-exported alias)."""
    t = target.strip()
    if t.startswith("py:"):
        t = t[3:].strip()
    mod, sep, attr = t.rpartition(":")
    if not sep:
        mod, attr = t, ""
    if mod.endswith(".py") or "/" in mod or "\\" in mod:
        mod = str(Path(mod).expanduser().resolve())
    return f"{mod}:{attr}" if attr else mod


def _str_attr(obj: Any, attr: str) -> str | None:
    value = getattr(obj, attr, None)
    return value if isinstance(value, str) else None


def server_from_class(cls: type, *, source: str = "", target: str | None = None,
                      skipped: list[SkippedTool] | None = None) -> ToolServer:
    """A server from a tool class: attributes ``name``/``title``/``domain`` (and an
    optional ``description``, else the class docstring); its tool methods
    (:func:`_class_methods`) are its tools. ``target`` is what later stages import
    (default: the class's module and qualified name). Methods that cannot be described
    go to ``skipped`` when given, else raise :class:`ToolSchemaError`."""
    if not inspect.isclass(cls):
        raise InputError(f"{cls!r} is not a class")
    specs = _class_specs(cls, skipped=skipped)
    doc = cls.__dict__.get("__doc__")
    target = target or _target_of(cls)
    return ToolServer(
        name=_str_attr(cls, "name") or _snake(cls.__name__),
        title=_str_attr(cls, "title") or "",
        description=_str_attr(cls, "description") or (inspect.cleandoc(doc) if isinstance(doc, str) else ""),
        domain=_str_attr(cls, "domain") or "general",
        tools=[s.tool for s in specs.values()],
        call=CallInfo(kind="python", target=target),
        source=source or f"py:{target}",
    )


def server_from_module(
    module: pytypes.ModuleType, *, name: str | None = None, domain: str | None = None, source: str = "",
    target: str | None = None, skipped: list[SkippedTool] | None = None,
) -> ToolServer:
    """A server of the public functions defined in ``module`` (imported ones excluded;
    only the marked ones when any is marked)."""
    tools = [s.tool for s in _module_specs(module, skipped).values()]
    target = target or _target_of(module)
    return ToolServer(
        name=name or _str_attr(module, "name") or module.__name__.rsplit(".", 1)[-1],
        title=_str_attr(module, "title") or "",
        description=inspect.cleandoc(module.__doc__) if module.__doc__ else "",
        domain=domain or _str_attr(module, "domain") or "general",
        tools=tools,
        call=CallInfo(kind="python", target=target),
        source=source or f"py:{target}",
    )


# ---------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------


def _split_target(target: str) -> tuple[str, str | None]:
    t = target.strip()
    if t.startswith("py:"):
        t = t[3:]
    if not t:
        raise InputError("empty Python target (expected 'module', 'module:Class' or 'file.py[:Class]')")
    # a Windows drive letter never occurs here; the last ':' separates the class
    mod, sep, attr = t.rpartition(":")
    if not sep:
        return t, None
    if not mod or not attr:
        raise InputError(f"bad Python target {target!r} (expected 'module', 'module:Class' or 'file.py[:Class]')")
    return mod, attr


def _load_file(path_str: str) -> pytypes.ModuleType:
    path = Path(path_str).expanduser().resolve()
    if not path.is_file():
        raise InputError(f"Python file not found: {path_str}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    mod_name = f"astra_pyfile_{stem}_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot load Python file {path_str}")
    module = importlib.util.module_from_spec(spec)
    module.__astra_file__ = str(path)  # type: ignore[attr-defined]
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[mod_name]
        raise InputError(f"importing {path_str} failed: {type(e).__name__}: {e}") from e
    return module


def _load_module(mod: str) -> pytypes.ModuleType:
    if mod.endswith(".py") or "/" in mod or "\\" in mod:
        return _load_file(mod)
    try:
        return importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name and (mod == e.name or mod.startswith(e.name + ".")):
            raise InputError(f"Python module {mod!r} not found (is it installed / on PYTHONPATH?)") from None
        raise InputError(f"importing {mod!r} failed: {e}") from e
    except Exception as e:
        raise InputError(f"importing {mod!r} failed: {type(e).__name__}: {e}") from e


def load_python_target(target: str) -> type | pytypes.ModuleType:
    """Import ``module``, ``module:Class``, ``file.py`` or ``file.py:Class``."""
    mod, attr = _split_target(target)
    module = _load_module(mod)
    if attr is None:
        return module
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"Python target {target!r}: {mod!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not inspect.isclass(obj):
        raise InputError(f"Python target {target!r} is not a class (got {type(obj).__name__})")
    return obj


def server_from_target(target: str, *, name: str | None = None, domain: str | None = None,
                       source: str = "", skipped: list[SkippedTool] | None = None) -> ToolServer:
    """Load a Python target and describe it as a server; ``CallInfo.target`` is the
    target as typed (:func:`typed_target`). Methods that cannot be described go to
    ``skipped`` when given (else :class:`ToolSchemaError`)."""
    obj = load_python_target(target)
    typed = typed_target(target)
    if isinstance(obj, pytypes.ModuleType):
        return server_from_module(obj, name=name, domain=domain, source=source, target=typed, skipped=skipped)
    server = server_from_class(obj, source=source, target=typed, skipped=skipped)
    updates = {k: v for k, v in (("name", name), ("domain", domain)) if v}
    return server.model_copy(update=updates) if updates else server


# ---------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------


def _format_validation(e: ValidationError) -> str:
    msgs = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "arguments"
        if err.get("type") == "extra_forbidden":
            msgs.append(f"unexpected argument {loc!r}")
        elif err.get("type") == "missing":
            msgs.append(f"missing required argument {loc!r}")
        else:
            msgs.append(f"{loc!r}: {err.get('msg')} (got {err.get('input')!r})")
    return "; ".join(msgs)


class PythonExecutor:
    """Runs the tools of one Python target. A class target is instantiated once, so the
    executor holds that instance's state (one executor per session/episode)."""

    def __init__(self, target: str):
        self.target = target
        obj = load_python_target(target)
        #: Methods/functions that are not tools because they cannot be described.
        self.skipped: list[SkippedTool] = []
        if isinstance(obj, pytypes.ModuleType):
            self.instance: Any = None
            self._specs = _module_specs(obj, self.skipped)
        else:
            try:
                self.instance = obj()
            except Exception as e:
                raise InputError(f"cannot instantiate {target!r}: {type(e).__name__}: {e}") from e
            self._specs = _class_specs(obj, self.instance, self.skipped)

    @property
    def tools(self) -> list[Tool]:
        return [s.tool for s in self._specs.values()]

    def kind(self, tool_name: str) -> str | None:
        """``read``/``write``/... when the implementation marks it (:data:`TOOL_KIND_MARKERS`)."""
        spec = self._specs.get(tool_name)
        return tool_kind(spec.fn) if spec is not None else None

    def _prepare(self, tool_name: str, arguments: Any) -> tuple[_Spec, list[Any], dict[str, Any]]:
        spec = self._specs.get(tool_name)
        if spec is None:
            raise ToolCallError(
                f"unknown tool {tool_name!r}; available tools: {', '.join(self._specs) or '(none)'}")
        if arguments is None:
            arguments = {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                raise ToolCallError(f"arguments for tool {tool_name!r} are not valid JSON: {e.msg}") from None
        if not isinstance(arguments, dict):
            raise ToolCallError(
                f"arguments for tool {tool_name!r} must be a JSON object, got {type(arguments).__name__}")
        try:
            validated = spec.model.model_validate(arguments)
        except ValidationError as e:
            raise ToolCallError(f"invalid arguments for tool {tool_name!r}: {_format_validation(e)}") from None
        fields = type(validated).model_fields
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for fname, finfo in fields.items():
            alias = finfo.alias or fname
            if alias in spec.positional_only:
                args.append(getattr(validated, fname))
            elif fname in validated.model_fields_set:
                kwargs[alias] = getattr(validated, fname)
        return spec, args, kwargs

    def call(self, tool_name: str, arguments: dict[str, Any] | str | None = None) -> Any:
        """Call a tool. Bad tool names / arguments raise :class:`ToolCallError`; whatever
        the implementation raises propagates unchanged. ``arguments`` may be a JSON string."""
        spec, args, kwargs = self._prepare(tool_name, arguments)
        result = spec.fn(*args, **kwargs)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(_await(result))
            raise ToolCallError(f"tool {tool_name!r} is async; use 'await executor.acall(...)' inside an event loop")
        return result

    async def acall(self, tool_name: str, arguments: dict[str, Any] | str | None = None) -> Any:
        """Like :meth:`call`, awaiting async implementations."""
        spec, args, kwargs = self._prepare(tool_name, arguments)
        result = spec.fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


async def _await(aw: Any) -> Any:
    return await aw


def make_python_executor(target: str) -> PythonExecutor:
    """An executor with fresh state for ``module`` / ``module:Class`` / ``file.py[:Class]``."""
    return PythonExecutor(target)
