"""Server answers that are not what the protocol promises: say what came back, and classify it.

Each case is scripted with `Fault.response` (an exact status, body and content-type) on the
OpenAI-shaped fake, and read through `chat` and `stream`, sync and async.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import turnout
from turnout.testing import FakeServer, Fault

from .conftest import CANARY_KEY, Runner

MODEL = "openai:gpt-4o-mini"
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])


def _config(server: FakeServer, attempts: int = 1) -> dict[str, Any]:
    return {
        "providers": {"openai": {"type": "openai", "base_url": server.base_url, "api_key": CANARY_KEY}},
        "defaults": {"retry": {"max_attempts": attempts, "initial_delay": 0, "max_delay": 0}},
    }


def _fails(runner: Runner, streamed: bool, server: FakeServer, attempts: int = 1) -> turnout.ProviderError:
    with pytest.raises(turnout.ProviderError) as info:
        runner.call(streamed, _config(server, attempts), MODEL, "Hi")
    return info.value


BODY_ERRORS = [
    ({"message": "model overloaded"}, turnout.ServerError, True),
    ({"message": "slow down", "type": "rate_limit_error"}, turnout.RateLimitError, True),
    ({"message": "no such key", "code": "invalid_api_key"}, turnout.AuthenticationError, False),
    ({"message": "gone", "code": 404}, turnout.NotFoundError, False),
    ({"message": "out of credit", "type": "insufficient_quota"}, turnout.QuotaExceededError, False),
    ({"object": "error", "message": "flat", "type": "BadRequestError", "code": 400}, turnout.BadRequestError, False),
]


@STREAMED
@pytest.mark.parametrize(("error", "cls", "retryable"), BODY_ERRORS, ids=[c.__name__ for _, c, _ in BODY_ERRORS])
def test_an_error_body_sent_with_200_is_the_typed_error(
    runner: Runner, fake_openai: FakeServer, streamed: bool, error: dict[str, Any], cls: type, retryable: bool
) -> None:
    body = error if error.get("object") == "error" else {"error": error}  # vLLM < 0.10.1 sends errors flat
    fake_openai.enqueue(Fault.response(200, json.dumps(body)))
    exc = _fails(runner, streamed, fake_openai)
    assert type(exc) is cls
    assert exc.retryable is retryable
    assert error["message"] in str(exc)
    assert exc.status_code == 200


def test_an_overloaded_200_is_retried(runner: Runner, fake_openai: FakeServer) -> None:
    fake_openai.enqueue(Fault.response(200, b'{"error": {"message": "model overloaded"}}'))
    reply = runner.chat(_config(fake_openai, attempts=2), MODEL, "Hi")
    assert reply.text == "Hi"
    assert [a.outcome for a in reply.attempts] == ["ServerError", "ok"]


@STREAMED
@pytest.mark.parametrize(("status", "cls"), [(500, turnout.ServerError), (429, turnout.RateLimitError)])
@pytest.mark.parametrize("content_type", ["application/json", None])
def test_an_empty_error_body_names_the_status_and_content_type(
    runner: Runner, fake_openai: FakeServer, streamed: bool, status: int, cls: type, content_type: str | None
) -> None:
    fake_openai.enqueue(Fault.response(status, b"", content_type=content_type))
    exc = _fails(runner, streamed, fake_openai)
    assert type(exc) is cls
    assert f"HTTP {status} " in exc.message and "empty body" in exc.message
    assert (content_type or "no content-type") in exc.message
    assert "None" not in str(exc)


@STREAMED
def test_an_html_error_page_is_described(runner: Runner, fake_openai: FakeServer, streamed: bool) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
    fake_openai.enqueue(Fault.response(502, page, content_type="text/html"))
    exc = _fails(runner, streamed, fake_openai)
    assert isinstance(exc, turnout.ServerError)
    assert exc.message.startswith("HTTP 502 Bad Gateway; the body is not an API error (text/html, ")
    assert "<title>502 Bad Gateway</title>" in exc.message


@STREAMED
def test_a_redirect_says_where_and_which_setting_to_fix(
    runner: Runner, fake_openai: FakeServer, streamed: bool
) -> None:
    moved = "https://new.example/v1/chat/completions"
    fake_openai.enqueue(Fault.response(301, b"", content_type=None, headers={"location": moved}))
    exc = _fails(runner, streamed, fake_openai, attempts=3)
    assert isinstance(exc, turnout.RedirectError)
    assert exc.location == moved and exc.status_code == 301 and not exc.retryable
    assert f"redirected to {moved}" in str(exc) and "Set providers.openai.base_url" in str(exc)
    assert len(fake_openai.chat_requests) == 1


@STREAMED
def test_a_200_html_page_is_shown_and_not_retried(runner: Runner, fake_openai: FakeServer, streamed: bool) -> None:
    page = f"<!DOCTYPE html>\n<html><title>Sign in</title><body>token {CANARY_KEY}</body></html>"
    fake_openai.enqueue(*[Fault.response(200, page, content_type="text/html; charset=utf-8")] * 3)
    exc = _fails(runner, streamed, fake_openai, attempts=3)
    assert type(exc) is turnout.ResponseValidationError
    assert not exc.retryable
    assert "HTTP 200 with text/html; charset=utf-8" in str(exc)
    assert "<!DOCTYPE html> <html><title>Sign in</title>" in str(exc)
    assert CANARY_KEY not in str(exc)
    assert len(fake_openai.chat_requests) == 1


@pytest.mark.parametrize("body", [b'{"id": "x", "object": "chat.completion", "choices": []}', b'{"choices": []}'])
def test_a_reply_without_choices_is_not_an_empty_answer(runner: Runner, fake_openai: FakeServer, body: bytes) -> None:
    fake_openai.enqueue(Fault.response(200, body))
    exc = _fails(runner, False, fake_openai)
    assert type(exc) is turnout.ResponseValidationError
    assert "choices is empty" in str(exc)


def test_a_stream_of_only_done_is_not_an_empty_answer(runner: Runner, fake_openai: FakeServer) -> None:
    fake_openai.enqueue(Fault.response(200, b"data: [DONE]\n\n", content_type="text/event-stream"))
    exc = _fails(runner, True, fake_openai)
    assert type(exc) is turnout.ResponseValidationError
    assert "without a single chunk" in str(exc)
