"""Option groups of a command: declared once (astra.cli_common), taken as one object
(LLMOptions, RunnerOptions)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from astra.cli_common import LLM_OPTIONS as OPTIONS
from astra.cli_common import RunnerOptions, takes_llm_options, takes_runner_options
from astra.cli_config import model_fields
from astra.llm.options import LLMOptions


def _app(*fields, help=None, seen: dict) -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    @takes_llm_options(*fields, help=help)
    def cmd(path: Annotated[Path, typer.Argument(help="A path.")],
            llm_options: LLMOptions = LLMOptions(),
            after: Annotated[int, typer.Option("--after", help="An option after the LLM ones.")] = 1) -> None:
        seen.update(path=path, options=llm_options, after=after,
                    env=os.environ.get("ASTRA_RESPONSE_FORMAT"), fp=os.environ.get("ASTRA_MODEL_FINGERPRINT"))

    return app


def _opts(app: typer.Typer) -> list[str]:
    cmd = typer.main.get_command(app)
    return [o for p in cmd.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
            if o.startswith("-")]


def test_the_command_gets_one_object(monkeypatch):
    monkeypatch.delenv("ASTRA_RESPONSE_FORMAT", raising=False)
    monkeypatch.delenv("ASTRA_MODEL_FINGERPRINT", raising=False)
    seen: dict = {}
    r = CliRunner().invoke(_app(seen=seen), [
        "x", "--llm", "openai:m", "--base-url", "http://h/v1", "--api-key-env", "KEY", "--llm-concurrency", "3",
        "--no-cache", "--llm-timeout", "7.5", "--response-format", "json_object", "--model-fingerprint", "fp1",
        "--after", "5"])
    assert r.exit_code == 0, r.output
    assert seen["options"] == LLMOptions(spec="openai:m", base_url="http://h/v1", api_key_env="KEY", concurrency=3,
                                         no_cache=True, timeout=7.5, response_format="json_object",
                                         model_fingerprint="fp1")
    assert seen["path"] == Path("x") and seen["after"] == 5
    # the endpoint options are in the environment while the command runs, and only then
    assert (seen["env"], seen["fp"]) == ("json_object", "fp1")
    assert "ASTRA_RESPONSE_FORMAT" not in os.environ and "ASTRA_MODEL_FINGERPRINT" not in os.environ


def test_defaults_and_the_settings_they_build(monkeypatch):
    for var in ("ASTRA_LLM", "ASTRA_BASE_URL", "ASTRA_RESPONSE_FORMAT", "ASTRA_MODEL_FINGERPRINT"):
        monkeypatch.delenv(var, raising=False)
    seen: dict = {}
    assert CliRunner().invoke(_app(seen=seen), ["x"]).exit_code == 0
    opts = seen["options"]
    assert opts == LLMOptions() and not opts.configured
    s = opts.settings()
    assert (s.spec, s.base_url, s.concurrency, s.cache, s.timeout, s.response_format) == (
        "embedded", None, 8, True, 120.0, "auto")
    s = LLMOptions(base_url="http://h/v1", no_cache=True, model_fingerprint="m=fp").settings(
        "openai:m", concurrency=2)
    assert (s.spec, s.base_url, s.cache, s.concurrency, s.fingerprint_for("m")) == (
        "openai:m", "http://h/v1", False, 2, "fp")
    monkeypatch.setenv("ASTRA_LLM", "openai:envmodel")
    assert LLMOptions().settings().spec == "openai:envmodel"
    assert LLMOptions(spec="embedded").configured


def test_a_subset_in_the_commands_place_with_help_overrides():
    app = _app("base_url", "no_cache", help={"base_url": "Endpoint of the agent."}, seen={})
    assert _opts(app) == ["--base-url", "--no-cache", "--response-format", "--model-fingerprint", "--after"]
    r = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "Endpoint of the agent." in r.output and "Bypass the persistent LLM response cache." in r.output
    # the shared declaration is untouched by an override
    assert OPTIONS["base_url"].help.startswith("OpenAI-compatible endpoint URL")
    # without --base-url there are no endpoint options
    assert _opts(_app("spec", "timeout", seen={})) == ["--llm", "--llm-timeout", "--after"]


def test_every_option_is_in_help_with_its_text():
    r = CliRunner().invoke(_app(seen={}), ["--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0
    for field, flag in model_fields(LLMOptions, OPTIONS).items():
        assert flag.long in r.output, field
        assert " ".join(OPTIONS[field].help.split()[:4]) in " ".join(r.output.split()), field


def test_bad_values_and_misuse():
    r = CliRunner().invoke(_app(seen={}), ["x", "--response-format", "xml"])
    assert r.exit_code == 2 and "xml" in r.output
    with pytest.raises(ValueError, match="LLMOptions has no field"):
        takes_llm_options("temperature")
    with pytest.raises(TypeError, match="llm_options"):
        takes_llm_options()(lambda path: None)


def test_runner_options_are_one_object_too():
    app = typer.Typer(add_completion=False)
    seen: dict = {}

    @app.command()
    @takes_runner_options("limit", "concurrency", "skip_failed", help={"limit": "First N chains."})
    @takes_llm_options("spec")
    def cmd(llm_options: LLMOptions = LLMOptions(), runner: RunnerOptions = RunnerOptions()) -> None:
        seen.update(llm=llm_options, runner=runner)

    assert _opts(app) == ["--llm", "--limit", "--concurrency", "-j", "--skip-failed", "--retry-failed"]
    r = CliRunner().invoke(app, ["--llm", "embedded", "--limit", "3", "-j", "2", "--skip-failed"])
    assert r.exit_code == 0, r.output
    assert seen["runner"] == RunnerOptions(limit=3, concurrency=2, skip_failed=True)
    assert seen["runner"].kwargs() == {"limit": 3, "concurrency": 2, "executor": "local", "ray_address": None,
                                       "skip_failed": True, "no_progress": False}
    assert seen["llm"].spec == "embedded"
    assert "First N chains." in CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
