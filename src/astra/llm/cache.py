"""Persistent response cache keyed by the full request.

One SQLite file (WAL mode) shared by threads and processes. Only successful responses are
stored, so a rerun of a stage makes zero provider calls for everything that succeeded and
retries only what failed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from astra.llm.types import ChatResponse


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False,
                                     isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL,"
            " created REAL NOT NULL)"
        )

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            row = self._conn.execute("SELECT response FROM responses WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        resp = ChatResponse.model_validate_json(row[0])
        resp.cached = True
        return resp

    def put(self, key: str, response: ChatResponse) -> None:
        blob = response.model_copy(update={"cached": False}).model_dump_json()
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO responses VALUES (?,?,?)", (key, blob, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __getstate__(self):  # picklable for Ray: reopen in the worker
        return {"path": str(self.path)}

    def __setstate__(self, state):
        self.__init__(state["path"])
