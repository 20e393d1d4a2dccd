"""Train / held-out split of an environment bundle, stable per environment id."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from astra.types import Environment


def _rank(env_id: str, seed: int) -> float:
    h = hashlib.sha256(f"astra.heldout/{seed}/{env_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _is_heldout(env_id: str, fraction: float, seed: int) -> bool:
    return _rank(env_id, seed) < fraction


def heldout_ids(envs: Sequence[Environment], fraction: float, seed: int = 0, *, stratify: bool = True) -> set[str]:
    """The held-out environment ids: those whose seeded hash falls under ``fraction`` (an
    environment never changes side when others are added). With ``stratify``, every group
    of two or more environments of one kind and scenario type that the hash leaves without
    a held-out member gives its lowest-hash one, so each type is evaluated."""
    held = {e.id for e in envs if _is_heldout(e.id, fraction, seed)}
    if stratify and fraction > 0:
        groups: dict[tuple[str, str], list[Environment]] = defaultdict(list)
        for e in envs:
            groups[(str(getattr(e, "kind", "qa")), str(e.instance.scenario))].append(e)
        for members in groups.values():
            if len(members) >= 2 and not any(e.id in held for e in members):
                held.add(min(members, key=lambda e: _rank(e.id, seed)).id)
    return held


def split_environments(envs_dir: str | Path | Sequence[str | Path], heldout_fraction: float = 0.2, seed: int = 0,
                       out_dir: str | Path | None = None, *, stratify: bool = True) -> tuple[Path, Path]:
    """Split a bundle directory into ``OUT/train`` and ``OUT/heldout`` (``OUT`` defaults to
    ``envs_dir``) by a seeded hash of each environment id: stable across runs and
    independent of the other environments (:func:`heldout_ids`; ``stratify`` also holds out
    one of every scenario type the hash missed). Each side gets the environment files and an
    ``index.jsonl``. Several sources (e.g. a QA bundle and a stateful one) are split into
    the same two sides, each environment by its own id (``out_dir`` is then required; two
    environments with the same id are an error). Returns ``(train_dir, heldout_dir)``."""
    from astra.envs.bundle import INDEX_NAME, EnvIndexEntry, load_environments, write_environment

    if not 0.0 <= heldout_fraction <= 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1], got {heldout_fraction}")
    sources = [Path(envs_dir)] if isinstance(envs_dir, str | Path) else [Path(x) for x in envs_dir]
    if not sources:
        raise ValueError("no environment sources to split")
    if out_dir is None and len(sources) > 1:
        raise ValueError("splitting several sources needs an output directory")
    base = Path(out_dir) if out_dir is not None else sources[0]
    train_dir, heldout_dir = base / "train", base / "heldout"
    sides: dict[Path, list[str]] = {train_dir: [], heldout_dir: []}
    for d in sides:
        d.mkdir(parents=True, exist_ok=True)
    seen: dict[str, Path] = {}
    envs = []
    for src in sources:
        for env in load_environments(src):
            if env.id in seen:
                raise ValueError(f"environment {env.id!r} is in both {seen[env.id]} and {src}")
            seen[env.id] = src
            envs.append(env)
    held = heldout_ids(envs, heldout_fraction, seed, stratify=stratify)
    for env in envs:
        d = heldout_dir if env.id in held else train_dir
        p = write_environment(env, d)
        sides[d].append(EnvIndexEntry.of(env, p.name).model_dump_json())
    for d, lines in sides.items():
        (d / INDEX_NAME).write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return train_dir, heldout_dir


__all__ = ["heldout_ids", "split_environments"]
