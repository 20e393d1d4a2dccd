"""Read tool calls that a model wrote as text.

Used for every reply that has no native ``tool_calls``: the embedded model (which writes
Hermes-style blocks) and OpenAI-compatible servers started without a tool-call parser,
which pass the model's text through as ``content``. The formats recognised:

- Hermes / Qwen ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (an
  unterminated last block, as when generation is cut off, is read too);
- Llama 3.x ``<|python_tag|>{...}`` (several calls separated by ``;``) and Mistral
  ``[TOOL_CALLS][{...}, ...]``;
- ``<function=NAME>{...}</function>`` (Llama 3.1's alternative format);
- bare JSON: a reply that is a call object or a list of them, alone or in a ```json fence,
  or a call object inside prose.

A call object is ``{"name": ..., "arguments": {...}}``; ``parameters`` may replace
``arguments``, the arguments may be a JSON string, and OpenAI's own shapes
(``{"type": "function", "function": {...}}``, ``{"tool_calls": [...]}``) are accepted.

Explicit markers (``<tool_call>``, ``<|python_tag|>``, ``[TOOL_CALLS]``, ``<function=``)
say the model meant a call: one whose JSON cannot be read is reported in ``errors`` (and
kept in the text) so the agent loop can return it to the model as a malformed call. Bare
JSON carries no such intent, so it is taken as a call only when tools were offered
(``tool_names``), it has no keys a call lacks, and it names an offered tool or, when it is
the whole reply, has an ``arguments``/``parameters`` key (a call of a tool that does not
exist, which the agent loop reports as such); anything else stays text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from astra.llm.types import ToolCall

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FUNCTION_TAG = re.compile(r"<function=([A-Za-z0-9_.\-]+)>\s*(.*?)\s*(?:</function>|$)", re.DOTALL)
_FENCE = re.compile(r"```(?:json|JSON|tool_call|tool_code)?\s*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
_MISTRAL_ARGS = re.compile(r"([A-Za-z0-9_.\-]+)\[ARGS\](.*)", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL_TAG = "[TOOL_CALLS]"
_END_TOKENS = ("<|eom_id|>", "<|eot_id|>", "</s>", "<|im_end|>")


@dataclass
class ParsedReply:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _call_id(index: int, body: str) -> str:
    return "call_" + hashlib.sha1(f"{index}:{body}".encode()).hexdigest()[:12]


def _as_call(obj: Any, strict: bool = True) -> tuple[str, Any] | None:
    """(name, arguments) of one call object, or None when ``obj`` is not one. ``strict``
    (bare JSON) also refuses objects with keys a call does not have."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI's {"type": "function", "function": {...}}
        inner = obj["function"]
        if isinstance(inner.get("name"), str):
            obj = inner
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    extra = set(obj) - {"name", "arguments", "parameters", "type", "id"}
    if strict and extra:  # a data object that merely has a "name" field
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if args is None:
        args = {}
    return name.strip(), args


def _as_calls(value: Any, strict: bool = True) -> list[tuple[str, Any]] | None:
    """Every call in a call object / list of them / ``{"tool_calls": [...]}``; None if any
    element is not a call."""
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list) and len(value) == 1:
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    calls = [_as_call(v, strict) for v in items]
    if any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


def _call_shaped(value: Any) -> bool:
    """Every object in ``value`` has an ``arguments``/``parameters`` key: a call attempt
    even when it names a tool that was not offered (the agent loop reports that)."""
    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, dict) and isinstance(v.get("function"), dict):
            v = v["function"]
        if not (isinstance(v, dict) and ("arguments" in v or "parameters" in v)):
            return False
    return bool(items)


def _arguments_json(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


def _decode_all(text: str) -> list[Any] | None:
    """``text`` as one or more JSON values separated by whitespace, ``;`` or ``,``; None
    when anything else is left over."""
    decoder = json.JSONDecoder()
    values, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n;,":
            i += 1
        if i >= n:
            break
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return None
        values.append(value)
        i = end
    return values or None


class _Collector:
    def __init__(self, tool_names: set[str] | None):
        self.tool_names = tool_names
        self.calls: list[ToolCall] = []
        self.errors: list[str] = []

    def known(self, name: str) -> bool:
        return self.tool_names is not None and name in self.tool_names

    def add(self, name: str, args: Any, body: str) -> None:
        self.calls.append(ToolCall(id=_call_id(len(self.calls), body), name=name,
                                   arguments=_arguments_json(args)))

    def error(self, message: str) -> None:
        self.errors.append(f"tool call {len(self.calls) + len(self.errors) + 1}: {message}")


def _strip_end_tokens(text: str) -> str:
    text = text.strip()
    for tok in _END_TOKENS:
        if text.endswith(tok):
            text = text[: -len(tok)].rstrip()
    return text


def _explicit_payload(c: _Collector, payload: str, marker: str) -> bool:
    """Calls after a ``<|python_tag|>`` / ``[TOOL_CALLS]`` marker; False when unreadable."""
    payload = _strip_end_tokens(payload)
    values = _decode_all(payload)
    calls = []
    for v in values or []:
        got = _as_calls(v, strict=False)
        if got is None:
            values = None
            break
        calls.extend(got)
    if not values and marker == _MISTRAL_TAG:  # newer Mistral: [TOOL_CALLS]name[ARGS]{...}
        m = _MISTRAL_ARGS.match(payload)
        if m:
            args = _decode_all(m.group(2))
            if args and len(args) == 1:
                values, calls = args, [(m.group(1), args[0])]
    if not values or not calls:
        c.error(f"unreadable call after {marker}: {payload[:200]}")
        return False
    for name, args in calls:
        c.add(name, args, payload)
    return True


def offered_names(tools: Iterable[Any] | None) -> list[str]:
    """The function names of an OpenAI ``tools`` list."""
    names = []
    for t in tools or []:
        fn = t.get("function", t) if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.append(fn["name"])
    return names


def _take_blocks(visible: str, pattern: re.Pattern[str], c: _Collector,
                 read: Callable[[re.Match[str], _Collector], str | None]) -> str:
    """``visible`` without the blocks ``pattern`` finds: ``read`` adds a block's calls to
    ``c`` and returns None, or returns why it cannot (the error is recorded and the block
    stays in the text)."""
    kept: list[str] = []
    pos = 0
    for m in pattern.finditer(visible):
        kept.append(visible[pos:m.start()])
        pos = m.end()
        problem = read(m, c)
        if problem is not None:
            c.error(problem)
            kept.append(m.group(0))
    kept.append(visible[pos:])
    return "".join(kept)


def _read_tool_call_block(m: re.Match[str], c: _Collector) -> str | None:
    """A ``<tool_call>`` block: one call object or a list of them, possibly fenced."""
    body = m.group(1).strip()
    fenced = _FENCE.fullmatch(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        obj, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as e:
        return f"invalid JSON ({e.msg}): {body[:200]}"
    got = _as_calls(obj, strict=False)
    if got is None:
        return f'expected {{"name": ..., "arguments": {{...}}}}, got {body[:200]}'
    for name, args in got:
        c.add(name, args, body)
    return None


def _read_function_block(m: re.Match[str], c: _Collector) -> str | None:
    """A ``<function=NAME>`` block: the arguments object of a call of NAME."""
    body = m.group(2).strip() or "{}"
    try:
        args, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as e:
        return f"invalid JSON ({e.msg}) in <function={m.group(1)}>: {body[:200]}"
    c.add(m.group(1), args, body)
    return None


def parse_tool_calls(text: str, tool_names: Iterable[str] | None = None) -> ParsedReply:
    """Tool calls written as text in ``text`` (see the module doc for the formats).

    ``tool_names``: the offered tools; bare JSON is a call only when its name is one of
    them (with ``None`` only explicitly marked calls are read)."""
    names = set(tool_names) if tool_names is not None else None
    c = _Collector(names)
    if not text:
        return ParsedReply(content=text or None)
    visible = _THINK.sub("", text)  # reasoning is not a call, even when it drafts one
    thinking = text[: len(text) - len(visible)] if visible != text and text.endswith(visible) else ""

    # 1. <tool_call> blocks
    if "<tool_call>" in visible:
        return _result(thinking + _take_blocks(visible, _BLOCK, c, _read_tool_call_block), c)

    # 2. <|python_tag|> (Llama 3.x) and [TOOL_CALLS] (Mistral)
    for marker in (_PYTHON_TAG, _MISTRAL_TAG):
        if marker in visible:
            before, _, payload = visible.partition(marker)
            if _explicit_payload(c, payload, marker):
                return _result(thinking + before, c)
            return _result(text, c)

    # 3. <function=NAME>{...}</function>
    if "<function=" in visible:
        return _result(thinking + _take_blocks(visible, _FUNCTION_TAG, c, _read_function_block), c)

    # 4. bare JSON: the whole reply, fenced blocks, or call objects inside prose
    stripped = _strip_end_tokens(visible)
    whole = _FENCE.fullmatch(stripped)
    candidate = whole.group(1).strip() if whole else stripped
    values = _decode_all(candidate) if candidate[:1] in "{[" else None
    if values:
        found = [_as_calls(v) for v in values]
        if all(f is not None for f in found):
            flat = [call for f in found for call in f]  # type: ignore[union-attr]
            shaped = all(_call_shaped(v) for v in values)
            if flat and (shaped and c.tool_names is not None or all(c.known(n) for n, _ in flat)):
                for name, args in flat:
                    c.add(name, args, candidate)
                return _result(thinking, c)
        return _result(text, c)
    return _result(thinking + _embedded_calls(visible, c), c)


def _embedded_calls(text: str, c: _Collector) -> str:
    """Take call objects of offered tools out of prose (and out of fences inside it)."""
    decoder = json.JSONDecoder()
    spans: list[tuple[int, int]] = []
    i = 0
    while True:
        i = text.find("{", i)
        if i < 0:
            break
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        got = _as_calls(value)
        if got and all(c.known(n) for n, _ in got):
            for name, args in got:
                c.add(name, args, text[i:end])
            spans.append((i, end))
        i = end
    if not spans:
        return text
    out, pos = [], 0
    for s, e in spans:
        out.append(text[pos:s])
        pos = e
    out.append(text[pos:])
    kept = "".join(out)
    return _FENCE.sub(lambda m: "" if not m.group(1).strip() else m.group(0), kept)


def _result(content: str, c: _Collector) -> ParsedReply:
    content = content.strip()
    return ParsedReply(content=content or None, tool_calls=c.calls, errors=c.errors)
