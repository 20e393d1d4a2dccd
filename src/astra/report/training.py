"""Training and evaluation in the report: the funnel rows after synthesis (environment split,
gold demonstrations, SFT, RL, held-out evaluation, BFCL) and the training curves.

Files read (all optional; a missing one means the stage has not run):

- ``envsplit/train/``, ``envsplit/heldout/`` (``index.jsonl`` or ``*.json`` bundles) — ``astra envs split``;
- ``demos.jsonl`` — ``astra train demos`` (one gold conversation per training environment it could replay);
- ``ckpt/sft/train_summary.json`` (``data``: records, train, eval, overlong, dropped_overlong, …;
  ``global_step``, ``eval_loss_before`` / ``eval_loss_after``) and ``ckpt/sft/logs.jsonl``;
- ``ckpt/rl/metrics.jsonl`` (per step: ``reward_mean``, ``reward_std``, ``groups``,
  ``filtered_groups``, ``filtered_group_share``, ``rollouts``, ``batch_size``, ``loss``, …) and
  ``ckpt/rl/rl_summary.json``;
- ``eval/envs.json`` — ``astra eval envs -o``; ``eval/bfcl/bfcl_summary.json`` — ``astra eval bfcl -o``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: A training run with at most this many logged steps is shown as a table, not as curves.
TABLE_MAX_STEPS = 2
MAX_TABLE_ROWS = 24

SFT_PANELS = [
    {"title": "loss (assistant tokens)", "series": [("loss", "train"), ("eval_loss", "held-out")]},
    {"title": "token accuracy", "series": [("token_accuracy", "train"), ("eval_token_accuracy", "held-out")]},
    {"title": "training tokens / s", "series": [("tokens_per_s", "tokens/s")]},
]
RL_PANELS = [
    {"title": "reward (mean over rollouts)", "series": [("reward_mean", "reward")], "band": "reward_std"},
    {"title": "filtered groups (share)", "series": [("filtered_group_share", "filtered")], "ylim": (-0.05, 1.05)},
    {"title": "policy loss", "series": [("loss", "loss")]},
    {"title": "F1 / all sub-tasks solved", "series": [("f1", "F1"), ("solved_all", "solved")],
     "ylim": (-0.05, 1.05)},
]
#: Columns of the one-step tables, in this order when present.
SFT_TABLE = ["step", "phase", "loss", "eval_loss", "token_accuracy", "eval_token_accuracy", "grad_norm", "lr",
             "tokens_per_s", "train_loss", "train_runtime"]
RL_TABLE = ["step", "reward_mean", "reward_std", "f1", "recall", "precision", "solved_all", "groups",
            "filtered_groups", "filtered_group_share", "rollouts", "batch_size", "loss", "approx_kl", "clip_fraction",
            "grad_norm", "rollout_tokens_per_s", "step_seconds"]


def iter_jsonl(path: Path, problems: list[str], what: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON Lines file, one at a time; lines that are not JSON objects
    (a torn last line, binary bytes) are skipped and counted into ``problems``."""
    bad = 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict):
                yield obj
            else:
                bad += 1
    if bad:
        problems.append(f"{what}: {bad} line(s) of {path.name} are not JSON objects (skipped)")


def read_jsonl(path: Path, problems: list[str], what: str) -> list[dict[str, Any]]:
    """All the records of :func:`iter_jsonl`."""
    return list(iter_jsonl(path, problems, what))


def read_json(path: Path, problems: list[str], what: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"{what}: {path.name}: {type(e).__name__}: {str(e)[:200]}")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{what}: {path.name}: expected a JSON object")
        return None
    return obj


def count_envs(d: Path) -> int | None:
    """Environments in a bundle directory (``index.jsonl`` lines, else ``*.json`` files)."""
    if not d.is_dir():
        return None
    idx = d / "index.jsonl"
    if idx.exists():
        with idx.open("rb") as f:
            return sum(1 for line in f if line.strip())
    return sum(1 for p in d.glob("*.json") if not p.name.endswith(".manifest.json"))


def _row(key: str, label: str, what: str, **kw: Any) -> dict[str, Any]:
    row = {"key": key, "label": label, "group": "training & evaluation", "stage": what, "status": "complete",
           "inputs": None, "accepted": None, "rejected": None, "failed": None, "outputs": None, "seconds": None,
           "reasons": [], "errors": [], "warnings": [], "extras": {}, "usage": {}, "derived": True}
    row.update(kw)
    return row


def _rl_rows(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """``metrics.jsonl`` one record per step: a resumed run logs a step again, the last line wins."""
    by_step: dict[Any, tuple[tuple[int, float], dict[str, Any]]] = {}
    for i, r in enumerate(read_jsonl(path, problems, "RL metrics")):
        s = r.get("step")
        numeric = isinstance(s, (int, float)) and not isinstance(s, bool)
        by_step[s if numeric else f"line {i}"] = ((0, float(s)) if numeric else (1, float(i)), r)
    return [r for _, r in sorted(by_step.values(), key=lambda kv: kv[0])]


def _sum(rows: list[dict[str, Any]], key: str) -> int | None:
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    return int(sum(vals)) if vals else None


def training_funnel(run: Path, problems: list[str]) -> dict[str, Any]:
    """Funnel rows for the stages after synthesis, and the names of those not run."""
    rows: list[dict[str, Any]] = []
    missing: list[dict[str, str]] = []
    n_envs = count_envs(run / "envs")
    n_train, n_held = count_envs(run / "envsplit" / "train"), count_envs(run / "envsplit" / "heldout")
    if n_train is not None or n_held is not None:
        rows.append(_row("envsplit", "envs: split", "environments → train / held-out",
                         inputs=n_envs, accepted=(n_train or 0) + (n_held or 0), rejected=0,
                         outputs=n_train, note=f"{n_train or 0} train · {n_held or 0} held-out",
                         unit="training environments"))
    else:
        missing.append({"key": "envsplit", "label": "envs: split"})

    demos = run / "demos.jsonl"
    if demos.exists():
        recs = read_jsonl(demos, problems, "demonstrations")
        rej = (n_train - len(recs)) if n_train is not None and n_train >= len(recs) else None
        rows.append(_row("demos", "train: demos", "gold demonstrations from the training environments",
                         inputs=n_train, accepted=len(recs), rejected=rej, outputs=len(recs),
                         reasons=[{"reason": "gold replay did not solve every sub-task", "n": rej}] if rej else [],
                         unit="conversations",
                         note="inputs: environments in envsplit/train" if n_train is not None else ""))
    else:
        missing.append({"key": "demos", "label": "train: demos"})

    sft = run / "ckpt" / "sft"
    summ = read_json(sft / "train_summary.json", problems, "SFT summary") if (sft / "train_summary.json").exists() \
        else None
    if summ is not None:
        data = summ.get("data") if isinstance(summ.get("data"), dict) else {}
        dropped = data.get("dropped_overlong") or 0
        reasons = [{"reason": f"longer than max_length={data.get('max_length')} tokens (dropped)", "n": dropped}] \
            if dropped else []
        note = f"{data.get('train', '?')} train · {data.get('eval', '?')} held-out conversations · " \
               f"{summ.get('global_step', '?')} steps"
        if data.get("truncated"):
            note += f" · {data['truncated']} truncated to max_length"
        rows.append(_row("ckpt/sft", "train: SFT", "supervised fine-tuning", inputs=data.get("records"),
                         accepted=(data.get("train") or 0) + (data.get("eval") or 0) if data else None,
                         rejected=dropped, outputs=data.get("train"), seconds=summ.get("total_seconds"),
                         reasons=reasons, unit="training conversations", note=note))
    elif sft.is_dir():
        rows.append(_row("ckpt/sft", "train: SFT", "supervised fine-tuning", status="not finished",
                         unit="", note="started, no train_summary.json yet (running, or stopped)"))
    else:
        missing.append({"key": "ckpt/sft", "label": "train: SFT"})

    rl = run / "ckpt" / "rl"
    mrows = _rl_rows(rl / "metrics.jsonl", problems) if (rl / "metrics.jsonl").exists() else []
    if mrows:
        groups, filt = _sum(mrows, "groups"), _sum(mrows, "filtered_groups")
        summ_rl = read_json(rl / "rl_summary.json", problems, "RL summary") if (rl / "rl_summary.json").exists() \
            else None
        reasons = [{"reason": "all rewards of the group equal (no signal, filtered)", "n": filt}] if filt else []
        note = f"{len(mrows)} step(s) · {_sum(mrows, 'rollouts') or '?'} rollouts · " \
               f"{_sum(mrows, 'batch_size') or '?'} samples trained on"
        rows.append(_row("ckpt/rl", "train: RL", "reinforcement learning (rollout groups)", inputs=groups,
                         accepted=(groups - filt) if groups is not None and filt is not None else None,
                         rejected=filt, outputs=(groups - filt) if groups is not None and filt is not None else None,
                         seconds=(summ_rl or {}).get("seconds"), reasons=reasons, unit="groups with a reward signal",
                         note=note, status="complete" if summ_rl else "not finished"))
    elif rl.is_dir():
        rows.append(_row("ckpt/rl", "train: RL", "reinforcement learning", status="not finished", unit="",
                         note="started, no step logged yet (running, or stopped)"))
    else:
        missing.append({"key": "ckpt/rl", "label": "train: RL"})

    ev = run / "eval" / "envs.json"
    rep = read_json(ev, problems, "held-out evaluation") if ev.exists() else None
    if rep is not None:
        models = [m for m in rep.get("models") or [] if isinstance(m, dict)]
        eps = sum(len(m.get("episodes") or []) for m in models)
        errs = sum(int((m.get("overall") or {}).get("errors") or 0) for m in models)
        solved = sum(1 for m in models for e in m.get("episodes") or [] if isinstance(e, dict) and e.get("success"))
        rows.append(_row("eval/envs", "eval: held-out envs", "episodes: models × held-out environments",
                         inputs=eps or None, accepted=solved if eps else None,
                         rejected=(eps - solved - errs) if eps else None, failed=errs, outputs=eps or None,
                         seconds=sum(float(m.get("seconds") or 0) for m in models) or None,
                         reasons=[{"reason": "not every sub-task solved", "n": eps - solved - errs}]
                         if eps and eps - solved - errs else [],
                         unit="episodes", note=f"{len(models)} model(s) × {rep.get('n_envs', '?')} environments; "
                                               "accepted = solved"))
    else:
        missing.append({"key": "eval/envs", "label": "eval: held-out envs"})

    bfcl = run / "eval" / "bfcl" / "bfcl_summary.json"
    b = read_json(bfcl, problems, "BFCL summary") if bfcl.exists() else None
    if b is not None:
        cats = {k: v for k, v in (b.get("categories") or {}).items() if isinstance(v, dict)}
        total = sum(int(v.get("total_count") or 0) for v in cats.values())
        correct = sum(int(v.get("correct_count") or 0) for v in cats.values())
        rows.append(_row("eval/bfcl", "eval: BFCL", f"BFCL entries ({', '.join(cats) or 'no category'})",
                         inputs=total, accepted=correct, rejected=total - correct, outputs=total,
                         seconds=b.get("seconds"), unit="entries",
                         note=f"model {b.get('model', '?')}; accepted = correct"))
    for r in rows:
        base = r["inputs"] or 0
        r["reasons"] = [{**x, "w": round(100 * x["n"] / base, 1) if base else 0.0,
                         "pct": f"{100 * x['n'] / base:.0f}%" if base else ""} for x in r["reasons"]]
    return {"rows": rows, "missing": missing}


# ---------------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """A run of one or two logged steps as a table: one row per metric, one column per logged line."""
    present = [k for k in keys if k != "step" and any(k in r for r in rows)]
    extra = sorted({k for r in rows for k, v in r.items() if k not in present and k not in ("step", "time", "epoch",
                                                                                              "wall_s")
                    and isinstance(v, (int, float)) and not isinstance(v, bool)})
    metrics = (present + extra)[:MAX_TABLE_ROWS]
    cols = [f"step {r['step']}" if "step" in r else f"line {i + 1}" for i, r in enumerate(rows)]
    if "phase" in present:
        metrics.remove("phase")
        cols = [f"{c} ({r['phase']})" if r.get("phase") else c for c, r in zip(cols, rows, strict=True)]
    return {"cols": ["metric", *cols], "rows": [[k, *[r.get(k, "") for r in rows]] for k in metrics],
            "more": max(0, len(present) + len(extra) - MAX_TABLE_ROWS)}


def gather_training(run: Path, problems: list[str]) -> list[dict[str, Any]]:
    from astra.report.plots import curves

    out = []
    for name, logs, summaries, panels, tcols in (
            ("SFT", "logs.jsonl", ("train_summary.json",), SFT_PANELS, SFT_TABLE),
            ("RL", "metrics.jsonl", ("rl_summary.json",), RL_PANELS, RL_TABLE)):
        d = run / "ckpt" / name.lower()
        item: dict[str, Any] = {"name": name, "dir": f"ckpt/{name.lower()}", "present": d.is_dir(), "img": None,
                                "img_source": "", "summary": {}, "steps": 0, "table": None}
        out.append(item)
        if not d.is_dir():
            continue
        rows: list[dict[str, Any]] = []
        if (d / logs).exists():
            rows = _rl_rows(d / logs, problems) if name == "RL" else read_jsonl(d / logs, problems, f"{name} {logs}")
        step_rows = [r for r in rows if "loss" in r or "reward_mean" in r] if name == "SFT" else rows
        steps = {r.get("step") for r in step_rows}
        item["steps"] = len(steps)
        if rows and len(steps) <= TABLE_MAX_STEPS:
            item["table"] = _table(rows, tcols)
            item["img_source"] = (f"no training step logged yet: what {logs} holds" if not steps else
                                  f"{len(steps)} logged step{'s' if len(steps) > 1 else ''}: "
                                  f"a table instead of curves (from {logs})")
        elif rows:
            try:
                item["img"] = curves(rows, panels)
            except Exception as e:  # a broken picture must not stop the report
                problems.append(f"plotting {name} {logs}: {type(e).__name__}: {str(e)[:200]}")
            item["img_source"] = f"drawn from {logs} ({len(steps)} steps)"
        if item["img"] is None and item["table"] is None and (d / "curves.png").exists():
            import base64

            item["img"] = "data:image/png;base64," + base64.b64encode((d / "curves.png").read_bytes()).decode()
            item["img_source"] = "curves.png (written by the trainer)"
        for s in summaries:
            if (d / s).exists():
                obj = read_json(d / s, problems, f"{name} summary")
                if obj is not None:
                    item["summary"] = _summary_view(obj)
                    item["summary_file"] = s
                break
    return out


SUMMARY_KEYS = ["global_step", "steps", "train_loss", "eval_loss_before", "eval_loss_after", "format_before",
                "format_after", "train_tokens_per_second", "train_seconds", "total_seconds", "seconds", "device",
                "precision", "model_source", "resumed_from", "reward_first", "reward_last",
                "reward_first_quarter_mean", "reward_last_quarter_mean"]


def _summary_view(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for k in SUMMARY_KEYS:
        v = obj.get(k)
        if v is None:
            continue
        if isinstance(v, dict):  # a format check: {"ok", "n", "rate", ...}
            parts = [f"{a}={b}" for a, b in v.items() if not isinstance(b, (dict, list))]
            v = ", ".join(parts[:6])
        out.append((k, v))
    return out


__all__ = ["TABLE_MAX_STEPS", "count_envs", "gather_training", "read_json", "read_jsonl", "training_funnel"]
