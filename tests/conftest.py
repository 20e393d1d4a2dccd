"""Test isolation: each test session gets its own LLM response cache, while converted
model weights stay in the user's cache so the one-time conversion is reused. Shared
fixtures: ``tokenizer`` (the embedded model's, with the tool template) and ``pool`` (a
sandbox pool per module); a test module may define its own of either name."""

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


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from astra.llm.embedded import ensure_default_model, ensure_tool_chat_template

    try:
        path = ensure_default_model()
    except Exception as e:  # pragma: no cover - machine without the bundled weights
        pytest.skip(f"needs the embedded model's tokenizer: {e}")
    tok = AutoTokenizer.from_pretrained(path)
    ensure_tool_chat_template(tok)
    return tok


@pytest.fixture(scope="module")
def pool():
    from astra.sandbox import SandboxPool

    p = SandboxPool(size=2)
    yield p
    p.close()
