"""The LLM layer: one async chat interface over any OpenAI-compatible endpoint or the
embedded in-process model, with caching, retries, usage accounting and structured output.

Provider specs (``--llm``):

- ``embedded`` — SmolLM2-135M-Instruct on the CPU (the offline default);
- ``embedded:PATH_OR_HF_ID`` — any causal LM directory (or hub id) instead;
- ``openai:MODEL`` — an OpenAI-compatible endpoint; ``--base-url`` (or ``ASTRA_BASE_URL``)
  points at vLLM, SGLang, llama.cpp server, …; the key comes from ``ASTRA_API_KEY`` or
  ``OPENAI_API_KEY``; ``--response-format`` and ``--model-fingerprint`` tune it for a
  server (docs/llm.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from astra.errors import ConfigError
from astra.llm.cache import ResponseCache
from astra.llm.client import LLMClient, Provider, extract_json
from astra.llm.errors import LLMError, StructuredOutputError
from astra.llm.types import RESPONSE_FORMATS, ChatRequest, ChatResponse, ToolCall
from astra.llm.usage import USAGE, stage_scope
from astra.paths import llm_cache_path

__all__ = [
    "LLMClient", "Provider", "LLMSettings", "make_client", "make_provider", "ChatRequest",
    "ChatResponse", "ToolCall", "LLMError", "StructuredOutputError", "ResponseCache",
    "USAGE", "stage_scope", "extract_json",
]


class LLMSettings(BaseModel):
    """Everything needed to build a client; picklable, so stages can ship it to Ray."""

    model_config = ConfigDict(extra="forbid")

    spec: str = "embedded"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float = 120.0
    max_retries: int = 4
    concurrency: int = 8
    cache: bool = True
    cache_path: str | None = None
    max_batch: int = 8
    #: Structured output on OpenAI-compatible endpoints: auto | json_schema | json_object | none.
    response_format: str = "auto"
    #: Cache identity of the served model(s): ``FP`` for every ``openai:`` model, or
    #: ``MODEL=FP[,MODEL=FP]`` per model name (default: what the server reports).
    model_fingerprint: str | None = None

    @classmethod
    def from_env(cls, **overrides) -> LLMSettings:
        """Defaults from ``ASTRA_LLM``, ``ASTRA_BASE_URL``, ``ASTRA_RESPONSE_FORMAT``,
        ``ASTRA_MODEL_FINGERPRINT``; explicit values win."""
        base: dict[str, Any] = {"spec": os.environ.get("ASTRA_LLM", "embedded"),
                                "base_url": os.environ.get("ASTRA_BASE_URL") or None,
                                "response_format": os.environ.get("ASTRA_RESPONSE_FORMAT") or "auto",
                                "model_fingerprint": os.environ.get("ASTRA_MODEL_FINGERPRINT") or None}
        base.update({k: v for k, v in overrides.items() if v is not None})
        if base["response_format"] not in RESPONSE_FORMATS:
            raise ConfigError(f"unknown response format {base['response_format']!r} (ASTRA_RESPONSE_FORMAT "
                              f"or --response-format): use one of {', '.join(RESPONSE_FORMATS)}")
        return cls(**base)

    def fingerprint_for(self, model: str) -> str | None:
        """The ``model_fingerprint`` that applies to ``model`` (see the field)."""
        fp = (self.model_fingerprint or "").strip()
        if not fp:
            return None
        if "=" not in fp:
            return fp
        for part in fp.split(","):
            name, _, value = part.partition("=")
            if name.strip() == model and value.strip():
                return value.strip()
        return None


def make_provider(settings: LLMSettings) -> Provider:
    kind, _, arg = settings.spec.partition(":")
    if kind == "embedded":
        from astra.llm.embedded import EmbeddedProvider

        return EmbeddedProvider(arg or None, max_batch=settings.max_batch)
    if kind == "openai":
        from astra.llm.openai_provider import OpenAIProvider

        return OpenAIProvider(arg, base_url=settings.base_url, api_key_env=settings.api_key_env,
                              timeout=settings.timeout, response_format=settings.response_format,  # type: ignore[arg-type]
                              model_fingerprint=settings.fingerprint_for(arg))
    raise ConfigError(
        f"unknown LLM provider {settings.spec!r}: use 'embedded', 'embedded:PATH' or 'openai:MODEL'"
    )


def make_client(settings: LLMSettings | str | None = None, **overrides) -> LLMClient:
    """Build an :class:`LLMClient` from settings or a provider spec string."""
    if settings is None or isinstance(settings, str):
        settings = LLMSettings.from_env(spec=settings, **overrides)
    elif overrides:
        settings = settings.model_copy(update=overrides)
    cache = None
    if settings.cache:
        cache = ResponseCache(Path(settings.cache_path) if settings.cache_path else llm_cache_path())
    timeout = settings.timeout
    if settings.spec.startswith("embedded"):
        # CPU generation queues behind earlier batches: only catch a truly stuck model.
        timeout = max(timeout, 1800.0)
    return LLMClient(make_provider(settings), cache=cache, max_retries=settings.max_retries,
                     timeout=timeout, concurrency=settings.concurrency)
