"""What astra learned about each OpenAI-compatible endpoint, kept across processes.

One small JSON file, ``<cache>/llm/endpoints.json`` (``ASTRA_CACHE_DIR``; by default
``~/.cache/astra``), maps ``"<base URL> <model>"`` to what worked there, e.g. the
structured-output mode that ``--response-format auto`` fell back to and the server's reply
to the modes it refused. Writes are atomic and serialised by a file lock, so parallel
stages and Ray workers share it. Delete the file (or an entry) to probe again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from astra.paths import cache_root


def endpoints_path() -> Path:
    return cache_root() / "llm" / "endpoints.json"


def endpoint_key(base_url: str | None, model: str) -> str:
    return f"{(base_url or 'https://api.openai.com/v1').rstrip('/')} {model}"


class EndpointStore:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else endpoints_path()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> dict[str, Any]:
        entry = self._read().get(key)
        return dict(entry) if isinstance(entry, dict) else {}

    def update(self, key: str, **fields: Any) -> None:
        """Merge ``fields`` into the entry of ``key`` (atomically; never raises on a
        read-only cache: what was learned then simply is not remembered)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path) + ".lock", timeout=30):
                data = self._read()
                old = data.get(key)
                entry: dict[str, Any] = old if isinstance(old, dict) else {}
                entry.update(fields)
                entry["updated"] = round(time.time(), 3)
                data[key] = entry
                tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False), "utf-8")
                os.replace(tmp, self.path)
        except OSError:
            pass
