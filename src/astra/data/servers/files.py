"""Files: an in-memory file system of a small consulting team's shared drive.

Seed data: 16 text files under ``/docs``, ``/projects/atlas``, ``/projects/beacon``,
``/notes`` and ``/archive`` (meeting notes, a budget CSV, a project plan, a README, a
config file, a to-do list, ...) plus an empty ``/tmp`` directory. Paths are absolute and
POSIX-style. Nothing touches the real disk; timestamps are fixed and every write is
stamped 2026-03-02T09:00:00. Each ``FilesServer`` instance starts from its own copy.
"""

import copy
import posixpath
from typing import Literal, TypedDict

from astra.data.servers._tables import one_of
from astra.errors import ToolCallError

NOW = "2026-03-02T09:00:00"

_FILES: dict[str, dict] = {
    "/docs/handbook.md": {"modified": "2026-01-12T10:15:00", "content": (
        "# Team Handbook\n\nWorking hours are 9:00-17:00 local time.\n"
        "Expense reports are due on the 5th of each month.\nVacation requests go to Lena Ortiz.\n")},
    "/docs/onboarding_checklist.md": {"modified": "2026-02-03T08:40:00", "content": (
        "# Onboarding checklist\n- [ ] Laptop setup\n- [ ] VPN access\n- [ ] Read handbook.md\n"
        "- [ ] Meet your project lead\n")},
    "/docs/contacts.csv": {"modified": "2026-02-20T16:05:00", "content": (
        "name,role,email\nLena Ortiz,Operations,lena.ortiz@northgate.example\n"
        "Raj Patel,Project lead (Atlas),raj.patel@northgate.example\n"
        "Mei Tanaka,Project lead (Beacon),mei.tanaka@northgate.example\n")},
    "/projects/atlas/README.md": {"modified": "2026-02-14T11:30:00", "content": (
        "# Atlas\n\nMigration of the client's billing system to the cloud.\nClient: Harbor Freight Lines\n"
        "Deadline: 2026-04-30\nLead: Raj Patel\n")},
    "/projects/atlas/plan.md": {"modified": "2026-02-27T09:50:00", "content": (
        "# Atlas plan\n\n1. Inventory legacy services (done)\n2. Data migration dry run (2026-03-09)\n"
        "3. Cutover weekend (2026-04-25)\n4. Hypercare until 2026-04-30\n")},
    "/projects/atlas/budget.csv": {"modified": "2026-02-28T17:20:00", "content": (
        "item,amount_usd\nconsulting hours,84000\ncloud credits,12500\ntraining,4200\ncontingency,9000\n")},
    "/projects/atlas/meeting_2026-02-26.md": {"modified": "2026-02-26T15:00:00", "content": (
        "# Atlas sync 2026-02-26\n\nAttendees: Raj, Lena, client CTO\n"
        "Decision: dry run moves to 2026-03-09.\nAction: Raj to update plan.md.\n"
        "Risk: the invoice archive is 2 TB larger than estimated.\n")},
    "/projects/atlas/config.yaml": {"modified": "2026-02-18T12:00:00", "content": (
        "region: eu-west-1\ninstance_type: m7.large\nreplicas: 3\nbackup_retention_days: 35\n")},
    "/projects/beacon/README.md": {"modified": "2026-01-30T14:10:00", "content": (
        "# Beacon\n\nCustomer-feedback dashboard for a retail chain.\nClient: Larkspur Grocers\n"
        "Deadline: 2026-03-20\nLead: Mei Tanaka\n")},
    "/projects/beacon/requirements.md": {"modified": "2026-02-05T10:00:00", "content": (
        "# Requirements\n\n- Weekly sentiment chart per store\n- Export to PDF\n"
        "- Single sign-on with the client's identity provider\n")},
    "/projects/beacon/meeting_2026-02-19.md": {"modified": "2026-02-19T16:30:00", "content": (
        "# Beacon sync 2026-02-19\n\nAttendees: Mei, client product owner\n"
        "Decision: PDF export is out of scope for v1.\nAction: Mei to update requirements.md.\n")},
    "/notes/todo.txt": {"modified": "2026-03-01T18:45:00", "content": (
        "- send Atlas budget to finance\n- book train to client site on 2026-03-09\n"
        "- review Beacon requirements\n- renew VPN certificate\n")},
    "/notes/ideas.txt": {"modified": "2026-02-11T07:55:00", "content": (
        "Lunch-and-learn on cloud cost tracking.\nTemplate for client status reports.\n")},
    "/notes/passwords_policy.txt": {"modified": "2025-11-02T09:00:00", "content": (
        "Passwords must be 14+ characters and rotated yearly. Use the team password manager.\n")},
    "/archive/2025_annual_report.md": {"modified": "2026-01-05T13:00:00", "content": (
        "# 2025 annual report\n\nRevenue: $1.84M\nProjects delivered: 7\nClient satisfaction: 4.6/5\n")},
    "/archive/old_budget_2025.csv": {"modified": "2025-12-31T23:00:00", "content": (
        "item,amount_usd\nconsulting hours,610000\ntravel,38000\n")},
}

_EMPTY_DIRS = ["/tmp"]


class DirEntry(TypedDict):
    path: str
    name: str
    type: str
    size_bytes: int


class FileContent(TypedDict):
    path: str
    content: str
    size_bytes: int
    line_count: int
    truncated: bool


class WriteResult(TypedDict):
    path: str
    size_bytes: int
    created: bool
    mode: str
    modified: str


class SearchHit(TypedDict):
    path: str
    match_type: str
    line_number: int | None
    line: str | None


class FileInfo(TypedDict):
    path: str
    name: str
    type: str
    extension: str | None
    size_bytes: int
    line_count: int | None
    entry_count: int | None
    modified: str | None


class MoveResult(TypedDict):
    old_path: str
    path: str
    size_bytes: int
    overwritten: bool


class DeleteResult(TypedDict):
    path: str
    type: str
    deleted: bool
    size_bytes: int


def _norm(path: str, field: str = "path") -> str:
    p = str(path or "").strip()
    if not p.startswith("/"):
        raise ToolCallError(f"{field} {path!r} must be an absolute path starting with '/', e.g. '/notes/todo.txt'.")
    if ".." in p.split("/"):
        raise ToolCallError(f"{field} {path!r} may not contain '..' segments.")
    p = posixpath.normpath(p)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return p


def _size(content: str) -> int:
    return len(content.encode("utf-8"))


class FilesServer:
    """An in-memory shared drive of a consulting team with project folders, notes and documents.
    List directories, read, write, search, inspect, move and delete text files addressed by
    absolute paths such as '/projects/atlas/plan.md'."""

    name = "files"
    title = "Files"
    domain = "productivity"

    def __init__(self) -> None:
        self._files: dict[str, dict] = copy.deepcopy(_FILES)
        self._dirs: set[str] = set(_EMPTY_DIRS)
        for p in self._files:
            self._add_parents(p)

    # ------------------------------------------------------------------ helpers

    def _add_parents(self, path: str) -> None:
        parent = posixpath.dirname(path)
        while parent not in ("/", ""):
            self._dirs.add(parent)
            parent = posixpath.dirname(parent)

    def _is_dir(self, path: str) -> bool:
        return path == "/" or path in self._dirs

    def _file(self, path: str) -> tuple[str, dict]:
        p = _norm(path)
        if p in self._files:
            return p, self._files[p]
        if self._is_dir(p):
            raise ToolCallError(f"{p} is a directory, not a file; use list_dir to see its contents.")
        raise ToolCallError(f"No such file: {p}. Use list_dir or search_files to find existing paths.")

    def _children(self, d: str) -> list[str]:
        prefix = d.rstrip("/") + "/"
        names = {p for p in list(self._files) + list(self._dirs) if p.startswith(prefix) and p != d}
        return sorted(names)

    def _entry(self, p: str) -> DirEntry:
        if p in self._files:
            return {"path": p, "name": posixpath.basename(p), "type": "file",
                    "size_bytes": _size(self._files[p]["content"])}
        return {"path": p, "name": posixpath.basename(p), "type": "directory", "size_bytes": 0}

    # ------------------------------------------------------------------ tools

    def list_dir(self, path: str = "/", recursive: bool = False) -> list[DirEntry]:
        """List the files and directories inside a directory.

        Returns one entry per child with its absolute path, name, type (file or directory)
        and size in bytes, sorted by path.

        Args:
            path: Absolute path of the directory to list, e.g. '/projects/atlas'; defaults to the root '/'.
            recursive: If true, include everything below the directory, not just direct children.

        Returns:
            A list of directory entries.
        """
        d = _norm(path)
        if d in self._files:
            raise ToolCallError(f"{d} is a file, not a directory; use read_file or file_info instead.")
        if not self._is_dir(d):
            raise ToolCallError(f"No such directory: {d}. Top-level directories: "
                                f"{', '.join(c for c in self._children('/') if c.count('/') == 1)}.")
        below = self._children(d)
        if not recursive:
            depth = 1 if d == "/" else d.count("/") + 1
            below = [p for p in below if p.count("/") == depth]
        return [self._entry(p) for p in below]

    def read_file(self, path: str, max_chars: int | None = None) -> FileContent:
        """Read the text content of a file.

        Returns the content (optionally cut to max_chars characters), its size in bytes and
        number of lines.

        Args:
            path: Absolute path of the file, e.g. '/notes/todo.txt', as returned by list_dir or search_files.
            max_chars: Return at most this many characters of the content; omit for the whole file.

        Returns:
            The file's content.
        """
        p, f = self._file(path)
        content = f["content"]
        truncated = False
        if max_chars is not None:
            if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
                raise ToolCallError(f"max_chars must be a positive integer, got {max_chars!r}.")
            truncated = len(content) > max_chars
            content = content[:max_chars]
        return {"path": p, "content": content, "size_bytes": _size(f["content"]),
                "line_count": len(f["content"].splitlines()), "truncated": truncated}

    def write_file(self, path: str, content: str,
                   mode: Literal["create", "overwrite", "append"] = "create") -> WriteResult:
        """Write text to a file, creating missing parent directories.

        'create' fails if the file exists, 'overwrite' replaces it, 'append' adds to its end
        (creating it if needed). Returns the file's path and new size.

        Args:
            path: Absolute path of the file to write, e.g. '/notes/summary.md'.
            content: Text to write (UTF-8).
            mode: How to treat an existing file at the path.

        Returns:
            The result of the write.
        """
        p = _norm(path)
        if p == "/" or self._is_dir(p):
            raise ToolCallError(f"{p} is a directory; give a file path such as '{p.rstrip('/')}/new.txt'.")
        one_of("mode", mode, ("create", "overwrite", "append"))
        parent = posixpath.dirname(p)
        while parent not in ("/", ""):
            if parent in self._files:
                raise ToolCallError(f"Cannot create {p}: {parent} is a file, not a directory.")
            parent = posixpath.dirname(parent)
        if not isinstance(content, str):
            raise ToolCallError(f"content must be a string, got {type(content).__name__}.")
        exists = p in self._files
        if exists and mode == "create":
            raise ToolCallError(f"{p} already exists; use mode 'overwrite' or 'append' to change it.")
        new = (self._files[p]["content"] + content) if (exists and mode == "append") else content
        self._files[p] = {"content": new, "modified": NOW}
        self._add_parents(p)
        return {"path": p, "size_bytes": _size(new), "created": not exists, "mode": mode, "modified": NOW}

    def search_files(self, query: str, path: str = "/", search_content: bool = True) -> list[SearchHit]:
        """Search file names and contents below a directory (case-insensitive).

        Returns one hit per matching file name and per matching line, with the line number
        and text for content matches.

        Args:
            query: Text to look for, e.g. 'budget' or 'deadline'.
            path: Absolute path of the directory to search in, e.g. '/projects'; defaults to everything.
            search_content: If false, match file names only.

        Returns:
            A list of hits, ordered by path and line number; empty when nothing matches.
        """
        q = str(query or "").strip().lower()
        if not q:
            raise ToolCallError("query must not be empty.")
        d = _norm(path)
        if not self._is_dir(d):
            raise ToolCallError(f"No such directory: {d}.")
        prefix = d.rstrip("/") + "/"
        hits: list[SearchHit] = []
        for p in sorted(self._files):
            if not p.startswith(prefix):
                continue
            if q in posixpath.basename(p).lower():
                hits.append({"path": p, "match_type": "name", "line_number": None, "line": None})
            if search_content:
                for i, line in enumerate(self._files[p]["content"].splitlines(), start=1):
                    if q in line.lower():
                        hits.append({"path": p, "match_type": "content", "line_number": i, "line": line})
        return hits

    def file_info(self, path: str) -> FileInfo:
        """Get metadata about a file or directory.

        Returns its type, extension, size in bytes, line count (files), number of entries
        (directories) and last-modified timestamp.

        Args:
            path: Absolute path of a file or directory, e.g. '/projects/atlas/budget.csv'.

        Returns:
            The metadata record.
        """
        p = _norm(path)
        if p in self._files:
            f = self._files[p]
            ext = posixpath.splitext(p)[1].lstrip(".") or None
            return {"path": p, "name": posixpath.basename(p), "type": "file", "extension": ext,
                    "size_bytes": _size(f["content"]), "line_count": len(f["content"].splitlines()),
                    "entry_count": None, "modified": f["modified"]}
        if self._is_dir(p):
            depth = 1 if p == "/" else p.count("/") + 1
            n = sum(1 for c in self._children(p) if c.count("/") == depth)
            return {"path": p, "name": posixpath.basename(p) or "/", "type": "directory", "extension": None,
                    "size_bytes": 0, "line_count": None, "entry_count": n, "modified": None}
        raise ToolCallError(f"No such file or directory: {p}.")

    def move_file(self, path: str, destination: str, overwrite: bool = False) -> MoveResult:
        """Move or rename a file.

        If destination is an existing directory the file keeps its name inside it. Returns
        the old and new paths.

        Args:
            path: Absolute path of the file to move, e.g. '/notes/ideas.txt'.
            destination: New absolute file path, or an existing directory such as '/archive'.
            overwrite: If true, replace a file already at the destination.

        Returns:
            The result of the move.
        """
        src, f = self._file(path)
        dst = _norm(destination, "destination")
        if self._is_dir(dst):
            dst = posixpath.join(dst, posixpath.basename(src))
        if dst == src:
            raise ToolCallError(f"destination {dst} is the same as the source path.")
        parent = posixpath.dirname(dst)
        if parent != "/" and not self._is_dir(parent):
            raise ToolCallError(f"Parent directory {parent} of destination does not exist.")
        existed = dst in self._files
        if existed and not overwrite:
            raise ToolCallError(f"{dst} already exists; pass overwrite=true to replace it.")
        self._files[dst] = f
        del self._files[src]
        return {"old_path": src, "path": dst, "size_bytes": _size(f["content"]), "overwritten": existed}

    def delete_file(self, path: str) -> DeleteResult:
        """Delete a file or an empty directory.

        Non-empty directories cannot be deleted. Returns what was deleted and its size.

        Args:
            path: Absolute path of the file or empty directory to delete, e.g. '/tmp/draft.txt'.

        Returns:
            The result of the deletion.
        """
        p = _norm(path)
        if p in self._files:
            size = _size(self._files.pop(p)["content"])
            return {"path": p, "type": "file", "deleted": True, "size_bytes": size}
        if p == "/":
            raise ToolCallError("The root directory cannot be deleted.")
        if p in self._dirs:
            if self._children(p):
                raise ToolCallError(f"Directory {p} is not empty ({len(self._children(p))} entries below it); "
                                    f"delete or move its files first.")
            self._dirs.discard(p)
            return {"path": p, "type": "directory", "deleted": True, "size_bytes": 0}
        raise ToolCallError(f"No such file or directory: {p}.")
