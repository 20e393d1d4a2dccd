"""OpenAI-compatible servers as they are: response_format modes and the auto fallback,
server error bodies, no blind retries, text tool calls, the cache identity of a served
model, and ``astra llm serve``."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from astra.llm import LLMClient, LLMSettings, ResponseCache, make_provider
from astra.llm.endpoints import EndpointStore
from astra.llm.errors import LLMRequestError, LLMServerError, LLMUnsupported, StructuredOutputError
from astra.llm.openai_provider import OpenAIProvider, served_model_identity
from astra.llm.server import create_app, running
from astra.llm.testing import ScriptedChatProvider, reply
from astra.llm.toolparse import parse_tool_calls
from astra.llm.usage import UsageBook
from tests.fake_openai import FakeOpenAI, completion

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Time in a zone.",
                                      "parameters": {"type": "object", "properties": {}}}}]
NAMES = ["get_weather", "get_time"]


class Answer(BaseModel):
    answer: str


def client_for(provider, usage=None, **kw) -> LLMClient:
    kw.setdefault("backoff_initial", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return LLMClient(provider, usage=usage or UsageBook(), **kw)


def provider_for(url: str, tmp_path, **kw) -> OpenAIProvider:
    return OpenAIProvider(kw.pop("model", "m"), base_url=url, api_key="k", timeout=kw.pop("timeout", 10),
                          store=EndpointStore(tmp_path / "endpoints.json"), **kw)


# -- text tool calls -----------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
     [("get_weather", {"city": "Oslo"})]),
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}}', [("get_weather", {"city": "Oslo"})]),
    ('{"name": "get_weather", "parameters": {"city": "Oslo"}}', [("get_weather", {"city": "Oslo"})]),
    ('[{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "get_time", "arguments": "{}"}]',
     [("get_weather", {"city": "Oslo"}), ("get_time", {})]),
    ('```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```', [("get_weather", {"city": "Oslo"})]),
    ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}<|eom_id|>',
     [("get_weather", {"city": "Oslo"})]),
    ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "A"}}; {"name": "get_time", "parameters": {}}',
     [("get_weather", {"city": "A"}), ("get_time", {})]),
    ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo"}}]', [("get_weather", {"city": "Oslo"})]),
    ('[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}', [("get_weather", {"city": "Oslo"})]),
    ('<function=get_weather>{"city": "Oslo"}</function>', [("get_weather", {"city": "Oslo"})]),
    ('{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}',
     [("get_weather", {"city": "Oslo"})]),
    ('Checking: {"name": "get_weather", "arguments": {"city": "Oslo"}} now.', [("get_weather", {"city": "Oslo"})]),
    # a call-shaped reply naming a tool that was not offered is still a call (the agent reports it)
    ('{"name": "get_forecast", "arguments": {"city": "Oslo"}}', [("get_forecast", {"city": "Oslo"})]),
    # reasoning that drafts a call is not a call
    ('<think>{"name": "get_time", "arguments": {}}</think>{"name": "get_weather", "arguments": {"city": "B"}}',
     [("get_weather", {"city": "B"})]),
])
def test_text_tool_call_formats(text, expected):
    parsed = parse_tool_calls(text, NAMES)
    assert [(c.name, c.parsed_arguments()) for c in parsed.tool_calls] == expected
    assert parsed.errors == []
    assert len({c.id for c in parsed.tool_calls}) == len(expected)


@pytest.mark.parametrize("text", [
    '{"name": "Bob", "age": 3}',  # data that has a "name" field
    "The weather in Oslo is 3 °C.",
    'The tool get_weather takes {"city": "Oslo"}.',
])
def test_text_that_is_not_a_call_stays_text(text):
    parsed = parse_tool_calls(text, NAMES)
    assert parsed.tool_calls == [] and parsed.errors == [] and parsed.content == text


def test_bare_json_needs_offered_tools():
    assert parse_tool_calls('{"name": "get_weather", "arguments": {}}').tool_calls == []
    assert parse_tool_calls('<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>').tool_calls


def test_marked_but_unreadable_calls_are_errors():
    bad = parse_tool_calls('<|python_tag|>brave_search.call(query="x")', NAMES)
    assert bad.tool_calls == [] and "python_tag" in bad.errors[0]
    bad = parse_tool_calls('<function=get_weather>{"city": </function>', NAMES)
    assert bad.tool_calls == [] and "invalid JSON" in bad.errors[0]


async def test_openai_content_tool_calls_are_parsed(tmp_path):
    content = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    with FakeOpenAI([lambda body: (200, completion(content)),
                     lambda body: (200, completion('{"name": "get_time", "parameters": {}}')),
                     lambda body: (200, completion('{"name": "get_time", "parameters": {}}'))]) as fake:
        client = client_for(provider_for(fake.base_url, tmp_path))
        first = await client.chat([{"role": "user", "content": "weather?"}], tools=TOOLS)
        second = await client.chat([{"role": "user", "content": "time?"}], tools=TOOLS)
        no_tools = await client.chat([{"role": "user", "content": "time, as JSON?"}])
    assert [(c.name, c.parsed_arguments()) for c in first.tool_calls] == [("get_weather", {"city": "Oslo"})]
    assert first.content == "Let me check." and first.finish_reason == "tool_calls"
    assert [c.name for c in second.tool_calls] == ["get_time"] and second.content is None
    # without tools offered, JSON content is content
    assert no_tools.tool_calls == [] and no_tools.content.startswith("{")


async def test_native_tool_calls_win_over_content(tmp_path):
    tc = [{"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
    body = completion('{"name": "get_weather", "arguments": {"city": "X"}}', tc)
    with FakeOpenAI([lambda b: (200, body)]) as fake:
        resp = await client_for(provider_for(fake.base_url, tmp_path)).chat(
            [{"role": "user", "content": "x"}], tools=TOOLS)
    assert [c.name for c in resp.tool_calls] == ["get_time"]


# -- error bodies and retries --------------------------------------------------------


async def test_server_message_in_every_error(tmp_path):
    with FakeOpenAI(default=lambda b: (503, {"error": {"message": "model   is\nloading, retry later"}})) as fake:
        with pytest.raises(LLMServerError) as info:
            await client_for(provider_for(fake.base_url, tmp_path), max_retries=1).chat(
                [{"role": "user", "content": "x"}])
        assert len(fake.requests) == 2  # a 503 may change: retried
    assert "HTTP 503: model is loading, retry later" in str(info.value)
    with FakeOpenAI(default=lambda b: (500, "Internal Server Error: CUDA out of memory")) as fake:
        with pytest.raises(LLMServerError, match="CUDA out of memory"):
            await client_for(provider_for(fake.base_url, tmp_path), max_retries=0).chat(
                [{"role": "user", "content": "x"}])
    with FakeOpenAI(default=lambda b: (422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]})) as fake:
        with pytest.raises(LLMRequestError, match="body.messages: field required"):
            await client_for(provider_for(fake.base_url, tmp_path), max_retries=3).chat(
                [{"role": "user", "content": "x"}])
        assert len(fake.requests) == 1  # a 4xx will not change: not retried


async def test_5xx_naming_an_unsupported_feature_is_not_retried(tmp_path):
    msg = {"error": {"message": "NotImplementedError: parallel tool calls are not supported"}}
    with FakeOpenAI(default=lambda b: (500, msg)) as fake:
        usage = UsageBook()
        with pytest.raises(LLMUnsupported, match="parallel tool calls are not supported"):
            await client_for(provider_for(fake.base_url, tmp_path), usage, max_retries=4).chat(
                [{"role": "user", "content": "x"}], tools=TOOLS)
    assert len(fake.requests) == 1
    assert usage.total().failures == 1 and usage.total().retries == 0


# -- response_format -----------------------------------------------------------------


def llama_cpp_python_like(body):
    """Answers 500 to json_schema (as llama-cpp-python's server does), JSON otherwise."""
    rf = body.get("response_format")
    if rf and rf.get("type") == "json_schema":
        return 500, {"error": {"message": "Unsupported response_format type: json_schema"}}
    return 200, completion('{"answer": "42"}')


async def test_auto_falls_back_and_remembers_across_processes(tmp_path):
    with FakeOpenAI(default=llama_cpp_python_like) as fake:
        usage = UsageBook()
        client = client_for(provider_for(fake.base_url, tmp_path), usage)
        assert await client.structured([{"role": "user", "content": "q"}], Answer) == Answer(answer="42")
        assert [r.get("response_format", {}).get("type") for r in fake.requests] == ["json_schema", "json_object"]
        assert fake.requests[1]["response_format"]["schema"]["title"] == "Answer"
        assert usage.total().retries == 0 and usage.total().failures == 0
        stored = EndpointStore(tmp_path / "endpoints.json").get(f"{fake.base_url} m")
        assert stored["response_format"] == "json_object"
        assert "Unsupported response_format type: json_schema" in stored["refused"]["json_schema"]
        # a new provider (another process) starts from the remembered mode
        client2 = client_for(provider_for(fake.base_url, tmp_path))
        await client2.structured([{"role": "user", "content": "q2"}], Answer)
        assert fake.requests[2]["response_format"]["type"] == "json_object" and len(fake.requests) == 3


async def test_auto_falls_back_to_no_response_format(tmp_path):
    def refuses_all(body):
        if body.get("response_format"):
            return 400, {"error": {"message": "response_format is not supported", "param": "response_format"}}
        return 200, completion('{"answer": "x"}')

    with FakeOpenAI(default=refuses_all) as fake:
        provider = provider_for(fake.base_url, tmp_path)
        await client_for(provider).structured([{"role": "user", "content": "q"}], Answer)
        assert [("response_format" in r) for r in fake.requests] == [True, True, False]
        assert provider.structured_mode() == "none"


async def test_fixed_mode_refused_is_one_clear_error(tmp_path):
    with FakeOpenAI(default=llama_cpp_python_like) as fake:
        usage = UsageBook()
        client = client_for(provider_for(fake.base_url, tmp_path, response_format="json_schema"), usage,
                            max_retries=4)
        with pytest.raises(LLMUnsupported) as info:
            await client.structured([{"role": "user", "content": "q"}], Answer)
    assert len(fake.requests) == 1  # the 500 names response_format: not retried four times
    text = str(info.value)
    assert "refused response_format json_schema" in text and "Unsupported response_format type" in text
    assert "--response-format" in text and usage.total().failures == 1


@pytest.mark.parametrize("mode, sent", [("json_object", "json_object"), ("none", None), ("json_schema", "json_schema")])
async def test_fixed_modes_send_what_they_say(tmp_path, mode, sent):
    with FakeOpenAI(default=lambda b: (200, completion('{"answer": "x"}'))) as fake:
        await client_for(provider_for(fake.base_url, tmp_path, response_format=mode)).structured(
            [{"role": "user", "content": "q"}], Answer)
    assert (fake.requests[0].get("response_format") or {}).get("type") == sent


async def test_auto_does_not_fall_back_on_unrelated_errors(tmp_path):
    with FakeOpenAI(default=lambda b: (500, {"error": {"message": "worker crashed"}})) as fake:
        provider = provider_for(fake.base_url, tmp_path)
        with pytest.raises(LLMServerError, match="worker crashed"):
            await client_for(provider, max_retries=1).structured([{"role": "user", "content": "q"}], Answer)
        assert all(r["response_format"]["type"] == "json_schema" for r in fake.requests)
    assert EndpointStore(tmp_path / "endpoints.json").get(f"{fake.base_url} m") == {}


def test_settings_validate_response_format(monkeypatch):
    from astra.errors import ConfigError

    monkeypatch.setenv("ASTRA_RESPONSE_FORMAT", "xml")
    with pytest.raises(ConfigError, match="unknown response format 'xml'"):
        LLMSettings.from_env()
    monkeypatch.setenv("ASTRA_RESPONSE_FORMAT", "json_object")
    s = LLMSettings.from_env(spec="openai:m", base_url="http://127.0.0.1:1/v1", model_fingerprint="a=1,m=2")
    p = make_provider(s)
    assert p.response_format == "json_object" and p.model_fingerprint == "2"
    assert LLMSettings(model_fingerprint="fp").fingerprint_for("any") == "fp"
    assert LLMSettings(model_fingerprint="a=1").fingerprint_for("b") is None


# -- cache identity --------------------------------------------------------------------


async def _ask(url, tmp_path, cache, **kw):
    client = client_for(provider_for(url, tmp_path, **kw), cache=cache)
    return await client.chat([{"role": "user", "content": "same question"}])


async def test_cache_survives_a_new_url_but_not_a_new_model(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    qwen = [{"id": "m", "object": "model", "owned_by": "vllm", "root": "Qwen/Qwen3-8B", "max_model_len": 32768}]
    llama = [{"id": "m", "object": "model", "owned_by": "vllm", "root": "meta-llama/Llama-3.1-8B-Instruct"}]
    with FakeOpenAI(models=qwen) as a:
        assert not (await _ask(a.base_url, tmp_path, cache)).cached
    with FakeOpenAI(models=qwen) as b:  # same weights, another port: a hit, no request
        assert (await _ask(b.base_url, tmp_path, cache)).cached
        assert b.requests == []
    with FakeOpenAI(models=llama) as c:  # another model under the same name: a miss
        assert not (await _ask(c.base_url, tmp_path, cache)).cached
        assert len(c.requests) == 1


async def test_llama_cpp_identity_reads_meta_and_props(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    card = [{"id": "models/qwen2.5-7b-q4_k_m.gguf", "object": "model", "owned_by": "llamacpp",
             "meta": {"n_params": 7615616512, "size": 4683073536, "n_vocab": 152064}}]
    props = {"model_path": "models/qwen2.5-7b-q4_k_m.gguf", "chat_template": "{{ messages }}"}
    with FakeOpenAI(models=card, props=props) as a:
        await _ask(a.base_url, tmp_path, cache)
        assert "/props" in a.gets
    with FakeOpenAI(models=card, props=props) as b:
        assert (await _ask(b.base_url, tmp_path, cache)).cached
    with FakeOpenAI(models=card, props={**props, "chat_template": "other"}) as c:  # another template
        assert not (await _ask(c.base_url, tmp_path, cache)).cached


async def test_identity_without_a_models_listing_keeps_the_url(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    with FakeOpenAI() as a:  # /v1/models answers 404
        await _ask(a.base_url, tmp_path, cache)
        ident = await provider_for(a.base_url, tmp_path).cache_identity()
        assert a.base_url in ident
    with FakeOpenAI() as b:
        assert not (await _ask(b.base_url, tmp_path, cache)).cached


async def test_model_fingerprint_overrides_the_server(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    with FakeOpenAI() as a:
        await _ask(a.base_url, tmp_path, cache, model_fingerprint="qwen3-8b-awq")
    with FakeOpenAI() as b:
        assert (await _ask(b.base_url, tmp_path, cache, model_fingerprint="qwen3-8b-awq")).cached
        assert b.gets == []  # the user's word: the server is not asked


def test_identity_is_stable_and_ignores_volatile_fields():
    a = served_model_identity({"id": "m", "root": "/w/ckpt", "created": 1})
    b = served_model_identity({"id": "other-name", "root": "/w/ckpt", "created": 2, "owned_by": "sglang"})
    assert a == b and a.startswith("openai-model:/w/ckpt#")
    assert served_model_identity({"id": "m", "root": "/w/ckpt2"}) != a


# -- the CLI options -------------------------------------------------------------------


def test_every_llm_command_takes_the_endpoint_options():
    import typer

    from astra.cli import app

    root = typer.main.get_command(app)

    def command(*path):
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        return {o for p in cmd.params for o in getattr(p, "opts", [])}

    for path in (["graph", "verify"], ["tasks", "generate"], ["tasks", "score"], ["rollout"], ["judge"],
                 ["envs", "decompose"], ["envs", "synthesize"], ["llm", "chat"], ["eval", "bfcl"], ["eval", "envs"],
                 ["demo"]):
        opts = command(*path)
        assert {"--base-url", "--response-format", "--model-fingerprint"} <= opts, path
    assert "--response-format" not in command("tools", "ingest")


def test_cli_response_format_reaches_the_provider(tmp_path, monkeypatch):
    from astra.cli import app

    monkeypatch.delenv("ASTRA_RESPONSE_FORMAT", raising=False)
    seen = {}

    def record(body):
        seen["body"] = body
        return 200, completion("hi")

    with FakeOpenAI(default=record) as fake:
        result = CliRunner().invoke(app, ["llm", "chat", "hello", "--llm", "openai:m", "--base-url", fake.base_url,
                                          "--response-format", "json_object", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "ASTRA_RESPONSE_FORMAT" not in os.environ  # restored after the command
    bad = CliRunner().invoke(app, ["llm", "chat", "x", "--response-format", "xml"])
    assert bad.exit_code == 2 and "xml" in bad.output


# -- astra llm serve (scripted provider: protocol only) --------------------------------


def test_server_protocol(tmp_path):
    provider = ScriptedChatProvider(lambda req: reply(tool_calls=[("get_weather", {"city": "Oslo"})])
                                    if req.tools else reply("plain answer"))
    app = create_app(provider, "tiny", root="/models/tiny", fingerprint="tiny-abc", max_tokens_cap=64)
    with running(app) as url:
        models = httpx.get(f"{url}/models").json()["data"]
        assert models[0]["id"] == "tiny" and models[0]["fingerprint"] == "tiny-abc"
        post = lambda body: httpx.post(f"{url}/chat/completions", json={"model": "tiny", **body})  # noqa: E731
        ok = post({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}).json()
        assert ok["choices"][0]["message"]["content"] == "plain answer"
        assert ok["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        assert provider.requests[-1].messages[0]["content"] == "hi"
        assert provider.requests[-1].max_tokens == 64  # the server's cap bounds the default of 512
        tc = post({"messages": [{"role": "user", "content": "w"}], "tools": TOOLS}).json()["choices"][0]
        assert tc["finish_reason"] == "tool_calls"
        assert json.loads(tc["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
        for body, param in [({"response_format": {"type": "json_object"}}, "response_format"),
                            ({"n": 2}, "n"), ({"tool_choice": "required", "tools": TOOLS}, "tool_choice"),
                            ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages")]:
            r = post({"messages": [{"role": "user", "content": "x"}], **body})
            assert r.status_code == 400 and r.json()["error"]["param"] == param, body
        assert httpx.post(f"{url}/chat/completions", json={"model": "nope", "messages": []}).status_code == 404
        assert httpx.post(f"{url}/chat/completions", content=b"{not json").status_code == 400
        stream = post({"messages": [{"role": "user", "content": "x"}], "stream": True,
                       "stream_options": {"include_usage": True}}).text
        chunks = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: {")]
        assert chunks[0]["choices"][0]["delta"]["content"] == "plain answer"
        assert chunks[-1]["usage"]["total_tokens"] == 15 and stream.rstrip().endswith("data: [DONE]")


async def test_openai_provider_against_astra_serve(tmp_path):
    """The OpenAI provider end to end against the server: tool calls, the response_format
    fallback (the server refuses it cleanly), usage, and the cache identity from /v1/models."""
    provider = ScriptedChatProvider(lambda req: reply(tool_calls=[("get_time", {})]) if req.tools
                                    else reply('{"answer": "yes"}'))
    with running(create_app(provider, "tiny", root="/models/tiny", fingerprint="tiny-abc")) as url:
        usage = UsageBook()
        openai_provider = provider_for(url, tmp_path, model="tiny")
        client = client_for(openai_provider, usage, cache=ResponseCache(tmp_path / "c.sqlite"))
        resp = await client.chat([{"role": "user", "content": "time?"}], tools=TOOLS)
        assert [c.name for c in resp.tool_calls] == ["get_time"] and resp.prompt_tokens == 10
        assert await client.structured([{"role": "user", "content": "q"}], Answer) == Answer(answer="yes")
        assert openai_provider.structured_mode() == "none"
        assert (await openai_provider.cache_identity()).startswith("openai-model:/models/tiny#")
        assert usage.total().failures == 0 and usage.total().completion_tokens == 10


# -- the real embedded model behind astra llm serve ----------------------------------


@pytest.mark.model
async def test_embedded_model_behind_the_server(tmp_path):
    from astra.llm.server import embedded_app

    app, name = embedded_app()
    with running(app) as url:
        usage = UsageBook()
        provider = provider_for(url, tmp_path, model=name, timeout=600)
        client = client_for(provider, usage, cache=ResponseCache(tmp_path / "c.sqlite"), timeout=600)
        hi = await client.chat([{"role": "user", "content": "Say hi."}], max_tokens=6)
        assert hi.content and 0 < hi.completion_tokens <= 6 and hi.prompt_tokens > 5
        with_tools = await client.chat([{"role": "user", "content": "Weather in Oslo?"}], tools=TOOLS, max_tokens=6)
        assert with_tools.prompt_tokens > hi.prompt_tokens + 50  # the tools were rendered into the prompt
        try:
            await client.structured([{"role": "user", "content": "Is the sky blue? Answer yes or no."}], Answer,
                                    max_tokens=24, max_repairs=0)
        except StructuredOutputError:
            assert usage.total().failures == 1  # a 135M model may not write the JSON: a counted failure
        assert provider.structured_mode() == "none"  # json_schema and json_object refused with a 400
        ident = await provider.cache_identity()
        assert ident.startswith("openai-model:") and "smollm2" in ident
        again = await client.chat([{"role": "user", "content": "Say hi."}], max_tokens=6)
        assert again.cached and again.content == hi.content


def test_openai_provider_pickles_with_its_settings(tmp_path):
    import pickle

    p = provider_for("http://127.0.0.1:9/v1", tmp_path, response_format="json_object", model_fingerprint="fp")
    q = pickle.loads(pickle.dumps(p))
    assert (q.model, q.base_url, q.response_format, q.model_fingerprint) == ("m", "http://127.0.0.1:9/v1",
                                                                              "json_object", "fp")
    assert q._store.path == p._store.path


async def test_identity_of_an_unreachable_server_is_asked_again(tmp_path):
    with FakeOpenAI(models=[{"id": "m", "root": "/w/a"}]) as fake:
        url = fake.base_url
    provider = provider_for(url, tmp_path)  # the server is gone
    assert url in await provider.cache_identity()
    assert provider._identity is None  # not remembered: a server that starts later is asked
