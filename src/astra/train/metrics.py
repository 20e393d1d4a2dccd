"""Training metrics: one JSONL line per step, PNG curves, optional TensorBoard / W&B.

Used by RL (:mod:`astra.train.rl`) and SFT::

    log = MetricsLogger(out_dir, primary="reward_mean")      # SFT: primary="loss"
    log.log(step, {"reward_mean": 0.31, "loss": 0.02, ...})  # appends to out_dir/metrics.jsonl
    log.close()                                               # writes out_dir/curves.png

``metrics.jsonl`` is append-only and survives a resume (steps already logged are
overwritten in the plot by the later line with the same step). The PNG has the primary
metric with its moving average on top and one small panel per other numeric metric.
TensorBoard is used when ``torch.utils.tensorboard`` (the ``tensorboard`` package) is
importable and ``tensorboard`` is not False; W&B when ``wandb`` is importable and a
project is given. Neither is required.

:class:`MetricsCallback` adapts the logger to a ``transformers`` ``Trainer`` (SFTTrainer).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"

#: Panels drawn (in this order) when present; other numeric keys follow, up to ``max_panels``.
DEFAULT_PANELS = (
    "reward_mean", "reward_std", "recall", "precision", "f1", "turns", "tool_calls",
    "filtered_group_share", "buffer_size", "rollout_rounds", "rollout_tokens_per_s",
    "loss", "clip_fraction", "eval_loss", "learning_rate", "grad_norm",
)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (the first points average what exists so far); NaNs skipped."""
    out: list[float] = []
    buf: list[float] = []
    for v in values:
        buf.append(v)
        if len(buf) > window:
            buf.pop(0)
        finite = [x for x in buf if x is not None and math.isfinite(x)]
        out.append(sum(finite) / len(finite) if finite else float("nan"))
    return out


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl``, one per step (the last line wins for a repeated step)."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    if not p.exists():
        return []
    by_step: dict[Any, dict[str, Any]] = {}
    for line in p.read_text("utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a torn last line after a crash
            continue
        by_step[rec.get("step", len(by_step))] = rec
    return [by_step[k] for k in sorted(by_step, key=lambda s: (isinstance(s, str), s))]


def _numeric_keys(records: Iterable[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k in ("step", "time", "wall_s") or isinstance(v, bool):
                continue
            if isinstance(v, int | float):
                keys[k] = None
    return list(keys)


def plot_metrics(records: list[dict[str, Any]], path: str | Path, *, primary: str = "reward_mean",
                 panels: Sequence[str] | None = None, window: int = 10, max_panels: int = 12,
                 title: str | None = None) -> Path | None:
    """Write the curves PNG; returns its path (None when there is nothing to plot)."""
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    available = _numeric_keys(records)
    if primary not in available:
        primary = next((k for k in ("reward_mean", "loss") if k in available), available[0] if available else "")
    if not primary:
        return None
    order = list(panels) if panels is not None else [k for k in DEFAULT_PANELS if k in available] + \
        [k for k in available if k not in DEFAULT_PANELS]
    others = [k for k in order if k != primary and k in available][:max_panels]
    ncols = 4
    nrows = 1 + math.ceil(len(others) / ncols)
    fig = plt.figure(figsize=(4 * ncols, 3.2 * nrows))
    gs = fig.add_gridspec(nrows, ncols)
    steps = [r.get("step", i) for i, r in enumerate(records)]

    def series(key: str) -> tuple[list[Any], list[float]]:
        xs, ys = [], []
        for s, r in zip(steps, records, strict=True):
            v = r.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool):
                xs.append(s)
                ys.append(float(v))
        return xs, ys

    ax = fig.add_subplot(gs[0, :])
    xs, ys = series(primary)
    ax.plot(xs, ys, color="tab:blue", alpha=0.35, marker="o", ms=3, lw=1, label=primary)
    w = max(1, min(window, len(ys) // 3 or 1))
    ax.plot(xs, moving_average(ys, w), color="tab:blue", lw=2.2, label=f"{primary} (moving avg, {w})")
    std_key = primary.replace("_mean", "_std")
    if primary.endswith("_mean") and std_key in available:
        _, sd = series(std_key)
        if len(sd) == len(ys):
            ax.fill_between(xs, [m - s for m, s in zip(ys, sd, strict=True)],
                            [m + s for m, s in zip(ys, sd, strict=True)], color="tab:blue", alpha=0.08)
    ax.set_xlabel("step")
    ax.set_ylabel(primary)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    for i, key in enumerate(others):
        a = fig.add_subplot(gs[1 + i // ncols, i % ncols])
        kx, ky = series(key)
        a.plot(kx, ky, lw=1, marker=".", ms=3, color="tab:gray")
        if len(ky) >= 4:
            a.plot(kx, moving_average(ky, max(1, min(window, len(ky) // 3))), lw=1.6, color="tab:orange")
        a.set_title(key, fontsize=9)
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
    # fixed spacing: tight_layout costs several seconds per plot on a loaded CPU
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=0.95, hspace=0.45, wspace=0.25)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return out


class MetricsLogger:
    """Per-step metrics to ``out_dir/metrics.jsonl`` (+ ``curves.png``, TensorBoard, W&B)."""

    def __init__(self, out_dir: str | Path, *, primary: str = "reward_mean", plot_every: int = 1,
                 window: int = 10, tensorboard: bool | None = None, wandb_project: str | None = None,
                 run_name: str | None = None, config: dict[str, Any] | None = None,
                 panels: Sequence[str] | None = None, title: str | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / METRICS_FILE
        self.curves_path = self.out_dir / CURVES_FILE
        self.primary, self.plot_every, self.window = primary, max(1, plot_every), window
        self.panels, self.title = panels, title
        self._t0 = time.time()
        self._n = 0
        self._tb = None
        self._wandb = None
        if tensorboard is not False:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

                self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))
            except Exception as e:  # not installed: optional
                if tensorboard:
                    log.warning("TensorBoard requested but unavailable: %s", e)
        if wandb_project:
            try:
                import wandb

                self._wandb = wandb.init(project=wandb_project, name=run_name, config=config or {},
                                         dir=str(self.out_dir), resume="allow")
            except Exception as e:
                log.warning("W&B requested but unavailable: %s", e)

    @property
    def backends(self) -> list[str]:
        return ["jsonl", "png"] + (["tensorboard"] if self._tb else []) + (["wandb"] if self._wandb else [])

    def log(self, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
        rec: dict[str, Any] = {"step": int(step), "time": round(time.time(), 3),
                               "wall_s": round(time.time() - self._t0, 3)}
        for k, v in metrics.items():
            if hasattr(v, "item") and callable(v.item):  # tensors / numpy scalars
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            rec[k] = v
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
        numeric = {k: v for k, v in rec.items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("step", "time")}
        if self._tb is not None:
            for k, v in numeric.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numeric, step=step)
        self._n += 1
        if self._n % self.plot_every == 0:
            self.plot()
        return rec

    def plot(self) -> Path | None:
        try:
            return plot_metrics(read_metrics(self.path), self.curves_path, primary=self.primary,
                                panels=self.panels, window=self.window, title=self.title)
        except Exception as e:  # plotting must never kill a training run
            log.warning("could not plot %s: %s", self.curves_path, e)
            return None

    def close(self) -> None:
        self.plot()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def MetricsCallback(logger: MetricsLogger):  # a class factory (transformers imported lazily)
    """A ``transformers.TrainerCallback`` that forwards every ``on_log`` to ``logger``."""
    from transformers import TrainerCallback

    class _MetricsCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                logger.log(state.global_step, {k: v for k, v in logs.items()
                                               if isinstance(v, int | float) and not isinstance(v, bool)})

        def on_train_end(self, args, state, control, **kwargs):
            logger.plot()

    return _MetricsCallback()
