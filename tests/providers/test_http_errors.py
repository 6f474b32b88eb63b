"""The generic half of error building (`turnout.providers._http_errors`): status, retryability, Retry-After."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from turnout.errors import BadRequestError, QuotaExceededError, RedirectError, ServerError
from turnout.providers._http_errors import ErrorBody, describe_body, parse_retry_after, redirect_error, status_error

QUOTA = ErrorBody({"error": {}}, "out of credit", None, "insufficient_quota")


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False)])
def test_x_should_retry_overrides_the_status(value: str, expected: bool) -> None:
    found = ErrorBody({}, "m", None, None)
    assert status_error(400, {"x-should-retry": value}, found).retryable is expected
    assert status_error(503, {"x-should-retry": value}, found).retryable is expected


def test_x_should_retry_never_makes_quota_retryable() -> None:
    error = status_error(429, {"x-should-retry": "true"}, QUOTA, quota=True)
    assert type(error) is QuotaExceededError and error.retryable is False


def test_the_status_to_classify_by_can_differ_from_the_status_that_came() -> None:
    error = status_error(200, {}, ErrorBody({}, "bad", None, None), classify_as=400)
    assert type(error) is BadRequestError and error.status_code == 200 and not error.retryable


def test_the_message_is_cut() -> None:
    error = status_error(500, {}, ErrorBody("x", "x" * 10_000, None, None))
    assert type(error) is ServerError and error.message == "x" * 500


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


def test_describe_body_masks_secrets_and_quotes_the_start() -> None:
    text = describe_body({"content-type": "text/html"}, b"<html>secret-value " + b"x" * 300, secrets=["secret-value"])
    assert text.startswith("text/html, 319 bytes: '<html>")
    assert "secret-value" not in text and text.endswith("...'")


def test_redirect_error_names_the_base_url_to_fix() -> None:
    error = redirect_error(301, {"location": "https://new.example/v1"}, base_url="https://old.example/v1", provider="p")
    assert type(error) is RedirectError and error.location == "https://new.example/v1" and not error.retryable
    assert "Set providers.p.base_url (now https://old.example/v1)" in error.message
