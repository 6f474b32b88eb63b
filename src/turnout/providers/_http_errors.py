"""An HTTP error reply -> turnout's error class: the generic part, with no provider's words in it.

The status decides first; what a provider's body says (its message, type and code, read by that
wire's parser: `._openai_errors` for OpenAI-compatible servers, `._hf_errors` for huggingface_hub)
only refines it: whether a 429 is out of quota, whether a 400 is a context overflow. Retryability
is set here, once: by the class, 408 and 409, then an ``x-should-retry`` header (openai-python's
``_should_retry``).

`parse_retry_after`, `describe_body` and `redirect_error` are public as ``turnout.errors.*``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, NamedTuple

from .._secrets import mask, mask_url
from ..errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    RedirectError,
    ServerError,
)

__all__ = [
    "MAX_MESSAGE",
    "ErrorBody",
    "body_text",
    "describe_body",
    "not_an_api_error",
    "parse_retry_after",
    "redirect_error",
    "status_error",
]

MAX_MESSAGE = 500  # characters of a server's error message kept in an error
_BODY_START = 200  # characters of an unexpected body quoted in an error message


class ErrorBody(NamedTuple):
    """What a wire's parser read from an error body."""

    body: object
    """The parsed body (the raw text when it is not JSON)."""
    message: str
    error_type: str | None
    code: str | int | None


def body_text(body: bytes | str) -> str:
    """The body as text (undecodable bytes replaced)."""
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body


def _phrase(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, then ``retry-after`` (seconds or date).

    Args:
        headers: response headers (case-insensitive mapping or lower-cased dict).
        now: the current Unix time, for HTTP-date values (defaults to ``time.time()``).

    Returns:
        A non-negative number of seconds, or None when absent or unparseable.
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(when - (time.time() if now is None else now), 0.0)


def describe_body(headers: Mapping[str, str], body: bytes | str, *, secrets: Collection[str] = ()) -> str:
    """What an unexpected body is: its content-type, size and first characters (secrets masked).

    Args:
        headers: the response headers.
        body: the raw body.
        secrets: credentials to mask besides key-like tokens (the provider's key and header values).

    Returns:
        e.g. ``text/html, 1532 bytes: '<!DOCTYPE html><html><head><title>502 Bad Gateway...'``.
    """
    text = body_text(body)
    content_type = headers.get("content-type") or "no content-type"
    if not text.strip():
        return f"{content_type}, empty body"
    start = " ".join(text[: _BODY_START * 2].split())
    start = mask(start, secrets)[:_BODY_START] + ("..." if len(text) > _BODY_START else "")
    size = len(body) if isinstance(body, bytes) else len(body.encode())
    return f"{content_type}, {size} bytes: {start!r}"


def not_an_api_error(status: int, headers: Mapping[str, str], found: ErrorBody, text: str) -> ErrorBody:
    """``found``, its message replaced by a description when the body is empty or an HTML page."""
    html = "html" in (headers.get("content-type") or "") or text.lstrip()[:1] == "<"
    if found.message.strip() and not (found.body is text and html):
        return found
    message = f"{_phrase(status)}; the body is not an API error ({describe_body(headers, text)})"
    return found._replace(message=message)


def _status_class(status: int, *, quota: bool, context: bool) -> type[APIStatusError]:
    if status == 429:
        return QuotaExceededError if quota else RateLimitError
    if status in (400, 413, 422):
        return ContextWindowExceededError if context else BadRequestError
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status >= 500:
        return ServerError
    return APIStatusError


def status_error(
    status: int,
    headers: Mapping[str, str],
    found: ErrorBody,
    *,
    quota: bool = False,
    context: bool = False,
    classify_as: int | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> APIStatusError:
    """The typed error for a reply of ``status`` whose body a wire's parser read as ``found``.

    Args:
        status: the HTTP status that came (kept as ``status_code``).
        headers: the response headers (``x-request-id``, ``x-should-retry``, ``retry-after``).
        found: the body's message, type and code.
        quota: the body says the account is out of quota (a 429 is then not retryable).
        context: the body says the prompt does not fit the context window (for a 400, 413, 422).
        classify_as: the status the class is chosen by, when the body stands for another one
            (an error sent with a 2xx status).
        provider: the configured provider name.
        model: the model id that was requested.
    """
    classify = status if classify_as is None else classify_as
    cls = _status_class(classify, quota=quota, context=context)
    retryable = cls.retryable or classify in (408, 409)
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false") and cls is not QuotaExceededError:
        retryable = should_retry == "true"
    kwargs: dict[str, Any] = {
        "body": found.body,
        "error_type": found.error_type,
        "error_code": found.code,
        "provider": provider,
        "model": model,
        "status_code": status,
        "request_id": headers.get("x-request-id"),
        "retryable": retryable,
    }
    if (
        retryable
    ):  # Retry-After on a 503 (or any retryable status): https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3
        kwargs["retry_after"] = parse_retry_after(headers)
    return cls(found.message[:MAX_MESSAGE], **kwargs)


def redirect_error(
    status: int, headers: Mapping[str, str], *, base_url: str, provider: str | None = None, model: str | None = None
) -> RedirectError:
    """The error for a 3xx reply: name where the server points, and the ``base_url`` to fix.

    Args:
        status: the HTTP status (300-399).
        headers: the response headers (``location``).
        base_url: the provider's configured ``base_url`` (credentials are masked).
        provider: the configured provider name.
        model: the model id that was requested.

    Returns:
        A `RedirectError` (not retryable).
    """
    location = headers.get("location")
    shown = mask_url(location) if location else None
    where = f"to {shown}" if shown else "without a location"
    fix = f"providers.{provider}.base_url" if provider else "the provider's base_url"
    message = (
        f"the server redirected {where} ({_phrase(status)}); turnout does not follow redirects. "
        f"Set {fix} (now {mask_url(base_url)}) to the address the server moved to."
    )
    return RedirectError(
        message,
        location=shown,
        provider=provider,
        model=model,
        status_code=status,
        request_id=headers.get("x-request-id"),
        retryable=False,
    )
