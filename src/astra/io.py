"""JSONL reading and writing with atomic appends and schema versioning.

Appends go through one ``os.write`` on an ``O_APPEND`` descriptor per batch of lines, so a
process killed at any moment leaves at most one torn final line, which
:func:`repair_jsonl` removes on the next open. Whole-file rewrites go through a temporary
file and ``os.replace``.

Reading never ends in a traceback on bad bytes: a line that is not UTF-8, not JSON, or
nested deeper than :data:`MAX_JSON_DEPTH` raises :class:`~astra.errors.InputError` naming
the file and line (:func:`parse_json_line` is the one place that decides). Writing turns
the operating system's refusals (a parent path that is a file, a read-only directory, a
full disk) into :class:`~astra.errors.OutputError` lines that say what to do
(:func:`wrap_os_errors`, :func:`os_error_message`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from astra.errors import AstraError, InputError, OutputError, SchemaVersionError
from astra.types import SCHEMA_VERSION

M = TypeVar("M", bound=BaseModel)

#: The deepest nesting of arrays/objects a record may have. Real records (tool schemas,
#: trajectories, environments) stay far below it; deeper data is refused with a clear
#: error instead of exhausting the interpreter's or pydantic's recursion limits.
MAX_JSON_DEPTH = 100

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space (or write elsewhere with -o) and rerun the same "
                  "command; a stage resumes where it stopped",
    errno.EDQUOT: "the disk quota is exhausted: free some space (or write elsewhere with -o) and rerun",
    errno.EROFS: "the file system is read-only: choose a writable output path (-o)",
    errno.EACCES: "permission denied: choose an output path you can write (-o)",
    errno.EPERM: "operation not permitted: choose an output path you can write (-o)",
    errno.ENOTDIR: "a parent of this path is a file, not a directory: choose another output path (-o)",
    errno.EEXIST: "a file of that name is in the way where a directory is needed: choose another output "
                  "path (-o)",
    errno.EISDIR: "this is a directory, a file was expected",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ENOENT: "cannot create it there: choose another output path (-o)",
}


def os_error_message(e: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """One line for an :class:`OSError`: the path, what went wrong and what to do."""
    where = e.filename if e.filename is not None else path
    hint = _HINTS.get(e.errno or -1) or (e.strerror or str(e))
    reason = e.strerror or type(e).__name__
    return f"{where}: {reason} — {hint}" if where is not None and hint != reason else (
        f"{where}: {reason}" if where is not None else f"{reason} — {hint}")


@contextlib.contextmanager
def wrap_os_errors(path: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Turn an :class:`OSError` raised inside the block into an :class:`OutputError`
    (one clear line; ``path`` names the file when the error does not)."""
    try:
        yield
    except AstraError:
        raise
    except OSError as e:
        raise OutputError(os_error_message(e, path)) from None


def ensure_parent(path: str | os.PathLike[str]) -> None:
    """Create the directory ``path`` goes in; a parent that is a file is a clear error."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        # Path.mkdir re-raises FileExistsError when a component exists and is not a directory
        blocker = next((p for p in [parent, *parent.parents] if p.exists() and not p.is_dir()), parent)
        raise OutputError(f"{blocker}: is a file, not a directory — cannot write {path} under it: "
                          "choose another output path (-o)") from None
    except NotADirectoryError:
        blocker = next((p for p in parent.parents if p.exists() and not p.is_dir()), parent)
        raise OutputError(f"{blocker}: is a file, not a directory — cannot write {path} under it: "
                          "choose another output path (-o)") from None


def json_depth(obj: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a JSON value (scalars 0), counted without recursion; stops
    counting once past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((c, depth) for c in children)
    return deepest


def parse_json_line(raw: bytes | str, *, path: str, line: int | None = None,
                    max_depth: int | None = MAX_JSON_DEPTH) -> Any:
    """Decode one JSON document (a JSONL line or a whole ``.json`` file): UTF-8, valid
    JSON, at most ``max_depth`` deep (``None``: only the interpreter's limit). Raises
    :class:`InputError` naming ``path``:``line`` (for a whole file, the line of a syntax
    error)."""
    if isinstance(raw, bytes):
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError("UTF-16 text: save the file as UTF-8", path=path, line=line)
        if b"\x00" in raw:
            raise InputError("binary data (NUL bytes), not JSON text: is this the right file?",
                             path=path, line=line)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}): "
                             "save the file as UTF-8", path=path, line=line) from None
    else:
        text = raw
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte order mark
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg  # "Invalid control character at"
        raise InputError(f"invalid JSON ({msg} at column {e.colno})", path=path,
                         line=e.lineno if line is None else line) from None
    except RecursionError:
        raise InputError("JSON nested too deep for the parser", path=path, line=line) from None
    except ValueError as e:  # e.g. an integer literal longer than Python converts
        raise InputError(f"invalid JSON ({str(e).split(':')[0]})", path=path, line=line) from None
    if max_depth is not None and json_depth(obj, max_depth) > max_depth:
        raise InputError(f"JSON nested too deep (more than {max_depth} levels)", path=path, line=line)
    return obj


def read_text_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an input file; a missing or unreadable file is an :class:`InputError`."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=str(p)) from None
    except IsADirectoryError:
        raise InputError("is a directory, a file was expected", path=str(p)) from None
    except OSError as e:
        raise InputError(e.strerror or str(e), path=str(p)) from None


def _utf8_safe(text: str, obj: Any, **kw: Any) -> str:
    """``text`` when it encodes as UTF-8; else ``obj`` again with every non-ASCII character
    escaped (a lone surrogate from a ``\\udXXX`` escape then round-trips exactly)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, **kw)
    return text


def dumps(obj: Any) -> str:
    """One compact JSON line (no newline). Pydantic models are dumped in JSON mode."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    kw: dict[str, Any] = {"separators": (",", ":"), "default": str}
    return _utf8_safe(json.dumps(obj, ensure_ascii=False, **kw), obj, **kw)


def append_lines(path: str | Path, objs: Iterable[Any], *, fsync: bool = False) -> None:
    """Append records as JSON lines in a single write (all or nothing against a kill)."""
    data = "".join(dumps(o) + "\n" for o in objs).encode("utf-8")
    if not data:
        return
    path = Path(path)
    ensure_parent(path)
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
    ensure_parent(path)
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise OutputError(f"{path}: is {kind} — choose an output file path (-o)")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        e.filename = str(path)  # name the file being written, not the temporary one
        raise
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            e.filename = str(path)
        raise


def write_jsonl(path: str | Path, objs: Iterable[Any]) -> int:
    """Write a whole JSONL file atomically; returns the number of lines."""
    lines = [dumps(o) for o in objs]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_json(path: str | Path, obj: Any) -> None:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    kw: dict[str, Any] = {"indent": 2, "default": str}
    write_atomic(path, _utf8_safe(json.dumps(obj, ensure_ascii=False, **kw), obj, **kw) + "\n")


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


def iter_raw_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, bytes)`` of the non-blank lines of a JSONL file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=str(path))
    if path.is_dir():
        raise InputError("is a directory, a JSONL file was expected", path=str(path))
    try:
        f = path.open("rb")
    except OSError as e:
        raise InputError(e.strerror or str(e), path=str(path)) from None
    with f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield lineno, line


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, obj)``; raises :class:`InputError` naming the bad line."""
    for lineno, raw in iter_raw_lines(path):
        yield lineno, parse_json_line(raw, path=str(path), line=lineno)


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


#: The command that writes each record type, for "wrong kind of file" messages.
WRITTEN_BY = {
    "ToolServer": "astra tools ingest",
    "ToolGraph": "astra graph build",
    "Chain": "astra graph chains / astra graph verify",
    "Task": "astra tasks generate / augment / score",
    "Trajectory": "astra rollout (then astra judge)",
    "QAInstance": "astra envs decompose / validate",
    "Environment": "astra envs synthesize",
}


def _kind_of(obj: Any) -> str | None:
    """Which astra record type a JSON object looks like (by its telling fields)."""
    if not isinstance(obj, dict):
        return None
    keys = set(obj)
    guesses = [  # most specific first
        ("Environment", {"instance", "tools"}), ("Trajectory", {"messages", "task_id"}),
        ("QAInstance", {"question", "sub_tasks"}), ("Task", {"query", "target_tools"}),
        ("ToolGraph", {"server", "nodes"}), ("Chain", {"server", "tools"}), ("ToolServer", {"name", "tools"}),
    ]
    for name, need in guesses:
        if need <= keys:
            return name
    return None


def record_error(e: ValidationError, obj: Any, model: type[BaseModel], *, path: str, line: int) -> InputError:
    """An :class:`InputError` for a line that is not a ``model``: names the field and, when
    the line looks like another record type, the file that was expected instead."""
    err = e.errors()[0]
    loc, msg = validation_message(e)
    want = model.__name__
    if err.get("type") == "missing":
        msg = f"missing field '{loc}' of a {want} record"
    else:
        msg = f"{msg} (a {want} record)"
    got = _kind_of(obj)
    if got is not None and got != want:
        maker = WRITTEN_BY.get(want)
        msg += (f"; this line looks like a {got} record (written by {WRITTEN_BY.get(got, 'another stage')}), "
                f"but this command reads {want} records" + (f", as `{maker}` writes them" if maker else ""))
    return InputError(msg, path=path, line=line, field=loc)


def read_records(path: str | Path, model: type[M]) -> Iterator[M]:
    """Read and validate records of ``model``; the first bad line raises InputError."""
    for lineno, obj in iter_json_lines(path):
        check_version(obj, path=str(path), line=lineno)
        try:
            yield model.model_validate(obj)
        except ValidationError as e:
            raise record_error(e, obj, model, path=str(path), line=lineno) from None


def load_records(path: str | Path, model: type[M]) -> list[M]:
    return list(read_records(path, model))
