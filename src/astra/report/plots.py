"""The report's pictures, drawn with matplotlib and embedded as SVG data URIs.

Each function takes plain data (lists and dicts already read from the run directory) and
returns a ``data:image/svg+xml;base64,…`` URI, so the HTML stays one self-contained file.
Text is drawn as glyph paths (``svg.fonttype = "path"``): the picture looks the same on a
machine without the fonts, and nothing in it refers to anything outside it (text the
drawing font has no glyph for stays text, for the browser's fonts). Each picture is drawn
inside the report's style (``matplotlib.rc_context``); the process's settings are left alone.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

#: Model colours of the results chart (base, SFT, RL, then more).
MODEL_COLORS = ["#a0aec0", "#3182ce", "#dd6b20", "#38a169", "#805ad5", "#d53f8c"]
KEPT_COLOR = "#d53f8c"
EDGE_COLOR = "#b8c2cc"
PROV_COLORS = {"dataflow": "#2b7bb9", "llm": "#d9822b"}


STYLE = {
    "svg.fonttype": "path", "svg.hashsalt": "astra-report", "font.size": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#9aa5b1",
    "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelcolor": "#3e4c59",
    "xtick.color": "#52606d", "ytick.color": "#52606d", "axes.grid": True, "grid.color": "#e4e7eb",
    "grid.linewidth": 0.8, "legend.frameon": False,
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@functools.lru_cache(maxsize=1)
def _font() -> Any:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return FT2Font(font_manager.findfont(font_manager.FontProperties(family=["sans-serif"])))


def _missing_glyphs(texts: Iterable[str]) -> bool:
    """Whether the drawing font lacks a character of ``texts`` (CJK tool names, say)."""
    font = _font()
    return any(font.get_char_index(ord(c)) == 0 for t in texts for c in t if not c.isspace())


def svg_uri(fig: Any, texts: Iterable[str] = ()) -> str:
    """The figure as a base64 SVG data URI (and the figure closed). Text is drawn as glyph
    outlines, unless the drawing font lacks a character of ``texts``: then the SVG keeps
    that text as text, for the browser to draw with its own fonts."""
    plt = _plt()
    buf = io.BytesIO()
    try:
        with plt.rc_context({"svg.fonttype": "none" if _missing_glyphs(texts) else "path"}), \
                warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _styled(fn: Any) -> Any:
    """Draw inside the report's style, leaving the process's matplotlib settings alone."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _plt().rc_context(STYLE), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            return fn(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------
# base / SFT / RL
# ---------------------------------------------------------------------------------


@_styled
def results_chart(models: Sequence[dict[str, Any]], metrics: Sequence[tuple[str, str]], *,
                  title: str = "") -> str:
    """Grouped bars: one group per metric, one bar per model, error bars where a model has a
    confidence interval for that metric.

    ``models``: ``[{"label", "values": {metric: float}, "ci": {metric: (low, high)}}]``;
    ``metrics``: ``[(key, axis label)]``. Values are shares in [0, 1].
    """
    plt = _plt()
    n = len(models)
    width = min(0.8 / max(n, 1), 0.26)
    fig, ax = plt.subplots(figsize=(1.6 + 1.45 * len(metrics) * max(1.0, n / 3), 3.1))
    for i, m in enumerate(models):
        color = MODEL_COLORS[i % len(MODEL_COLORS)]
        xs, ys, lo, hi = [], [], [], []
        for j, (key, _) in enumerate(metrics):
            v = m["values"].get(key)
            if not isinstance(v, (int, float)) or math.isnan(v):
                continue
            x = j + (i - (n - 1) / 2) * width
            xs.append(x)
            ys.append(v)
            ci = (m.get("ci") or {}).get(key)
            lo.append(max(0.0, v - ci[0]) if ci else 0.0)
            hi.append(max(0.0, ci[1] - v) if ci else 0.0)
            ax.text(x, (ci[1] if ci else v) + 0.02, f"{v:.2f}", ha="center", va="bottom", fontsize=7.5,
                    color="#323f4b")
        ax.bar(xs, ys, width * 0.92, color=color, label=m["label"], zorder=3)
        # a bar of 0 would be invisible: a stub on the axis in the model's colour shows it is there
        ax.hlines([0.0] * len(xs), [x - width * 0.46 for x in xs], [x + width * 0.46 for x in xs], colors=color,
                  lw=3.5, zorder=5, clip_on=False)
        if any(lo) or any(hi):
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="#1f2933", elinewidth=1.1, capsize=3, zorder=4)
    ax.set_xticks(range(len(metrics)), [lbl for _, lbl in metrics])
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.grid(axis="x", visible=False)
    ax.tick_params(axis="x", length=0)
    if title:
        ax.set_title(title, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5)
    return svg_uri(fig, [m["label"] for m in models] + [lbl for _, lbl in metrics] + [title])


# ---------------------------------------------------------------------------------
# training curves
# ---------------------------------------------------------------------------------


def _moving_average(ys: Sequence[float], window: int) -> list[float]:
    out, buf = [], []
    for y in ys:
        buf.append(y)
        if len(buf) > window:
            buf.pop(0)
        out.append(sum(buf) / len(buf))
    return out


@_styled
def curves(rows: Sequence[dict[str, Any]], panels: Sequence[dict[str, Any]], *, title: str = "") -> str | None:
    """Small multiples of per-step metrics.

    ``panels``: ``[{"title", "series": [(key, label)], "band": std_key | None, "ylim": (lo, hi) | None}]``;
    a panel whose keys never appear is left out; None when no panel has a point.
    """
    def pts(key: str) -> list[tuple[float, float]]:
        out = []
        for i, r in enumerate(rows):
            v = r.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                s = r.get("step", i)
                out.append((float(s) if isinstance(s, (int, float)) else float(i), float(v)))
        return out

    drawn = [p for p in panels if any(pts(k) for k, _ in p["series"])]
    if not drawn:
        return None
    plt = _plt()
    ncols = 2 if len(drawn) == 4 else min(len(drawn), 3)
    nrows = math.ceil(len(drawn) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.7 * ncols + 0.4, 2.7 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(drawn):]:
        ax.set_visible(False)
    for ax, p in zip(flat, drawn, strict=False):
        for j, (key, label) in enumerate(p["series"]):
            xy = pts(key)
            if not xy:
                continue
            xs, ys = zip(*xy, strict=True)
            color = ["#3182ce", "#dd6b20", "#38a169", "#805ad5"][j % 4]
            many = len(xy) > 25
            ax.plot(xs, ys, "-", lw=1.0 if many else 1.5, color=color, alpha=0.45 if many else 1.0,
                    marker=None if many else "o", ms=3.5, label=label)
            if many:
                ax.plot(xs, _moving_average(ys, max(3, len(ys) // 12)), "-", lw=2, color=color,
                        label=f"{label} (moving avg.)")
            band = p.get("band")
            if band and j == 0:
                sd = dict(pts(band))
                lo = [y - sd.get(x, 0.0) for x, y in xy]
                hi = [y + sd.get(x, 0.0) for x, y in xy]
                ax.fill_between(xs, lo, hi, color=color, alpha=0.12, lw=0, label="± std over the batch")
        if p.get("ylim"):
            ax.set_ylim(*p["ylim"])
        ax.set_title(p["title"], loc="left")
        ax.set_xlabel("step")
        if len(p["series"]) > 1 or p.get("band"):
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, x=0.01, y=1.02, ha="left", fontsize=10.5, fontweight="bold")
    fig.subplots_adjust(wspace=0.3, hspace=0.55)  # the saved picture is cropped to its content (bbox_inches="tight")
    return svg_uri(fig, [title])


# ---------------------------------------------------------------------------------
# tool graphs
# ---------------------------------------------------------------------------------


def _chain_edges(chains: Iterable[Sequence[str]]) -> dict[tuple[str, str], int]:
    used: dict[tuple[str, str], int] = {}
    for c in chains:
        for a, b in zip(c, c[1:], strict=False):
            used[(a, b)] = used.get((a, b), 0) + 1
    return used


@_styled
def tool_graph(server: str, nodes: Sequence[str], edges: Sequence[dict[str, Any]], *,
               entry: Iterable[str] | None = None, kept_chains: Sequence[Sequence[str]] = ()) -> str:
    """A server's tool graph on a circle, each label beside its node (outside the circle).

    ``edges``: ``[{"source", "target", "weight"}]``. Edges used by a kept chain are drawn
    bold in colour, wider the more kept chains use them; the other edges thin and grey.
    Entry tools (that can start a chain) are filled blue.
    """
    from matplotlib.patches import Circle, FancyArrowPatch

    plt = _plt()
    n = len(nodes)
    entry_set = set(nodes if entry is None else entry)
    used = _chain_edges(kept_chains)
    # tools of kept chains first, in the order chains visit them: kept paths run around
    # the circle instead of across it
    order: list[str] = []
    for c in sorted(kept_chains, key=len, reverse=True):
        for t in c:
            if t in nodes and t not in order:
                order.append(t)
    order += [v for v in nodes if v not in order]
    pos = {v: (math.cos(math.pi / 2 - 2 * math.pi * i / max(n, 1)), math.sin(math.pi / 2 - 2 * math.pi * i / max(n, 1)))
           for i, v in enumerate(order)}
    fs = 8.5 if n <= 12 else 7.5 if n <= 20 else 6.5
    radial = n > 16  # many tools: labels along the radius, so neighbours do not overlap
    side = 6.6 if n <= 16 else 7.6
    fig, ax = plt.subplots(figsize=(side, 4.8 if n <= 6 else side * 0.75 if n <= 16 else side))
    ax.set_aspect("equal")
    ax.axis("off")
    r = min(0.055, 1.3 / max(n, 1))
    wmax = max([float(e.get("weight") or 1.0) for e in edges] + [1e-9])
    umax = max(list(used.values()) + [1])
    pairs = {(e["source"], e["target"]) for e in edges}
    for e in sorted(edges, key=lambda e: (e["source"], e["target"]) in used):
        a, b = e["source"], e["target"]
        if a not in pos or b not in pos:
            continue
        k = used.get((a, b), 0)
        rad = 0.12 if (b, a) in pairs else 0.04
        if k:
            style = dict(color=KEPT_COLOR, lw=1.6 + 2.8 * k / umax, alpha=0.9, zorder=3, mutation_scale=13)
        else:
            style = dict(color=EDGE_COLOR, lw=0.5 + 1.2 * float(e.get("weight") or 1.0) / wmax, alpha=0.9, zorder=2,
                         mutation_scale=8)
        ax.add_patch(FancyArrowPatch(pos[a], pos[b], arrowstyle="-|>", connectionstyle=f"arc3,rad={rad}",
                                     shrinkA=9 if n <= 24 else 5, shrinkB=9 if n <= 24 else 5, **style))
    for v, (x, y) in pos.items():
        on_chain = any(v in (a, b) for a, b in used)
        ax.add_patch(Circle((x, y), r, facecolor="#bee3f8" if v in entry_set else "#f0f4f8",
                            edgecolor=KEPT_COLOR if on_chain else "#7b8794", lw=1.6 if on_chain else 1.0, zorder=5))
        weight = "bold" if on_chain else "normal"
        if radial:
            angle = math.degrees(math.atan2(y, x))
            right = x >= 0
            ax.text(x * 1.09, y * 1.09, v, ha="left" if right else "right", va="center", fontsize=fs,
                    rotation=angle if right else angle - 180, rotation_mode="anchor", color="#1f2933", zorder=6,
                    fontweight=weight)
            continue
        ha = "left" if x > 0.15 else "right" if x < -0.15 else "center"
        va = "bottom" if y > 0.9 else "top" if y < -0.9 else "center"
        ax.text(x * 1.13 + (0.02 if ha == "left" else -0.02 if ha == "right" else 0), y * 1.13, v,
                ha=ha, va=va, fontsize=fs, color="#1f2933", zorder=6, fontweight=weight)
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    return svg_uri(fig, [server, *nodes])


__all__ = ["curves", "results_chart", "svg_uri", "tool_graph"]
