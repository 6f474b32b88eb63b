"""Error mapping from status and body, with the bodies the real servers send.

Bodies: https://platform.openai.com/docs/guides/error-codes (OpenAI), vLLM's ``ErrorResponse``
(vllm/entrypoints/openai/protocol.py; vLLM 0.32 seen 2026-11-27), TGI's ``ErrorResponse`` (docs/openapi.json).
"""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from turnout.errors import (
    AllTargetsFailedError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    error_from_response,
    parse_retry_after,
)


def openai_body(message: str, type_: str, code: str | None, param: str | None = None) -> str:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


VLLM_CONTEXT = json.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 512 tokens. However, your prompt contains at least 513 "
            "input tokens, …",
            "type": "BadRequestError",
            "param": "input_tokens",
            "code": 400,
        }
    }
)
VLLM_MAX_TOKENS = json.dumps(
    {
        "error": {
            "message": "max_tokens=1000 cannot be greater than max_model_len=512. Please request fewer output tokens.",
            "type": "BadRequestError",
            "param": "max_tokens",
            "code": 400,
        }
    }
)
VLLM_OLD_FLAT = json.dumps(
    {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. "
        "However, you requested 5000 tokens (4000 in the messages, 1000 in the completion).",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
)
VLLM_NOT_FOUND = json.dumps(
    {
        "error": {
            "message": "The model `gpt-4o` does not exist. Valid aliases: tiny-llama.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }
)

CASES = [
    (
        400,
        openai_body(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
        ContextWindowExceededError,
        False,
    ),
    (
        400,
        openai_body(
            "Unsupported parameter: 'max_tokens' is not supported with this model.",
            "invalid_request_error",
            "unsupported_parameter",
            "max_tokens",
        ),
        BadRequestError,
        False,
    ),
    (
        401,
        openai_body("Incorrect API key provided: sk-...", "invalid_request_error", "invalid_api_key"),
        AuthenticationError,
        False,
    ),
    (
        403,
        openai_body("Country, region, or territory not supported", "request_forbidden", "unsupported_country"),
        AuthenticationError,
        False,
    ),
    (
        404,
        openai_body(
            "The model `gpt-9` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        NotFoundError,
        False,
    ),
    (
        429,
        openai_body(
            "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 200000, Used 199000, "
            "Requested 2000. Please try again in 1.574s.",
            "tokens",
            "rate_limit_exceeded",
        ),
        RateLimitError,
        True,
    ),
    (
        429,
        openai_body(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        QuotaExceededError,
        False,
    ),
    (429, openai_body("Credit balance exhausted", "billing", "credit_balance_exhausted"), QuotaExceededError, False),
    (
        500,
        openai_body("The server had an error while processing your request.", "server_error", None),
        ServerError,
        True,
    ),
    (
        503,
        openai_body("The engine is currently overloaded, please try again later", "server_error", None),
        ServerError,
        True,
    ),
    (400, VLLM_CONTEXT, ContextWindowExceededError, False),
    (400, VLLM_MAX_TOKENS, ContextWindowExceededError, False),
    (400, VLLM_OLD_FLAT, ContextWindowExceededError, False),
    (404, VLLM_NOT_FOUND, NotFoundError, False),
    (401, json.dumps({"error": "Unauthorized"}), AuthenticationError, False),
    (404, json.dumps({"detail": "Not Found"}), NotFoundError, False),
    (
        422,
        json.dumps(
            {
                "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
                "Given: 4000 `inputs` tokens and 200 `max_new_tokens`",
                "error_type": "validation",
            }
        ),
        ContextWindowExceededError,
        False,
    ),
    (
        422,
        json.dumps(
            {"error": "Input validation error: `temperature` must be strictly positive", "error_type": "validation"}
        ),
        BadRequestError,
        False,
    ),
    (429, json.dumps({"error": "Model is overloaded", "error_type": "overloaded"}), RateLimitError, True),
    (
        424,
        json.dumps({"error": "Request failed during generation: boom", "error_type": "generation"}),
        APIStatusError,
        False,
    ),
    (408, "request timeout", APIStatusError, True),
    (409, openai_body("conflict", "conflict", None), APIStatusError, True),
    (502, "<html>bad gateway</html>", ServerError, True),
]


@pytest.mark.parametrize(("status", "body", "cls", "retryable"), CASES)
def test_status_and_body_choose_the_class(status: int, body: str, cls: type[APIStatusError], retryable: bool) -> None:
    error = error_from_response(status, {"x-request-id": "req_123"}, body.encode(), provider="p", model="m")
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status_code == status and error.request_id == "req_123"
    assert error.provider == "p" and error.model == "m"
    assert error.message  # never empty
    assert "req_123" in str(error) and f"HTTP {status}" in str(error)


def test_openai_body_fields_are_kept() -> None:
    error = error_from_response(429, {}, openai_body("slow down", "tokens", "rate_limit_exceeded").encode())
    assert error.error_type == "tokens" and error.error_code == "rate_limit_exceeded"
    assert error.message == "slow down"
    assert isinstance(error.body, dict)


def test_vllm_integer_code_is_kept() -> None:
    error = error_from_response(404, {}, VLLM_NOT_FOUND)
    assert error.error_code == 404 and error.error_type == "NotFoundError"
    assert "does not exist" in error.message


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False)])
def test_x_should_retry_overrides_the_status(value: str, expected: bool) -> None:
    assert error_from_response(400, {"x-should-retry": value}, b"{}").retryable is expected
    assert error_from_response(503, {"x-should-retry": value}, b"{}").retryable is expected


def test_x_should_retry_never_makes_quota_retryable() -> None:
    body = openai_body("quota", "insufficient_quota", "insufficient_quota").encode()
    assert error_from_response(429, {"x-should-retry": "true"}, body).retryable is False


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now=now) == pytest.approx(30)


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_response(429, {"retry-after": "7"}, openai_body("x", "requests", "rate_limit_exceeded"))
    assert isinstance(error, RateLimitError) and error.retry_after == 7.0


def test_long_bodies_are_cut() -> None:
    error = error_from_response(500, {}, "x" * 10_000)
    assert len(error.message) <= 500


def test_all_targets_failed_is_an_exception_group() -> None:
    first = ServerError("a", provider="p1", model="m")
    second = RateLimitError("b", provider="p2", model="m")
    group = AllTargetsFailedError("all failed", [first, second])
    assert list(group.exceptions) == [first, second]
    try:
        raise group
    except* RateLimitError as caught:
        assert isinstance(caught, AllTargetsFailedError)
        assert [type(e) for e in caught.exceptions] == [RateLimitError]
    except* ProviderError:
        pass
