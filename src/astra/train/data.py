"""Loading SFT data for ``astra train sft``.

Accepted inputs (``--data``):

- a directory written by ``astra export sft`` in any of its formats, detected from its files:
  ``hf`` (``save_to_disk``: ``state.json`` / ``dataset_dict.json``), ``sharegpt``
  (``dataset_info.json`` with ``"formatting": "sharegpt"``; converted back to OpenAI
  messages) and ``openai`` (``train.jsonl``);
- a JSONL file of ``{"messages": [...], "tools": [...] | "<json>"}`` records (OpenAI chat
  messages with ``tool_calls`` and ``tool`` messages) or of ShareGPT records.

Every record is normalized to ``{"id", "messages", "tools"}`` with tool-call ``arguments``
as JSON **strings** and ``tools`` as a JSON **string** of the OpenAI tools list: Arrow
(``datasets``) unifies dict columns across rows and would add null keys to every call's
arguments and every tool's parameters; the chat template passes string arguments through
and TRL's ``SFTTrainer`` decodes a string ``tools`` column itself. Malformed data raises
:class:`~astra.errors.InputError` naming the file and line (or dataset row).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astra.errors import InputError
from astra.io import iter_json_lines

ROLES = ("system", "user", "assistant", "tool")
_THINK = re.compile(r"^\s*<think>\s*(.*?)\s*</think>\s*", re.DOTALL)


# ---------------------------------------------------------------------------------
# normalization
# ---------------------------------------------------------------------------------


def _args_string(value: Any, *, where: str) -> str:
    """Tool-call arguments as a JSON string of an object."""
    if value is None:
        return "{}"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        try:
            obj = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: arguments are not valid JSON ({e.msg}): {value[:120]!r}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: arguments must be a JSON object, got {type(obj).__name__}")
        return value
    raise ValueError(f"{where}: arguments must be a JSON string or an object, got {type(value).__name__}")


def _tools_list(value: Any) -> list[dict[str, Any]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"'tools' is a string but not JSON ({e.msg})") from None
    if not isinstance(value, list):
        raise ValueError(f"'tools' must be a list of tools, got {type(value).__name__}")
    tools = []
    for i, t in enumerate(value):
        if not isinstance(t, dict):
            raise ValueError(f"tools[{i}] must be an object")
        fn = t.get("function", t)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ValueError(f"tools[{i}] has no function name")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        tools.append({"type": "function", "function": {
            "name": fn["name"], "description": fn.get("description") or "", "parameters": params}})
    return tools


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI chat messages with uniform keys; arguments as JSON strings. Raises ValueError."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    out: list[dict[str, Any]] = []
    n_assistant = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}] must be an object")
        role = m.get("role")
        if role not in ROLES:
            raise ValueError(f"messages[{i}]: unknown role {role!r} (expected one of {', '.join(ROLES)})")
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            if role == "tool":
                content = json.dumps(content, ensure_ascii=False)
            else:
                raise ValueError(f"messages[{i}]: content must be a string or null")
        msg: dict[str, Any] = {"role": role, "content": content, "tool_calls": None, "tool_call_id": None}
        if role == "assistant":
            calls = []
            for j, tc in enumerate(m.get("tool_calls") or []):
                where = f"messages[{i}].tool_calls[{j}]"
                if not isinstance(tc, dict):
                    raise ValueError(f"{where} must be an object")
                fn = tc.get("function", tc)
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                    raise ValueError(f"{where}: missing function name")
                calls.append({"id": str(tc.get("id") or f"call_{i}_{j}"), "type": "function",
                              "function": {"name": fn["name"],
                                           "arguments": _args_string(fn.get("arguments"), where=where)}})
            if not calls and not content:
                raise ValueError(f"messages[{i}]: assistant message with neither content nor tool calls")
            msg["tool_calls"] = calls or None
            n_assistant += 1
        elif role == "tool":
            msg["content"] = content or ""
            msg["tool_call_id"] = str(m.get("tool_call_id") or "")
        else:
            msg["content"] = content or ""
        out.append(msg)
    if not n_assistant:
        raise ValueError("no assistant message (nothing to train on)")
    return out


def sharegpt_to_openai(rec: dict[str, Any]) -> dict[str, Any]:
    """A LLaMA-Factory ShareGPT record (as ``astra export sft --format sharegpt`` writes it)
    back to OpenAI messages. Parallel results joined into one observation are split by line
    when there is one line per call."""
    conv = rec.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise ValueError("'conversations' must be a non-empty list")
    messages: list[dict[str, Any]] = []
    if rec.get("system"):
        messages.append({"role": "system", "content": rec["system"]})
    pending: list[str] = []
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise ValueError(f"conversations[{i}] must be an object with a string 'value'")
        kind, value = turn.get("from"), turn["value"]
        if kind in ("human", "user"):
            messages.append({"role": "user", "content": value})
        elif kind in ("gpt", "assistant"):
            messages.append({"role": "assistant", "content": value})
        elif kind == "function_call":
            content = None
            if (think := _THINK.match(value)) is not None:
                content, value = think.group(1), value[think.end():]
            try:
                obj = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"conversations[{i}]: function_call is not JSON ({e.msg})") from None
            objs = obj if isinstance(obj, list) else [obj]
            pending = [f"call_{i}_{j}" for j in range(len(objs))]
            calls = []
            for cid, c in zip(pending, objs, strict=True):
                if not isinstance(c, dict) or not c.get("name"):
                    raise ValueError(f"conversations[{i}]: function_call without a name")
                calls.append({"id": cid, "type": "function",
                              "function": {"name": c["name"], "arguments": c.get("arguments", {})}})
            messages.append({"role": "assistant", "content": content, "tool_calls": calls})
        elif kind in ("observation", "tool"):
            if not pending:
                raise ValueError(f"conversations[{i}]: observation without a preceding function_call")
            parts = value.split("\n") if len(pending) > 1 else [value]
            if len(parts) != len(pending):
                raise ValueError(f"conversations[{i}]: {len(pending)} parallel calls but the observation has "
                                 f"{len(parts)} lines (cannot pair results with calls)")
            messages += [{"role": "tool", "tool_call_id": cid, "content": part}
                         for cid, part in zip(pending, parts, strict=True)]
            pending = []
        else:
            raise ValueError(f"conversations[{i}]: unknown turn kind {kind!r}")
    return {"id": rec.get("id"), "messages": messages, "tools": rec.get("tools")}


def normalize_record(rec: Any) -> dict[str, Any]:
    """One training record ``{"id", "messages", "tools"}`` (``tools`` a JSON string)."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    if "messages" not in rec and "conversations" in rec:
        rec = sharegpt_to_openai(rec)
    if "messages" not in rec:
        raise ValueError("no 'messages' (expected OpenAI chat messages, or ShareGPT 'conversations')")
    messages = normalize_messages(rec["messages"])
    tools = _tools_list(rec.get("tools"))
    return {"id": str(rec.get("id") or ""), "messages": messages,
            "tools": json.dumps(tools, ensure_ascii=False)}


# ---------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------


@dataclass
class SFTData:
    records: list[dict[str, Any]]
    source: str
    format: str  # "openai-jsonl" | "sharegpt" | "hf"


def _load_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Records of a JSONL file, and whether they were ShareGPT."""
    records, sharegpt = [], False
    for lineno, obj in iter_json_lines(path):
        sharegpt = sharegpt or (isinstance(obj, dict) and "conversations" in obj and "messages" not in obj)
        try:
            records.append(normalize_record(obj))
        except ValueError as e:
            raise InputError(str(e), path=str(path), line=lineno) from None
    return records, sharegpt


def _load_hf(path: Path) -> list[dict[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as e:
        raise InputError(f"cannot load the dataset saved there: {e}", path=str(path)) from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise InputError(f"dataset dict without a 'train' split (splits: {', '.join(ds)})", path=str(path))
        ds = ds["train"]
    records = []
    for i, row in enumerate(ds):
        try:
            records.append(normalize_record(row))
        except ValueError as e:
            raise InputError(f"row {i}: {e}", path=str(path)) from None
    return records


def load_sft_data(path: str | Path) -> SFTData:
    """Load SFT data from an ``astra export sft`` directory (any format) or a JSONL file."""
    p = Path(path)
    if not p.exists():
        raise InputError("SFT data not found (expected an `astra export sft` directory or a JSONL file)",
                         path=str(p))
    if p.is_dir():
        if (p / "state.json").exists() or (p / "dataset_dict.json").exists():
            records, fmt = _load_hf(p), "hf"
        else:
            fmt, name = "openai-jsonl", "train.jsonl"
            info = p / "dataset_info.json"
            if info.exists():
                try:
                    entries = json.loads(info.read_text("utf-8"))
                except json.JSONDecodeError as e:
                    raise InputError(f"invalid JSON ({e.msg})", path=str(info)) from None
                entry: dict[str, Any] = next(iter(entries.values()), {}) if isinstance(entries, dict) else {}
                if entry.get("formatting") == "sharegpt":
                    fmt, name = "sharegpt", entry.get("file_name", name)
            if not (p / name).exists():
                raise InputError(f"no {name} here: not an `astra export sft` directory", path=str(p))
            records, sharegpt = _load_jsonl(p / name)
            fmt = "sharegpt" if sharegpt else fmt
    else:
        records, sharegpt = _load_jsonl(p)
        fmt = "sharegpt" if sharegpt else "openai-jsonl"
    if not records:
        raise InputError("no training records", path=str(p))
    return SFTData(records=records, source=str(p), format=fmt)


def load_sft_sources(paths: Path | str | Sequence[Path | str]) -> SFTData:
    """Load and concatenate several SFT sources (each as :func:`load_sft_data` reads it),
    e.g. exported trajectories plus ``astra train demos`` environment demonstrations."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise InputError("no SFT data given", path="--data")
    parts = [load_sft_data(p) for p in items]
    if len(parts) == 1:
        return parts[0]
    formats = list(dict.fromkeys(d.format for d in parts))
    return SFTData(records=[r for d in parts for r in d.records], source=", ".join(d.source for d in parts),
                   format="+".join(formats))


# ---------------------------------------------------------------------------------
# length check and split
# ---------------------------------------------------------------------------------


def render(tokenizer: Any, record: dict[str, Any], **kwargs: Any) -> str:
    return tokenizer.apply_chat_template(record["messages"], tools=json.loads(record["tools"]) or None,
                                         tokenize=False, **kwargs)


def token_length(tokenizer: Any, record: dict[str, Any]) -> int:
    return len(tokenizer(render(tokenizer, record), add_special_tokens=False)["input_ids"])


def _content_key(record: dict[str, Any], seed: int) -> bytes:
    canon = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"astra.sft/{seed}/{canon}".encode()).digest()


@dataclass
class PreparedData:
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


#: Dropping more than this share of the conversations for length is an error unless allowed.
MAX_DROP_FRACTION = 0.10


def prepare_records(records: list[dict[str, Any]], tokenizer: Any, *, max_length: int | None,
                    overlong: str = "drop", eval_fraction: float = 0.1, seed: int = 0,
                    allow_drop: bool = False) -> PreparedData:
    """Measure token lengths, drop (or mark for truncation) conversations over
    ``max_length``, and split off a held-out set of ``eval_fraction``. Both sides come in
    a seeded order that depends on each record's content only, so the result does not
    depend on the order of ``records``. Dropping more than :data:`MAX_DROP_FRACTION` of
    the conversations is an error unless ``allow_drop``."""
    if overlong not in ("drop", "truncate"):
        raise ValueError(f"overlong must be 'drop' or 'truncate', got {overlong!r}")
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval fraction must be in [0, 1), got {eval_fraction}")
    lengths = [token_length(tokenizer, r) for r in records]
    over = [i for i, n in enumerate(lengths) if max_length is not None and n > max_length]
    keep = [i for i in range(len(records)) if overlong == "truncate" or i not in set(over)]
    if not keep:
        raise InputError(f"all {len(records)} conversations are longer than max_length={max_length} tokens "
                         f"(shortest {min(lengths)}): raise --max-length or use --overlong truncate")
    if overlong == "drop" and over and len(over) > MAX_DROP_FRACTION * len(records) and not allow_drop:
        raise InputError(f"{len(over)} of {len(records)} conversations ({len(over) / len(records):.0%}) are longer "
                         f"than max_length={max_length} tokens (longest {max(lengths)}): raise --max-length, "
                         f"use --overlong truncate, or pass --allow-drop to train on the rest")
    # a seeded order from each record's content, not its position: the same records give
    # the same split and the same training order whatever order the sources list them in
    # (parallel stages write records in completion order)
    order = sorted(keep, key=lambda i: _content_key(records[i], seed))
    n_eval = 0
    if eval_fraction > 0 and len(order) >= 2:
        n_eval = min(len(order) - 1, max(1, round(len(order) * eval_fraction)))
    eval_idx, train_idx = order[:n_eval], order[n_eval:]
    kept_lengths = [lengths[i] for i in keep]
    stats = {
        "records": len(records), "train": len(train_idx), "eval": len(eval_idx),
        "overlong": len(over), "overlong_policy": overlong,
        "dropped_overlong": len(over) if overlong == "drop" else 0,
        "truncated": len(over) if overlong == "truncate" else 0,
        "max_length": max_length,
        "tokens_total": sum(kept_lengths), "tokens_mean": round(sum(kept_lengths) / len(kept_lengths), 1),
        "tokens_max": max(kept_lengths),
        "assistant_turns": sum(sum(m["role"] == "assistant" for m in records[i]["messages"]) for i in keep),
        "tool_calls": sum(len(m["tool_calls"] or []) for i in keep for m in records[i]["messages"]),
    }
    return PreparedData(train=[records[i] for i in train_idx], eval=[records[i] for i in eval_idx], stats=stats)


def to_dataset(records: list[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` with columns ``id``, ``messages``, ``tools`` (strings kept)."""
    import datasets

    return datasets.Dataset.from_list(records)
