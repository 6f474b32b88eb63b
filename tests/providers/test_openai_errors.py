"""Error bodies of OpenAI-compatible servers -> turnout's errors (`turnout.providers._openai_errors`).

Bodies: https://platform.openai.com/docs/guides/error-codes (OpenAI), vLLM's ``ErrorResponse``
(vllm/entrypoints/openai/protocol.py; vLLM 0.32 seen 2026-11-27), TGI's ``ErrorResponse`` (docs/openapi.json).
"""

from __future__ import annotations

import json

import pytest

import turnout
from turnout.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from turnout.providers._openai_errors import error_from_response, error_in_body
from turnout.testing import FakeServer, FakeTGIServer, Fault, Reply

from ..conftest import LLAMA, Runner
from .conftest import CONFIG_PRICE


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


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_response(429, {"retry-after": "7"}, openai_body("x", "requests", "rate_limit_exceeded"))
    assert isinstance(error, RateLimitError) and error.retry_after == 7.0


def test_long_bodies_are_cut() -> None:
    error = error_from_response(500, {}, "x" * 10_000)
    assert len(error.message) <= 500


def test_an_error_sent_with_a_200_is_classified_by_its_words() -> None:
    body = json.dumps({"error": {"message": "Model is overloaded, try later", "type": "overloaded_error"}})
    error = error_in_body(200, {}, body)
    assert type(error) is ServerError and error.retryable and error.status_code == 200
    assert error.message == "Model is overloaded, try later (sent as an error body with HTTP 200)"
    assert error_in_body(200, {}, json.dumps({"choices": []})) is None


def test_the_openai_provider_reads_openais_quota_body(runner: Runner) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"]) as server:
        server.enqueue(Fault.insufficient_quota())
        config = {
            "providers": {"p": {"type": "openai", "base_url": server.base_url, "api_key": "k"}},
            "defaults": {"retry": {"max_attempts": 1}},
        }
        with pytest.raises(turnout.QuotaExceededError) as info:
            runner.chat(config, "p:gpt-4o-mini", "Hi")
    assert info.value.status_code == 429 and not info.value.retryable
    assert info.value.error_code == "insufficient_quota"


def _tgi_through_openai_wire(server: FakeTGIServer) -> dict[str, object]:
    provider = {"type": "openai-compatible", "base_url": server.url + "/v1"}
    defaults = {"retry": {"max_attempts": 1}, "precheck_context": False}
    return {"providers": {"p": provider}, "prices": {f"p:{LLAMA}": CONFIG_PRICE}, "defaults": defaults}


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_an_openai_compatible_provider_reads_tgis_context_error(runner: Runner, streamed: bool) -> None:
    """TGI's Messages API is an OpenAI-compatible server: its validation messages mean a context overflow."""
    with FakeTGIServer(LLAMA, max_input_tokens=15, max_total_tokens=16) as tgi:
        with pytest.raises(ContextWindowExceededError, match="Input validation error: `inputs`") as info:
            runner.call(
                streamed, _tgi_through_openai_wire(tgi), f"p:{LLAMA}", "one two three four five six", max_tokens=8
            )
    # in a stream TGI sends the error as {"message", "http_status_code"}, without a type
    assert info.value.status_code == 422 and info.value.error_type == (None if streamed else "validation")


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_an_openai_compatible_provider_reads_tgis_finish_words(runner: Runner, streamed: bool) -> None:
    with FakeTGIServer(LLAMA) as tgi:
        tgi.enqueue(Reply("Hi!", finish_reason="eos_token"))
        reply = runner.call(streamed, _tgi_through_openai_wire(tgi), f"p:{LLAMA}", "Hello")
    assert reply.text == "Hi!" and reply.finish_reason == "stop"
