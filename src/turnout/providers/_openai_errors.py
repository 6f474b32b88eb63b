"""The error bodies of OpenAI-compatible servers -> turnout's errors (`error_from_response`, `error_in_body`).

The shapes read (docs/errors.md has the table):

- OpenAI: ``{"error": {"message", "type", "code", "param"}}``
  (https://platform.openai.com/docs/guides/error-codes);
- vLLM >= 0.10.1 the same, with the status as an integer ``code``; vLLM < 0.10.1 flat
  (``{"object": "error", "message", "type", "code"}``); vLLM's 401 ``{"error": "Unauthorized"}``
  (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html);
- TGI's Messages API: ``{"error": "...", "error_type": "validation"}`` (`._tgi_words`);
- FastAPI's ``{"detail": "Not Found"}``; text or an HTML page from a proxy.

A 429 is out of quota when its code or type says so; a 400, 413 or 422 is a context overflow
when its code is ``context_length_exceeded`` or its message is one of vLLM's or TGI's.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from .._secrets import mask
from ..errors import APIStatusError
from ._http_errors import MAX_MESSAGE, ErrorBody, body_text, not_an_api_error, status_error
from ._tgi_words import TGI_CONTEXT_MARKERS

__all__ = ["CONTEXT_MARKERS", "QUOTA_CODES", "error_from_response", "error_in_body", "read_error_body"]

#: 429 codes that mean "out of money", not "too fast" (checked 2026-08-21; OpenAI lists
#: insufficient_quota at https://platform.openai.com/docs/guides/error-codes).
QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    }
)
#: Substrings of context-overflow messages from servers whose error codes do not say so: vLLM's
#: (0.4-0.32, seen on vLLM 0.32 on 2026-11-27), then TGI's.
CONTEXT_MARKERS = (
    "maximum context length",
    "context length is only",
    "cannot be greater than max_model_len",
    *TGI_CONTEXT_MARKERS,
)
_CONTEXT_CODE = "context_length_exceeded"
# Words in an error body's type, code or message -> the status they stand for, for an error sent
# with a 2xx status (`error_in_body`), where the status says nothing.
_IMPLIED_STATUS = (
    (("rate_limit", "too_many_requests", "toomanyrequests"), 429),
    ((_CONTEXT_CODE,), 400),
    (("invalid_api_key", "authentication", "unauthorized", "permission", "forbidden"), 401),
    (("not_found", "notfound", "model_not_found"), 404),
    (("invalid_request", "badrequest", "bad request", "validation"), 400),
    (("overloaded", "unavailable", "server_error", "internalserver", "timeout"), 503),
)


def read_error_body(text: str) -> ErrorBody:
    """The body, message, type and code of an error body in any of the shapes above."""
    try:
        body: object = json.loads(text) if text.strip() else None
    except ValueError:
        return ErrorBody(text, text[:MAX_MESSAGE], None, None)
    if body is None:
        return ErrorBody(None, "", None, None)
    if not isinstance(body, dict):
        return ErrorBody(body, str(body)[:MAX_MESSAGE], None, None)
    err = body.get("error", body)  # vLLM < 0.10.1 is flat
    if isinstance(err, str):  # TGI {"error", "error_type"}; vLLM 401 {"error": "Unauthorized"}
        return ErrorBody(body, err, _as_str(body.get("error_type")), None)
    if isinstance(err, dict):
        message = err.get("message") or err.get("detail") or json.dumps(err)[:MAX_MESSAGE]
        code = err.get("code")
        return ErrorBody(body, str(message), _as_str(err.get("type")), code if isinstance(code, str | int) else None)
    return ErrorBody(body, str(body.get("detail", body))[:MAX_MESSAGE], None, None)


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _quota(found: ErrorBody) -> bool:
    return found.code in QUOTA_CODES or found.error_type in QUOTA_CODES


def _context(found: ErrorBody) -> bool:
    lowered = found.message.lower()
    return found.code == _CONTEXT_CODE or any(m.lower() in lowered for m in CONTEXT_MARKERS)


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    provider: str | None = None,
    model: str | None = None,
    secrets: Collection[str] = (),
) -> APIStatusError:
    """Build the typed error for an HTTP error reply of an OpenAI-compatible server.

    Args:
        status: the HTTP status code.
        headers: the response headers (lower-case keys or a case-insensitive mapping).
        body: the raw response body.
        provider: the configured provider name.
        model: the model id that was requested.
        secrets: credentials to mask in the message and body (key-like tokens are always masked).

    Returns:
        An instance of the most specific `APIStatusError` subclass.
    """
    text = mask(body_text(body), secrets)
    found = not_an_api_error(status, headers, read_error_body(text), text)
    return status_error(
        status, headers, found, quota=_quota(found), context=_context(found), provider=provider, model=model
    )


def error_in_body(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    provider: str | None = None,
    model: str | None = None,
    secrets: Collection[str] = (),
) -> APIStatusError | None:
    """The error a successful (2xx) reply carries instead of a result (``{"error": {...}}``), or None.

    Some servers and proxies answer 200 with an error body. The class comes from the body: an
    integer ``code`` that is an HTTP status, else words in its ``type``, ``code`` or message
    ("overloaded" -> `ServerError`, retryable; "rate_limit" -> `RateLimitError`...); an error
    that says nothing known is a `ServerError`. ``status_code`` stays the status that came.

    Args:
        status: the HTTP status of the reply.
        headers: the response headers.
        body: the raw body.
        provider: the configured provider name.
        model: the model id that was requested.
        secrets: credentials to mask.

    Returns:
        The typed error, or None when the body is not an error object.
    """
    text = mask(body_text(body), secrets)
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or "choices" in parsed or "data" in parsed:
        return None
    error = parsed.get("error") or (parsed if parsed.get("object") == "error" else None)  # vLLM < 0.10.1: flat
    if not error:
        return None
    found = read_error_body(text)
    implied = _implied_status(error, found)
    found = found._replace(body=parsed, message=f"{found.message} (sent as an error body with HTTP {status})")
    return status_error(
        status,
        headers,
        found,
        quota=_quota(found),
        context=_context(found),
        classify_as=implied,
        provider=provider,
        model=model,
    )


def _implied_status(error: object, found: ErrorBody) -> int:
    code = found.code
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    if isinstance(error, dict):
        for key in ("status", "status_code", "http_status_code"):
            value = error.get(key)
            if isinstance(value, int) and 400 <= value <= 599:
                return value
    if _quota(found):
        return 429
    words = " ".join(str(w).lower() for w in (found.error_type, code) if w is not None)
    for markers, status in _IMPLIED_STATUS:
        if any(m in words for m in markers):
            return status
    lowered = found.message.lower()
    if any(m.lower() in lowered for m in CONTEXT_MARKERS):
        return 400
    return 503 if "overloaded" in lowered or "unavailable" in lowered else 500
