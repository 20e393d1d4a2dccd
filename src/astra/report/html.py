"""One self-contained HTML report of a run directory (``astra report RUN_DIR -o report.html``).

Everything is gathered leniently: a part that is missing or unreadable is reported as
absent (with the reason) and never stops the report. Pictures are PNGs embedded as base64
data URIs; CSS is inline; there is no JavaScript and no external asset. Every value taken
from the data is HTML-escaped (Jinja2 autoescape).
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The flow of stages (output path relative to the run directory, without ``.jsonl``) → label.
FLOW: list[tuple[str, str, str]] = [
    # (key, label, group)
    ("tools", "tools: ingest", "tools & tasks"),
    ("graphs/graphs", "graph: build", "tools & tasks"),
    ("chains", "graph: chains (walks)", "tools & tasks"),
    ("verified", "graph: verify chains", "tools & tasks"),
    ("tasks", "tasks: generate", "tools & tasks"),
    ("aug", "tasks: augment", "tools & tasks"),
    ("scored", "tasks: score", "tools & tasks"),
    ("scored.judged", "tasks: judge", "tools & tasks"),
    ("trajectories", "rollout: trajectories", "tools & tasks"),
    ("judged", "judge: trajectories", "tools & tasks"),
    ("sft", "export: SFT data", "tools & tasks"),
    ("qa", "envs: decompose (QA)", "environments"),
    ("valid", "envs: validate", "environments"),
    ("valid.scored", "envs: validate (scores)", "environments"),
    ("envs/index", "envs: synthesize", "environments"),
]
EXPECTED = {"tools", "graphs/graphs", "chains", "verified", "tasks", "aug", "scored", "trajectories", "judged",
            "sft", "qa", "valid", "envs/index"}

MAX_GRAPHS = 8
MAX_TRAJECTORIES = 3
MAX_ENVS = 3
MAX_TEXT = 4000


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------


def _safe(fn: Callable[[], Any], what: str, problems: list[str], default: Any = None) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a broken part must not stop the report
        log.warning("report: %s: %s", what, e)
        problems.append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
        return default


def _read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
            if limit is not None and len(out) >= limit:
                break
    return out


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fig_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return _png_uri(buf.getvalue())


def _mpl() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cut(s: Any, n: int = MAX_TEXT) -> str:
    s = "" if s is None else (s if isinstance(s, str) else json.dumps(s, ensure_ascii=False, default=str))
    return s if len(s) <= n else s[:n] + f" … [{len(s) - n} more characters]"


def _pretty_json(raw: Any) -> str:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return _cut(raw)
    return _cut(json.dumps(raw, indent=2, ensure_ascii=False, default=str))


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _cut(v, 300)


# ---------------------------------------------------------------------------------
# the parts
# ---------------------------------------------------------------------------------


def _stage_key(run: Path, m: Any) -> str:
    out = Path(m.output) if m.output else None
    if out is not None:
        try:
            rel = out.resolve().relative_to(run.resolve())
        except ValueError:
            rel = Path(out.name)
        s = rel.as_posix()
        return s[:-6] if s.endswith(".jsonl") else s
    return m.stage


def gather_funnel(run: Path, problems: list[str]) -> dict[str, Any]:
    from astra.pipeline import collect_manifests

    manifests = collect_manifests(run)
    by_key: dict[str, Any] = {}
    for m in manifests:
        by_key[_stage_key(run, m)] = m
    order = [k for k, _, _ in FLOW]
    keys = [k for k in order if k in by_key] + sorted(k for k in by_key if k not in order)
    labels = {k: (lbl, grp) for k, lbl, grp in FLOW}
    top = max([by_key[k].outputs for k in keys] + [1])
    stages = []
    for k in keys:
        m = by_key[k]
        grp = labels.get(k, ("", "other"))[1]
        lbl = m.stage
        reasons = sorted(m.rejections_by_reason.items(), key=lambda kv: -kv[1])
        rmax = max([n for _, n in reasons] + [1])
        errors = sorted(m.errors_by_type.items(), key=lambda kv: -kv[1])
        extras = {x: m.model_extra[x] for x in (m.model_extra or {})} if hasattr(m, "model_extra") else {}
        stages.append({
            "key": k, "label": lbl, "group": grp, "stage": m.stage, "status": m.status,
            "inputs": m.done, "accepted": m.accepted, "rejected": m.rejected, "failed": m.failed,
            "empty": m.empty, "outputs": m.outputs, "seconds": m.seconds,
            "bar": round(100 * m.outputs / top, 1),
            "reasons": [{"reason": r, "n": n, "w": round(100 * n / rmax, 1)} for r, n in reasons],
            "errors": errors, "warnings": list(m.warnings),
            "usage": m.usage.to_dict() if hasattr(m.usage, "to_dict") else dict(m.llm_usage),
            "extras": {x: _cut(v, 600) for x, v in extras.items()},
        })
    missing = [dict(key=k, label=lbl) for k, lbl, _ in FLOW if k in EXPECTED and k not in by_key]
    return {"stages": stages, "missing": missing}


def gather_usage(stages: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    tot: dict[str, float] = {}
    for s in stages:
        u = s["usage"]
        for f in ("requests", "calls", "cache_hits", "prompt_tokens", "completion_tokens", "retries", "failures",
                  "seconds"):
            tot[f] = tot.get(f, 0) + (u.get(f) or 0)
        if u.get("requests"):
            rows.append({"label": s["label"], **u,
                         "hit_rate": (u.get("cache_hits", 0) / u["requests"]) if u.get("requests") else 0.0})
    tot["hit_rate"] = tot["cache_hits"] / tot["requests"] if tot.get("requests") else 0.0
    return {"rows": rows, "total": tot}


PROV_COLORS = {"dataflow": "#2b7bb9", "llm": "#d9822b", "walk": "#5aa469", "chains": "#8e5ea2"}


def _draw_graph(g: Any) -> str:
    import networkx as nx

    from astra.graph.graph import to_networkx

    plt = _mpl()
    G = to_networkx(g)
    n = G.number_of_nodes()
    fig, ax = plt.subplots(figsize=(7.5, 5.2) if n > 8 else (6, 4))
    pos = nx.spring_layout(G, seed=0, k=1.6 / max(1, n) ** 0.5) if n else {}
    entry = [v for v, d in G.nodes(data=True) if d.get("entry")]
    other = [v for v in G.nodes if v not in entry]
    nx.draw_networkx_nodes(G, pos, nodelist=entry, node_color="#cfe8ff", edgecolors="#2b5d8a", node_size=900, ax=ax)
    nx.draw_networkx_nodes(G, pos, nodelist=other, node_color="#eeeeee", edgecolors="#777", node_size=900, ax=ax)
    nx.draw_networkx_labels(G, pos, font_size=7, ax=ax)
    weights = [float(d.get("weight", 1.0)) for _, _, d in G.edges(data=True)]
    wmax = max(weights + [1e-9])
    for (a, b, d), w in zip(G.edges(data=True), weights, strict=True):
        prov = sorted(d.get("provenance") or [])
        color = "#555" if len(prov) > 1 else PROV_COLORS.get(prov[0] if prov else "", "#999")
        nx.draw_networkx_edges(G, pos, edgelist=[(a, b)], width=0.8 + 3.2 * w / wmax, edge_color=color,
                               arrows=True, arrowsize=12, node_size=900, connectionstyle="arc3,rad=0.08", ax=ax)
    ax.set_title(f"{g.server}: {n} tools, {G.number_of_edges()} edges", fontsize=10)
    ax.axis("off")
    return _fig_uri(fig)


def gather_graphs(run: Path, problems: list[str]) -> dict[str, Any]:
    from astra.graph.graph import ToolGraph

    paths = sorted(p for p in run.rglob("graphs.jsonl"))
    if not paths:
        return {"samples": [], "total": 0}
    items = []
    recs = _read_jsonl(paths[0])
    for rec in recs[:MAX_GRAPHS]:
        g = _safe(lambda rec=rec: ToolGraph.model_validate(rec), "tool graph record", problems)
        if g is None:
            continue
        provs = sorted({p for e in g.edges for p in e.provenance})
        img = _safe(lambda g=g: _draw_graph(g), f"drawing the graph of {g.server}", problems)
        items.append({"server": g.server, "nodes": len(g.nodes), "edges": len(g.edges), "img": img,
                      "provenance": provs, "stats": {k: _cut(v, 200) for k, v in (g.stats or {}).items()
                                                     if not isinstance(v, (dict, list))}})
    return {"samples": items, "total": len(recs), "path": paths[0].relative_to(run).as_posix(),
            "colors": [{"name": k, "color": v} for k, v in PROV_COLORS.items()] + [{"name": "several",
                                                                                     "color": "#555"}]}


def _render_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat bubbles: kind, text, calls (name, args), tool results."""
    out = []
    for m in messages:
        role = m.get("role", "?")
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = "\n".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
        calls = []
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function", tc) if isinstance(tc, dict) else {}
            calls.append({"id": tc.get("id", "") if isinstance(tc, dict) else "", "name": fn.get("name", "?"),
                          "args": _pretty_json(fn.get("arguments", {}))})
        out.append({"role": role, "text": _cut(content) if content is not None else "", "calls": calls,
                    "name": m.get("name") or m.get("tool_call_id") or "",
                    "tool_text": _pretty_json(content) if role == "tool" else ""})
    if out and out[-1]["role"] == "assistant" and not out[-1]["calls"] and out[-1]["text"]:
        out[-1]["final"] = True
    return out


def _judgement(j: Any) -> dict[str, Any] | None:
    if not isinstance(j, dict):
        return None
    dims = []
    for name, d in (j.get("dimensions") or {}).items():
        if isinstance(d, dict):
            dims.append({"name": name, "score": d.get("score"), "method": d.get("method", ""),
                         "reason": _cut(d.get("reason", ""), 400),
                         "w": round(100 * float(d["score"]), 1) if isinstance(d.get("score"), (int, float)) else 0})
        else:
            dims.append({"name": name, "score": d, "method": "", "reason": "",
                         "w": round(100 * float(d), 1) if isinstance(d, (int, float)) else 0})
    return {"overall": j.get("overall"), "passed": j.get("passed"), "mode": j.get("mode", ""),
            "note": _cut(j.get("note", ""), 300), "failed": j.get("failed"), "dims": dims}


def gather_trajectories(run: Path, problems: list[str]) -> dict[str, Any]:
    for name in ("judged.jsonl", "trajectories.jsonl"):
        p = run / name
        if p.exists():
            recs = _read_jsonl(p, limit=200)
            # show a passed one first, then a failed one, then whatever comes next
            passed = [r for r in recs if (r.get("judgement") or {}).get("passed") is True]
            failed = [r for r in recs if (r.get("judgement") or {}).get("passed") is False]
            chosen: list[dict[str, Any]] = []
            for r in passed[:1] + failed[:1] + recs:
                if len(chosen) >= MAX_TRAJECTORIES:
                    break
                if all(r is not c for c in chosen):
                    chosen.append(r)
            items = []
            for r in chosen:
                tools = [t.get("function", t).get("name", "?") for t in r.get("tools") or [] if isinstance(t, dict)]
                items.append({"id": r.get("id", ""), "task_id": r.get("task_id", ""), "agent": r.get("agent", ""),
                              "tools": tools, "messages": _render_messages(r.get("messages") or []),
                              "judgement": _judgement(r.get("judgement"))})
            return {"samples": items, "total": _count_lines(p), "path": name}
    return {"samples": [], "total": 0}


def _signature(tool: dict[str, Any]) -> str:
    params = tool.get("parameters") or {}
    props = params.get("properties") or {}
    req = set(params.get("required") or [])
    parts = [f"{k}: {v.get('type', 'any') if isinstance(v, dict) else 'any'}{'' if k in req else '?'}"
             for k, v in props.items()]
    return f"{tool.get('name', '?')}({', '.join(parts)})"


def _env_dirs(run: Path) -> list[Path]:
    base = run / "envs"
    if not base.is_dir():
        return []
    dirs = [base] if (base / "index.jsonl").exists() or any(base.glob("*.json")) else []
    dirs += sorted(d for d in base.iterdir() if d.is_dir() and ((d / "index.jsonl").exists() or any(d.glob("*.json"))))
    return dirs


def gather_environments(run: Path, problems: list[str]) -> dict[str, Any]:
    from astra.envs.bundle import environment_paths, load_environment

    dirs = _env_dirs(run)
    if not dirs:
        return {"samples": [], "total": 0, "dirs": []}
    counts = []
    items = []
    scen: dict[str, int] = {}
    for d in dirs:
        paths = _safe(lambda d=d: environment_paths(d), f"listing {d}", problems, [])
        counts.append({"dir": d.relative_to(run).as_posix(), "n": len(paths)})
        for p in paths:
            env = _safe(lambda p=p: load_environment(p), f"environment {p.name}", problems)
            if env is None:
                continue
            scen[str(env.instance.scenario)] = scen.get(str(env.instance.scenario), 0) + 1
            if len(items) < MAX_ENVS and all(i["id"] != env.id for i in items):
                items.append(_env_view(env))
    return {"samples": items, "total": sum(c["n"] for c in counts), "dirs": counts,
            "scenarios": sorted(scen.items())}


def _env_view(env: Any) -> dict[str, Any]:
    inst = env.instance
    serving: dict[str, list[str]] = {}
    for t in env.tools:
        for sid in t.serves:
            serving.setdefault(sid, []).append(t.tool.name)
    subs = [{"id": s.id, "q": s.sub_question, "a": s.sub_answer, "deps": s.dependency or [], "level": s.hop_level,
             "tool": s.needs_tool, "parallel": s.is_parallel, "tools": serving.get(s.id, [])}
            for s in inst.sub_tasks]
    tools = [{"name": t.tool.name, "sig": _signature(t.tool.model_dump()), "desc": _cut(t.tool.description, 400),
              "code": _cut(t.code, 6000), "serves": t.serves, "calls": t.calls} for t in env.tools]
    return {"id": env.id, "domain": inst.domain, "scenario": str(inst.scenario), "question": inst.question,
            "answer": inst.answer, "subs": subs, "tools": tools,
            "verified": bool((env.verification or {}).get("ok")),
            "generator": (env.provenance or {}).get("generator", "")}


def _plot_rows(rows: list[dict[str, Any]], title: str) -> str | None:
    keys = []
    for r in rows:
        for k, v in r.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    pref = [k for k in ("loss", "eval_loss", "reward_mean", "f1_mean", "success_rate", "kl", "entropy") if k in keys]
    keys = (pref + [k for k in keys if k not in pref])[:4]
    if not keys:
        return None
    plt = _mpl()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3))
    axes = [axes] if len(keys) == 1 else list(axes)
    for ax, k in zip(axes, keys, strict=True):
        pts = [(r.get("step", i), r[k]) for i, r in enumerate(rows) if isinstance(r.get(k), (int, float))]
        if pts:
            ax.plot(*zip(*pts, strict=True), "-", lw=1.3, marker="o" if len(pts) < 30 else None, ms=3)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _fig_uri(fig)


def gather_training(run: Path, problems: list[str]) -> list[dict[str, Any]]:
    out = []
    for name, logs, summaries in (("SFT", "logs.jsonl", ("train_summary.json",)),
                                  ("RL", "metrics.jsonl", ("rl_summary.json", "train_summary.json"))):
        d = run / "ckpt" / name.lower()
        item: dict[str, Any] = {"name": name, "dir": f"ckpt/{name.lower()}", "present": d.is_dir(), "img": None,
                                "img_source": "", "summary": {}, "steps": 0}
        if d.is_dir():
            if (d / "curves.png").exists():
                item["img"] = _safe(lambda d=d: _png_uri((d / "curves.png").read_bytes()), f"{name} curves.png",
                                    problems)
                item["img_source"] = "curves.png"
            if (d / logs).exists():
                rows = _safe(lambda d=d, logs=logs: _read_jsonl(d / logs), f"{name} {logs}", problems, [])
                item["steps"] = len(rows)
                if item["img"] is None and rows:
                    item["img"] = _safe(lambda rows=rows, name=name: _plot_rows(rows, name), f"plotting {logs}",
                                        problems)
                    item["img_source"] = f"plotted from {logs}"
            for s in summaries:
                if (d / s).exists():
                    obj = _safe(lambda d=d, s=s: json.loads((d / s).read_text("utf-8")), f"{name} {s}", problems, {})
                    if isinstance(obj, dict):
                        item["summary"] = {k: _fmt(v) for k, v in obj.items() if not isinstance(v, (dict, list))}
                    break
        out.append(item)
    return out


def _flatten(obj: Any, prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    out = {} if out is None else out
    if isinstance(obj, dict) and depth < 4:
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, depth + 1)
    elif isinstance(obj, list):
        if obj and all(not isinstance(x, (dict, list)) for x in obj) and len(obj) <= 10:
            out[prefix] = ", ".join(map(str, obj))
    else:
        out[prefix] = obj
    return out


def _eval_view(name: str, obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict) and obj.get("kind") == "envs" and isinstance(obj.get("models"), list):
        cols = ["n", "success_rate", "f1", "recall", "precision", "turns", "calls"]
        rows = []
        for m in obj["models"]:
            groups = [("all", m.get("overall") or {})] + list((m.get("by_scenario") or {}).items())
            for i, (sc, x) in enumerate(groups):
                rows.append({"model": m.get("model", "?") if i == 0 else "", "scenario": sc,
                             "vals": [_fmt(x.get(c, "")) for c in cols], "first": i == 0})
        return {"name": name, "kind": "envs", "cols": ["model", "scenario", *cols], "rows": rows,
                "meta": {k: _fmt(obj.get(k)) for k in ("envs", "n_envs", "max_turns", "distractors", "temperature",
                                                       "command") if obj.get(k) is not None}}
    flat = _flatten(obj)
    items = [(k, _fmt(v)) for k, v in flat.items() if k]
    return {"name": name, "kind": "generic", "items": items[:80], "more": max(0, len(items) - 80)}


def gather_eval(run: Path, problems: list[str]) -> list[dict[str, Any]]:
    out = []
    cands = sorted((run / "eval").rglob("*.json")) if (run / "eval").is_dir() else []
    cands += sorted(p for p in run.glob("*results*.json"))
    for p in cands:
        if p.name.endswith(".manifest.json"):
            continue
        obj = _safe(lambda p=p: json.loads(p.read_text("utf-8")), f"evaluation {p.name}", problems)
        if obj is not None:
            out.append(_eval_view(p.relative_to(run).as_posix(), obj))
    if (run / "eval").is_dir():
        for p in sorted((run / "eval").rglob("*.md")):
            text = _safe(lambda p=p: p.read_text("utf-8"), f"evaluation {p.name}", problems, "")
            out.append({"name": p.relative_to(run).as_posix(), "kind": "text", "text": _cut(text, 6000)})
    return out


def gather_header(run: Path) -> dict[str, Any]:
    try:
        from astra import __version__ as version
    except ImportError:  # pragma: no cover
        version = "?"
    files = sorted(p.relative_to(run).as_posix() + ("/" if p.is_dir() else "") for p in run.iterdir()
                   if not p.name.endswith((".lock", ".ledger.jsonl", ".manifest.json", ".tmp"))) if run.is_dir() else []
    info: dict[str, Any] = {"run_dir": str(run.resolve()), "name": run.resolve().name, "version": version,
                            "generated": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                            "files": files[:60]}
    for cand in ("demo_summary.json", "demo.json", "run.json", "summary.json"):
        p = run / cand
        if p.exists():
            try:
                obj = json.loads(p.read_text("utf-8"))
                info["summary"] = {k: _fmt(v) for k, v in _flatten(obj).items()}
                info["summary_file"] = cand
            except (OSError, ValueError):
                pass
            break
    return info


# ---------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------


def build_context(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    run = Path(run_dir)
    problems: list[str] = []
    funnel = _safe(lambda: gather_funnel(run, problems), "stage manifests", problems, {"stages": [], "missing": []})
    ctx = {
        "header": _safe(lambda: gather_header(run), "run info", problems, {"run_dir": str(run), "name": run.name}),
        "funnel": funnel,
        "usage": _safe(lambda: gather_usage(funnel["stages"]), "LLM usage", problems, {"rows": [], "total": {}}),
        "graphs": _safe(lambda: gather_graphs(run, problems), "tool graphs", problems, {"samples": [], "total": 0}),
        "trajectories": _safe(lambda: gather_trajectories(run, problems), "trajectories", problems,
                              {"samples": [], "total": 0}),
        "environments": _safe(lambda: gather_environments(run, problems), "environments", problems,
                              {"samples": [], "total": 0, "dirs": []}),
        "training": _safe(lambda: gather_training(run, problems), "training", problems, []),
        "evals": _safe(lambda: gather_eval(run, problems), "evaluation", problems, []),
    }
    ctx["problems"] = problems
    return ctx


def _environment() -> Any:
    import jinja2

    loader = jinja2.FileSystemLoader(str(Path(__file__).parent / "templates"))
    env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters["fmt"] = _fmt
    return env


def render_report(run_dir: str | os.PathLike[str]) -> str:
    """The report of ``run_dir`` as one HTML string."""
    run = Path(run_dir)
    ctx = build_context(run) if run.is_dir() else {"header": {"run_dir": str(run), "name": run.name},
                                                   "funnel": {"stages": [], "missing": []},
                                                   "usage": {"rows": [], "total": {}},
                                                   "graphs": {"samples": [], "total": 0},
                                                   "trajectories": {"samples": [], "total": 0},
                                                   "environments": {"samples": [], "total": 0, "dirs": []},
                                                   "training": [], "evals": [],
                                                   "problems": [f"{run} is not a directory"]}
    return _environment().get_template("report.html.jinja").render(**ctx)


def write_report(run_dir: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """Render and write the report atomically; returns the output path."""
    html = render_report(run_dir)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out


__all__ = ["FLOW", "build_context", "render_report", "write_report"]
