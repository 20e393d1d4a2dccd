"""Bootstrap intervals and paired comparisons of held-out evaluations; the demo's reading of them."""

from __future__ import annotations

import json

import pytest

from astra.eval.envs import EnvEvalReport, EpisodeResult, Metrics, ModelResult, summarize
from astra.eval.stats import bootstrap_ci, paired_difference


def _ep(env_id: str, f1: float) -> EpisodeResult:
    return EpisodeResult(env_id=env_id, scenario="single_hop", success=f1 == 1.0, f1=f1, recall=f1, precision=f1,
                         reward=f1, turns=1, calls=1, n_subtasks=1)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_data():
    assert bootstrap_ci([0.5]) is None and bootstrap_ci([1.0, 1.0]) == (1.0, 1.0)
    small = bootstrap_ci([0.0, 1.0] * 5)
    large = bootstrap_ci([0.0, 1.0] * 200)
    assert small[0] < 0.5 < small[1] and large[0] < 0.5 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


def test_paired_difference_sees_a_consistent_gain_that_unpaired_intervals_hide():
    base = [0.1 * i for i in range(10)]
    better = [x + 0.05 for x in base]  # every environment a little better
    d = paired_difference(base, better)
    assert d["diff"] == pytest.approx(0.05) and d["ci"][0] > 0 and d["p_not_better"] == 0.0
    same = paired_difference(base, base)
    assert same["diff"] == 0 and same["p_not_better"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0], [1.0, 2.0])


def test_metrics_and_report_carry_intervals_and_comparisons():
    a = summarize("base", [_ep(f"e{i}", 0.0) for i in range(6)])
    b = summarize("sft", [_ep(f"e{i}", 1.0 if i % 2 else 0.0) for i in range(6)])
    assert a.overall.ci["f1"] == [0.0, 0.0] and b.overall.ci["f1"][0] < 0.5 < b.overall.ci["f1"][1]
    assert b.overall.ci["level"] == 0.95 and "bootstrap" in b.overall.ci["method"]
    assert Metrics.of([_ep("x", 1.0)], with_ci=True).ci == {}  # one environment: no interval
    rep = EnvEvalReport(models=[a, b])
    (c,) = rep.compare()
    assert (c["a"], c["b"], c["n"], c["diff"]) == ("base", "sft", 6, 0.5) and c["ci"][0] > 0
    assert "sft vs base: f1 +0.500" in rep.comparison_lines()[0]
    # only the environments both models ran are paired
    rep2 = EnvEvalReport(models=[a, ModelResult(model="rl", overall=Metrics(), episodes=[_ep("e0", 1.0)])])
    assert rep2.compare()[0]["n"] == 1 and rep2.compare()[0]["ci"] is None


def test_demo_results_keep_intervals_and_comparisons(tmp_path):
    from astra.demo import model_results, write_model_results

    a = summarize("embedded", [_ep(f"e{i}", 0.0) for i in range(4)])
    b = summarize("run/ckpt/sft", [_ep(f"e{i}", 1.0) for i in range(4)])
    rep = EnvEvalReport(models=[a, b])
    rep.comparisons = rep.compare()
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "envs.json").write_text(rep.model_dump_json())
    res = write_model_results(tmp_path)
    assert res["SFT"]["ci"]["f1"] == [1.0, 1.0] and res["comparisons"][0]["diff"] == 1.0
    assert json.loads((tmp_path / "demo_results.json").read_text()) == res
    assert model_results(tmp_path / "nothing") == {}


def test_demo_knows_which_commands_exist_and_reports_usage_errors():
    import typer

    from astra.cli import app
    from astra.demo import DemoStepFailed, _invoke, _registered

    cli = typer.main.get_command(app)
    assert _registered(["train", "sft"], cli) and _registered(["tools", "ingest", "x"], cli)
    assert _registered(["envs", "split"], cli) and _registered(["envs", "synthesize"], cli)
    assert not _registered(["no-such-command"], cli) and not _registered(["envs", "no-such-subcommand"], cli)
    with pytest.raises(DemoStepFailed, match="No such option"):
        _invoke(["tools", "ingest", "--no-such-option"], cli)
