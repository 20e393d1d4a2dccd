"""SFT export of judged trajectories (the ASTRA method §3.1: loss on assistant tokens only).

Formats (``--format``):

- ``openai`` -> ``OUT/train.jsonl``, one ``{"id", "messages", "tools"}`` per line: OpenAI
  chat messages (``system``, ``user``, ``assistant`` with ``tool_calls``, ``tool`` with
  ``tool_call_id``) whose tool-call ``arguments`` stay JSON **strings**, and ``tools`` as a
  JSON **string** of the OpenAI tools list (``--tools-as list`` writes the list itself).
  Strings on purpose: Arrow (``datasets``) unifies dict columns across rows and would add
  null keys to every call's arguments and every tool's parameters; TRL's ``SFTTrainer``
  decodes a string ``tools`` column itself. Loads as is with
  ``load_dataset("json", data_files="OUT/train.jsonl")``.
- ``sharegpt`` -> ``OUT/train.jsonl`` in the ShareGPT layout LLaMA-Factory reads
  (``conversations`` of ``human`` / ``function_call`` / ``observation`` / ``gpt`` turns,
  ``system``, ``tools`` as a JSON string of the bare function schemas) plus
  ``OUT/dataset_info.json`` registering it as ``astra_sft``. A ``function_call`` value is
  the JSON of the call (a list for parallel calls, arguments as objects); the assistant's
  planning text before a call is kept as ``<think>…</think>`` in front of it (LLaMA-Factory's
  thought format; ``--thought drop`` drops it); parallel results are one ``observation``
  (the results joined by newlines).
- ``hf`` -> a ``datasets`` dataset of the ``openai`` records saved with ``save_to_disk``
  (``load_from_disk("OUT")``).

Only trajectories with a passing judgement are exported (``--allow-unjudged`` lifts that);
``OUT/export.manifest.json`` records counts and the reasons for every skipped trajectory.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from astra.errors import ConfigError, InputError
from astra.io import write_json, write_jsonl
from astra.pipeline import Manifest, read_outputs
from astra.types import Trajectory

Format = Literal["openai", "sharegpt", "hf"]
FORMATS = ("openai", "sharegpt", "hf")
DATASET_NAME = "astra_sft"
MANIFEST = "export.manifest.json"


class SkipRecord(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _args_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def clean_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Standard OpenAI chat messages only (extra keys dropped, arguments as strings); checks
    that every tool call is answered by exactly one tool message and vice versa."""
    out: list[dict[str, Any]] = []
    open_ids: set[str] = set()
    for m in messages:
        role = m.get("role")
        if role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.get("content")}
            calls = []
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function", {})
                cid = str(tc.get("id") or "")
                if not cid or cid in open_ids:
                    raise SkipRecord("malformed_transcript", f"tool call without a unique id: {cid!r}")
                open_ids.add(cid)
                calls.append({"id": cid, "type": "function",
                              "function": {"name": str(fn.get("name") or ""), "arguments": _args_str(fn.get("arguments"))}})
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
        elif role == "tool":
            cid = str(m.get("tool_call_id") or "")
            if cid not in open_ids:
                raise SkipRecord("malformed_transcript", f"tool message answers no open call ({cid!r})")
            open_ids.discard(cid)
            out.append({"role": "tool", "tool_call_id": cid, "content": str(m.get("content") or "")})
        elif role in ("system", "user"):
            out.append({"role": role, "content": str(m.get("content") or "")})
        else:
            raise SkipRecord("malformed_transcript", f"unknown role {role!r}")
    if open_ids:
        raise SkipRecord("malformed_transcript", f"tool calls without a response: {sorted(open_ids)[:3]}")
    if not out or out[-1]["role"] != "assistant" or out[-1].get("tool_calls") or not out[-1].get("content"):
        raise SkipRecord("no_final_answer", "the conversation does not end with an assistant answer")
    if not any(m["role"] == "user" for m in out):
        raise SkipRecord("malformed_transcript", "no user message")
    return out


def openai_record(traj: Trajectory, *, tools_as: str = "json") -> dict[str, Any]:
    messages = clean_messages(traj.messages)
    tools = [{"type": "function", "function": {
        "name": t.get("function", t).get("name"), "description": t.get("function", t).get("description", ""),
        "parameters": t.get("function", t).get("parameters", {"type": "object", "properties": {}})}}
        for t in traj.tools]
    return {"id": traj.id, "messages": messages,
            "tools": json.dumps(tools, ensure_ascii=False) if tools_as == "json" else tools}


def sharegpt_record(traj: Trajectory, *, thought: str = "think") -> dict[str, Any]:
    messages = clean_messages(traj.messages)
    system = ""
    if messages and messages[0]["role"] == "system":
        system = messages[0]["content"]
        messages = messages[1:]
    conv: list[dict[str, str]] = []
    pending_obs: list[str] = []

    def flush_obs() -> None:
        if pending_obs:
            conv.append({"from": "observation", "value": "\n".join(pending_obs)})
            pending_obs.clear()

    for m in messages:
        if m["role"] == "tool":
            pending_obs.append(m["content"])
            continue
        flush_obs()
        if m["role"] == "user":
            conv.append({"from": "human", "value": m["content"]})
        elif m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                try:
                    args = json.loads(tc["function"]["arguments"] or "{}")
                except ValueError:
                    args = tc["function"]["arguments"]
                calls.append({"name": tc["function"]["name"], "arguments": args})
            value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            text = (m.get("content") or "").strip()
            if text and thought == "think":
                value = f"<think>\n{text}\n</think>\n\n{value}"
            conv.append({"from": "function_call", "value": value})
        else:
            conv.append({"from": "gpt", "value": m.get("content") or ""})
    flush_obs()
    # LLaMA-Factory: human/observation at even positions, gpt/function_call at odd ones
    for i, turn in enumerate(conv):
        expected = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        if turn["from"] not in expected:
            raise SkipRecord("not_alternating", f"turn {i} is {turn['from']!r}, expected one of {expected}")
    tools = [{k: v for k, v in t.get("function", t).items() if k in ("name", "description", "parameters")}
             for t in traj.tools]
    return {"id": traj.id, "conversations": conv, "system": system, "tools": json.dumps(tools, ensure_ascii=False)}


def check_judgement(traj: Trajectory, *, min_score: float | None, allow_unjudged: bool) -> None:
    j = traj.judgement
    if j is None:
        if allow_unjudged:
            return
        raise SkipRecord("unjudged", "no judgement (run astra judge, or pass --allow-unjudged)")
    if j.get("failed"):
        raise SkipRecord("judge_failed", str(j["failed"].get("message", ""))[:200])
    overall = j.get("overall")
    if overall is None:
        raise SkipRecord("judge_failed", "judgement without an overall score")
    threshold = min_score if min_score is not None else j.get("min_score")
    if threshold is not None and overall < threshold:
        raise SkipRecord("below_min_score", f"overall {overall:.3f} < {threshold}")


@dataclass
class ExportReport:
    output: Path
    format: str
    written: int = 0
    seen: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)


def export_sft(inputs: str | os.PathLike[str] | list[Trajectory], out_dir: str | os.PathLike[str], *,
               fmt: str = "openai", min_score: float | None = None, allow_unjudged: bool = False,
               tools_as: str = "json", thought: str = "think") -> ExportReport:
    """Export ``inputs`` (a judged.jsonl path or trajectories) to ``out_dir`` in ``fmt``."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown SFT format {fmt!r}: use one of {', '.join(FORMATS)}")
    if tools_as not in ("json", "list"):
        raise ConfigError(f"--tools-as must be 'json' or 'list', got {tools_as!r}")
    if thought not in ("think", "drop"):
        raise ConfigError(f"--thought must be 'think' or 'drop', got {thought!r}")
    if fmt == "hf" and tools_as != "json":
        raise ConfigError("the hf format keeps tools as a JSON string (Arrow would add null keys to a list)")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    out = Path(out_dir)
    if isinstance(inputs, str | os.PathLike):
        src = Path(inputs)
        if not src.exists():
            raise InputError("input file not found", path=str(src))
        trajs = read_outputs(src, Trajectory)
        input_name: str | None = str(src)
    else:
        trajs = iter(inputs)
        input_name = None
    report = ExportReport(output=out, format=fmt)
    records: list[dict[str, Any]] = []
    details: list[str] = []
    for traj in trajs:
        report.seen += 1
        try:
            check_judgement(traj, min_score=min_score, allow_unjudged=allow_unjudged)
            rec = sharegpt_record(traj, thought=thought) if fmt == "sharegpt" else openai_record(traj, tools_as=tools_as)
        except SkipRecord as e:
            report.skipped[e.reason] += 1
            if len(details) < 50:
                details.append(f"{traj.id}: {e.reason}: {e.detail}")
            continue
        records.append(rec)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        import datasets

        ds = datasets.Dataset.from_list(records) if records else datasets.Dataset.from_dict(
            {"id": [], "messages": [], "tools": []})
        ds.save_to_disk(str(out))
        report.files = ["dataset_info.json", "state.json", "data-*.arrow"]
    else:
        write_jsonl(out / "train.jsonl", records)
        report.files = ["train.jsonl"]
        if fmt == "sharegpt":
            write_json(out / "dataset_info.json", {DATASET_NAME: {
                "file_name": "train.jsonl", "formatting": "sharegpt",
                "columns": {"messages": "conversations", "system": "system", "tools": "tools"}}})
            report.files.append("dataset_info.json")
    report.written = len(records)
    skipped = sum(report.skipped.values())
    manifest = Manifest(
        stage="export.sft", stage_class="astra.export.sft.export_sft",
        config={"format": fmt, "min_score": min_score, "allow_unjudged": allow_unjudged, "tools_as": tools_as,
                "thought": thought},
        input=input_name, output=str(out), status="complete", started_at=started,
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        inputs_seen=report.seen, processed=report.seen, done=report.seen, accepted=report.written,
        rejected=skipped, outputs=report.written, rejections=skipped,
        rejections_by_reason=dict(sorted(report.skipped.items())), warnings=details,
    )
    write_json(out / MANIFEST, manifest)
    return report
