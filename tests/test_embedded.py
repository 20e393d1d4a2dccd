"""The embedded provider on the real bundled model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import asyncio
import json

import pytest

from astra.llm import make_client
from astra.llm.embedded import EmbeddedProvider, tool_chat_template

pytestmark = pytest.mark.model

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def provider():
    return EmbeddedProvider()


def test_template_renders_tools_calls_and_responses(provider):
    tok = provider.loaded().tokenizer
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"temp_c\": 3}"},
        {"role": "assistant", "content": "It is 3 °C in Oslo."},
    ]
    text = tok.apply_chat_template(msgs, tools=TOOLS, tokenize=False)
    assert "\n- get_weather(city: string) — Current weather for a city." in text  # compact signature
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    assert "<tool_response>\n{\"temp_c\": 3}\n</tool_response>" in text
    # only assistant tokens are marked for loss
    enc = tok.apply_chat_template(msgs, tools=TOOLS, return_dict=True, return_assistant_tokens_mask=True)
    mask = enc["assistant_masks"]
    ids = enc["input_ids"]
    assistant_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert "get_weather" in assistant_text and "It is 3 °C in Oslo." in assistant_text
    assert "Weather in Oslo?" not in assistant_text and "temp_c" not in assistant_text
    assert tok.chat_template == tool_chat_template()


async def test_generation_batched_and_parsed(provider):
    client = make_client("embedded", cache=False)
    client.provider = provider
    replies = await asyncio.gather(*[
        client.chat([{"role": "user", "content": f"Name a color. ({i})"}], max_tokens=8) for i in range(3)
    ])
    for r in replies:
        assert r.completion_tokens <= 8 and r.prompt_tokens > 0
        assert r.content is not None
    # greedy decoding is deterministic
    again = await client.chat([{"role": "user", "content": "Name a color. (0)"}], max_tokens=8)
    assert again.content == replies[0].content


def test_tool_call_output_is_parsed(provider):
    # force a tool call by continuing a prompt that already opened one
    from astra.llm.types import ChatRequest
    res = provider.generate_batch([ChatRequest(messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                               tools=TOOLS, max_tokens=4)])[0]
    assert res.model.startswith("embedded:")
    assert isinstance(res.tool_calls, list)
    json.dumps(res.model_dump())


def test_overlong_request_fails_alone(provider):
    """A prompt that does not fit the context fails on its own; the others of the batch run."""
    from astra.llm.errors import LLMRequestError
    from astra.llm.types import ChatRequest

    short = ChatRequest(messages=[{"role": "user", "content": "Say hi."}], max_tokens=3)
    huge = ChatRequest(messages=[{"role": "user", "content": "word " * 9000}], max_tokens=3)
    out = provider.generate_each([short, huge, short])
    assert isinstance(out[1], LLMRequestError) and "context" in str(out[1])
    assert all(r.completion_tokens <= 3 and r.prompt_tokens < 100 for r in (out[0], out[2]))
    with pytest.raises(LLMRequestError):
        provider.generate_batch([short, huge])


def test_length_buckets_group_similar_prompts():
    from astra.llm.embedded import _length_buckets

    lengths = [100, 2000, 120, 1900, 130, 50]
    buckets = _length_buckets(list(range(6)), lengths, limit=None, max_new={i: 10 for i in range(6)})
    assert sorted(i for b in buckets for i in b) == list(range(6))
    assert [sorted(b) for b in buckets] == [[0, 2, 4, 5], [1, 3]]
    # the padded batch must fit the context: longest prompt + largest max_tokens
    tight = _length_buckets([0, 1], [100, 120], limit=230, max_new={0: 120, 1: 10})
    assert tight == [[0], [1]]
