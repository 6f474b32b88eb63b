"""Circuit breakers (docs/reliability.md, "Circuit breakers and `health()`")."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.policies import BreakerPolicy, CircuitBreaker, TargetHealth
from turnout.testing import FakeClock, FakeServer, Fault, Reply


def _breaker(clock: FakeClock, **policy: Any) -> CircuitBreaker:
    return CircuitBreaker("p:m", BreakerPolicy(**policy), clock)


# --- consecutive failures, cooldown, half-open -------------------------------------------------


def test_the_threshold_counts_consecutive_failures_and_a_success_starts_again() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=3)
    breaker.record(False, "ServerError")
    breaker.record(False, "ServerError")
    breaker.record(True)
    breaker.record(False, "ServerError")
    breaker.record(False, "ServerError")
    assert breaker.health() == TargetHealth(target="p:m", state="closed", consecutive_failures=2)
    breaker.record(False, "APIConnectionError")
    assert breaker.health() == TargetHealth(
        target="p:m", state="open", reason="APIConnectionError", retry_in=30.0, consecutive_failures=3
    )
    assert not breaker.allow()


def test_retry_in_counts_down_the_cooldown_then_one_probe_is_let_through() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=1, cooldown=10)
    assert breaker.retry_in() == 0.0  # closed
    breaker.record(False, "ServerError")
    clock.advance(4)
    assert breaker.retry_in() == 6.0 and not breaker.allow()
    assert breaker.health().retry_in == 6.0 and breaker.health().state == "open"
    clock.advance(5.5)
    assert breaker.retry_in() == 0.5 and not breaker.allow()
    clock.advance(0.5)  # the cooldown has passed exactly
    assert breaker.retry_in() == 0.0
    health = breaker.health()
    assert (health.state, health.reason, health.retry_in) == ("half_open", "ServerError", None)
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    clock.advance(100)
    assert breaker.retry_in() == 0.0 and not breaker.allow()  # the probe is still out


def test_a_failed_probe_opens_the_circuit_again_for_a_whole_cooldown() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=5, cooldown=10)
    for _ in range(5):
        breaker.record(False, "ServerError")
    clock.advance(10)
    assert breaker.allow()
    clock.advance(3)
    breaker.record(False, "RateLimitError")  # below the threshold? no: a failed probe always reopens
    assert breaker.health().state == "open" and breaker.retry_in() == 10.0
    assert breaker.health().reason == "RateLimitError"


def test_a_failed_probe_reopens_even_when_no_rule_would_trip() -> None:
    """Opened by the failure rate; by the probe the window holds only the probe, and 2 failures < 100."""
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=100, failure_rate=0.5, window=1, min_calls=2, cooldown=10)
    breaker.record(True)
    breaker.record(False, "ServerError")
    assert breaker.health().state == "open"
    clock.advance(10)
    assert breaker.allow()
    breaker.record(False, "ServerError")
    assert breaker.health().state == "open" and not breaker.allow()


def test_a_successful_probe_closes_it_and_clears_the_reason() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=1, cooldown=1)
    breaker.record(False, "ServerError")
    clock.advance(1)
    assert breaker.allow()
    breaker.record(True)
    assert breaker.health() == TargetHealth(target="p:m", state="closed")
    assert breaker.allow() and breaker.allow()  # closed: no probe limit


# --- failure rate ----------------------------------------------------------------------------


def test_the_failure_rate_needs_min_calls_in_the_window() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=100, failure_rate=0.5, min_calls=4)
    for _ in range(3):
        breaker.record(False, "ServerError")
    assert breaker.health().state == "closed"  # 3 of 3 failed, but only 3 calls
    breaker.record(False, "ServerError")
    assert breaker.health().state == "open"


def test_the_failure_rate_opens_at_the_rate_not_below_it() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=100, failure_rate=0.5, min_calls=4)
    for ok in (True, True, False, True, False):  # 2 of 5 = 40 %
        breaker.record(ok, None if ok else "ServerError")
    assert breaker.health().state == "closed"
    breaker.record(False, "ServerError")  # 3 of 6 = 50 %
    assert breaker.health().state == "open"


def test_calls_older_than_the_window_do_not_count() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=100, failure_rate=0.5, window=10, min_calls=4)
    breaker.record(False, "ServerError")
    breaker.record(False, "ServerError")
    clock.advance(10.5)  # those two have left the window
    for ok in (True, True, True, False):  # 1 of 4 in the window; 3 of 6 with the old ones
        breaker.record(ok, None if ok else "ServerError")
    assert breaker.health().state == "closed"


def test_a_call_exactly_window_seconds_old_still_counts() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=100, failure_rate=0.5, window=10, min_calls=4)
    breaker.record(False, "ServerError")
    breaker.record(False, "ServerError")
    clock.advance(10)
    breaker.record(True)
    breaker.record(False, "ServerError")  # 3 of 4 within the last 10 s (the rate is checked on a failure)
    assert breaker.health().state == "open"


def test_without_a_failure_rate_only_consecutive_failures_open_it() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=3, min_calls=1)
    for _ in range(10):
        breaker.record(False, "ServerError")
        breaker.record(True)
    assert breaker.health().state == "closed"


# --- enabled = false ---------------------------------------------------------------------------


def test_a_disabled_breaker_always_allows() -> None:
    breaker = _breaker(FakeClock(), enabled=False, failure_threshold=1)
    for _ in range(5):
        breaker.record(False, "ServerError")
        assert breaker.allow()
    assert breaker.health() == TargetHealth(target="p:m", state="closed")  # not reported open either


# --- through a client ----------------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer(flavor="openai") as primary, FakeServer(flavor="openai") as backup:
        yield primary, backup


def _config(primary: FakeServer, backup: FakeServer, **breaker: Any) -> dict[str, Any]:
    price = {"input_per_million": 1, "output_per_million": 1}
    return {
        "providers": {
            "primary": {"type": "openai-compatible", "base_url": primary.base_url},
            "backup": {"type": "openai-compatible", "base_url": backup.base_url},
        },
        "models": {
            "m": {
                "targets": ["primary:m", "backup:m"],
                "retry": {"max_attempts": 1},
                "fallback_on": ["retryable", "connection", "bad_request"],
                "breaker": breaker,
            }
        },
        "prices": {"primary:m": price, "backup:m": price},
    }


def _calls(cfg: dict[str, Any], mode: str, count: int) -> tuple[list[turnout.ChatResponse], dict[str, TargetHealth]]:
    clock = FakeClock()
    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            replies = [client.chat("m", "Hi") for _ in range(count)]
            return replies, {h.target: h for h in client.health()}

    async def go() -> tuple[list[turnout.ChatResponse], dict[str, TargetHealth]]:
        async with AsyncClient(cfg, clock=clock) as client:
            replies = [await client.chat("m", "Hi") for _ in range(count)]
            return replies, {h.target: h for h in client.health()}

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_callers_bad_requests_do_not_open_the_circuit(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """A 400 is the caller's fault, not the target's: five of them leave a threshold-1 circuit closed."""
    primary, backup = servers
    primary.enqueue(*[Fault.status(400, "bad request")] * 5)
    replies, health = _calls(_config(primary, backup, failure_threshold=1), mode, 6)
    assert len(primary.chat_requests) == 6  # never skipped
    assert [r.provider for r in replies] == ["backup"] * 5 + ["primary"]
    assert health["primary:m"].state == "closed" and health["primary:m"].consecutive_failures == 0


@pytest.mark.parametrize("fault", [Fault.server_error(503), Fault.drop()], ids=["5xx", "connection"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_targets_own_failures_open_it(servers: tuple[FakeServer, FakeServer], mode: str, fault: Fault) -> None:
    primary, backup = servers
    primary.enqueue(fault)
    replies, health = _calls(_config(primary, backup, failure_threshold=1), mode, 2)
    assert len(primary.chat_requests) == 1
    assert replies[1].attempts[0].outcome == "CircuitOpenError" and replies[1].attempts[0].skipped
    assert health["primary:m"].state == "open"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_enabled_false_keeps_sending_to_a_failing_target(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    primary, backup = servers
    primary.enqueue(*[Fault.server_error(500)] * 4)
    replies, health = _calls(_config(primary, backup, enabled=False, failure_threshold=1), mode, 5)
    assert len(primary.chat_requests) == 5
    assert health["primary:m"].state == "closed"
    assert [r.provider for r in replies] == ["backup"] * 4 + ["primary"]
    assert not any(a.skipped for r in replies for a in r.attempts)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_failure_rate_opens_the_circuit_through_a_client(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """Failures that alternate with successes never make 5 in a row, but 2 of the last 4 calls failed."""
    primary, backup = servers
    primary.enqueue(Reply("ok"), Fault.server_error(500), Reply("ok"), Fault.server_error(500))
    replies, health = _calls(_config(primary, backup, failure_rate=0.5, min_calls=4), mode, 5)
    assert [r.provider for r in replies] == ["primary", "backup", "primary", "backup", "backup"]
    assert len(primary.chat_requests) == 4
    assert replies[4].attempts[0].outcome == "CircuitOpenError" and replies[4].attempts[0].skipped
    assert health["primary:m"].state == "open"
