"""The stage runner: outputs, ledger, manifest, limit, resume, crash safety, Ray."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from astra.errors import ConfigError, InputError
from astra.io import write_jsonl
from astra.llm.usage import USAGE
from astra.pipeline import (
    Manifest,
    StagePaths,
    arun_stage,
    collect_manifests,
    load_manifest,
    read_outputs,
    run_stage,
)
from astra.pipeline.stage import StageResult
from tests.pipeline_stages import DummyStage, Item, Out, expected_counts, make_items

ROOT = Path(__file__).resolve().parents[1]


def out_lines(path: Path) -> Counter[str]:
    return Counter(line for line in path.read_text().splitlines() if line.strip())


def ledger(path: Path) -> list[dict]:
    return [json.loads(line) for line in StagePaths.of(path).ledger.read_text().splitlines()]


def reference(tmp_path: Path, items: list[Item], name: str = "ref") -> Counter[str]:
    out = tmp_path / name / "out.jsonl"
    run_stage(DummyStage(), items, out, progress=False)
    return out_lines(out)


def test_outputs_ledger_and_manifest(tmp_path: Path) -> None:
    items = make_items(40)
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, items)
    out = tmp_path / "out.jsonl"
    m = run_stage(DummyStage(sleep=0.002), inp, out, concurrency=3, progress=False)

    exp = expected_counts(items)
    assert (m.accepted, m.rejected, m.failed, m.outputs) == (
        exp["accepted"], exp["rejected"], exp["failed"], exp["outputs"])
    assert m.status == "complete" and m.stage == "test.dummy" and m.executor == "local"
    assert m.inputs_seen == m.processed == m.done == 40 and m.skipped_done == 0
    assert m.config == {"sleep": 0.002, "fail": True} and m.input == str(inp)
    ok = [i.n for i in items if i.n % 7 != 3]
    assert m.rejections_by_reason == {"too_small": sum(n % 5 == 0 for n in ok),
                                      "near_duplicate": sum(n % 5 == 1 for n in ok)}
    assert m.rejections == m.rejections_by_reason["too_small"] * 2
    assert m.errors_by_type == {"ValueError": exp["failed"]}
    assert m.finished_at and m.started_at

    # output lines are pure output-model JSON
    recs = list(read_outputs(out, Out))
    assert len(recs) == exp["outputs"] == sum(out_lines(out).values())
    assert {r.id for r in recs} >= {"item-0001/0", "item-0001/1", "item-0001/2", "item-0002/0"}
    # one ledger line per input, with reasons and errors
    led = {e["key"]: e for e in ledger(out)}
    assert len(led) == 40 and len(ledger(out)) == 40
    assert led["item-0001"]["n_outputs"] == 3
    assert led["item-0001"]["out_keys"] == ["item-0001/0", "item-0001/1", "item-0001/2"]
    assert led["item-0005"]["rejections"][0]["reason"] == "too_small"
    assert led["item-0003"]["error"] == "ValueError: boom on item-0003"
    # manifest on disk equals the returned one
    assert load_manifest(StagePaths.of(out).manifest) == m
    assert load_manifest(out) == m


def test_limit_and_resume_skip_done(tmp_path: Path) -> None:
    items = make_items(30)
    out = tmp_path / "out.jsonl"
    m1 = run_stage(DummyStage(), items, out, limit=10, progress=False)
    assert m1.inputs_seen == 10 and m1.processed == 10 and m1.done == 10
    assert {e["key"] for e in ledger(out)} == {i.id for i in items[:10]}

    # item-0003 failed in the first run: a failure is retried, decisions are skipped
    m2 = run_stage(DummyStage(), items, out, progress=False)
    assert m2.inputs_seen == 30 and m2.skipped_done == 9 and m2.processed == 21
    assert m2.done == 30 and m2.runs == 2
    assert m2.outputs == expected_counts(items)["outputs"]
    assert out_lines(out) == reference(tmp_path, items)

    failed = expected_counts(items)["failed"]
    m3 = run_stage(DummyStage(), items, out, progress=False, skip_failed=True)
    assert m3.processed == 0 and m3.skipped_done == 30 and m3.runs == 3 and m3.skip_failed
    assert len(ledger(out)) == 31 and m3.failed == failed


def test_duplicates_and_dict_inputs(tmp_path: Path) -> None:
    items = make_items(6)
    stream = [i.model_dump() for i in items] + [items[1].model_dump(), items[2]]
    m = run_stage(DummyStage(), stream, tmp_path / "o.jsonl", progress=False)
    assert m.inputs_seen == 8 and m.duplicate_inputs == 2 and m.processed == 6
    assert any("repeated a key" in w for w in m.warnings)


def test_failures_are_retried_by_a_plain_rerun(tmp_path: Path) -> None:
    items = make_items(25)
    out = tmp_path / "out.jsonl"
    m1 = run_stage(DummyStage(fail=True), items, out, progress=False)
    failed = {i.id for i in items if i.n % 7 == 3}
    assert m1.failed == m1.processed_failed == len(failed) == 4
    assert m1.failures_by_kind == {"error": 4}
    assert {e["key"] for e in ledger(out) if e["error"]} == failed
    assert all(e["failure"] == "error" for e in ledger(out) if e["error"])

    # --skip-failed leaves them failed
    m2 = run_stage(DummyStage(fail=False), items, out, progress=False, skip_failed=True)
    assert m2.processed == 0 and m2.failed == 4
    assert any("config differs" in w for w in m2.warnings)

    # a plain rerun processes exactly the failed inputs again
    m3 = run_stage(DummyStage(fail=False), items, out, progress=False)
    assert m3.processed == 4 and m3.skipped_done == 21 and m3.failed == 0 and m3.errors_by_type == {}
    assert m3.done == 25 and len(ledger(out)) == 29  # the later ledger line wins
    assert m3.outputs == expected_counts(items, fail=False)["outputs"]
    ref = tmp_path / "ref.jsonl"
    run_stage(DummyStage(fail=False), items, ref, progress=False)
    assert out_lines(out) == out_lines(ref)


def test_usage_recorded_per_stage_and_summed_over_runs(tmp_path: Path) -> None:
    items = make_items(12)
    out = tmp_path / "out.jsonl"
    before = USAGE.get("test.dummy")
    m1 = run_stage(DummyStage(fail=False), items, out, limit=5, progress=False)
    assert m1.llm_usage["calls"] == 5 and m1.llm_usage["prompt_tokens"] == 50
    assert m1.llm_usage["completion_tokens"] == sum(range(5))
    m2 = run_stage(DummyStage(fail=False), items, out, progress=False)
    assert m2.llm_usage["calls"] == 12
    assert m2.llm_usage["completion_tokens"] == sum(range(12))
    assert USAGE.get("test.dummy").calls - before.calls == 12
    assert m2.usage.prompt_tokens == 120

    ms = collect_manifests(tmp_path)
    assert [m.stage for m in ms] == ["test.dummy"] and isinstance(ms[0], Manifest)


class _Interleaved(DummyStage):
    """Each record makes two fake LLM calls around a sleep of its own length, so that
    under concurrency records finish in a different order than they start."""

    name = "test.interleaved"

    async def process(self, record: Item) -> StageResult:
        USAGE.record(calls=1, prompt_tokens=1000 + record.n)
        await asyncio.sleep(0.002 * ((record.n * 7) % 5))
        USAGE.record(calls=1, completion_tokens=record.n)
        return StageResult.accept(Out(id=f"{record.id}/0", source=record.id, value=record.n))


def test_usage_is_attributed_to_its_own_record_under_concurrency(tmp_path: Path) -> None:
    items = make_items(24)
    out = tmp_path / "out.jsonl"
    m = run_stage(_Interleaved(), items, out, concurrency=6, progress=False)
    lines = {e["key"]: e for e in ledger(out) if e["key"]}
    assert len(lines) == 24
    for it in items:
        u = lines[it.id]["usage"]
        assert u["calls"] == 2 and u["prompt_tokens"] == 1000 + it.n, (it.id, u)
        assert u.get("completion_tokens", 0) == it.n
    assert m.llm_usage["calls"] == 48
    assert not [e for e in ledger(out) if e["key"] is None]  # nothing outside a record


def test_orphan_outputs_and_torn_lines_are_repaired(tmp_path: Path) -> None:
    items = make_items(20)
    out = tmp_path / "out.jsonl"
    run_stage(DummyStage(), items, out, limit=8, progress=False)
    paths = StagePaths.of(out)
    # outputs of item 9 whose ledger line never landed, then a torn line in both files
    orphan = Out(id="item-0009/0", source="item-0009", value=90).model_dump_json()
    with out.open("a") as f:
        f.write(orphan + "\n" + '{"schema_version":1,"id":"item-00')
    with paths.ledger.open("a") as f:
        f.write('{"key":"item-0008","n_out')
    # readers never see the orphans
    assert len(list(read_outputs(out, Out))) == expected_counts(items[:8])["outputs"]

    m = run_stage(DummyStage(), items, out, progress=False)
    # 12 new inputs and item-0003, which failed in the first run
    assert m.dropped_orphans == 1 and m.processed == 13 and m.done == 20
    assert out_lines(out) == reference(tmp_path, items)
    assert len(ledger(out)) == 21


def test_output_without_ledger_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "x"}\n')
    with pytest.raises(InputError, match="without its ledger"):
        run_stage(DummyStage(), make_items(3), out, progress=False)


def test_concurrent_run_on_same_output_is_refused(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out.jsonl"
    with open(StagePaths.of(out).lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another run"):
            run_stage(DummyStage(), make_items(3), out, progress=False)
    assert run_stage(DummyStage(), make_items(3), out, progress=False).done == 3


async def test_arun_stage_inside_an_event_loop(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="arun_stage"):
        run_stage(DummyStage(), make_items(3), tmp_path / "o.jsonl", progress=False)
    m = await arun_stage(DummyStage(), make_items(3), tmp_path / "o.jsonl", progress=False)
    assert m.done == 3 and m.status == "complete"


def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    items = make_items(200)
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, items)
    out = tmp_path / "killed" / "out.jsonl"
    paths = StagePaths.of(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline_stages", str(inp), str(out), "--sleep", "0.03",
         "--concurrency", "4"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if paths.ledger.exists() and paths.ledger.read_text().count("\n") >= 40:
                break
            assert proc.poll() is None, "the stage finished before it could be killed"
            time.sleep(0.01)
        else:
            pytest.fail("the stage made no progress")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    n_before = paths.ledger.read_text().count("\n")
    assert 40 <= n_before < 200
    failed_before = sum(1 for e in ledger(out) if e["error"])  # retried by the rerun
    # a kill mid-write: torn final lines
    with out.open("a") as f:
        f.write('{"schema_version":1,"id":"item-0199/0","sour')
    with paths.ledger.open("a") as f:
        f.write('{"key":"item-01')
    killed = load_manifest(out)  # the killed run left a manifest
    assert killed.status == "running"

    m = run_stage(DummyStage(sleep=0.0), inp, out, concurrency=8, progress=False)
    assert m.status == "complete" and m.done == 200 and m.runs == 2
    assert m.skipped_done == n_before - failed_before and m.processed == 200 - m.skipped_done
    got = out_lines(out)
    assert max(got.values()) == 1  # no duplicates
    assert got == reference(tmp_path, items)  # none lost
    keys = [e["key"] for e in ledger(out)]
    assert len(set(keys)) == 200 and len(keys) == 200 + failed_before
    # usage of both runs, from the ledger: every processing that reached a ledger line was
    # counted once (the failed inputs of the killed run were processed twice)
    retried = sum(int(e["key"][5:]) for e in ledger(out)[:n_before] if e["error"])
    assert m.llm_usage["calls"] == 200 + failed_before
    assert m.llm_usage["completion_tokens"] == sum(range(200)) + retried


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                 p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}})
    yield ray
    ray.shutdown()


def test_ray_executor_matches_local(tmp_path: Path, ray_cluster) -> None:
    items = make_items(30)
    inp = tmp_path / "in.jsonl"
    write_jsonl(inp, items)
    out = tmp_path / "ray" / "out.jsonl"
    before = USAGE.get("test.dummy").calls
    m = run_stage(DummyStage(sleep=0.005), inp, out, executor="ray", concurrency=4,
                  limit=20, progress=False)
    assert m.executor == "ray" and m.processed == 20 and m.status == "complete"
    assert m.llm_usage["calls"] == 20  # merged from the workers
    assert USAGE.get("test.dummy").calls - before == 20
    m = run_stage(DummyStage(sleep=0.005), inp, out, executor="ray", concurrency=4, progress=False)
    # the three failures of the first run (items 3, 10, 17) are processed again
    assert m.skipped_done == 17 and m.processed == 13 and m.llm_usage["calls"] == 33
    # each ledger line carries its own record's usage, measured on the worker
    assert all(e["usage"]["calls"] == 1 and e["usage"]["completion_tokens"] == int(e["key"][5:])
               for e in ledger(out) if e["key"] and int(e["key"][5:]))
    exp = expected_counts(items)
    assert (m.accepted, m.rejected, m.failed, m.outputs) == (
        exp["accepted"], exp["rejected"], exp["failed"], exp["outputs"])
    assert out_lines(out) == reference(tmp_path, items)
