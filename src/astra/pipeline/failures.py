"""Failures versus rejections: which outcome of a record is whose fault.

A stage decides about each input record: it *accepts* it (outputs) or *rejects* it with a
reason (the record's own fault, or a quality gate it does not pass). When the stage could
not decide — the LLM endpoint was down, timed out, answered 5xx or kept rate-limiting, a
live tool server refused connections, or the stage's code raised — the input is *failed*:
the ledger records the error, the manifest counts it apart, and a plain rerun processes it
again (``--skip-failed`` leaves it).

==========================  =============================================  ============
outcome                     examples                                       rerun
==========================  =============================================  ============
failed, kind ``endpoint``   timeout, connection refused, HTTP 5xx, 429     retried
                            after the client's retries, a broken response
                            body, a refused request (401/404/400), a live
                            MCP server that cannot be reached
failed, kind ``error``      an unexpected exception in the stage's code    retried
rejected                    a model reply that cannot be parsed or         skipped
                            validated even after the repair rounds
                            (``StructuredOutputError``), a score under
                            the threshold, a hallucinated tool name
==========================  =============================================  ============

Stages that catch :class:`~astra.llm.errors.LLMError` to turn a bad reply into a rejection
re-raise endpoint errors (``if is_endpoint_failure(e): raise``), so that only decisions
about the record become rejections.
"""

from __future__ import annotations

from typing import Literal

from astra.errors import EndpointError
from astra.llm.errors import (
    LLMBadResponse,
    LLMConnectionError,
    LLMRateLimited,
    LLMRequestError,
    LLMServerError,
    LLMTimeout,
)

FailureKind = Literal["endpoint", "error"]
ENDPOINT: FailureKind = "endpoint"
ERROR: FailureKind = "error"


_ENDPOINT_TYPES: tuple[type[BaseException], ...] = (
    EndpointError, LLMTimeout, LLMRateLimited, LLMServerError, LLMConnectionError, LLMBadResponse, LLMRequestError)


#: Exception class names counted as endpoint failures in ledgers written before the
#: ledger recorded the failure kind.
ENDPOINT_ERROR_NAMES = frozenset({
    "EndpointError", "LLMTimeout", "LLMRateLimited", "LLMServerError", "LLMConnectionError", "LLMBadResponse",
    "LLMRequestError", "ServerUnreachable",
})


def is_endpoint_failure(exc: BaseException) -> bool:
    """True when ``exc`` says a service did not answer usably (not the record's fault)."""
    return isinstance(exc, _ENDPOINT_TYPES)


def failure_kind(exc: BaseException) -> FailureKind:
    return ENDPOINT if is_endpoint_failure(exc) else ERROR


__all__ = ["ENDPOINT", "ENDPOINT_ERROR_NAMES", "ERROR", "FailureKind", "failure_kind", "is_endpoint_failure"]
