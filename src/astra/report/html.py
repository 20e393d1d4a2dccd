"""One self-contained HTML report of a run directory (``astra report RUN_DIR -o report.html``).

Everything is gathered leniently: a part that is missing is named as absent, a part that
cannot be read is listed under *Problems* (with the reason) and never stops the report.
Pictures are SVG (or, for a trainer's own ``curves.png``, PNG) embedded as base64 data URIs;
CSS is inline; there is no JavaScript and no external asset. Every value taken from the data
is HTML-escaped (Jinja2 autoescape).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from astra.report.training import (
    count_envs,
    gather_training,
    iter_jsonl,
    read_json,
    read_jsonl,
    training_funnel,
)

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
    ("scored.judged", "tasks: score", "tools & tasks"),
    ("scored", "tasks: select", "tools & tasks"),
    ("trajectories", "rollout: trajectories", "tools & tasks"),
    ("judged", "judge: trajectories", "tools & tasks"),
    ("sft", "export: SFT data", "tools & tasks"),
    ("qa", "envs: compose (QA)", "environments"),
    ("valid.scored", "envs: validate (scores)", "environments"),
    ("valid", "envs: validate (gate)", "environments"),
    ("envs/index", "envs: synthesize", "environments"),
]
EXPECTED = {"tools", "graphs/graphs", "chains", "verified", "tasks", "aug", "scored", "trajectories", "judged",
            "sft", "qa", "valid", "envs/index"}
GROUPS = ["tools & tasks", "environments", "training & evaluation", "other"]

MAX_GRAPHS = 8
MAX_CHAINS_LISTED = 6
MAX_TRAJECTORIES = 4
MAX_SAMPLED = 5000  # trajectories the samples are picked from (the first ones of the file)
MAX_ENVS = 3
MAX_TEXT = 4000
MAX_EVAL_ITEMS = 80
MAX_INVALID_LISTED = 5
#: BFCL's per-category files, JSON Lines despite their name.
BFCL_JSONL = re.compile(r"_(result|score)\.json$")


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------


def _safe(fn: Callable[[], Any], what: str, problems: list[str], default: Any = None) -> Any:
    try:
        return fn()
    except Exception as e:  # a broken part must not stop the report
        log.warning("report: %s: %s", what, e)
        problems.append(f"{what}: {type(e).__name__}: {str(e)[:300]}")
        return default


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


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
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _cut(v, 300)


def _rel(run: Path, p: Path) -> str:
    try:
        return p.relative_to(run).as_posix()
    except ValueError:
        return p.as_posix()


# ---------------------------------------------------------------------------------
# the funnel
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


def _shares(row: dict[str, Any]) -> dict[str, Any]:
    """Kept share and each rejection reason as a share of the stage's inputs."""
    base = row.get("inputs") or 0
    acc = row.get("accepted")
    row["kept"] = round(100 * acc / base, 1) if base and acc is not None else None
    row["kept_pct"] = f"{100 * acc / base:.0f}%" if base and acc is not None else ""
    row["reasons"] = [{**r, "w": min(100.0, round(100 * r["n"] / base, 1)) if base else 0.0,
                       "pct": (f"{100 * r['n'] / base:.1f}%" if 0 < r["n"] / base < 0.01 else
                               f"{100 * r['n'] / base:.0f}%") if base else ""}
                      for r in row["reasons"]]
    return row


def gather_funnel(run: Path, problems: list[str]) -> dict[str, Any]:
    from astra.pipeline import collect_manifests

    manifests = collect_manifests(run)
    by_key: dict[str, Any] = {}
    for m in manifests:
        by_key[_stage_key(run, m)] = m
    order = [k for k, _, _ in FLOW]
    keys = [k for k in order if k in by_key] + sorted(k for k in by_key if k not in order)
    labels = {k: (lbl, grp) for k, lbl, grp in FLOW}
    stages = []
    for k in keys:
        m = by_key[k]
        grp = labels[k][1] if k in labels else "environments" if k.startswith("envs") else "other"
        lbl = m.stage.replace(".", ": ", 1).replace(".", " ")
        reasons = sorted(m.rejections_by_reason.items(), key=lambda kv: -kv[1])
        errors = sorted(m.errors_by_type.items(), key=lambda kv: -kv[1])
        kinds = getattr(m, "failures_by_kind", None) or {}  # endpoint / error, where the runner counts them
        errors += [(f"{k} failures (retried by a rerun)", n) for k, n in sorted(kinds.items()) if n]
        extras = {x: m.model_extra[x] for x in (m.model_extra or {})} if hasattr(m, "model_extra") else {}
        stages.append(_shares({
            "key": k, "label": lbl, "group": grp, "stage": m.stage, "status": m.status,
            "inputs": m.done, "accepted": m.accepted, "rejected": m.rejected, "failed": m.failed,
            "empty": m.empty, "outputs": m.outputs, "seconds": m.seconds, "output": f"{k}.jsonl",
            "reasons": [{"reason": r, "n": n} for r, n in reasons],
            "errors": errors, "warnings": list(m.warnings),
            "usage": m.usage.to_dict() if hasattr(m.usage, "to_dict") else dict(m.llm_usage),
            "extras": {x: _cut(v, 600) for x, v in extras.items()}, "note": "", "unit": "",
        }))
    missing = [dict(key=k, label=lbl) for k, lbl, _ in FLOW if k in EXPECTED and k not in by_key]
    train = _safe(lambda: training_funnel(run, problems), "training stages", problems, {"rows": [], "missing": []})
    for r in train["rows"]:
        r["output"] = r["key"]
        stages.append(_shares(r))
    stages.sort(key=lambda s: GROUPS.index(s["group"]) if s["group"] in GROUPS else len(GROUPS))
    groups = []
    for s in stages:
        if not groups or groups[-1]["name"] != s["group"]:
            groups.append({"name": s["group"], "stages": []})
        groups[-1]["stages"].append(s)
    return {"stages": stages, "groups": groups, "missing": missing + train["missing"]}


def gather_usage(stages: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    tot: dict[str, float] = {}
    for s in stages:
        u = s.get("usage") or {}
        for f in ("requests", "calls", "cache_hits", "prompt_tokens", "completion_tokens", "retries", "failures",
                  "seconds"):
            tot[f] = tot.get(f, 0) + (u.get(f) or 0)
        if u.get("requests"):
            rows.append({"label": s["label"], **u,
                         "hit_rate": (u.get("cache_hits", 0) / u["requests"]) if u.get("requests") else 0.0})
    tot["hit_rate"] = tot["cache_hits"] / tot["requests"] if tot.get("requests") else 0.0
    return {"rows": rows, "total": tot}


# ---------------------------------------------------------------------------------
# tool graphs
# ---------------------------------------------------------------------------------


def _chains_by_server(path: Path, problems: list[str], what: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    if not path.exists():
        return out
    for r in read_jsonl(path, problems, what):
        tools = r.get("tools")
        if isinstance(tools, list) and all(isinstance(t, str) for t in tools):
            out.setdefault(str(r.get("server", "")), []).append(tools)
    return out


def gather_graphs(run: Path, problems: list[str]) -> dict[str, Any]:
    from astra.graph.graph import ToolGraph
    from astra.report.plots import EDGE_COLOR, KEPT_COLOR, tool_graph

    path = run / "graphs" / "graphs.jsonl"
    if not path.exists():
        cands = sorted(run.rglob("graphs.jsonl"))
        if not cands:
            return {"samples": [], "total": 0}
        path = cands[0]
    recs = read_jsonl(path, problems, "tool graphs")
    kept = _chains_by_server(run / "verified.jsonl", problems, "verified chains")
    walked = _chains_by_server(run / "chains.jsonl", problems, "chains")
    items = []
    for rec in recs[:MAX_GRAPHS]:
        g = _safe(lambda rec=rec: ToolGraph.model_validate(rec), "tool graph record", problems)
        if g is None:
            continue
        chains = kept.get(g.server, [])
        provs = sorted({p for e in g.edges for p in e.provenance})
        img = _safe(lambda g=g, chains=chains: tool_graph(
            g.server, g.nodes, [e.model_dump() for e in g.edges], entry=g.entry_nodes, kept_chains=chains),
            f"drawing the graph of {g.server}", problems)
        counts: dict[tuple[str, ...], int] = {}
        for c in chains:
            counts[tuple(c)] = counts.get(tuple(c), 0) + 1
        listed = sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
        items.append({"server": g.server, "nodes": len(g.nodes), "edges": len(g.edges), "img": img,
                      "provenance": provs, "kept": len(chains), "walked": len(walked.get(g.server, [])),
                      "chains": [{"tools": list(c), "n": n} for c, n in listed[:MAX_CHAINS_LISTED]],
                      "more_chains": max(0, len(listed) - MAX_CHAINS_LISTED),
                      "stats": {k: _cut(v, 200) for k, v in (g.stats or {}).items() if not isinstance(v, (dict, list))}})
    return {"samples": items, "total": len(recs), "path": _rel(run, path), "kept_color": KEPT_COLOR,
            "edge_color": EDGE_COLOR, "has_kept": (run / "verified.jsonl").exists()}


# ---------------------------------------------------------------------------------
# trajectories
# ---------------------------------------------------------------------------------


def _render_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Chat bubbles: kind, text, calls (name, args), tool results (named after their call)."""
    out = []
    call_names: dict[str, str] = {}
    for m in messages:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", "?"))
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = "\n".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
        calls = []
        for tc in m.get("tool_calls") or []:
            fn = (tc.get("function") or tc) if isinstance(tc, dict) else {}
            name = str(fn.get("name", "?")) if isinstance(fn, dict) else "?"
            cid = str(tc.get("id", "")) if isinstance(tc, dict) else ""
            call_names[cid] = name
            calls.append({"id": cid, "name": name,
                          "args": _pretty_json(fn.get("arguments", {}) if isinstance(fn, dict) else fn)})
        tid = str(m.get("tool_call_id") or "")
        out.append({"role": role, "text": _cut(content) if content is not None else "", "calls": calls,
                    "name": str(m.get("name") or call_names.get(tid) or tid),
                    "tool_text": _pretty_json(content) if role == "tool" else ""})
    if out and out[-1]["role"] == "assistant" and not out[-1]["calls"] and out[-1]["text"]:
        out[-1]["final"] = True
    return out


def _judgement(j: Any) -> dict[str, Any] | None:
    if not isinstance(j, dict):
        return None
    dims = []
    for name, d in (j.get("dimensions") or {}).items():
        score = d.get("score") if isinstance(d, dict) else d
        ok = isinstance(score, (int, float)) and not isinstance(score, bool)
        dims.append({"name": name, "score": score if ok else None,
                     "method": d.get("method", "") if isinstance(d, dict) else "",
                     "reason": _cut(d.get("reason", ""), 400) if isinstance(d, dict) else "",
                     "w": round(100 * max(0.0, min(1.0, float(score))), 1) if ok else 0})
    return {"overall": j.get("overall"), "passed": j.get("passed"), "mode": j.get("mode", ""),
            "note": _cut(j.get("note", ""), 300), "failed": j.get("failed"), "dims": dims}


def _server_of(r: dict[str, Any]) -> str:
    meta = r.get("meta") if isinstance(r.get("meta"), dict) else {}
    task = meta.get("task") if isinstance(meta.get("task"), dict) else {}
    return str(task.get("server") or meta.get("server") or r.get("server") or "")


def _base_task(r: dict[str, Any]) -> str:
    """The task a trajectory answers, augmentations (``TASK.com0``, ``TASK.per0``…) folded in."""
    return str(r.get("task_id") or r.get("id") or "").split(".")[0]


def pick_diverse(recs: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` records: a passed one and a rejected one first (when there are), then
    each from a server and a task not shown yet, as long as there are such."""
    def passed(r: dict[str, Any]) -> Any:
        j = r.get("judgement")
        return j.get("passed") if isinstance(j, dict) else None

    chosen: list[dict[str, Any]] = []
    servers: set[str] = set()
    tasks: set[str] = set()

    def take(r: dict[str, Any]) -> None:
        chosen.append(r)
        servers.add(_server_of(r))
        tasks.add(_base_task(r))

    for want in (True, False):
        r = next((r for r in recs if passed(r) is want and _base_task(r) not in tasks), None)
        if r is not None and len(chosen) < n:
            take(r)
    for fresh in (lambda r: _server_of(r) not in servers and _base_task(r) not in tasks,
                  lambda r: _base_task(r) not in tasks,
                  lambda r: True):
        for r in recs:
            if len(chosen) >= n:
                return chosen
            if all(r is not c for c in chosen) and fresh(r):
                take(r)
    return chosen


def gather_trajectories(run: Path, problems: list[str]) -> dict[str, Any]:
    for name in ("judged.jsonl", "trajectories.jsonl"):
        p = run / name
        if not p.exists():
            continue
        recs: list[dict[str, Any]] = []  # the first MAX_SAMPLED to pick from; all are counted
        total = n_pass = n_fail = 0
        tasks: set[str] = set()
        servers: set[str] = set()
        for r in iter_jsonl(p, problems, "trajectories"):
            total += 1
            j = r.get("judgement")
            n_pass += isinstance(j, dict) and j.get("passed") is True
            n_fail += isinstance(j, dict) and j.get("passed") is False
            tasks.add(_base_task(r))
            servers.add(_server_of(r))
            if len(recs) < MAX_SAMPLED:
                recs.append(r)
        items = []
        for r in pick_diverse(recs, MAX_TRAJECTORIES):
            tools = [(t.get("function") or t).get("name", "?") for t in r.get("tools") or [] if isinstance(t, dict)]
            msgs = r.get("messages") if isinstance(r.get("messages"), list) else []
            items.append({"id": r.get("id", ""), "task_id": r.get("task_id", ""), "agent": r.get("agent", ""),
                          "server": _server_of(r), "tools": tools, "messages": _render_messages(msgs),
                          "judgement": _judgement(r.get("judgement"))})
        return {"samples": items, "total": total, "path": name, "passed": n_pass, "rejected": n_fail,
                "tasks": len(tasks), "servers": len(servers - {""}),
                "sampled": len(recs) if total > len(recs) else 0}
    return {"samples": [], "total": 0}


# ---------------------------------------------------------------------------------
# environments
# ---------------------------------------------------------------------------------


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
    envs = []
    scen: dict[str, int] = {}
    for d in dirs:
        paths = _safe(lambda d=d: environment_paths(d), f"listing {d}", problems, [])
        counts.append({"dir": _rel(run, d), "n": len(paths)})
        for p in paths:
            env = _safe(lambda p=p: load_environment(p), f"environment {p.name}", problems)
            if env is None:
                continue
            scen[str(env.instance.scenario)] = scen.get(str(env.instance.scenario), 0) + 1
            if all(e.id != env.id for e in envs):
                envs.append(env)
    items: list[Any] = []
    for env in envs:  # one per scenario, then whatever comes
        if len(items) < MAX_ENVS and all(str(e.instance.scenario) != str(env.instance.scenario) for e in items):
            items.append(env)
    items += [e for e in envs if all(e is not i for i in items)][: MAX_ENVS - len(items)]
    for d in ("train", "heldout"):
        n = count_envs(run / "envsplit" / d)
        if n is not None:
            counts.append({"dir": f"envsplit/{d}", "n": n})
    return {"samples": [_env_view(e) for e in items], "total": len(envs), "dirs": counts,
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


# ---------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------


def _flatten(obj: Any, prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    out = {} if out is None else out
    if isinstance(obj, dict) and depth < 4:
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, depth + 1)
    elif isinstance(obj, list):
        if obj and all(not isinstance(x, (dict, list)) for x in obj) and len(obj) <= 10:
            out[prefix] = ", ".join(map(str, obj))
        elif obj:
            out[prefix] = f"[{len(obj)} items]"
    else:
        out[prefix] = obj
    return out


def _envs_view(name: str, obj: dict[str, Any], run: Path) -> dict[str, Any]:
    from astra.report.results import model_label

    cols = ["n", "success_rate", "f1", "recall", "precision", "subtasks", "turns", "calls", "errors"]
    rows = []
    for m in obj["models"]:
        if not isinstance(m, dict):
            continue
        groups = [("all", m.get("overall") or {})] + list((m.get("by_scenario") or {}).items())
        for i, (sc, x) in enumerate(groups):
            x = x if isinstance(x, dict) else {}
            label = model_label(str(m.get("model", "?")), run)
            rows.append({"model": (label if str(m.get("model")) in label else f"{label} ({m.get('model')})")
                         if i == 0 else "", "scenario": sc, "vals": [_fmt(x.get(c)) for c in cols], "first": i == 0})
    return {"name": name, "kind": "envs", "cols": ["model", "scenario", *cols], "rows": rows,
            "meta": {k: _fmt(obj.get(k)) for k in ("envs", "n_envs", "max_turns", "distractors", "temperature",
                                                   "command") if obj.get(k) is not None}}


def _bfcl_view(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    rows = [[c, _fmt(v.get("total_count")), _fmt(v.get("correct_count")),
             f"{100 * v['accuracy']:.1f}%" if isinstance(v.get("accuracy"), (int, float)) else "—"]
            for c, v in (obj.get("categories") or {}).items() if isinstance(v, dict)]
    for s, v in (obj.get("summaries") or {}).items():
        if isinstance(v, dict):
            cover = "" if v.get("complete", True) else f" ({len(v.get('categories') or [])}/{len(v.get('of') or [])} " \
                                                       "categories)"
            rows.append([f"{s}{cover}", "", "", f"{100 * v['accuracy']:.1f}%"
                         if isinstance(v.get("accuracy"), (int, float)) else "—"])
    return {"name": name, "kind": "table", "cols": ["category", "entries", "correct", "accuracy"], "rows": rows,
            "meta": {k: _fmt(obj.get(k)) for k in ("model", "seconds", "command") if obj.get(k) is not None}}


def _jsonl_view(name: str, recs: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON Lines result file: BFCL's ``*_score.json`` (a header line with the accuracy,
    then one line per invalid entry) or ``*_result.json`` (one line per entry), else counts."""
    head = recs[0] if recs else {}
    if {"accuracy", "total_count"} <= set(head):
        invalid = recs[1:]
        types: dict[str, int] = {}
        for r in invalid:
            t = str(r.get("error_type") or "unknown")
            types[t] = types.get(t, 0) + 1
        items = [("accuracy", f"{100 * head['accuracy']:.1f}%" if isinstance(head["accuracy"], (int, float))
                  else _fmt(head["accuracy"])), ("correct / entries",
                                                 f"{_fmt(head.get('correct_count'))} / {_fmt(head['total_count'])}")]
        items += [(f"invalid: {t}", _fmt(n)) for t, n in sorted(types.items(), key=lambda kv: -kv[1])]
        samples = [{"id": str(r.get("id", "")), "error": _cut(r.get("error"), 300),
                    "result": _cut(r.get("model_result"), 300)} for r in invalid[:MAX_INVALID_LISTED]]
        return {"name": name, "kind": "generic", "items": items, "more": 0, "samples": samples,
                "note": f"JSON Lines: a score header and {len(invalid)} invalid entr{'y' if len(invalid) == 1 else 'ies'}"}
    keys: dict[str, int] = {}
    for r in recs:
        for k in r:
            keys[k] = keys.get(k, 0) + 1
    empty = sum(1 for r in recs if r.get("result") in (None, "", [], {}))
    items = [("entries", _fmt(len(recs)))]
    if "result" in keys:
        items.append(("entries with an empty result", _fmt(empty)))
    items.append(("fields", ", ".join(list(keys)[:12])))
    return {"name": name, "kind": "generic", "items": items, "more": 0,
            "note": f"JSON Lines: {len(recs)} record(s)"}


def _parse_jsonl(text: str, note: str = "") -> list[dict[str, Any]]:
    recs = []
    for i, ln in enumerate(text.splitlines(), 1):
        if not ln.strip():
            continue
        try:
            obj = json.loads(ln)
        except json.JSONDecodeError:
            raise ValueError(f"{note}line {i} is not JSON") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{note}line {i} is not a JSON object") from None
        recs.append(obj)
    return recs


def _load_json_or_jsonl(path: Path) -> tuple[str, Any]:
    """A JSON document, or JSON Lines: BFCL's ``*_result.json`` / ``*_score.json`` always
    (one line per entry, even when there is one line), any other file when it is not one
    JSON document but every line is a JSON object."""
    text = path.read_text("utf-8")
    if BFCL_JSONL.search(path.name):
        return "jsonl", _parse_jsonl(text, "JSON Lines: ")
    try:
        return "json", json.loads(text)
    except json.JSONDecodeError as e:
        if sum(1 for ln in text.splitlines() if ln.strip()) < 2:
            raise
        return "jsonl", _parse_jsonl(text, f"neither JSON ({e.msg}) nor JSON Lines: ")


def _eval_view(name: str, kind: str, obj: Any, run: Path) -> dict[str, Any]:
    if kind == "jsonl":
        return _jsonl_view(name, obj)
    if isinstance(obj, dict) and obj.get("kind") == "envs" and isinstance(obj.get("models"), list):
        return _envs_view(name, obj, run)
    if isinstance(obj, dict) and isinstance(obj.get("categories"), dict) and "model" in obj:
        return _bfcl_view(name, obj)
    if isinstance(obj, dict) and isinstance(obj.get("simulations"), list):  # τ² simulations: counts only
        items = [(k, _fmt(v)) for k, v in _flatten({k: v for k, v in obj.items() if k != "simulations"}).items()]
        items.append(("simulations", _fmt(len(obj["simulations"]))))
        return {"name": name, "kind": "generic", "items": items[:MAX_EVAL_ITEMS], "more": 0}
    flat = _flatten(obj)
    items = [(k, _fmt(v)) for k, v in flat.items() if k]
    return {"name": name, "kind": "generic", "items": items[:MAX_EVAL_ITEMS],
            "more": max(0, len(items) - MAX_EVAL_ITEMS)}


def gather_eval(run: Path, problems: list[str]) -> list[dict[str, Any]]:
    out = []
    # summaries first (what `astra eval envs -o` writes, then ``*_summary.json``), then the rest
    cands = sorted((run / "eval").rglob("*.json"), key=lambda p: (p.name != "envs.json",
                                                                  not p.name.endswith("summary.json"), p))\
        if (run / "eval").is_dir() else []
    cands += sorted(p for p in run.glob("*results*.json"))
    for p in cands:
        if p.name.endswith(".manifest.json"):
            continue
        loaded = _safe(lambda p=p: _load_json_or_jsonl(p), f"evaluation {_rel(run, p)}", problems)
        if loaded is not None:
            view = _safe(lambda p=p, loaded=loaded: _eval_view(_rel(run, p), loaded[0], loaded[1], run),
                         f"evaluation {_rel(run, p)}", problems)
            if view is not None:
                out.append(view)
    if (run / "eval").is_dir():
        for p in sorted((run / "eval").rglob("*.md")):
            if p.with_suffix(".json").exists():  # the same table as the JSON summary shown above
                continue
            text = _safe(lambda p=p: p.read_text("utf-8"), f"evaluation {p.name}", problems, "")
            out.append({"name": _rel(run, p), "kind": "text", "text": _cut(text, 6000)})
    return out


# ---------------------------------------------------------------------------------
# run header and results
# ---------------------------------------------------------------------------------


def gather_header(run: Path, problems: list[str]) -> dict[str, Any]:
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
            obj = read_json(p, problems, "run summary")
            if obj is not None:
                info["summary"] = {k: _fmt(v) for k, v in _flatten(obj).items()}
                info["summary_file"] = cand
            break
    return info


def gather_headline(run: Path, problems: list[str]) -> dict[str, Any]:
    from astra.report.results import METRICS, gather_results, results_picture

    res = gather_results(run, problems)
    res["img"] = _safe(lambda: results_picture(res), "drawing the results chart", problems) if res["models"] else None
    res["metrics"] = METRICS
    for m in res["models"]:
        m["fmt"] = {k: ("—" if v is None else f"{v:.3f}") for k, v in m["values"].items()}
    f1 = [(m["label"], m["values"].get("f1")) for m in res["models"] if m["values"].get("f1") is not None]
    res["sentence"] = " → ".join(f"{lbl} {v:.3f}" for lbl, v in f1) if f1 else ""
    bfcl = run / "eval" / "bfcl" / "bfcl_summary.json"
    if bfcl.exists():
        obj = read_json(bfcl, problems, "BFCL summary")
        if obj is not None:
            from astra.report.results import model_label

            res["bfcl"] = {"model": model_label(str(obj.get("model", "?")), run),
                           "cats": [(c, v.get("accuracy"), v.get("total_count"))
                                    for c, v in (obj.get("categories") or {}).items() if isinstance(v, dict)]}
    return res


# ---------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------


def build_context(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    run = Path(run_dir)
    problems: list[str] = []
    funnel = _safe(lambda: gather_funnel(run, problems), "stage manifests", problems,
                   {"stages": [], "groups": [], "missing": []})
    ctx = {
        "header": _safe(lambda: gather_header(run, problems), "run info", problems,
                        {"run_dir": str(run), "name": run.name}),
        "headline": _safe(lambda: gather_headline(run, problems), "results", problems, {"models": []}),
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


def _empty_context(run: Path, problem: str) -> dict[str, Any]:
    return {"header": {"run_dir": str(run), "name": run.name}, "headline": {"models": []},
            "funnel": {"stages": [], "groups": [], "missing": []}, "usage": {"rows": [], "total": {}},
            "graphs": {"samples": [], "total": 0}, "trajectories": {"samples": [], "total": 0},
            "environments": {"samples": [], "total": 0, "dirs": []}, "training": [], "evals": [],
            "problems": [problem]}


def render_context(ctx: dict[str, Any]) -> str:
    """The HTML of a context :func:`build_context` gathered."""
    return _environment().get_template("report.html.jinja").render(**ctx)


def render_report(run_dir: str | os.PathLike[str]) -> str:
    """The report of ``run_dir`` as one HTML string."""
    run = Path(run_dir)
    return render_context(build_context(run) if run.is_dir() else _empty_context(run, f"{run} is not a directory"))


def write_report(run_dir: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """Render and write the report atomically; returns the output path."""
    html = render_report(run_dir)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


__all__ = ["FLOW", "build_context", "pick_diverse", "render_context", "render_report", "write_report"]
