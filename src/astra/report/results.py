"""The headline of the report: base / SFT / RL on the held-out environments.

Sources (both optional):

- ``eval/envs.json`` — what ``astra eval envs -o`` writes (:class:`astra.eval.envs.EnvEvalReport`):
  ``models[]`` with ``model``, ``overall`` (``n``, ``success_rate``, ``f1``, ``recall``,
  ``precision``, …) and ``episodes`` (one result per environment);
- ``demo_results.json`` — what ``astra demo`` writes: ``{label: {"model", "n", "success_rate",
  "f1", …}}`` with labels ``base`` / ``SFT`` / ``RL``.

A confidence interval is read where the results carry one (see :func:`read_ci` for the
accepted keys). When none is carried but per-environment episodes are, the report computes
a percentile bootstrap over the environments itself and says so in the caption.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from astra.eval.stats import BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, bootstrap_ci

#: (key, label) of the charted metrics, all shares in [0, 1].
METRICS: list[tuple[str, str]] = [("success_rate", "solved (all sub-tasks)"), ("f1", "F1"), ("recall", "recall"),
                                  ("precision", "precision"), ("subtasks", "tool calls right (answer aside)")]
CI_META = {"level", "confidence", "method", "resamples", "n_boot", "n", "unit", "seed"}


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _pair(v: Any) -> tuple[float, float] | None:
    """``[low, high]`` or ``{"low"|"lo"|"lower"|"ci_low", "high"|"hi"|"upper"|"ci_high"}``."""
    if isinstance(v, (list, tuple)) and len(v) == 2:
        lo, hi = _num(v[0]), _num(v[1])
    elif isinstance(v, dict):
        lo = next((_num(v[k]) for k in ("low", "lo", "lower", "ci_low") if k in v), None)
        hi = next((_num(v[k]) for k in ("high", "hi", "upper", "ci_high") if k in v), None)
    else:
        return None
    return (lo, hi) if lo is not None and hi is not None else None


def metric_value(obj: dict[str, Any], metric: str) -> float | None:
    """The metric's value: a number, or a dict with ``mean`` / ``value``."""
    v = obj.get(metric)
    if isinstance(v, dict):
        v = v.get("mean", v.get("value"))
    return _num(v)


def read_ci(obj: dict[str, Any], metric: str) -> tuple[float, float] | None:
    """The confidence interval of ``metric`` in a model's result dict, from the first of:

    - ``obj["ci"][metric]`` = ``[low, high]`` or ``{"low", "high"}``;
    - ``obj["ci_low"][metric]`` and ``obj["ci_high"][metric]``;
    - ``obj[metric + "_ci"]`` = ``[low, high]``, or ``obj[metric + "_ci_low"]`` and ``obj[metric + "_ci_high"]``;
    - ``obj[metric]`` = ``{"mean", "ci": [low, high]}`` or ``{"mean", "ci_low", "ci_high"}``.
    """
    ci = obj.get("ci")
    if isinstance(ci, dict) and metric in ci:
        return _pair(ci[metric])
    lo, hi = obj.get("ci_low"), obj.get("ci_high")
    if isinstance(lo, dict) and isinstance(hi, dict) and metric in lo and metric in hi:
        return _pair([lo[metric], hi[metric]])
    if f"{metric}_ci" in obj:
        return _pair(obj[f"{metric}_ci"])
    if f"{metric}_ci_low" in obj and f"{metric}_ci_high" in obj:
        return _pair([obj[f"{metric}_ci_low"], obj[f"{metric}_ci_high"]])
    v = obj.get(metric)
    if isinstance(v, dict):
        return _pair(v.get("ci")) if "ci" in v else _pair(v)
    return None


def ci_meta(obj: dict[str, Any]) -> dict[str, Any]:
    """``level`` / ``method`` / ``resamples`` of a carried interval: inside ``ci`` or as
    ``ci_level`` / ``ci_method`` / ``ci_resamples`` beside it."""
    out: dict[str, Any] = {}
    ci = obj.get("ci") if isinstance(obj.get("ci"), dict) else {}
    for k in ("level", "method", "resamples"):
        v = ci.get(k, obj.get(f"ci_{k}"))
        if v is None and k == "level":
            v = ci.get("confidence")
        if v is None and k == "resamples":
            v = ci.get("n_boot", obj.get("ci_n_boot"))
        if v is not None and not isinstance(v, (dict, list)):
            out[k] = v
    return out


def model_label(model: str, run: Path) -> str:
    """A short name: ``SFT`` / ``RL`` for ``…/sft`` / ``…/rl`` checkpoints, ``base (NAME)``
    for a model named without a path (``embedded``, a hub id), the path relative to the
    run directory otherwise."""
    tail = Path(model).name.lower()
    if tail in ("sft", "rl"):
        return tail.upper()
    if tail == "merged" and Path(model).parent.name.lower() in ("sft", "rl"):
        return Path(model).parent.name.upper()
    if "/" not in model and "\\" not in model:
        return f"base ({model})"
    try:
        return Path(model).resolve().relative_to(run.resolve()).as_posix()
    except (ValueError, OSError):
        return model


def _episode_values(episodes: list[Any], metric: str) -> list[float]:
    out = []
    for e in episodes:
        if not isinstance(e, dict):
            continue
        v = e.get("success") if metric == "success_rate" else e.get(metric)
        if isinstance(v, bool):
            v = float(v)
        v = _num(v)
        if v is not None:
            out.append(v)
    return out


def gather_results(run: Path, problems: list[str]) -> dict[str, Any]:
    """The models to chart: ``{"models": [{label, model, n, values, ci}], "ci_note", "source", "bfcl"}``."""
    envs_path, demo_path = run / "eval" / "envs.json", run / "demo_results.json"
    report: dict[str, Any] | None = None
    demo: dict[str, Any] | None = None
    for path in (envs_path, demo_path):
        if not path.exists():
            continue
        try:
            obj = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as e:
            problems.append(f"results {path.relative_to(run)}: {type(e).__name__}: {str(e)[:200]}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"results {path.relative_to(run)}: expected a JSON object")
            continue
        if path is envs_path:
            report = obj
        else:
            demo = obj
    by_model: dict[str, dict[str, Any]] = {}
    models: list[dict[str, Any]] = []
    for m in (report or {}).get("models") or []:
        if not isinstance(m, dict) or not isinstance(m.get("overall"), dict):
            continue
        ov = m["overall"]
        item = {"label": model_label(str(m.get("model", "?")), run), "model": str(m.get("model", "?")),
                "n": ov.get("n"), "obj": {**m, **ov}, "episodes": m.get("episodes") or []}
        models.append(item)
        by_model[item["model"]] = item
    for label, d in (demo or {}).items():
        if not isinstance(d, dict) or metric_value(d, "f1") is None and metric_value(d, "success_rate") is None:
            continue
        item = by_model.get(str(d.get("model")))
        if item is None:
            item = {"label": label, "model": str(d.get("model", label)), "n": d.get("n"), "obj": {}, "episodes": []}
            models.append(item)
        item["label"] = label
        item["obj"] = {**item["obj"], **d}
    ci_sources: set[str] = set()
    meta: dict[str, Any] = {}
    for item in models:
        obj = item.pop("obj")
        episodes = item.pop("episodes")
        item["values"] = {k: metric_value(obj, k) for k, _ in METRICS}
        item["ci"] = {}
        for k, _ in METRICS:
            ci = read_ci(obj, k)
            v = item["values"][k]
            if ci is not None and v is not None and not (ci[0] - 1e-6 <= v <= ci[1] + 1e-6):
                problems.append(f"results: the interval {ci} of {item['label']} {k} does not contain "
                                f"its value {v}; not drawn")
                ci = None
            if ci is not None:
                item["ci"][k] = ci
                ci_sources.add("carried")
                meta = meta or ci_meta(obj)
        if not item["ci"] and episodes:
            for k, _ in METRICS:
                vals = _episode_values(episodes, k)
                ci = bootstrap_ci(vals) if len(vals) == len(episodes) else None
                if ci is not None:
                    item["ci"][k] = ci
                    ci_sources.add("bootstrap")
                    item.setdefault("boot_n", len(vals))
        item["ci_fmt"] = {k: f"[{lo:.2f}, {hi:.2f}]" for k, (lo, hi) in item["ci"].items()}
    ci_note = ""
    if "carried" in ci_sources:
        level = meta.get("level")
        lvl = f"{100 * float(level):.0f}% " if isinstance(level, (int, float)) and level <= 1 else \
              f"{level}% " if level else ""
        how = f" ({meta['method']}" + (f", {meta['resamples']} resamples" if meta.get("resamples") else "") + ")" \
            if meta.get("method") else ""
        ci_note = f"Error bars: the {lvl}confidence intervals carried by the results{how}."
    if "bootstrap" in ci_sources:
        n = max(m.get("boot_n", 0) for m in models)
        ci_note += (" " if ci_note else "") + (
            f"Error bars{' of the other models' if 'carried' in ci_sources else ''}: "
            f"{100 * BOOTSTRAP_LEVEL:.0f}% percentile bootstrap over the {n} held-out environments "
            f"({BOOTSTRAP_RESAMPLES} resamples), computed by this report from eval/envs.json's episodes "
            "(the results carry no interval).")
    sources = [p.relative_to(run).as_posix() for p, o in ((envs_path, report), (demo_path, demo)) if o is not None]
    meta_env = {k: (report or {}).get(k) for k in ("envs", "n_envs", "max_turns", "distractors", "temperature")
                if (report or {}).get(k) not in (None, "")}
    return {"models": [m for m in models if any(v is not None for v in m["values"].values())],
            "ci_note": ci_note, "sources": sources, "meta": meta_env}


def results_picture(results: dict[str, Any]) -> str | None:
    from astra.report.plots import results_chart

    models = results.get("models") or []
    if not models:
        return None
    n = {m.get("n") for m in models if m.get("n")}
    title = "held-out environments" + (f" (n = {n.pop()})" if len(n) == 1 else "")
    return results_chart([{"label": m["label"], "values": m["values"], "ci": m["ci"]} for m in models], METRICS,
                         title=title)


__all__ = ["METRICS", "bootstrap_ci", "gather_results", "model_label", "read_ci", "results_picture"]
