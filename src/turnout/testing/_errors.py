"""Error responses in each flavor's exact shape.

- openai: `{"error": {"message", "type", "param", "code"}}` with a string (or null) `code`,
  pretty-printed; every response carries `x-request-id`.
- vllm (>= 0.10.1): the same four keys with `code` the integer HTTP status and `type` an
  exception-style name (`BadRequestError`, `NotFoundError`, …); request-validation failures have
  `type` "Bad Request"; a failed API key gets the flat `{"error": "Unauthorized"}`; an unknown
  route gets FastAPI's `{"detail": "Not Found"}`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from turnout.testing._script import Fault
from turnout.testing._wire import Flavor, dumps

__all__ = [
    "ErrorContext",
    "WireError",
    "bad_request",
    "content_filter_results",
    "context_error",
    "max_tokens_error",
    "missing_api_key",
    "render_fault",
    "stream_error_event",
    "unknown_route",
]

_OPENAI_MESSAGES = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later",
    504: "Gateway timeout.",
}
_VLLM_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    422: "UnprocessableEntityError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    501: "NotImplementedError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information "
    "on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)
_BAD_KEY_MESSAGE = (
    "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
)
_NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


@dataclass(frozen=True)
class ErrorContext:
    """What an error message may mention about the request being refused."""

    flavor: Flavor
    model: str
    max_model_len: int | None = None
    prompt_tokens: int = 0
    max_tokens: int | None = None
    served: tuple[str, ...] = ()


@dataclass(frozen=True)
class WireError:
    """An HTTP error response: status, extra headers and the serialized body."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def _error(
    ctx: ErrorContext,
    status: int,
    message: str,
    error_type: str | None = None,
    code: str | int | None = None,
    param: str | None = None,
) -> WireError:
    if ctx.flavor == "vllm":
        vllm_type = error_type or _VLLM_TYPES.get(status) or HTTPStatus(status).phrase.replace(" ", "") + "Error"
        body = {"message": message, "type": vllm_type, "param": param, "code": status if code is None else code}
        return WireError(status, dumps({"error": body}, "vllm"))
    openai_type = error_type or ("server_error" if status >= 500 else "invalid_request_error")
    body = {"message": message, "type": openai_type, "param": param, "code": code}
    return WireError(status, dumps({"error": body}, "openai", indent=4))


def bad_request(ctx: ErrorContext, message: str, *, param: str | None = None, code: str | None = None) -> WireError:
    """400 for a request that fails validation (vllm: `type` "Bad Request", as FastAPI reports)."""
    if ctx.flavor == "vllm":
        return _error(ctx, 400, message, "Bad Request", param=param)
    return _error(ctx, 400, message, param=param, code=code)


def missing_api_key(ctx: ErrorContext, provided: bool) -> WireError:
    """401 for a missing or wrong API key (the key itself is never echoed)."""
    if ctx.flavor == "vllm":
        return WireError(401, dumps({"error": "Unauthorized"}, "vllm"))
    if provided:
        return _error(ctx, 401, _BAD_KEY_MESSAGE, code="invalid_api_key")
    return _error(ctx, 401, _NO_KEY_MESSAGE)


def _not_found(ctx: ErrorContext, model: str) -> WireError:
    if ctx.flavor == "vllm":
        aliases = f" Valid aliases: {', '.join(ctx.served)}." if ctx.served else ""
        return _error(ctx, 404, f"The model `{model}` does not exist.{aliases}", param="model")
    message = f"The model `{model}` does not exist or you do not have access to it."
    return _error(ctx, 404, message, code="model_not_found")


def context_error(ctx: ErrorContext, limit: int, prompt_tokens: int) -> WireError:
    """400 for a prompt (plus `max_tokens`) over the context length, worded as each server does.

    vllm: like vLLM 0.32, the prompt is counted only up to the room left, so it reports
    "at least" that room + 1 tokens.
    """
    requested = ctx.max_tokens
    if ctx.flavor == "vllm":
        room = limit - (requested or 0)
        at_least = room + 1
        if requested:
            message = (
                f"This model's maximum context length is {limit} tokens. However, you requested {requested} "
                f"output tokens and your prompt contains at least {at_least} input tokens, for a total of at "
                f"least {at_least + requested} tokens. Please reduce the length of the input prompt or the "
                f"number of requested output tokens. (parameter=input_tokens, value={at_least})"
            )
        else:
            message = (
                f"This model's maximum context length is {limit} tokens. However, your prompt contains at "
                f"least {at_least} input tokens. Please reduce the length of the input prompt. "
                f"(parameter=input_tokens, value={at_least})"
            )
        return _error(ctx, 400, message, param="input_tokens")
    if requested and prompt_tokens <= limit:
        message = (
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{prompt_tokens + requested} tokens ({prompt_tokens} in the messages, {requested} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    else:
        message = (
            f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
            f"{prompt_tokens} tokens. Please reduce the length of the messages."
        )
    return _error(ctx, 400, message, param="messages", code="context_length_exceeded")


def max_tokens_error(ctx: ErrorContext, limit: int, param: str, requested: int) -> WireError:
    """400 from vLLM when `max_tokens` alone exceeds `max_model_len`."""
    message = (
        f"{param}={requested} cannot be greater than max_model_len={limit}. Please request fewer output "
        f"tokens. (parameter={param}, value={requested})"
    )
    return _error(ctx, 400, message, param=param)


def unknown_route(flavor: Flavor, method: str, path: str) -> WireError:
    """404 for a path the server does not serve (vllm: FastAPI's `{"detail": "Not Found"}`)."""
    if flavor == "vllm":
        return WireError(404, dumps({"detail": "Not Found"}, "vllm"))
    body = {"message": f"Invalid URL ({method} {path})", "type": "invalid_request_error", "param": None, "code": None}
    return WireError(404, dumps({"error": body}, "openai", indent=4))


def _retry_headers(fault: Fault, flavor: Flavor) -> dict[str, str]:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        if fault.retry_after_date:
            headers["retry-after"] = email.utils.formatdate(time.time() + fault.retry_after, usegmt=True)
        else:
            headers["retry-after"] = f"{fault.retry_after:g}"
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = str(fault.retry_after_ms)
    if flavor == "openai":
        reset = f"{fault.retry_after:g}s" if fault.retry_after is not None else "1s"
        headers |= {
            "x-ratelimit-limit-requests": "3",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": reset,
        }
    return headers


def _rate_limit(fault: Fault, ctx: ErrorContext) -> WireError:
    if fault.retry_after is not None:
        wait = f"{fault.retry_after:g}s"
    elif fault.retry_after_ms is not None:
        wait = f"{fault.retry_after_ms}ms"
    else:
        wait = "1s"
    if ctx.flavor == "vllm":  # vLLM has no limiter of its own: this is what a gateway in front might say
        error = _error(ctx, 429, f"Rate limit exceeded. Please try again in {wait}.")
    else:
        message = (
            f"Rate limit reached for {ctx.model} in organization org-fake on requests per min (RPM): Limit 3, "
            f"Used 3, Requested 1. Please try again in {wait}. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        )
        error = _error(ctx, 429, message, "requests", code="rate_limit_exceeded")
    return WireError(error.status, error.body, _retry_headers(fault, ctx.flavor))


def _status(fault: Fault, ctx: ErrorContext) -> WireError:
    status = fault.status_code or 500
    message = fault.message or (_OPENAI_MESSAGES.get(status) if ctx.flavor == "openai" else None)
    return _error(ctx, status, message or HTTPStatus(status).phrase, fault.error_type, fault.error_code, fault.param)


def _context(fault: Fault, ctx: ErrorContext) -> WireError:
    limit = fault.max_model_len or ctx.max_model_len or 4096
    return context_error(ctx, limit, fault.prompt_tokens or max(ctx.prompt_tokens, limit + 1))


def _stream_error(fault: Fault, ctx: ErrorContext) -> WireError:
    status = fault.status_code or 500
    return _error(ctx, status, fault.message or HTTPStatus(status).phrase, fault.error_type, fault.error_code)


_FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_SEVERITY_CATEGORIES = ("hate", "self_harm", "sexual", "violence")
_DETECTION_CATEGORIES = ("jailbreak",)


def content_filter_results(fired: Mapping[str, str] | None) -> dict[str, Any]:
    """Azure's per-category verdicts: the ``fired`` categories filtered at their severity, the rest safe.

    Severity categories (hate, self_harm, sexual, violence) carry ``severity``; detection
    categories (jailbreak) carry ``detected``
    (https://learn.microsoft.com/en-us/azure/ai-foundry/openai/concepts/content-filter).
    """
    fired = fired or {}
    results: dict[str, Any] = {}
    for name in sorted({*_SEVERITY_CATEGORIES, *fired}):
        if name in _DETECTION_CATEGORIES:
            results[name] = {"filtered": name in fired, "detected": name in fired}
        else:
            results[name] = {"filtered": name in fired, "severity": fired.get(name, "safe")}
    return results


def _content_filter(fault: Fault, ctx: ErrorContext) -> WireError:  # noqa: ARG001 - one shape for every flavor
    inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": content_filter_results(fault.categories)}
    body = {
        "message": _FILTER_MESSAGE,
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": inner,
    }
    return WireError(400, dumps({"error": body}, "openai"))


_RENDERERS: dict[str, Callable[[Fault, ErrorContext], WireError]] = {
    "status": _status,
    "server_error": _status,
    "rate_limit": _rate_limit,
    "insufficient_quota": lambda _, c: _error(
        c, 429, _QUOTA_MESSAGE, "insufficient_quota", "insufficient_quota" if c.flavor == "openai" else None
    ),
    "unauthorized": lambda _, c: missing_api_key(c, provided=True),
    "not_found": lambda f, c: _not_found(c, f.model or c.model),
    "context_length": _context,
    "content_filter": _content_filter,
    "stream_error": _stream_error,
}


def render_fault(fault: Fault, ctx: ErrorContext) -> WireError:
    """The HTTP error response for an error `Fault` (or a `stream_error` on a non-stream request).

    Args:
        fault: A fault whose `is_error` is true, or a `stream_error`.
        ctx: The request being answered.

    Returns:
        The response; `fault.headers` override the computed headers.
    """
    error = _RENDERERS[fault.kind](fault, ctx)
    return WireError(error.status, error.body, {**error.headers, **fault.headers})


def stream_error_event(fault: Fault, ctx: ErrorContext) -> dict[str, Any]:
    """The `{"error": {...}}` object sent as an SSE `data:` event by a `stream_error` fault."""
    status = fault.status_code or 500
    message = fault.message or HTTPStatus(status).phrase
    if ctx.flavor == "vllm":
        error_type = _VLLM_TYPES.get(status, "InternalServerError")
        error: dict[str, Any] = {"message": message, "type": error_type, "param": None, "code": status}
    else:
        error = {"message": message, "type": "server_error", "param": None, "code": None}
    if fault.error_type is not None:
        error["type"] = fault.error_type
    if fault.error_code is not None:
        error["code"] = fault.error_code
    if fault.status_key is not None:
        error[fault.status_key] = status
    return {"error": error}
