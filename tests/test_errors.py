"""The error tree (`turnout.errors`); how HTTP replies become errors is in tests/providers (test_*_errors.py)."""

from __future__ import annotations

import pytest

from turnout.errors import (
    AllTargetsFailedError,
    ProviderError,
    RateLimitError,
    ServerError,
)


def test_the_builders_stay_importable_from_turnout_errors() -> None:
    from turnout import errors
    from turnout.providers import _http_errors, _openai_errors

    assert errors.error_from_response is _openai_errors.error_from_response
    assert errors.error_in_body is _openai_errors.error_in_body
    for name in ("describe_body", "parse_retry_after", "redirect_error"):
        assert getattr(errors, name) is getattr(_http_errors, name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        errors.nothing_here  # noqa: B018


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
