"""Options derived from a config model (astra.cli_config): declared once, validated by the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import pytest
import typer
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from astra.cli_common import ConfigOpt, cli_errors, comma_list, need_file, output_dir
from astra.cli_config import Flag, flag_name, takes_config, takes_options
from astra.errors import ConfigError, InputError


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    envs: Path  # required
    group_size: Annotated[int, Flag(short="-G")] = Field(4, ge=2, description="Rollouts per group.")
    batch_size: Annotated[int, Flag("--batch")] = Field(8, ge=1, description="Samples per step.")
    reward: Literal["f1", "recall"] = Field("f1", description="Trajectory reward.")
    lr: float = 2e-6
    limit: int | None = Field(None, description="First N environments.")
    resume: bool = Field(False, description="Continue from the newest checkpoint.")
    hidden_knob: int = 3


seen: list[tuple[RunConfig, str]] = []
app = typer.Typer()


@app.command()
@cli_errors
@takes_config(RunConfig, exclude=("hidden_knob",), help={"lr": "Peak learning rate."})
def run(cfg: RunConfig, tag: Annotated[str, typer.Option(help="A label.")] = "x", config: ConfigOpt = None) -> None:
    seen.append((cfg, tag))


def _run(*args: str):
    seen.clear()
    return CliRunner().invoke(app, list(args))


def test_fields_become_options_with_their_defaults_help_and_flags():
    r = _run("--envs", "e", "-G", "3", "--batch", "2", "--no-resume", "--tag", "t")
    assert r.exit_code == 0, r.output
    cfg, tag = seen[0]
    assert (cfg.envs, cfg.group_size, cfg.batch_size, cfg.reward, cfg.lr, cfg.limit, cfg.resume, tag) == \
        (Path("e"), 3, 2, "f1", 2e-6, None, False, "t")
    assert cfg.hidden_knob == 3  # excluded: keeps its default
    h = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for text in ("--group-size", "-G", "Rollouts per group.", "--batch ", "--reward", "One of: f1, recall.",
                 "--resume", "--no-resume", "Peak learning rate.", "--limit", "--tag"):
        assert text in h, text
    assert "--hidden-knob" not in h and "--batch-size" not in h
    assert flag_name(RunConfig, "batch_size") == "--batch"


def test_the_model_validates_and_the_error_names_the_flag():
    r = _run("--envs", "e", "-G", "1")
    assert r.exit_code != 0 and "--group-size: Input should be greater than or equal to 2" in r.output
    r = _run("--envs", "e", "--reward", "bleu")
    assert r.exit_code != 0 and "--reward: Input should be 'f1' or 'recall'" in r.output
    r = _run()
    assert r.exit_code != 0 and "--envs" in r.output  # a field without a default is required
    assert not seen


def test_a_config_file_fills_the_same_options(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("envs: from_file\ngroup_size: 6\nreward: recall\n")
    r = _run("--config", str(f), "-G", "5")
    assert r.exit_code == 0, r.output
    cfg, _ = seen[0]
    assert (cfg.envs, cfg.group_size, cfg.reward) == (Path("from_file"), 5, "recall")  # the flag wins


def test_misuse_is_caught_when_the_command_is_declared():
    with pytest.raises(ValueError, match="no field"):
        takes_config(RunConfig, exclude=("nope",))
    with pytest.raises(TypeError, match="no parameter 'cfg'"):
        takes_config(RunConfig)(lambda other: None)

    def clash(cfg: RunConfig, lr: float = 1.0) -> None: ...

    with pytest.raises(TypeError, match="clash"):
        takes_config(RunConfig)(clash)


@dataclass(frozen=True)
class Knobs:
    size: Annotated[int, Flag(short="-s", help="How many.")] = 2
    fast: Annotated[bool, Flag(negatable=False, help="Go fast.")] = False
    careful: Annotated[bool, Flag("--careful/--reckless", help="Check twice.")] = True
    label: Annotated[str | None, Flag("--name", param="knob_name", envvar="KNOB_NAME", help="A name.")] = None
    untouched: int = 7


def test_a_dataclass_declares_its_options_the_same_way(monkeypatch):
    kapp = typer.Typer(add_completion=False)
    got: list[Knobs] = []

    @kapp.command()
    @takes_options(Knobs, param="knobs", exclude=("untouched",))
    def cmd(knobs: Knobs, after: Annotated[int, typer.Option(help="After.")] = 0) -> None:
        got.append(knobs)

    cmd_obj = typer.main.get_command(kapp)
    assert [(p.name, p.opts, p.secondary_opts) for p in cmd_obj.params] == [
        ("size", ["--size", "-s"], []), ("fast", ["--fast"], []), ("careful", ["--careful"], ["--reckless"]),
        ("knob_name", ["--name"], []), ("after", ["--after"], [])]
    monkeypatch.setenv("KNOB_NAME", "from-env")
    r = CliRunner().invoke(kapp, ["-s", "5", "--fast", "--reckless"])
    assert r.exit_code == 0, r.output
    assert got == [Knobs(size=5, fast=True, careful=False, label="from-env")]
    assert flag_name(Knobs, "label") == "--name" and flag_name(Knobs, "careful") == "--careful"
    with pytest.raises(TypeError, match="neither a pydantic model nor a dataclass"):
        takes_options(int, param="x")


def test_the_path_checks_and_comma_lists(tmp_path):
    assert comma_list(None) is None and comma_list(" , ") is None
    assert comma_list("a, b,,c ") == ["a", "b", "c"]
    assert need_file(tmp_path) == tmp_path
    with pytest.raises(InputError, match="tasks file not found"):
        need_file(tmp_path / "nope.jsonl", "tasks file")
    f = tmp_path / "f.txt"
    f.write_text("x")
    assert output_dir(tmp_path / "new") == tmp_path / "new"
    with pytest.raises(ConfigError, match="--output must be a directory"):
        output_dir(f)
