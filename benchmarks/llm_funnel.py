"""Every stage's LLM path against a real model behind an OpenAI-compatible server.

    .venv/bin/python benchmarks/llm_funnel.py --serve                      # starts `astra llm serve`
    .venv/bin/python benchmarks/llm_funnel.py --base-url URL --model NAME  # any server (llama.cpp, vLLM, …)
        [--out runs/llm-funnel] [--limit 3] [--stages graph-build,judge,...] [--extra-args "..."]

First an offline backbone (`astra demo --profile tiny --no-training`: tools → graphs →
chains → tasks → trajectories, QA → environments; no LLM) gives every stage sensible
input; then each stage runs again on a small slice of that input with its LLM path
(`--llm openai:NAME --base-url URL`): graph build (LLM proposals), graph verify (vote and
back-translation), tasks generate / augment / score, rollout (an LLM agent with the LLM tool
emulator for the doc-only server; and the offline chain executor, whose calls to the doc-only
server the LLM emulates), judge, envs decompose (question-conditional) / validate /
synthesize. Each stage is a separate `astra` process; its manifest gives records in and
out, rejections by reason, failures by error type and LLM usage. A stage that exits
non-zero or prints a traceback is reported as such. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ASTRA = [str(Path(sys.executable).with_name("astra"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen | None, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"no server at {url} after {seconds:.0f}s")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def backbone(out: Path, env: dict) -> Path:
    base = out / "offline"
    if not (base / "envs" / "index.jsonl").exists():
        cmd = ASTRA + ["demo", "--profile", "tiny", "--no-training", "--out", str(base)]
        print("$ " + shlex.join(cmd[2:]), file=sys.stderr)
        subprocess.run(cmd, env={**env, "ASTRA_LLM": "embedded"}, check=True, stdout=subprocess.DEVNULL)
    return base


def slices(base: Path, out: Path, limit: int) -> dict[str, Path]:
    """Inputs for the stages that need a chosen mix rather than the first N records."""
    tasks = [t for t in _jsonl(base / "scored.jsonl") if t.get("mode") == "chain" and not t.get("parent_id")]
    doc_only = [t for t in tasks if t.get("server") == "recipes"][: max(1, limit // 2)]
    executable = [t for t in tasks if t.get("server") != "recipes"][: max(1, limit - len(doc_only))]
    qa = _jsonl(base / "qa.jsonl")
    questions = [{"id": q["id"], "question": q["question"], "answer": q.get("answer"), "domain": q.get("domain")}
                 for q in qa if q.get("scenario") != "single_hop"][:limit]
    return {"rollout": _write(out / "rollout_in.jsonl", executable + doc_only),
            "questions": _write(out / "questions.jsonl", questions)}


def stages(base: Path, out: Path, s: dict[str, Path], limit: int, llm: list[str]) -> list[tuple[str, list[str], Path]]:
    b, o, n = str(base), str(out), str(limit)
    tools = ["--tools", f"{b}/tools.jsonl"]
    return [
        ("graph-build", ["graph", "build", f"{b}/tools.jsonl", "-o", f"{o}/graphs", "--source", "dataflow,llm",
                         "--proposals", "1", "--chains-per-proposal", "3", "--limit", n, *llm],
         out / "graphs" / "graphs.jsonl"),
        ("graph-verify", ["graph", "verify", f"{b}/chains.jsonl", "-o", f"{o}/verified.jsonl", *tools,
                          "--checks", "args,vote,backtranslate", "--votes", "3", "--limit", n, *llm],
         out / "verified.jsonl"),
        ("tasks-generate", ["tasks", "generate", f"{b}/verified.jsonl", "-o", f"{o}/tasks.jsonl", *tools,
                            "--generator", "llm", "--mode", "chain", "--per-chain", "1", "--limit", n, *llm],
         out / "tasks.jsonl"),
        ("tasks-augment", ["tasks", "augment", f"{b}/tasks.jsonl", "-o", f"{o}/aug.jsonl", *tools,
                           "--augmenter", "llm", "--per-mode", "1", "--limit", str(max(1, limit - 1)), *llm],
         out / "aug.jsonl"),
        ("tasks-score", ["tasks", "score", f"{b}/aug.jsonl", "-o", f"{o}/scored.jsonl", *tools,
                         "--scorer", "llm", "--limit", n, *llm],
         out / "scored.judged.jsonl"),  # the LLM scoring stage (scored.jsonl is the selection after it)
        ("rollout", ["rollout", str(s["rollout"]), "-o", f"{o}/trajectories.jsonl", *tools,
                     "--agent", llm[1], "--emulator-llm", llm[1], "--max-turns", "4", "--max-tokens", "256",
                     *llm[2:]],
         out / "trajectories.jsonl"),
        ("rollout-emulator", ["rollout", str(s["rollout"]), "-o", f"{o}/emulated.jsonl", *tools,
                              "--agent", "chain-executor", "--emulator-llm", llm[1], *llm[2:]],
         out / "emulated.jsonl"),
        ("judge", ["judge", f"{b}/trajectories.jsonl", "-o", f"{o}/judged.jsonl", "--judge", "llm",
                   "--limit", n, *llm],
         out / "judged.jsonl"),
        ("envs-decompose", ["envs", "decompose", "-o", f"{o}/qa.jsonl", "--questions", str(s["questions"]),
                            "--limit", n, *llm],
         out / "qa.jsonl"),
        ("envs-validate", ["envs", "validate", f"{b}/qa.jsonl", "-o", f"{o}/valid.jsonl", "--validator", "llm",
                           "--percentile", "0", "--limit", n, *llm],
         out / "valid.scored.jsonl"),
        ("envs-synthesize", ["envs", "synthesize", f"{b}/valid.jsonl", "-o", f"{o}/envs", "--synthesizer", "llm",
                             "--max-attempts", "2", "--limit", str(max(1, limit - 1)), *llm],
         out / "envs" / "index.jsonl"),
    ]


def manifest_of(output: Path) -> dict:
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    path = output.with_name(stem + ".manifest.json")
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def _counts(d: dict, top: int = 4) -> str:
    items = sorted(d.items(), key=lambda kv: -kv[1])[:top]
    rest = sum(v for _, v in sorted(d.items(), key=lambda kv: -kv[1])[top:])
    text = ", ".join(f"{k} {v}" for k, v in items)
    return text + (f", other {rest}" if rest else "") if text else "—"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", help="OpenAI-compatible endpoint (…/v1)")
    ap.add_argument("--model", help="model name the server serves")
    ap.add_argument("--serve", action="store_true", help="start `astra llm serve` (the embedded model) for the run")
    ap.add_argument("--out", type=Path, default=Path("runs/llm-funnel"))
    ap.add_argument("--limit", type=int, default=3, help="records per stage")
    ap.add_argument("--stages", default=None, help="comma list of stage names (default: all)")
    ap.add_argument("--llm-timeout", default="900", help="seconds per request (a loaded CPU server is slow)")
    ap.add_argument("--stage-timeout", type=float, default=3600)
    ap.add_argument("--extra-args", default="", help="appended to every LLM stage, e.g. '--response-format none'")
    ap.add_argument("--report-only", action="store_true", help="print the table of an earlier run (funnel.json)")
    args = ap.parse_args()
    out = args.out.resolve()
    if args.report_only:
        rows = json.loads((out / "funnel.json").read_text("utf-8"))
        outputs = {name: output for name, _, output in stages(out / "offline", out, {"rollout": Path(),
                                                                                      "questions": Path()}, 1, ["", ""])}
        for r in rows:  # read the manifests again (a stage may have been resumed since)
            m = manifest_of(outputs[r["stage"]])
            if m:
                r.update(_row_counts(m))
        meta = json.loads((out / "funnel.meta.json").read_text("utf-8")) if (out / "funnel.meta.json").exists() else {}
        print_table(rows, meta.get("base_url", "?"), meta.get("model", "?"), meta.get("limit", "?"))
        return
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ASTRA_CACHE_DIR": os.environ.get("ASTRA_CACHE_DIR", str(out / "cache"))}
    server = None
    try:
        if args.serve:
            port = _free_port()
            args.base_url = f"http://127.0.0.1:{port}/v1"
            args.model = args.model or "smollm2-135m-instruct"
            log = open(out / "server.log", "w")
            server = subprocess.Popen(ASTRA + ["llm", "serve", "--port", str(port), "--served-model-name", args.model],
                                      env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if not (args.base_url and args.model):
            ap.error("give --serve, or --base-url and --model")
        _wait_for(args.base_url, server)
        base = backbone(out, env)
        llm = ["--llm", f"openai:{args.model}", "--base-url", args.base_url, "--llm-timeout", args.llm_timeout,
               "--no-progress", *shlex.split(args.extra_args)]
        s = slices(base, out, args.limit)
        wanted = set(args.stages.split(",")) if args.stages else None
        rows = []
        for name, cmd, output in stages(base, out, s, args.limit, llm):
            if wanted and name not in wanted:
                continue
            printable = "astra " + shlex.join(cmd).replace(str(out), "$OUT")
            print(f"$ {printable}", file=sys.stderr)
            t0 = time.perf_counter()
            try:
                p = subprocess.run(ASTRA + cmd, env=env, capture_output=True, text=True, timeout=args.stage_timeout)
                code, stderr = p.returncode, p.stderr
            except subprocess.TimeoutExpired as e:
                code, stderr = "timeout", (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            seconds = time.perf_counter() - t0
            (out / f"{name}.log").write_text(stderr or "", "utf-8")
            m = manifest_of(output)
            crash = "Traceback (most recent call last)" in (stderr or "")
            rows.append({"stage": name, "command": printable, "output": str(output), "exit": code, "crash": crash,
                         "seconds": round(seconds, 1), **_row_counts(m)})
            print(f"  exit {code}, {rows[-1]['in']} in → {rows[-1]['out']} out, {rows[-1]['failed']} failed, "
                  f"{rows[-1]['usage'].get('failures', 0)} LLM failures, {seconds:.0f}s", file=sys.stderr)
            (out / "funnel.json").write_text(json.dumps(rows, indent=2), "utf-8")
            (out / "funnel.meta.json").write_text(json.dumps({"base_url": args.base_url, "model": args.model,
                                                              "limit": args.limit}), "utf-8")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print_table(rows, args.base_url, args.model, args.limit)


def _row_counts(m: dict) -> dict:
    return {"status": m.get("status", "no manifest"), "in": m.get("inputs_seen", 0), "out": m.get("outputs", 0),
            "accepted": m.get("accepted", 0), "rejected": m.get("rejected", 0), "failed": m.get("failed", 0),
            "rejections": m.get("rejections_by_reason", {}), "errors": m.get("errors_by_type", {}),
            "usage": m.get("llm_usage") or m.get("usage") or {}, "warnings": m.get("warnings", [])}


def print_table(rows: list[dict], base_url: str, model: str, limit) -> None:
    print(f"\nserver {base_url} · model {model} · {limit} record(s) per stage\n")
    print("| stage | exit (manifest) | in → out | rejected (reasons) | failed (errors) | "
          "LLM requests / calls / failures / repairs | s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        u = r["usage"]
        print(f"| {r['stage']} | {r['exit']}{' traceback' if r['crash'] else ''} ({r.get('status', '?')}) | "
              f"{r['in']} → {r['out']} | {r['rejected']} ({_counts(r['rejections'])}) | "
              f"{r['failed']} ({_counts(r['errors'])}) | "
              f"{u.get('requests', 0)} / {u.get('calls', 0)} / {u.get('failures', 0)} / {u.get('repairs', 0)} | "
              f"{r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
