"""JSONL reading and writing with atomic appends and schema versioning.

Appends go through one ``os.write`` on an ``O_APPEND`` descriptor per batch of lines, so a
process killed at any moment leaves at most one torn final line, which
:func:`repair_jsonl` removes on the next open. Whole-file rewrites go through a temporary
file and ``os.replace``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from astra.errors import InputError, SchemaVersionError
from astra.types import SCHEMA_VERSION

M = TypeVar("M", bound=BaseModel)


def dumps(obj: Any) -> str:
    """One compact JSON line (no newline). Pydantic models are dumped in JSON mode."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def append_lines(path: str | Path, objs: Iterable[Any], *, fsync: bool = False) -> None:
    """Append records as JSON lines in a single write (all or nothing against a kill)."""
    data = "".join(dumps(o) + "\n" for o in objs).encode("utf-8")
    if not data:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temp file in the same dir + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | Path, objs: Iterable[Any]) -> int:
    """Write a whole JSONL file atomically; returns the number of lines."""
    lines = [dumps(o) for o in objs]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_json(path: str | Path, obj: Any) -> None:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def repair_jsonl(path: str | Path) -> int:
    """Drop a torn (unterminated or unparsable) final line left by a killed writer.

    Returns the number of bytes removed.
    """
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data:
        return 0
    keep = len(data)
    if not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
    else:
        last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
        try:
            json.loads(data[last_start:])
        except ValueError:
            keep = last_start
    if keep == len(data):
        return 0
    write_atomic(path, data[:keep].decode("utf-8", errors="replace"))
    return len(data) - keep


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, obj)``; raises :class:`InputError` naming the bad line."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    with path.open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"invalid JSON ({e.msg} at column {e.colno})", path=str(path),
                                 line=lineno) from None


def check_version(obj: Any, *, path: str, line: int) -> None:
    if isinstance(obj, dict):
        v = obj.get("schema_version", SCHEMA_VERSION)
        if isinstance(v, int) and v > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"record has schema_version {v}, this astra reads up to {SCHEMA_VERSION}; "
                "upgrade astra to read it",
                path=path, line=line, field="schema_version",
            )


def validation_message(e: ValidationError) -> tuple[str, str]:
    """(field path, message) of the first validation error."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ())) or "<record>"
    return loc, err.get("msg", str(e))


def read_records(path: str | Path, model: type[M]) -> Iterator[M]:
    """Read and validate records of ``model``; the first bad line raises InputError."""
    for lineno, obj in iter_json_lines(path):
        check_version(obj, path=str(path), line=lineno)
        try:
            yield model.model_validate(obj)
        except ValidationError as e:
            loc, msg = validation_message(e)
            raise InputError(msg, path=str(path), line=lineno, field=loc) from None


def load_records(path: str | Path, model: type[M]) -> list[M]:
    return list(read_records(path, model))
