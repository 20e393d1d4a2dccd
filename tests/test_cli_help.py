"""The CLI's own documentation: every command has examples in its --help, every example
(and every `astra` line of the README) parses with the real parser, plain flags show no
type, --version, --config files, and the documented exit codes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from astra import __version__
from astra.cli import app
from astra.cli_common import EXIT_CODES
from astra.cli_help import EXAMPLES, polish

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
PLACEHOLDERS = {"N": "3", "<ENV_ID>": "env-1"}


def root_command():
    cmd = typer.main.get_command(app)
    polish(cmd)
    return cmd


def leaf_paths(cmd, path=()):
    subs = getattr(cmd, "commands", None)
    if not subs:
        return [path]
    return [p for name, sub in subs.items() for p in leaf_paths(sub, (*path, name))]


def command_line(example: str) -> str:
    """The command of an example line: comment dropped, env assignments and `\\` joins removed."""
    text = re.sub(r"\s+#\s.*$", "", example.replace("\\\n", " ")).strip()
    words = text.split()
    while words and re.match(r"^[A-Z_]+=", words[0]):
        words.pop(0)
    return " ".join(words)


def variants(line: str) -> list[list[str]]:
    """argv without the optional ``[...]`` parts, and with them (placeholders filled)."""
    bare = re.sub(r"\s*\[[^\]]*\]", "", line)
    full = re.sub(r"\[([^\]]*)\]", r"\1", line)
    out = []
    for text in dict.fromkeys([bare, full]):
        argv = shlex.split(text)
        assert argv[0] == "astra", line
        out.append([PLACEHOLDERS.get(a, a) for a in argv[1:]])
    return out


def resolve(root, argv: list[str]):
    cmd, rest, path = root, list(argv), []
    while getattr(cmd, "commands", None) and rest and rest[0] in cmd.commands:
        path.append(rest[0])
        cmd = cmd.commands[rest.pop(0)]
    return " ".join(path), cmd, rest


@pytest.fixture()
def config_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.yaml").write_text("profile: tiny\nout: runs/cfg\ntraining: false\n")
    (tmp_path / "sft.yaml").write_text("data: [run/sft, run/demos.jsonl]\noutput: run/ckpt/sft\nmax-steps: 5\n")
    (tmp_path / "rl.toml").write_text('envs = "run/envsplit/train"\nmodel = "run/ckpt/sft"\noutput = "run/ckpt/rl"\n'
                                      "group_size = 4\n")
    return tmp_path


def test_every_command_has_examples_and_every_example_names_a_command():
    root = root_command()
    paths = {" ".join(p) for p in leaf_paths(root)}
    missing = sorted(paths - set(EXAMPLES))
    assert not missing, f"add examples for {missing} to astra.cli_help.EXAMPLES"
    assert not sorted(set(EXAMPLES) - paths), "examples for commands that do not exist"


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_examples_parse(path, config_files):
    root = root_command()
    for example in EXAMPLES[path]:
        for argv in variants(command_line(example)):
            got, cmd, rest = resolve(root, argv)
            assert got == path, (example, got)
            ctx = cmd.make_context(" ".join(["astra", got]), rest)  # raises on any usage error
            assert ctx.params is not None


def test_readme_examples_are_the_help_examples():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    known = {command_line(e) for lines in EXAMPLES.values() for e in lines}
    readme = []
    for block in blocks:
        for raw in block.replace("\\\n", " ").splitlines():
            line = command_line(raw)
            if line.startswith("astra "):
                readme.append(line)
    assert len(readme) >= 30
    missing = [line for line in readme if line not in known]
    assert not missing, f"README lines missing from astra.cli_help.EXAMPLES: {missing}"


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_help_shows_examples_and_no_bool_metavar(path):
    r = runner.invoke(app, [*path.split(), "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "Examples:" in r.output and EXAMPLES[path][0].split("#")[0].split()[1] in r.output
    assert "<bool>" not in r.output


def test_top_level_help_and_version():
    r = runner.invoke(app, ["--help"], terminal_width=200)
    assert r.exit_code == 0 and "<bool>" not in r.output and "--version" in r.output
    assert "Exit codes" in r.output
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"astra {__version__}"


def test_config_values_are_defaults_and_flags_override(config_files):
    root = root_command()
    sft = root.commands["train"].commands["sft"]
    ctx = sft.make_context("astra train sft", ["--config", "sft.yaml", "--max-steps", "9"])
    assert [str(p) for p in ctx.params["data"]] == ["run/sft", "run/demos.jsonl"]
    assert str(ctx.params["output_dir"]) == "run/ckpt/sft" and ctx.params["max_steps"] == 9
    ctx = sft.make_context("astra train sft", ["--config", "sft.yaml"])
    assert ctx.params["max_steps"] == 5
    rl = root.commands["train"].commands["rl"]
    ctx = rl.make_context("astra train rl", ["--config", "rl.toml"])
    assert str(ctx.params["envs"]) == "run/envsplit/train" and ctx.params["group_size"] == 4
    demo = root.commands["demo"]
    ctx = demo.make_context("astra demo", ["--config", "demo.yaml", "--training"])
    assert ctx.params["profile"] == "tiny" and str(ctx.params["out"]) == "runs/cfg"
    assert ctx.params["training"] is True  # the flag wins over the file
    (config_files / "neg.yaml").write_text("no-training: true\n")
    assert demo.make_context("astra demo", ["--config", "neg.yaml"]).params["training"] is False


def test_config_unknown_key_is_named(config_files):
    (config_files / "typo.toml").write_text("max_stpes = 3\n")
    r = runner.invoke(app, ["train", "sft", "--config", "typo.toml"], terminal_width=300)
    assert r.exit_code == 2 and "unknown key 'max_stpes'" in r.output and "Traceback" not in r.output


def test_exit_codes_are_documented():
    doc = (ROOT / "docs" / "cli.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in doc, f"exit code {code} missing from docs/cli.md"
    assert "Exit codes" in (ROOT / "README.md").read_text()
