"""The rollout journal of an RL run: every group on disk the moment it is rolled out.

``<output_dir>/rollouts.jsonl`` gets one JSON line per group (its samples: token ids, loss
mask, reward, reward parts, messages), the groups of a rollout round in one ``write`` +
``fsync``, so a kill leaves whole rounds (a torn last line is dropped on the next open).
Rollouts are the expensive part of a step; the journal is what makes ``--resume`` lose
none of them:

* a checkpoint holds the weights, the optimizer, the buffer and the environment cursor at
  step ``S`` after ``R`` rollout rounds;
* on resume, the journal's rounds ``R, R+1, …`` that were rolled out with the weights of
  step ``S`` (``policy_step == S``: the rounds that were filling the batch of step ``S+1``)
  are **replayed**: the trainer takes them instead of rolling out again, in the same order
  (the environment cursor is checked against them);
* rounds rolled out by weights that no checkpoint holds (with ``--save-every`` above 1, the
  steps after ``S+1``) cannot be trained on correctly (their old log-probs belong to a policy
  that is gone): they are counted as discarded and dropped from the journal. With
  ``--save-every 1`` there are none.

Each line: ``{"v": 1, "round", "policy_step", "group_index", "groups_in_round", "env_id",
"group_id", "samples": [Sample fields]}``. A run without ``--resume`` starts a new journal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astra.io import append_lines, repair_jsonl, write_atomic
from astra.train.rl_buffer import Group, Sample

log = logging.getLogger(__name__)

JOURNAL = "rollouts.jsonl"
VERSION = 1


@dataclass
class Replay:
    """What a resume takes from the journal."""

    rounds: dict[int, list[Group]] = field(default_factory=dict)  # round id -> its groups
    replayable_samples: int = 0
    discarded_samples: int = 0  # rolled out by weights no checkpoint holds
    torn_bytes: int = 0


class RolloutJournal:
    def __init__(self, out_dir: Path | str):
        self.path = Path(out_dir) / JOURNAL

    def reset(self) -> None:
        """A new run: start an empty journal."""
        if self.path.exists():
            self.path.unlink()

    def append_round(self, round_id: int, policy_step: int, groups: Sequence[Group]) -> None:
        lines = [{"v": VERSION, "round": round_id, "policy_step": policy_step, "group_index": i,
                  "groups_in_round": len(groups), "env_id": g.env_id, "group_id": g.group_id,
                  "samples": [s.to_dict() for s in g.samples]} for i, g in enumerate(groups)]
        if lines:
            append_lines(self.path, lines, fsync=True)

    def _lines(self) -> list[dict[str, Any]]:
        out = []
        with self.path.open("r", encoding="utf-8") as f:
            for raw in f:
                if raw.strip():
                    out.append(json.loads(raw))
        return out

    def load_replay(self, *, rounds_done: int, policy_step: int) -> Replay:
        """The rounds after a checkpoint (``rounds_done``, ``policy_step``) to replay; the
        journal is rewritten without the rounds that cannot be (discarded, torn)."""
        rep = Replay()
        if not self.path.exists():
            return rep
        rep.torn_bytes = repair_jsonl(self.path)
        lines = self._lines()
        keep = [x for x in lines if x["round"] < rounds_done]
        later: dict[int, list[dict[str, Any]]] = {}
        for x in lines:
            if x["round"] >= rounds_done:
                later.setdefault(x["round"], []).append(x)
        expected = rounds_done
        for rid in sorted(later):
            items = sorted(later[rid], key=lambda x: x["group_index"])
            whole = len(items) == items[0]["groups_in_round"] and \
                [x["group_index"] for x in items] == list(range(len(items)))
            ok = whole and rid == expected and all(x["policy_step"] == policy_step for x in items)
            n = sum(len(x["samples"]) for x in items)
            if not ok:  # this round and every later one were made by weights that are gone
                rep.discarded_samples += sum(len(x["samples"]) for r in later if r >= rid for x in later[r])
                break
            rep.rounds[rid] = [Group(env_id=x["env_id"], group_id=x["group_id"],
                                     samples=[Sample.from_dict(s) for s in x["samples"]]) for x in items]
            rep.replayable_samples += n
            keep.extend(items)
            expected += 1
        if len(keep) != len(lines) or rep.torn_bytes:
            write_atomic(self.path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in keep))
        return rep
