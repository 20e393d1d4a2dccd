"""Where astra keeps things between runs (converted models, the LLM response cache)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$ASTRA_CACHE_DIR``, else ``$XDG_CACHE_HOME/astra``, else ``~/.cache/astra``."""
    if os.environ.get("ASTRA_CACHE_DIR"):
        return Path(os.environ["ASTRA_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "astra"


def models_dir() -> Path:
    """``$ASTRA_MODELS_DIR``, else ``<cache_root>/models`` (converted model weights)."""
    if os.environ.get("ASTRA_MODELS_DIR"):
        return Path(os.environ["ASTRA_MODELS_DIR"]).expanduser()
    return cache_root() / "models"


def llm_cache_path() -> Path:
    return cache_root() / "llm" / "responses.sqlite"
