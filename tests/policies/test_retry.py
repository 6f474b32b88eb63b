"""Retry waits (docs/reliability.md, "Retries"): backoff, jitter, Retry-After and the deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tenacity import RetryCallState

import turnout
from turnout import AsyncClient, Client
from turnout.policies import RetryPolicy, retry_if_retryable, wait_retry_after
from turnout.testing import FakeClock, FakeServer, Fault, Reply


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer(flavor="openai") as primary, FakeServer(flavor="openai") as backup:
        yield primary, backup


def _config(primary: FakeServer, backup: FakeServer, **route: Any) -> dict[str, Any]:
    price = {"input_per_million": 1, "output_per_million": 1}
    return {
        "providers": {
            "primary": {"type": "openai-compatible", "base_url": primary.base_url},
            "backup": {"type": "openai-compatible", "base_url": backup.base_url},
        },
        "models": {"m": {"targets": ["primary:m", "backup:m"], **route}},
        "prices": {"primary:m": price, "backup:m": price},
    }


def _chat(cfg: dict[str, Any], clock: FakeClock, mode: str) -> turnout.ChatResponse:
    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            return client.chat("m", "Hi")

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            return await client.chat("m", "Hi")

    return asyncio.run(go())


# --- backoff and jitter --------------------------------------------------------------------------


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=3, jitter=0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 1.0), (0.5, 0.875), (1.0, 0.75)])
def test_jitter_scales_the_wait_by_a_factor_in_1_minus_jitter_to_1(rand: float, factor: float) -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=8, jitter=0.25)
    assert policy.backoff(3, rand=lambda: rand) == 4 * factor


def test_waits_are_really_jittered(servers: tuple[FakeServer, FakeServer]) -> None:
    """20 first-retry waits at 1 s, jitter 0.25: all in [0.75, 1], and spread (no jitter: all 1.0)."""
    primary, backup = servers
    for _ in range(20):
        primary.enqueue(Fault.server_error(503), Reply("ok"))
    clock = FakeClock()
    cfg = _config(primary, backup, retry={"max_attempts": 2, "initial_delay": 1, "jitter": 0.25, "budget_ratio": 1})
    with Client(cfg, clock=clock) as client:
        for _ in range(20):
            client.chat("m", "Hi")
    assert len(clock.sleeps) == 20
    assert all(0.75 <= s <= 1.0 for s in clock.sleeps)
    assert max(clock.sleeps) - min(clock.sleeps) > 0.05 and len(set(clock.sleeps)) == 20


# --- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_http_date_retry_after_is_waited_end_to_end(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """`Retry-After: <HTTP-date>` 30 s ahead (RFC 9110 §10.2.3): the client sleeps until then, then retries."""
    primary, backup = servers
    primary.enqueue(Fault.rate_limit(retry_after=30, retry_after_date=True))
    clock = FakeClock()
    reply = _chat(_config(primary, backup, retry={"jitter": 0}), clock, mode)
    (slept,) = clock.sleeps
    assert 28.0 < slept <= 30.0  # the date has whole seconds; the wall clock moved on since it was sent
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("primary", "RateLimitError"), ("primary", "ok")]
    assert len(primary.chat_requests) == 2 and backup.chat_requests == []


def test_an_http_date_in_the_past_means_retry_now(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.status(429, "slow down", headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    clock = FakeClock()
    reply = _chat(_config(primary, backup), clock, "sync")
    assert clock.sleeps == [0.0] and reply.provider == "primary"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_retry_after_equal_to_the_cap_is_believed(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    primary, backup = servers
    primary.enqueue(Fault.rate_limit(retry_after=2), Fault.rate_limit(retry_after=2.5))
    clock = FakeClock()
    _chat(_config(primary, backup, retry={"max_retry_after": 2, "jitter": 0, "initial_delay": 0.25}), clock, mode)
    assert clock.sleeps == [2.0, 0.5]  # 2.5 > the cap: the second retry's backoff (0.25 * 2) instead


def test_retry_after_ms_wins_over_retry_after(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.rate_limit(retry_after=5, retry_after_ms=1500))
    clock = FakeClock()
    _chat(_config(primary, backup), clock, "sync")
    assert clock.sleeps == [1.5]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_503_retry_after_is_waited(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """Retry-After on a 503 says how long the service is unavailable (RFC 9110 §10.2.3): waited, not backoff."""
    primary, backup = servers
    primary.enqueue(
        Fault.server_error(503, headers={"retry-after": "7"}),
        Fault.server_error(502, headers={"retry-after-ms": "1500"}),
        Fault.server_error(500),  # none: the backoff (0.25 * 2**2)
    )
    clock = FakeClock()
    config = _config(primary, backup, retry={"max_attempts": 4, "jitter": 0, "initial_delay": 0.25})
    reply = _chat(config, clock, mode)
    assert clock.sleeps == [7.0, 1.5, 1.0]
    assert [a.outcome for a in reply.attempts] == ["ServerError", "ServerError", "ServerError", "ok"]


def test_retry_after_is_read_on_retryable_statuses_only() -> None:
    from turnout.errors import error_from_response

    headers = {"retry-after": "3"}
    assert [error_from_response(status, headers, "").retry_after for status in (503, 500, 408, 409, 429)] == [3.0] * 5
    assert error_from_response(400, headers, "").retry_after is None  # not retryable: nothing to wait for
    assert error_from_response(503, {}, "").retry_after is None


def test_a_strategy_with_no_outcome_yet_waits_the_backoff() -> None:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    assert wait_retry_after(RetryPolicy(jitter=0))(state) == 0.5
    assert retry_if_retryable(state) is False


def test_a_success_is_never_retried() -> None:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.set_result("fine")
    assert retry_if_retryable(state) is False


def test_an_error_after_content_is_never_retried() -> None:
    """A retryable stream cut is retried before content reached the caller, never after (docs/streaming.md)."""
    cut = turnout.StreamInterruptedError("cut", provider="a", model="m")
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.set_exception((type(cut), cut, None))
    assert retry_if_retryable(state) is True
    cut.after_content = True
    assert retry_if_retryable(state) is False


# --- the deadline -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_wait_that_uses_up_the_deadline_is_not_slept(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """Retry-After 2 s with exactly 2 s left: nothing would be left to send in, so on to the next target."""
    primary, backup = servers
    primary.enqueue(Fault.rate_limit(retry_after=2))
    clock = FakeClock()
    reply = _chat(_config(primary, backup, deadline=2), clock, mode)
    assert clock.sleeps == []
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("primary", "RateLimitError"), ("backup", "ok")]


def test_a_wait_that_ends_before_the_deadline_is_slept(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.rate_limit(retry_after=1.9))
    clock = FakeClock()
    reply = _chat(_config(primary, backup, deadline=2), clock, "sync")
    assert clock.sleeps == [1.9] and reply.provider == "primary"


# --- the defaults (docs/reliability.md, "The default policy") --------------------------------------


def test_retry_defaults_match_the_docs() -> None:
    policy = RetryPolicy()
    assert policy.model_dump() == {
        "max_attempts": 3,
        "initial_delay": 0.5,
        "max_delay": 8.0,
        "jitter": 0.25,
        "max_retry_after": 120.0,
        "budget_ratio": 0.1,
        "budget_burst": 10.0,
    }


def test_the_default_policy_makes_three_attempts_with_half_second_backoff(
    servers: tuple[FakeServer, FakeServer],
) -> None:
    primary, backup = servers
    primary.enqueue(*[Fault.server_error(500)] * 3)
    clock = FakeClock()
    reply = _chat(_config(primary, backup), clock, "sync")
    assert [a.outcome for a in reply.attempts] == ["ServerError"] * 3 + ["ok"]
    first, second = clock.sleeps
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0


def test_the_system_clock_really_sleeps() -> None:
    clock = turnout.policies.SystemClock()
    started = clock.now()
    clock.sleep(0.02)
    asyncio.run(clock.asleep(0.02))
    assert clock.now() - started >= 0.04
    assert abs(clock.now() - time.monotonic()) < 0.01
