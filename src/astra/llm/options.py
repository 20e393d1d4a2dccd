"""The LLM options of a command line as one object.

Every command that talks to a model takes the same options (``--llm``, ``--base-url``,
``--api-key-env``, ``--llm-concurrency``, ``--no-cache``, ``--llm-timeout`` and, with
``--base-url``, ``--response-format`` and ``--model-fingerprint``). They are declared once,
in :mod:`astra.cli_common`, and reach the command as one :class:`LLMOptions`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from astra.llm import LLMSettings

#: field -> the environment variable that carries its value to every ``LLMSettings.from_env``
#: of a command's run (in-process or in a worker).
EXPORTED = {"response_format": "ASTRA_RESPONSE_FORMAT", "model_fingerprint": "ASTRA_MODEL_FINGERPRINT"}


@dataclass(frozen=True)
class LLMOptions:
    """What a command line says about the LLM; ``None`` = the environment's default."""

    #: Provider spec (``--llm``): ``embedded``, ``embedded:PATH`` or ``openai:MODEL``.
    spec: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = 8
    no_cache: bool = False
    timeout: float = 120.0
    response_format: str | None = None
    model_fingerprint: str | None = None

    @property
    def configured(self) -> bool:
        """Whether the command line names a model or an endpoint."""
        return self.spec is not None or self.base_url is not None

    def settings(self, spec: str | None = None, *, concurrency: int | None = None) -> LLMSettings:
        """The client settings: ``spec`` (else ``--llm``, else ``ASTRA_LLM``) with these options."""
        return LLMSettings.from_env(
            spec=spec if spec is not None else self.spec, base_url=self.base_url, api_key_env=self.api_key_env,
            concurrency=self.concurrency if concurrency is None else concurrency, cache=not self.no_cache,
            timeout=self.timeout, response_format=self.response_format, model_fingerprint=self.model_fingerprint)

    @contextmanager
    def exported(self) -> Iterator[None]:
        """Put ``response_format`` and ``model_fingerprint`` (where given) in the environment
        for the block, so every client the command builds sees them; restore afterwards."""
        saved: dict[str, str | None] = {}
        for field, env in EXPORTED.items():
            value = getattr(self, field)
            if value is not None:
                saved[env] = os.environ.get(env)
                os.environ[env] = value
        try:
            yield
        finally:
            for env, old in saved.items():
                if old is None:
                    os.environ.pop(env, None)
                else:
                    os.environ[env] = old
