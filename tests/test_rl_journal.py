"""No rollout is lost on a crash: the RL loop journals every rollout round (fsync'd) and
``--resume`` replays the rounds made after the last checkpoint. The crash is a real
SIGKILL of a training subprocess at a known point (right after a round was journaled)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from astra.train.rl_buffer import Group, Sample
from astra.train.rl_journal import RolloutJournal

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent('''
    import os, random, signal, sys
    from pathlib import Path
    from tests.test_train_rl import fake_env, fake_factory, scripted_generate, tiny_model
    from astra.train.rl import RLConfig, RLTrainer
    from astra.llm.embedded import ensure_default_model, ensure_tool_chat_template
    from transformers import AutoTokenizer

    out, resume, kill_at = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
    tok = AutoTokenizer.from_pretrained(ensure_default_model())
    ensure_tool_chat_template(tok)
    cfg = RLConfig(output_dir=out, group_size=2, batch_size=4, micro_batch_size=2, max_steps=3, lr=1e-3,
                   max_new_tokens=48, max_turns=3, distractors="none", save_every=1, max_rollout_rounds=6,
                   log_samples=0, tensorboard=False, seed=3, groups_per_round=1, resume=resume)
    tr = RLTrainer(cfg, [fake_env(i) for i in range(5)], session_factory=fake_factory(3), model=tiny_model(tok),
                   tokenizer=tok)
    scripted_generate(tr.engine, random.Random(int(sys.argv[4])))
    real = tr.engine.generate
    def counting(seqs, n):
        with open(out / "generate_calls.txt", "a") as f:
            f.write(f"{tr.step} {tr.rounds_done}\\n")
        return real(seqs, n)
    tr.engine.generate = counting
    append = tr.journal.append_round
    def append_then_maybe_die(round_id, step, groups):
        append(round_id, step, groups)
        if step == kill_at:  # the first round made for step kill_at + 1 is on disk: crash now
            os.kill(os.getpid(), signal.SIGKILL)
    tr.journal.append_round = append_then_maybe_die
    print(tr.train())
''')


def _run(out: Path, *, resume: bool, kill_at: int, seed: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    return subprocess.run([sys.executable, "-c", CHILD, str(out), "1" if resume else "0", str(kill_at), str(seed)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _journal(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "rollouts.jsonl").read_text().splitlines() if x.strip()]


def test_sigkill_mid_step_then_resume_reuses_the_journaled_rounds(tmp_path):
    out = tmp_path / "rl"
    first = _run(out, resume=False, kill_at=1, seed=0)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-000001"]  # step 2 was being filled when the process died
    lines = _journal(out)
    died = [x for x in lines if x["policy_step"] == 1]
    assert len(died) == 1  # the one round journaled just before the kill
    lost_round = died[0]["round"]
    journaled_ids = [s["input_ids"] for s in died[0]["samples"]]

    calls_before = (out / "generate_calls.txt").read_text().splitlines()
    second = _run(out, resume=True, kill_at=-1, seed=1)  # another sampling seed: replayed rounds cannot be redone
    assert second.returncode == 0, second.stderr[-3000:]
    summary = eval(second.stdout.strip().splitlines()[-1])  # the child printed its summary dict
    assert summary["steps"] == 3 and summary["resumed_from"].endswith("step-000001")
    assert summary["journal"] == {"replayable": 2, "discarded": 0}
    calls_after = (out / "generate_calls.txt").read_text().splitlines()[len(calls_before):]
    # the replayed round was not rolled out again: no generate call made it (a call logs the
    # step and the rounds begun so far, round id + 1)
    assert f"1 {lost_round + 1}" in calls_before and f"1 {lost_round + 1}" not in calls_after
    assert any(c.startswith("1 ") for c in calls_after)  # step 2 still rolled out what it lacked
    lines = _journal(out)
    rounds = [x["round"] for x in lines]
    assert rounds == sorted(rounds) and len(set(rounds)) == len(rounds)  # one entry per round, in order
    again = next(x for x in lines if x["round"] == lost_round)
    assert [s["input_ids"] for s in again["samples"]] == journaled_ids
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    step2 = [m for m in metrics if m["step"] == 2]
    assert step2 and step2[-1]["replayed_rollouts"] == 2


def _group(gid: str, n: int = 2) -> Group:
    return Group(env_id="e", group_id=gid, samples=[
        Sample(env_id="e", group_id=gid, input_ids=[1, 2, i], loss_mask=[0, 1, 1], reward=float(i)) for i in range(n)])


def test_journal_replays_only_rounds_of_the_checkpointed_weights(tmp_path):
    j = RolloutJournal(tmp_path)
    j.append_round(0, 0, [_group("r0-g0")])
    j.append_round(1, 1, [_group("r1-g0"), _group("r1-g1")])  # rolled out for step 2 with step-1 weights
    j.append_round(2, 2, [_group("r2-g0")])  # step-2 weights: never saved
    with (tmp_path / "rollouts.jsonl").open("a") as f:
        f.write('{"v": 1, "round": 3, "poli')  # a torn last line
    rep = j.load_replay(rounds_done=1, policy_step=1)
    assert list(rep.rounds) == [1] and [g.group_id for g in rep.rounds[1]] == ["r1-g0", "r1-g1"]
    assert rep.replayable_samples == 4 and rep.discarded_samples == 2 and rep.torn_bytes > 0
    assert [x["round"] for x in _journal(tmp_path)] == [0, 1, 1]  # discarded and torn rounds dropped
    # an incomplete round is not replayed
    lines = (tmp_path / "rollouts.jsonl").read_text().splitlines()
    (tmp_path / "rollouts.jsonl").write_text("\n".join(lines[:2]) + "\n")
    rep = RolloutJournal(tmp_path).load_replay(rounds_done=1, policy_step=1)
    assert rep.rounds == {} and rep.discarded_samples == 2


@pytest.mark.parametrize("resume", [False, True])
def test_a_new_run_starts_a_new_journal(tmp_path, resume):
    j = RolloutJournal(tmp_path)
    j.append_round(0, 0, [_group("g")])
    if not resume:
        j.reset()
        assert not j.path.exists()
    else:
        assert j.load_replay(rounds_done=0, policy_step=0).replayable_samples == 2
