"""Parse Hermes-style ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks.

Used for models without native tool calling (the embedded default). A block whose JSON
cannot be read, or that has no name, is reported in ``errors`` (and kept in the text) so
the agent loop can return it to the model as a malformed call instead of losing it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from astra.llm.types import ToolCall

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


@dataclass
class ParsedReply:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _call_id(index: int, body: str) -> str:
    return "call_" + hashlib.sha1(f"{index}:{body}".encode()).hexdigest()[:12]


def parse_tool_calls(text: str) -> ParsedReply:
    calls: list[ToolCall] = []
    errors: list[str] = []
    kept_text: list[str] = []
    pos = 0
    for i, m in enumerate(_BLOCK.finditer(text)):
        kept_text.append(text[pos:m.start()])
        pos = m.end()
        body = m.group(1).strip()
        try:
            obj, _ = json.JSONDecoder().raw_decode(body)
        except json.JSONDecodeError as e:
            errors.append(f"tool call {i + 1}: invalid JSON ({e.msg}): {body[:200]}")
            kept_text.append(m.group(0))
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
            errors.append(f"tool call {i + 1}: expected {{\"name\": ..., \"arguments\": {{...}}}}, got {body[:200]}")
            kept_text.append(m.group(0))
            continue
        args = obj.get("arguments", obj.get("parameters", {}))
        args_str = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(id=_call_id(i, body), name=obj["name"], arguments=args_str))
    kept_text.append(text[pos:])
    content = "".join(kept_text).strip()
    return ParsedReply(content=content or None, tool_calls=calls, errors=errors)
