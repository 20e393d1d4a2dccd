"""Test isolation: each test session gets its own LLM response cache, while converted
model weights stay in the user's cache so the one-time conversion is reused."""

from __future__ import annotations

import os

import pytest

from astra.paths import cache_root


def pytest_configure(config):
    os.environ.setdefault("ASTRA_MODELS_DIR", str(cache_root() / "models"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTRA_CACHE_DIR", str(tmp_path / "astra-cache"))
    monkeypatch.setenv("ASTRA_MODELS_DIR", os.environ["ASTRA_MODELS_DIR"])
