"""huggingface_hub's and httpx2's exceptions -> turnout's error tree, for the ``huggingface`` provider.

huggingface_hub 2.4 raises (``errors.py``, ``utils/_http.py``, ``inference/_common.py``):

- ``HfHubHTTPError`` (an ``httpx2.HTTPError``) for an error status, with ``.response``: mapped
  from its status, headers and body with `error_from_response`, like every other provider
  (TGI's ``{"error", "error_type"}`` body included);
- ``TextGenerationError`` subclasses (``ValidationError``, ``GenerationError``,
  ``OverloadedError``, ``IncompleteGenerationError``, ``UnknownError``): from ``text_generation()``
  with the ``HfHubHTTPError`` as ``__cause__`` (mapped from that), or for an error event inside a
  stream, with only the message (mapped from the class: 422, 424, 429, 500; a chat stream's
  ``{"message", "http_status_code"}`` object keeps its status);
- ``InferenceTimeoutError`` when the request times out (``APITimeoutError``);
- raw ``httpx2`` transport errors (connection refused, a body cut off, a read timeout inside a
  stream): ``APIConnectionError`` / ``APITimeoutError``;
- ``OfflineModeIsEnabled`` under ``HF_HUB_OFFLINE=1``: ``APIConnectionError``, not retryable;
- ``ValueError`` for a request it refuses to build (an unknown provider, a model the provider
  does not serve, a missing key): ``BadRequestError`` with no status.

Every mapped error is raised ``from`` the original, which stays readable as ``__cause__``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx2

from ..errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    ProviderError,
    RateLimitError,
    ResponseValidationError,
)
from ._openai_errors import error_from_response
from ._openai_wire import event_status
from ._tgi_words import TGI_ERROR_STATUS

__all__ = ["map_error", "ratelimit_reset", "response_body"]

_RATELIMIT = re.compile(r'"[^"]*"\s*;\s*r\s*=\s*(?P<r>\d+)\s*;\s*t\s*=\s*(?P<t>\d+)')

_CLASS_ERROR_TYPE = {
    "ValidationError": "validation",
    "GenerationError": "generation",
    "OverloadedError": "overloaded",
    "IncompleteGenerationError": "incomplete_generation",
}


def response_body(response: httpx2.Response) -> bytes:
    """The body of an error response, or ``b""`` when huggingface_hub left a stream unread."""
    try:
        return response.content
    except httpx2.ResponseNotRead:
        return b""


def _from_response(response: httpx2.Response, provider: str, model: str) -> ProviderError:
    error = error_from_response(
        response.status_code, response.headers, response_body(response), provider=provider, model=model
    )
    if isinstance(error, RateLimitError) and error.retry_after is None:
        error.retry_after = ratelimit_reset(response.headers.get("ratelimit"))
    return error


def ratelimit_reset(value: str | None) -> float | None:
    """Seconds until an exhausted IETF ``RateLimit: "api";r=0;t=55`` window resets (the HF router's header)."""
    match = _RATELIMIT.search(value or "")
    if match is None or int(match.group("r")) != 0:
        return None
    return float(match.group("t"))


def _from_event(exc: Exception, provider: str, model: str) -> ProviderError:
    """An error event inside a stream: only the message and the exception class are known."""
    payload: Any = exc.args[0] if exc.args else str(exc)
    error_type = _CLASS_ERROR_TYPE.get(type(exc).__name__)
    status = TGI_ERROR_STATUS.get(error_type or "", 500)
    if isinstance(payload, dict):  # the chat route's {"message", "http_status_code"}; a router host's own
        status = event_status(payload) or status
        body: dict[str, Any] = {"error": payload}
    else:
        body = {"error": str(payload), "error_type": error_type}
    return error_from_response(status, {}, json.dumps(body), provider=provider, model=model)


def map_error(exc: BaseException, *, provider: str, model: str, url: str) -> ProviderError | None:
    """The turnout error for an exception from huggingface_hub or httpx2, or None if it is neither.

    Args:
        exc: what the huggingface_hub call raised.
        provider: the configured provider name.
        model: the model id of the request.
        url: where the request went (for messages; never a key).
    """
    from huggingface_hub import errors as hub

    if isinstance(exc, hub.HfHubHTTPError):
        return _from_response(exc.response, provider, model)
    if isinstance(exc, hub.TextGenerationError):
        cause = exc.__cause__
        if isinstance(cause, hub.HfHubHTTPError):
            return _from_response(cause.response, provider, model)
        return _from_event(exc, provider, model)
    if isinstance(exc, hub.InferenceTimeoutError | httpx2.TimeoutException):
        return APITimeoutError(f"timed out waiting for {url}", provider=provider, model=model)
    if isinstance(exc, hub.OfflineModeIsEnabled):
        return APIConnectionError(
            f"huggingface_hub is in offline mode (HF_HUB_OFFLINE): {exc}",
            provider=provider,
            model=model,
            retryable=False,
        )
    if isinstance(exc, httpx2.HTTPError):
        reason = str(exc) or type(exc).__name__
        return APIConnectionError(f"{type(exc).__name__} talking to {url}: {reason}", provider=provider, model=model)
    if isinstance(exc, json.JSONDecodeError):
        return ResponseValidationError(f"reply is not valid JSON: {exc}", provider=provider, model=model)
    if isinstance(exc, ValueError):
        return BadRequestError(f"huggingface_hub refused the request: {exc}", provider=provider, model=model)
    return None
