"""The LLM layer: cache, retries, failures, structured output, tool-call parsing."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from astra.llm import LLMClient, LLMSettings, ResponseCache, make_client
from astra.llm.client import extract_json
from astra.llm.errors import (
    LLMBadResponse,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
    StructuredOutputError,
)
from astra.llm.openai_provider import OpenAIProvider
from astra.llm.testing import ScriptedChatProvider, reply
from astra.llm.toolparse import parse_tool_calls
from astra.llm.usage import UsageBook, stage_scope
from tests.fake_openai import FakeOpenAI, completion


def fast_client(provider, usage, **kw) -> LLMClient:
    kw.setdefault("backoff_initial", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return LLMClient(provider, usage=usage, **kw)


async def test_cache_makes_rerun_zero_call(tmp_path):
    usage = UsageBook()
    provider = ScriptedChatProvider(lambda req: reply(f"echo {req.messages[-1]['content']}"))
    cache_path = tmp_path / "cache.sqlite"
    client = fast_client(provider, usage, cache=ResponseCache(cache_path))
    with stage_scope("s1"):
        first = [await client.chat([{"role": "user", "content": f"q{i}"}]) for i in range(5)]
    assert provider.calls == 5
    # a new client on the same cache file (a rerun) makes zero provider calls
    provider2 = ScriptedChatProvider([])
    client2 = fast_client(provider2, usage, cache=ResponseCache(cache_path))
    with stage_scope("s2"):
        second = [await client2.chat([{"role": "user", "content": f"q{i}"}]) for i in range(5)]
    assert provider2.calls == 0
    assert [r.content for r in first] == [r.content for r in second]
    assert all(r.cached for r in second)
    assert usage.get("s2").cache_hits == 5 and usage.get("s2").calls == 0
    assert usage.get("s1").calls == 5


async def test_cache_distinguishes_requests_and_samples(tmp_path):
    usage = UsageBook()
    provider = ScriptedChatProvider(lambda req: reply("x"))
    client = fast_client(provider, usage, cache=ResponseCache(tmp_path / "c.sqlite"))
    msgs = [{"role": "user", "content": "same"}]
    await client.chat(msgs)
    await client.chat(msgs, temperature=0.7)
    await client.chat(msgs, temperature=0.7, sample_index=1)
    await client.chat(msgs, temperature=0.7, sample_index=1)
    assert provider.calls == 3


async def test_failures_are_not_cached(tmp_path):
    usage = UsageBook()
    provider = ScriptedChatProvider([LLMRequestError("nope"), reply("fine")])
    client = fast_client(provider, usage, cache=ResponseCache(tmp_path / "c.sqlite"))
    with pytest.raises(LLMRequestError):
        await client.chat([{"role": "user", "content": "a"}])
    assert (await client.chat([{"role": "user", "content": "a"}])).content == "fine"


def _openai_client(fake: FakeOpenAI, usage: UsageBook, **kw) -> LLMClient:
    provider = OpenAIProvider("fake-model", base_url=fake.base_url, api_key="test",
                              timeout=kw.pop("provider_timeout", 30))
    return fast_client(provider, usage, **kw)


async def test_openai_endpoint_ok_with_tool_calls():
    tc = [{"id": "c1", "type": "function", "function": {"name": "get_x", "arguments": "{\"a\": 1}"}}]
    with FakeOpenAI([lambda body: (200, completion("", tc))]) as fake:
        usage = UsageBook()
        client = _openai_client(fake, usage)
        resp = await client.chat([{"role": "user", "content": "hi"}],
                                 tools=[{"type": "function", "function": {"name": "get_x", "parameters": {}}}])
    assert resp.tool_calls[0].name == "get_x"
    assert resp.tool_calls[0].parsed_arguments() == {"a": 1}
    assert fake.requests[0]["tools"][0]["function"]["name"] == "get_x"
    assert usage.total().prompt_tokens == 7


@pytest.mark.parametrize("failure, error", [("500", LLMServerError), ("429", LLMRateLimited),
                                            ("badjson", LLMBadResponse)])
async def test_retryable_errors_are_retried_then_succeed(failure, error):
    with FakeOpenAI([failure, failure, "ok"]) as fake:
        usage = UsageBook()
        client = _openai_client(fake, usage, max_retries=3)
        resp = await client.chat([{"role": "user", "content": "hi"}])
    assert resp.content == "hello"
    assert len(fake.requests) == 3
    assert usage.total().retries == 2 and usage.total().failures == 0


@pytest.mark.parametrize("failure, error", [("500", LLMServerError), ("badjson", LLMBadResponse)])
async def test_persistent_failure_is_recorded_not_passed(failure, error):
    with FakeOpenAI(default=failure) as fake:
        usage = UsageBook()
        client = _openai_client(fake, usage, max_retries=2)
        with pytest.raises(error):
            await client.chat([{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 3
    assert usage.total().failures == 1


async def test_timeout_is_retried_then_fails():
    with FakeOpenAI(default="slow", slow_seconds=2.0) as fake:
        usage = UsageBook()
        client = _openai_client(fake, usage, max_retries=1, timeout=0.3)
        with pytest.raises(LLMTimeout):
            await client.chat([{"role": "user", "content": "hi"}])
    assert usage.total().retries == 1 and usage.total().failures == 1


async def test_client_errors_are_not_retried():
    with FakeOpenAI(default="400") as fake:
        usage = UsageBook()
        client = _openai_client(fake, usage, max_retries=3)
        with pytest.raises(LLMRequestError, match="400"):
            await client.chat([{"role": "user", "content": "hi"}])
    assert len(fake.requests) == 1


async def test_dead_endpoint_gives_connection_error():
    usage = UsageBook()
    provider = OpenAIProvider("m", base_url="http://127.0.0.1:9/v1", api_key="k", timeout=2)
    client = fast_client(provider, usage, max_retries=1)
    with pytest.raises(Exception) as info:
        await client.chat([{"role": "user", "content": "hi"}])
    assert "cannot connect" in str(info.value)
    assert usage.total().failures == 1


class Verdict(BaseModel):
    ok: bool
    reason: str


async def test_structured_output_repairs_with_error_fed_back():
    usage = UsageBook()
    provider = ScriptedChatProvider(["not json at all", '{"ok": "maybe"}',
                                     'Sure! ```json\n{"ok": true, "reason": "fine"}\n```'])
    client = fast_client(provider, usage)
    v = await client.structured([{"role": "user", "content": "judge"}], Verdict, max_repairs=2)
    assert v == Verdict(ok=True, reason="fine")
    assert usage.total().repairs == 2
    # the validation error of the second reply was sent back with the third request
    last = provider.requests[2].messages[-1]["content"]
    assert "reason" in last and "invalid" in last
    assert provider.requests[0].json_schema["title"] == "Verdict"


async def test_structured_output_failure_is_an_error_not_a_default():
    usage = UsageBook()
    provider = ScriptedChatProvider(["{broken", "{broken", "{broken"])
    client = fast_client(provider, usage)
    with pytest.raises(StructuredOutputError) as info:
        await client.structured([{"role": "user", "content": "judge"}], Verdict, max_repairs=2)
    assert info.value.attempts == 3
    assert usage.total().failures == 1


def test_extract_json_variants():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('text before {"a": [1, 2]} after') == {"a": [1, 2]}
    assert extract_json("```json\n[1, 2]\n```") == [1, 2]
    with pytest.raises(ValueError):
        extract_json("no json here")
    with pytest.raises(ValueError):
        extract_json("")


def test_parse_tool_calls():
    text = ('I will look it up.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
            '</tool_call>\n<tool_call>{"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}</tool_call>')
    parsed = parse_tool_calls(text)
    assert [c.name for c in parsed.tool_calls] == ["get_weather", "get_time"]
    assert json.loads(parsed.tool_calls[0].arguments) == {"city": "Oslo"}
    assert json.loads(parsed.tool_calls[1].arguments) == {"tz": "UTC"}
    assert parsed.content == "I will look it up."
    assert parsed.errors == []
    assert parsed.tool_calls[0].id != parsed.tool_calls[1].id


def test_parse_tool_calls_malformed_is_reported():
    parsed = parse_tool_calls('<tool_call>{"name": "x", "arguments": {</tool_call><tool_call>[1]</tool_call>')
    assert parsed.tool_calls == []
    assert len(parsed.errors) == 2
    assert "invalid JSON" in parsed.errors[0]
    # an unterminated block (generation cut off) is still read
    cut = parse_tool_calls('<tool_call>\n{"name": "y", "arguments": {}}')
    assert [c.name for c in cut.tool_calls] == ["y"]


def test_settings_and_unknown_provider():
    from astra.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown LLM provider"):
        make_client(LLMSettings(spec="nope:x", cache=False))
    with pytest.raises(ConfigError, match="model name"):
        make_client(LLMSettings(spec="openai:", base_url="http://127.0.0.1:1/v1", cache=False))
