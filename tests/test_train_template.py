"""The project's tool chat template: tools as compact signatures (fewer prompt tokens than
JSON schemas), the tool-call text format unchanged, earlier versions replaced on load."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from astra.llm.embedded import (
    PREVIOUS_TOOL_TEMPLATES,
    ensure_tool_chat_template,
    is_previous_tool_template,
    tool_chat_template,
)
from astra.llm.toolparse import parse_tool_calls

TOOLS = [
    {"type": "function", "function": {
        "name": "search_flights", "description": "Search flights.\n\nReturns   the cheapest first.",
        "parameters": {"type": "object", "properties": {
            "origin": {"type": "string", "description": "IATA code, e.g. 'JFK'."},
            "cabin": {"type": "string", "enum": ["economy", "business"], "default": "economy"},
            "passengers": {"type": "integer", "minimum": 1, "maximum": 9, "default": 1},
            "max_price": {"type": ["number", "null"], "default": None},
            "tags": {"type": "array", "items": {"type": "string"}},
            "when": {"type": "object", "properties": {"date": {"type": "string"}, "flex": {"type": "boolean"}},
                     "required": ["date"]},
            "status": {"anyOf": [{"type": "string", "enum": ["open", "closed"]}, {"type": "null"}]},
        }, "required": ["origin"]}}},
    {"name": "ping", "parameters": {"type": "object", "properties": {}}},  # a bare function, no description
]
CALL = {"id": "c1", "type": "function", "function": {"name": "search_flights", "arguments": '{"origin": "JFK"}'}}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Flights from JFK?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"flights": []}'},
            {"role": "assistant", "content": "None."}]


@pytest.fixture(scope="module")
def tokenizer(tokenizer):
    """The shared embedded tokenizer with the template under test (this checkout's file)."""
    tokenizer.chat_template = tool_chat_template()
    return tokenizer


def test_tools_render_as_compact_signatures(tokenizer):
    text = tokenizer.apply_chat_template(MESSAGES[:2], tools=TOOLS, tokenize=False)
    sig = ('\n- search_flights(origin: string, cabin?: "economy"|"business" = "economy", '
           'passengers?: integer 1..9 = 1, max_price?: number|null, tags?: string[], '
           'when?: {date: string, flex?: boolean}, status?: "open"|"closed"|null)'
           ' — Search flights. Returns the cheapest first.'
           "\n    origin: IATA code, e.g. 'JFK'.")
    assert sig in text
    assert "\n- ping()\n" in text
    assert '"properties"' not in text and "<tools>" not in text
    assert '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' in text


def test_compact_prompt_is_shorter_than_json_and_calls_render_the_same(tokenizer):
    compact = tokenizer.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False)
    full = tokenizer.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False, tool_format="json")
    assert "<tools>" in full and json.dumps(TOOLS[0]["function"], ensure_ascii=False) in full
    n = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in (compact, full)]
    assert n[0] < 0.75 * n[1]
    # everything after the system prompt (calls, results, answers) is rendered identically
    assert compact[compact.index("<|im_start|>user"):] == full[full.index("<|im_start|>user"):]
    call_text = '<tool_call>\n{"name": "search_flights", "arguments": {"origin": "JFK"}}\n</tool_call>'
    assert call_text in compact
    parsed = parse_tool_calls(call_text)
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [("search_flights", {"origin": "JFK"})]


def test_json_mode_reproduces_template_v1(tokenizer):
    """tool_format='json' renders exactly what version 1 of the template rendered."""
    v1 = _v1_template(tokenizer)
    assert is_previous_tool_template(v1)  # the rebuilt text is v1 byte for byte (its digest)
    tok = copy.deepcopy(tokenizer)
    text = tok.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False, tool_format="json")
    tok.chat_template = v1
    assert tok.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=False) == text
    lines = text.split("\n")
    assert lines[lines.index("<tools>") + 1] == json.dumps(TOOLS[0]["function"], ensure_ascii=False)


def test_earlier_template_versions_are_replaced_on_load(tokenizer):
    tok = copy.deepcopy(tokenizer)
    assert not ensure_tool_chat_template(tok)  # current: kept
    tok.chat_template = tool_chat_template() + "{#- a model's own copy -#}"
    assert not ensure_tool_chat_template(tok) and not is_previous_tool_template(tok.chat_template)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # no tool support
    assert ensure_tool_chat_template(tok) and tok.chat_template == tool_chat_template()
    # a checkpoint saved with an earlier version (known by its digest) gets the current one
    digest = hashlib.sha256(b"an earlier version with tools").hexdigest()
    PREVIOUS = set(PREVIOUS_TOOL_TEMPLATES)
    assert len(PREVIOUS) >= 1
    import astra.llm.embedded as emb

    old = emb.PREVIOUS_TOOL_TEMPLATES
    emb.PREVIOUS_TOOL_TEMPLATES = frozenset(PREVIOUS | {digest})
    try:
        tok.chat_template = "  an earlier version with tools\n"
        assert is_previous_tool_template(tok.chat_template)
        assert ensure_tool_chat_template(tok) and tok.chat_template == tool_chat_template()
    finally:
        emb.PREVIOUS_TOOL_TEMPLATES = old


def test_sft_and_rl_loaders_upgrade_a_saved_v1_template(tmp_path, tokenizer):
    """The converted default model was saved with template v1: SFT, RL and the embedded
    provider all render with the current template."""
    from astra.train.sft import choose_chat_template

    tok = copy.deepcopy(tokenizer)
    v1 = _v1_template(tokenizer)
    tok.chat_template = v1
    assert choose_chat_template(tok) == "astra-chatml-tools" and tok.chat_template == tool_chat_template()
    tok.chat_template = v1
    assert ensure_tool_chat_template(tok) and tok.chat_template == tool_chat_template()


def _v1_template(tokenizer) -> str:
    """Version 1 of the template, rebuilt from the current one's JSON branch."""
    cur = tool_chat_template()
    head_end = cur.index("{%- set default_system")
    v1_head = ("{#- ChatML with tool calling (Hermes / Qwen2.5 style <tool_call> blocks) for models whose own\n"
               "    template has no tool support. Assistant turns are wrapped in generation markers so\n"
               "    trainers can compute an assistant-only loss. Tool-call arguments may be JSON strings\n"
               "    (passed through unchanged) or objects. -#}\n")
    body = cur[head_end:]
    start = body.index("{%- if tools and tool_format is defined and tool_format == 'json' -%}")
    mid = body.index("{%- elif tools -%}")
    end = body.index("{%- endif -%}\n{{- '<|im_end|>\\n' -}}")
    json_branch = body[start:mid].replace("{%- if tools and tool_format is defined and tool_format == 'json' -%}",
                                          "{%- if tools -%}")
    return v1_head + body[:start] + json_branch + body[end:]
