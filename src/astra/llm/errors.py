"""Typed LLM errors. Retryable ones are retried by :class:`astra.llm.client.LLMClient`;
anything that still fails reaches the caller, which must record it as a failure."""

from __future__ import annotations

from astra.errors import AstraError


class LLMError(AstraError):
    """A chat request that did not produce a usable response."""

    retryable = False


class LLMTimeout(LLMError):
    retryable = True


class LLMRateLimited(LLMError):
    retryable = True


class LLMServerError(LLMError):
    """5xx from the endpoint."""

    retryable = True


class LLMConnectionError(LLMError):
    retryable = True


class LLMBadResponse(LLMError):
    """The endpoint answered, but not with a valid chat completion (broken JSON, no choices)."""

    retryable = True


class LLMRequestError(LLMError):
    """The endpoint refused the request (4xx other than 408/429): retrying will not help."""


class LLMUnsupported(LLMRequestError):
    """The endpoint does not support a feature the request used (``feature``: e.g.
    ``response_format``); any status, 5xx included: the same request fails the same way."""

    def __init__(self, message: str, *, feature: str = ""):
        super().__init__(message)
        self.feature = feature


class StructuredOutputError(LLMError):
    """The model's reply could not be parsed/validated even after the repair rounds."""

    def __init__(self, message: str, *, raw: str | None = None, attempts: int = 0):
        super().__init__(message)
        self.raw = raw
        self.attempts = attempts
