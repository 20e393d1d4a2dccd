"""Malformed input, as a careless user or an attacker would give it: ingest files, tool-call
argument payloads (rollout tool set and environment runtime) and CLI misuse. Each case
asserts a clear message and no traceback; bad lines of a file never lose the good ones."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from astra.cli import app
from astra.io import load_records
from astra.rollout.outcome import BAD_JSON, INVALID_ARGUMENTS, UNKNOWN_TOOL
from astra.rollout.toolset import BackendPool
from astra.tools.ingest import ingest
from astra.types import ToolServer

runner = CliRunner()
DESC = "Looks up one clearly described thing for the user."


def cli(*args: str, cwd: Path | None = None):
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return runner.invoke(app, list(args))
    finally:
        os.chdir(old)


def assert_clean(result, *, codes=(0, 1, 2, 3, 4)) -> str:
    """The command ended with a documented exit code, printed no traceback and did not
    crash inside astra."""
    out = result.output
    assert "Traceback" not in out, out
    assert "internal error" not in out, out
    assert result.exit_code in codes, (result.exit_code, out, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return out


def tool(name: str = "find_item", **over) -> dict:
    t = {"name": name, "description": DESC,
         "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "query"}},
                        "required": ["q"]}}
    t.update(over)
    return t


def server_line(name: str = "good", tools: list | None = None, **over) -> dict:
    line = {"base_info": {"group_info": {"server_name": name, "server_description": "A server.", "domain": "x"},
                          "tool_list": tools if tools is not None else [tool("a_one"), tool("b_two"), tool("c_three")]}}
    line.update(over)
    return line


GOOD = json.dumps(server_line()).encode()


def deep(n: int, leaf: object = 1) -> object:
    v = leaf
    for _ in range(n):
        v = [v]
    return v


def deep_schema(levels: int) -> dict:
    s: dict = {"type": "string"}
    for _ in range(levels):
        s = {"type": "object", "properties": {"x": s}}
    return s


def lines(*items: bytes) -> bytes:
    return b"\n".join(items) + b"\n"


# (name, file name, content, the good server survives)
INGEST_CASES: list[tuple[str, str, bytes, bool]] = [
    ("invalid_utf8_line", "s.jsonl", lines(b'\xc3\x28{"a":1}', GOOD), True),
    ("latin1_description", "s.jsonl", lines(json.dumps(server_line("l1")).encode().replace(b"A server.", b"caf\xe9"), GOOD), True),
    ("utf16_file", "s.jsonl", GOOD.decode().encode("utf-16"), False),
    ("utf8_bom", "s.jsonl", b"\xef\xbb\xbf" + lines(GOOD), True),
    ("elf_binary", "s.jsonl", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, False),
    ("random_high_bytes", "s.jsonl", lines(bytes(random.Random(1).randrange(128, 256) for _ in range(300)), GOOD), True),
    ("truncated_line", "s.jsonl", lines(GOOD[:40], GOOD), True),
    ("trailing_comma", "s.jsonl", lines(b'{"base_info": {},}', GOOD), True),
    ("array_line", "s.jsonl", lines(b"[1, 2, 3]", GOOD), True),
    ("number_line", "s.jsonl", lines(b"42", GOOD), True),
    ("string_line", "s.jsonl", lines(b'"a server"', GOOD), True),
    ("null_line", "s.jsonl", lines(b"null", GOOD), True),
    ("nested_5000_line", "s.jsonl", lines(b"[" * 5000 + b"]" * 5000, GOOD), True),
    ("deep_schema_tool", "s.jsonl", lines(json.dumps(server_line("d", [tool("a_one"), tool("b_two"), tool("c_three"), tool("deep_one", parameters=deep_schema(150))])).encode(), GOOD), True),
    ("tool_list_not_list", "s.jsonl", lines(json.dumps(server_line("t", "nope")).encode(), GOOD), True),
    ("tool_list_missing", "s.jsonl", lines(b'{"base_info": {"group_info": {"server_name": "m"}}}', GOOD), True),
    ("tool_entry_number", "s.jsonl", lines(json.dumps(server_line("e", [5, tool("a_one")])).encode(), GOOD), True),
    ("tool_name_missing", "s.jsonl", lines(json.dumps(server_line("n", [{"description": DESC}])).encode(), GOOD), True),
    ("tool_name_empty", "s.jsonl", lines(json.dumps(server_line("n", [tool("")])).encode(), GOOD), True),
    ("tool_name_number", "s.jsonl", lines(json.dumps(server_line("n", [tool(7)])).encode(), GOOD), True),
    ("description_list", "s.jsonl", lines(json.dumps(server_line("n", [tool("a_one", description=["x"])])).encode(), GOOD), True),
    ("parameters_prose", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters="takes a query")])).encode(), GOOD), True),
    ("parameters_json_text", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters=json.dumps({"type": "object"}))])).encode(), GOOD), True),
    ("parameters_list", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters=[1, 2])])).encode(), GOOD), True),
    ("properties_not_object", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters={"type": "object", "properties": [1]})])).encode(), GOOD), True),
    ("required_not_list", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters={"type": "object", "properties": {}, "required": "q"})])).encode(), GOOD), True),
    ("unknown_type", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters={"type": "object", "properties": {"q": {"type": "banana"}}})])).encode(), GOOD), True),
    ("cyclic_ref", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters={"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}})])).encode(), GOOD), True),
    ("missing_ref", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters={"type": "object", "properties": {"n": {"$ref": "#/$defs/Nope"}}})])).encode(), GOOD), True),
    ("remote_ref", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters={"type": "object", "properties": {"n": {"$ref": "http://evil.example/x.json"}}})])).encode(), GOOD), True),
    ("empty_enum", "s.jsonl", lines(json.dumps(server_line("p", [tool("a_one", parameters={"type": "object", "properties": {"q": {"type": "string", "enum": []}}})])).encode(), GOOD), True),
    ("huge_description", "s.jsonl", lines(json.dumps(server_line("h", [tool("a_one", description="word " * 200_000)])).encode(), GOOD), True),
    ("call_info_string", "s.jsonl", lines(json.dumps(server_line("c", call_info="stdio")).encode(), GOOD), True),
    ("call_info_unknown_transport", "s.jsonl", lines(json.dumps(server_line("c", call_info={"type": "pigeon"})).encode(), GOOD), True),
    ("call_info_stdio_no_command", "s.jsonl", lines(json.dumps(server_line("c", call_info={"type": "stdio"})).encode(), GOOD), True),
    ("call_info_http_no_url", "s.jsonl", lines(json.dumps(server_line("c", call_info={"type": "streamable_http", "url": "ftp://x"})).encode(), GOOD), True),
    ("call_info_env_numbers", "s.jsonl", lines(json.dumps(server_line("c", call_info={"command": "x", "env": {"A": 1}})).encode(), GOOD), True),
    ("group_info_string", "s.jsonl", lines(b'{"base_info": {"group_info": "g", "tool_list": []}}', GOOD), True),
    ("server_name_missing", "s.jsonl", lines(b'{"base_info": {"group_info": {}, "tool_list": []}}', GOOD), True),
    ("huge_integer", "s.jsonl", lines(b'{"base_info": {"x": ' + b"9" * 5000 + b"}}", GOOD), True),
    ("float_overflow", "s.jsonl", lines(json.dumps(server_line("f", [tool("a_one", parameters={"type": "object", "properties": {"q": {"type": "number", "maximum": 1}}})])).encode().replace(b'"maximum": 1', b'"maximum": 1e999'), GOOD), True),
    ("lone_surrogate", "s.jsonl", lines(json.dumps(server_line("u")).encode().replace(b"A server.", b"bad \\ud800 text"), GOOD), True),
    ("raw_control_char", "s.jsonl", lines(b'{"base_info": {"group_info": {"server_name": "a\x01b"}}}', GOOD), True),
    ("duplicate_keys", "s.jsonl", lines(b'{"base_info": 1, "base_info": {"group_info": {"server_name": "dup"}, "tool_list": []}}', GOOD), True),
    ("empty_file", "s.jsonl", b"", False),
    ("whitespace_only", "s.jsonl", b"\n\n   \n\t\n", False),
    ("crlf_lines", "s.jsonl", GOOD + b"\r\n" + GOOD.replace(b'"good"', b'"good2"') + b"\r\n", True),
    ("cr_only_separators", "s.jsonl", GOOD + b"\r" + GOOD, False),
    ("json_invalid_utf8", "t.json", b'{"tools": [{"name": "a", "description": "caf\xe9"}]}', False),
    ("json_binary", "t.json", bytes(range(256)), False),
    ("json_nested_5000", "t.json", b"[" * 5000 + b"]" * 5000, False),
    ("json_empty", "t.json", b"", False),
    ("json_top_level_number", "t.json", b"3.14", False),
    ("json_tools_string", "t.json", b'{"tools": "many"}', False),
    ("json_tools_numbers", "t.json", b'{"tools": [1, 2, 3]}', False),
    ("json_one_bad_entry", "t.json", json.dumps({"name": "good", "tools": [tool("a_one"), tool("b_two"), tool("c_three"), {"name": 5}]}).encode(), True),
    ("json_utf16", "t.json", json.dumps({"tools": [tool("a_one")]}).encode("utf-16"), False),
    ("json_deep_schema", "t.json", json.dumps({"name": "good", "tools": [tool("a_one"), tool("b_two"), tool("c_three"), tool("deep_one", parameters=deep_schema(400))]}).encode(), True),
]


def test_ingest_fuzz_has_at_least_fifty_cases():
    assert len(INGEST_CASES) >= 50 and len({c[0] for c in INGEST_CASES}) == len(INGEST_CASES)


@pytest.mark.parametrize("name,fname,content,good_survives", INGEST_CASES, ids=[c[0] for c in INGEST_CASES])
def test_malformed_ingest_input(tmp_path, name, fname, content, good_survives):
    src = tmp_path / fname
    src.write_bytes(content)
    out = tmp_path / "tools.jsonl"
    r = cli("tools", "ingest", str(src), "-o", str(out), "--min-tools", "3")
    text = assert_clean(r, codes=(0, 1, 3))
    if good_survives:
        assert r.exit_code == 0, text
        names = {s.name for s in load_records(out, ToolServer)}
        assert "good" in names, (names, text)
    if r.exit_code == 0 and not good_survives:
        pass  # a file whose only server is fine after all (e.g. CRLF)
    if r.exit_code != 0:
        # one line that names the file (or says nothing was ingested from it)
        err = [ln for ln in text.splitlines() if ln.startswith("error:")]
        assert len(err) == 1 and fname in err[0], text
    # every reported problem names the file it is about
    for ln in text.splitlines():
        if ln.strip().startswith("input error"):
            assert fname in ln, ln


def test_bad_lines_are_reported_with_line_numbers_and_the_rest_ingests(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_bytes(lines(b"\xc3\x28", b"[" * 3000 + b"]" * 3000, GOOD, b"{oops"))
    res = ingest([str(src)])
    assert [s.name for s in res.servers] == ["good"]
    assert [e.split(":", 2)[1] for e in res.errors] == ["1", "2", "4"]
    assert "not UTF-8" in res.errors[0] and "nested too deep" in res.errors[1] and "invalid JSON" in res.errors[2]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=400))
def test_random_bytes_never_crash_ingest(tmp_path, junk):
    src = tmp_path / "r.jsonl"
    src.write_bytes(junk + b"\n" + GOOD + b"\n")
    try:
        res = ingest([str(src)])
    except Exception as e:  # only astra's one-line errors are allowed
        from astra.errors import AstraError

        assert isinstance(e, AstraError) and "\n" not in str(e), repr(e)
        return
    assert "good" in {s.name for s in res.servers}


# ---------------------------------------------------------------------------------
# Tool-call argument payloads: the rollout tool set and the environment runtime
# ---------------------------------------------------------------------------------

# (name, the tool called, the raw arguments, the status expected)
PAYLOADS: list[tuple[str, str, object, str]] = [
    ("not_json", "geocode_city", "city=Tokyo", BAD_JSON),
    ("truncated_json", "geocode_city", '{"city": "Tok', BAD_JSON),
    ("single_quotes", "geocode_city", "{'city': 'Tokyo'}", BAD_JSON),
    ("trailing_comma", "geocode_city", '{"city": "Tokyo",}', BAD_JSON),
    ("json_array", "geocode_city", '["Tokyo"]', BAD_JSON),
    ("json_number", "geocode_city", "42", BAD_JSON),
    ("json_string", "geocode_city", '"Tokyo"', BAD_JSON),
    ("json_true", "geocode_city", "true", BAD_JSON),
    ("json_null_literal_text", "geocode_city", "null", BAD_JSON),
    ("python_list", "geocode_city", ["Tokyo"], BAD_JSON),
    ("python_int", "geocode_city", 7, BAD_JSON),
    ("python_bytes", "geocode_city", b'{"city": "Tokyo"}', BAD_JSON),
    ("nested_5000", "geocode_city", "[" * 5000 + "]" * 5000, BAD_JSON),
    ("huge_integer", "geocode_city", '{"city": ' + "9" * 6000 + "}", BAD_JSON),
    ("double_encoded", "geocode_city", json.dumps(json.dumps({"city": "Tokyo"})), BAD_JSON),
    ("markdown_fenced", "geocode_city", '```json\n{"city": "Tokyo"}\n```', BAD_JSON),
    ("two_objects", "geocode_city", '{"city": "Tokyo"}{"city": "Paris"}', BAD_JSON),
    ("missing_required", "geocode_city", "{}", INVALID_ARGUMENTS),
    ("empty_string_means_no_args", "geocode_city", "", INVALID_ARGUMENTS),
    ("none_means_no_args", "geocode_city", None, INVALID_ARGUMENTS),
    ("wrong_type_number", "geocode_city", '{"city": 12}', INVALID_ARGUMENTS),
    ("wrong_type_object", "geocode_city", '{"city": {"name": "Tokyo"}}', INVALID_ARGUMENTS),
    ("null_value", "geocode_city", '{"city": null}', INVALID_ARGUMENTS),
    ("hallucinated_parameter", "geocode_city", '{"city": "Tokyo", "planet": "Earth"}', INVALID_ARGUMENTS),
    ("nan_for_number", "get_current_weather", '{"latitude": NaN, "longitude": 1}', BAD_JSON),
    ("string_for_number", "get_current_weather", '{"latitude": "35.6", "longitude": "139.6"}', INVALID_ARGUMENTS),
    ("deep_value", "geocode_city", json.dumps({"city": deep(400, "Tokyo")}), INVALID_ARGUMENTS),
    ("huge_string_key", "geocode_city", json.dumps({"k" * 100_000: 1}), INVALID_ARGUMENTS),
    ("lone_surrogate_key", "geocode_city", '{"\\ud800": 1}', INVALID_ARGUMENTS),
    ("unknown_tool", "launch_rocket", '{"city": "Tokyo"}', UNKNOWN_TOOL),
    ("unknown_tool_empty_name", "", "{}", UNKNOWN_TOOL),
    ("tool_name_injection", "geocode_city; rm -rf /", '{"city": "Tokyo"}', UNKNOWN_TOOL),
]


def test_payload_fuzz_has_at_least_thirty_cases():
    assert len(PAYLOADS) >= 30 and len({p[0] for p in PAYLOADS}) == len(PAYLOADS)


@pytest.fixture(scope="module")
def weather_toolset():
    from astra.data.servers import PYTHON_SERVERS
    from astra.rollout.stages import rollout_rng
    from astra.tools.pyfunc import server_from_class

    server = server_from_class(PYTHON_SERVERS["weather"], source="sample")
    return BackendPool().toolset([server], rollout_rng(0, "fuzz", 0), "q")


@pytest.mark.parametrize("name,tool_name,raw,status", PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_malformed_tool_call_arguments_in_a_rollout(weather_toolset, name, tool_name, raw, status):
    out = asyncio.run(weather_toolset.execute(f"c-{name}", tool_name, raw, turn=1))
    assert not out.ok and out.status == status, (out.status, out.error)
    assert out.error and "Traceback" not in out.content and len(out.content) < 3000
    assert "\n" not in out.error.strip()
    if status == UNKNOWN_TOOL:
        assert "available tools" in out.error
    # the agent is told what was wrong in words
    assert any(w in out.error.lower() for w in ("json", "argument", "unknown", "required", "type", "parameter",
                                                 "not valid", "none"))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.text(max_size=200), st.binary(max_size=50), st.none(), st.integers(), st.lists(st.integers()),
                     st.dictionaries(st.text(max_size=10), st.recursive(
                         st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                         lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                         max_leaves=10), max_size=4)))
def test_random_arguments_never_raise(weather_toolset, raw):
    out = asyncio.run(weather_toolset.execute("c", "geocode_city", raw, turn=1))
    assert out.status and (out.ok or out.error)


# Argument dicts that reach a backend without the tool set's validation (a caller that
# skips it): the Python backend must answer with a failed outcome, never raise.
BACKEND_ARGS = [
    ("wrong_type", {"city": 12}), ("none_value", {"city": None}), ("missing_required", {}),
    ("unknown_keyword", {"city": "Tokyo", "bogus": 1}), ("nested_list", {"city": [["Tokyo"]]}),
    ("huge_string", {"city": "T" * 200_000}), ("object_value", {"city": {"$gt": ""}}),
    ("dunder_keyword", {"__class__": "x"}),
]


@pytest.mark.parametrize("name,args", BACKEND_ARGS, ids=[b[0] for b in BACKEND_ARGS])
def test_python_backend_answers_bad_arguments_with_a_failure(weather_toolset, name, args):
    _, tool = weather_toolset.tools["geocode_city"]
    out = asyncio.run(weather_toolset.backends["weather"].call(tool, args))
    assert not out.ok and out.status in (INVALID_ARGUMENTS, "tool_error"), out
    assert out.error and "Traceback" not in out.content


@pytest.fixture(scope="module")
def env_session():
    from astra.envsynth.compose import compose
    from astra.envsynth.synth import synthesize_environment
    from astra.envsynth.worlds import load_worlds
    from astra.sandbox import SandboxPool

    pool = SandboxPool(size=1)
    inst = compose(load_worlds(["film"]), n=1, seed=0)[0]
    env = asyncio.run(synthesize_environment(inst, pool=pool))
    yield env, pool
    pool.close()


#: Payloads the runtime must refuse before any code runs (size, depth, JSON, object shape);
#: schema-level payloads are checked against the tool's schema and differ per tool.
ENV_PAYLOADS = [p for p in PAYLOADS if p[3] != UNKNOWN_TOOL and p[0] not in (
    "missing_required", "empty_string_means_no_args", "none_means_no_args", "wrong_type_number",
    "wrong_type_object", "null_value", "hallucinated_parameter", "nan_for_number", "string_for_number",
    "deep_value", "huge_string_key", "lone_surrogate_key")]


@pytest.mark.parametrize("name,tool_name,raw,status", ENV_PAYLOADS, ids=[p[0] for p in ENV_PAYLOADS])
def test_malformed_arguments_in_an_environment(env_session, name, tool_name, raw, status):
    from astra.envs import EnvSession

    env, pool = env_session
    s = EnvSession(env, pool=pool)
    s.reset()
    tool_names = [t.tool.name for t in env.tools]
    msgs = s.step([{"id": "c1", "type": "function", "function": {"name": tool_names[0], "arguments": raw}}])
    assert len(msgs) == 1 and msgs[0]["content"].startswith("Error:"), msgs
    assert s.log[-1]["status"] == "bad_arguments" and not s.log[-1]["solved"]
    assert "Traceback" not in msgs[0]["content"]
    assert s.reward().reward == 0.0  # a malformed call solves nothing


# ---------------------------------------------------------------------------------
# CLI misuse
# ---------------------------------------------------------------------------------


def _tasks_file(tmp: Path) -> Path:
    p = tmp / "tasks.jsonl"
    p.write_text(json.dumps({"id": "t1", "server": "shop", "query": "Find a lamp.", "target_tools": ["a"]}) + "\n")
    return p


def _misuse_cases(tmp: Path) -> list[tuple[str, list[str], int, str]]:
    """(name, argv, exit code, a phrase the message must contain)."""
    tasks = _tasks_file(tmp)
    (tmp / "afile").write_text("x")
    (tmp / "empty.jsonl").write_text("")
    (tmp / "bad.yaml").write_text("no_such_option: 1\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    (tmp / "broken.toml").write_text("steps = [\n")
    (tmp / "bin.jsonl").write_bytes(b"\x00\x01\x02" * 100)
    return [
        ("no_such_command", ["frobnicate"], 2, "No such command"),
        ("no_such_option", ["judge", str(tasks), "-o", "x.jsonl", "--bogus"], 2, "No such option"),
        ("missing_output", ["judge", str(tasks)], 2, "--output"),
        ("wrong_type", ["graph", "chains", "g", "-o", "c.jsonl", "--min-len", "two"], 2, "--min-len"),
        ("wrong_kind_of_file", ["graph", "build", str(tasks), "-o", str(tmp / "g")], 1,
         "tasks.jsonl:1 [name]: missing field 'name' of a ToolServer record; this line looks like a Task record"),
        ("markup_in_a_message", ["tools", "ingest", str(tmp / "[bold]x[/] :smile:.json"), "-o", "t.jsonl"], 1,
         "[bold]x[/] :smile:.json"),
        ("missing_input", ["judge", str(tmp / "nope.jsonl"), "-o", str(tmp / "j.jsonl")], 1, "not found"),
        ("input_is_a_directory", ["judge", str(tmp), "-o", str(tmp / "j.jsonl")], 1, "is a directory"),
        ("binary_input", ["judge", str(tmp / "bin.jsonl"), "-o", str(tmp / "j2.jsonl")], 1, "binary data"),
        ("output_under_a_file", ["tools", "ingest", "sample", "-o", str(tmp / "afile" / "t.jsonl")], 1,
         "is a file, not a directory"),
        ("output_is_a_directory", ["tools", "ingest", "sample", "-o", str(tmp)], 1, "is a directory"),
        ("output_is_a_device", ["judge", str(tasks), "-o", os.devnull], 1, "not a regular file"),
        ("empty_input_produces_nothing", ["judge", str(tmp / "empty.jsonl"), "-o", str(tmp / "j3.jsonl")], 3,
         "the input has no records"),
        ("bad_min_score", ["judge", str(tasks), "-o", str(tmp / "j4.jsonl"), "--min-score", "7"], 1, "--min-score"),
        ("bad_executor", ["judge", str(tasks), "-o", str(tmp / "j5.jsonl"), "--executor", "gpu"], 1,
         "unknown executor"),
        ("config_unknown_key", ["demo", "--config", str(tmp / "bad.yaml")], 2, "unknown key 'no_such_option'"),
        ("config_not_a_mapping", ["demo", "--config", str(tmp / "list.yaml")], 2, "expected a mapping"),
        ("config_broken_toml", ["train", "rl", "--config", str(tmp / "broken.toml")], 2, "invalid TOML"),
        ("config_missing_file", ["train", "sft", "--config", str(tmp / "none.yaml")], 2, "file not found"),
        ("config_wrong_suffix", ["demo", "--config", str(tasks)], 2, "must end in .yaml"),
        ("unknown_profile", ["demo", "--profile", "huge", "-o", str(tmp / "d")], 1, "unknown profile"),
        ("bad_generation_mode", ["tasks", "generate", "-o", str(tmp / "t.jsonl"), "--mode", "magic",
                                 "--tools", "sample"], 1, "generation mode"),
        ("negative_limit", ["tasks", "generate", "-o", str(tmp / "t2.jsonl"), "--mode", "server", "--tools",
                            "sample", "--limit", "-1"], 1, "--limit"),
    ]


def test_cli_misuse_has_at_least_fifteen_cases(tmp_path):
    assert len(_misuse_cases(tmp_path)) >= 15


N_MISUSES = 23


def test_cli_misuse_count(tmp_path):
    assert len(_misuse_cases(tmp_path)) == N_MISUSES


@pytest.mark.parametrize("index", range(N_MISUSES))
def test_cli_misuse(tmp_path, index):
    name, argv, code, phrase = _misuse_cases(tmp_path)[index]
    r = cli(*argv, cwd=tmp_path)
    out = assert_clean(r)
    assert r.exit_code == code, (name, r.exit_code, out)
    flat = " ".join(out.replace("│", " ").split())
    assert phrase in flat, (name, out)


def test_random_cli_words_never_crash(tmp_path):
    rnd = random.Random(0)
    words = ["tools", "ingest", "graph", "build", "judge", "-o", "--limit", "-1", "--config", "x.yaml", "demo",
             "--bogus", "", "[x]", "tasks", "score", "--min-quality", "9", str(tmp_path / "none.jsonl")]
    for _ in range(25):
        argv = [rnd.choice(words) for _ in range(rnd.randint(1, 5))]
        if argv[:1] == ["demo"] and "--profile" not in argv:
            continue  # a well-formed `demo` would run the whole demo
        r = cli(*argv, cwd=tmp_path)
        assert_clean(r, codes=(0, 1, 2, 3))
