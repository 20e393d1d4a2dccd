"""The main job end to end with training: `astra demo --profile tiny` (slow: minutes)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from astra.cli import app

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_demo_tiny_end_to_end(tmp_path):
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["demo", "--profile", "tiny", "--out", str(run)])
    assert r.exit_code == 0, r.output
    summary = json.loads((run / "ckpt" / "sft" / "train_summary.json").read_text())
    assert str(run / "demos.jsonl") in summary["data"]["source"]  # trajectories + environment demonstrations
    assert (run / "ckpt" / "rl" / "metrics.jsonl").read_text().strip()
    results = json.loads((run / "eval" / "envs.json").read_text())
    assert len(results["models"]) == 3
    numbers = json.loads((run / "demo_results.json").read_text())
    assert set(numbers) == {"base", "SFT", "RL"} and "bfcl" in numbers["RL"]
    assert "base vs SFT vs RL" in r.output
    assert (run / "report.html").stat().st_size > 10_000
