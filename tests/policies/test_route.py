"""Route policy (docs/reliability.md): `fallback_on`, `lowest-cost`, `wait_for_recovery` and the defaults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.policies import BreakerPolicy, RetryPolicy, RoutePolicy
from turnout.testing import FakeClock, FakeServer, Fault


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer(flavor="openai") as primary, FakeServer(flavor="openai") as backup:
        yield primary, backup


def _config(primary: FakeServer, backup: FakeServer, **route: Any) -> dict[str, Any]:
    return {
        "providers": {
            "primary": {"type": "openai-compatible", "base_url": primary.base_url},
            "backup": {"type": "openai-compatible", "base_url": backup.base_url},
        },
        "models": {"m": {"targets": ["primary:m", "backup:m"], "retry": {"max_attempts": 1}, **route}},
        "prices": {
            "primary:m": {"input_per_million": 5, "output_per_million": 5},
            "backup:m": {"input_per_million": 1, "output_per_million": 1},
        },
    }


def _chat(cfg: dict[str, Any], mode: str, clock: FakeClock | None = None) -> turnout.ChatResponse:
    clock = clock or FakeClock()
    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            return client.chat("m", "Hi")

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            return await client.chat("m", "Hi")

    return asyncio.run(go())


# --- fallback_on ---------------------------------------------------------------------------------

OPT_IN = {
    "bad_request": (Fault.status(400, "bad"), turnout.BadRequestError),
    "auth": (Fault.unauthorized(), turnout.AuthenticationError),
    "not_found": (Fault.not_found(), turnout.NotFoundError),
    "quota": (Fault.insufficient_quota(), turnout.QuotaExceededError),
    "invalid_response": (Fault.malformed_json(), turnout.ResponseValidationError),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("category", sorted(OPT_IN))
def test_an_opt_in_category_falls_back(servers: tuple[FakeServer, FakeServer], category: str, mode: str) -> None:
    primary, backup = servers
    fault, error = OPT_IN[category]
    primary.enqueue(fault)
    reply = _chat(_config(primary, backup, fallback_on=[category]), mode)
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("primary", error.__name__), ("backup", "ok")]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("category", sorted(OPT_IN))
def test_a_category_not_listed_does_not_fall_back(
    servers: tuple[FakeServer, FakeServer], category: str, mode: str
) -> None:
    """The default `fallback_on`, plus every other opt-in category: this error raises, the backup is never asked."""
    primary, backup = servers
    fault, error = OPT_IN[category]
    primary.enqueue(fault)
    others = [c for c in OPT_IN if c != category]
    with pytest.raises(error):
        _chat(_config(primary, backup, fallback_on=["retryable", "context_window", "connection", *others]), mode)
    assert backup.chat_requests == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retryable_errors_do_not_fall_back_when_retryable_is_not_listed(
    servers: tuple[FakeServer, FakeServer], mode: str
) -> None:
    primary, backup = servers
    primary.enqueue(Fault.server_error(503))
    with pytest.raises(turnout.ServerError):
        _chat(_config(primary, backup, fallback_on=["connection"]), mode)
    assert backup.chat_requests == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connection_errors_fall_back_with_only_connection_listed(
    servers: tuple[FakeServer, FakeServer], mode: str
) -> None:
    primary, backup = servers
    primary.enqueue(Fault.drop())
    reply = _chat(_config(primary, backup, fallback_on=["connection"]), mode)
    assert [a.outcome for a in reply.attempts] == ["APIConnectionError", "ok"]


# --- lowest-cost -----------------------------------------------------------------------------------


def test_lowest_cost_puts_unknown_prices_last(servers: tuple[FakeServer, FakeServer]) -> None:
    """The first target has no price at all, the second a dear one: the dear, known one goes first."""
    primary, backup = servers
    cfg = _config(primary, backup, balance="lowest-cost")
    cfg["prices"] = {"backup:m": {"input_per_million": 1000, "output_per_million": 1000}}
    with Client(cfg, clock=FakeClock()) as client:
        assert client.chat("m", "Hi").provider == "backup"
    assert primary.chat_requests == []


def test_lowest_cost_orders_by_input_plus_output_price(servers: tuple[FakeServer, FakeServer]) -> None:
    """primary: 1 + 4 = 5 USD/M, backup: 3 + 3 = 6 USD/M: primary first (by output price alone it would be backup)."""
    primary, backup = servers
    cfg = _config(primary, backup, balance="lowest-cost")
    cfg["prices"] = {
        "primary:m": {"input_per_million": 1, "output_per_million": 4},
        "backup:m": {"input_per_million": 3, "output_per_million": 3},
    }
    with Client(cfg, clock=FakeClock()) as client:
        assert client.chat("m", "Hi").provider == "primary"


@pytest.mark.parametrize(("backup_price", "first"), [("0.1", "backup"), ("1", "cloud")])
def test_lowest_cost_reads_catalogue_prices(
    servers: tuple[FakeServer, FakeServer], backup_price: str, first: str
) -> None:
    """gpt-4o-mini in genai-prices: 0.15 + 0.60 = 0.75 USD/M, between 0.2 and 2."""
    primary, backup = servers
    cfg = _config(primary, backup, balance="lowest-cost")
    cfg["providers"]["cloud"] = {"type": "openai", "base_url": primary.base_url, "api_key": "sk-test"}
    cfg["models"]["m"]["targets"] = ["cloud:gpt-4o-mini", "backup:m"]
    cfg["prices"] = {"backup:m": {"input_per_million": backup_price, "output_per_million": backup_price}}
    with Client(cfg, clock=FakeClock()) as client:
        assert client.chat("m", "Hi").provider == first


# --- wait_for_recovery -------------------------------------------------------------------------------


def _open_both(primary: FakeServer, backup: FakeServer, **route: Any) -> dict[str, Any]:
    primary.enqueue(Fault.server_error(500))
    backup.enqueue(Fault.server_error(500))
    return _config(primary, backup, wait_for_recovery=True, breaker={"failure_threshold": 1, "cooldown": 5}, **route)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wait_for_recovery_does_not_wait_past_the_deadline(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """Both circuits open for 5 s, 4 s of deadline: waiting cannot help, so the call fails at once."""
    primary, backup = servers
    cfg = _open_both(primary, backup, deadline=4)
    clock = FakeClock()

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            with pytest.raises(turnout.AllTargetsFailedError):
                await client.chat("m", "Hi")
            with pytest.raises(turnout.AllTargetsFailedError) as info:
                await client.chat("m", "Hi")
            assert [a.outcome for a in info.value.attempts] == ["CircuitOpenError", "CircuitOpenError"]

    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            with pytest.raises(turnout.AllTargetsFailedError):
                client.chat("m", "Hi")
            with pytest.raises(turnout.AllTargetsFailedError) as info:
                client.chat("m", "Hi")
            assert [a.outcome for a in info.value.attempts] == ["CircuitOpenError", "CircuitOpenError"]
    else:
        asyncio.run(go())
    assert clock.sleeps == []
    assert len(primary.chat_requests) == 1 and len(backup.chat_requests) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wait_for_recovery_waits_when_the_probe_comes_within_the_deadline(
    servers: tuple[FakeServer, FakeServer], mode: str
) -> None:
    primary, backup = servers
    cfg = _open_both(primary, backup, deadline=6)
    clock = FakeClock()

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            with pytest.raises(turnout.AllTargetsFailedError):
                await client.chat("m", "Hi")
            return await client.chat("m", "Hi")

    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            with pytest.raises(turnout.AllTargetsFailedError):
                client.chat("m", "Hi")
            reply = client.chat("m", "Hi")
    else:
        reply = asyncio.run(go())
    assert clock.sleeps == [5.0] and reply.provider == "primary"


def test_without_wait_for_recovery_open_circuits_fail_at_once(servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(Fault.server_error(500))
    backup.enqueue(Fault.server_error(500))
    cfg = _config(primary, backup, deadline=60, breaker={"failure_threshold": 1, "cooldown": 5})
    clock = FakeClock()
    with Client(cfg, clock=clock) as client:
        with pytest.raises(turnout.AllTargetsFailedError):
            client.chat("m", "Hi")
        with pytest.raises(turnout.AllTargetsFailedError):
            client.chat("m", "Hi")
    assert clock.sleeps == []


# --- the defaults (docs/reliability.md, "The default policy") ----------------------------------------


def test_route_defaults_match_the_docs() -> None:
    policy = RoutePolicy()
    assert policy.retry == RetryPolicy()
    assert policy.fallback_on == ["retryable", "context_window", "connection"]
    assert policy.deadline is None
    assert policy.balance == "ordered"
    assert policy.weights is None
    assert policy.breaker == BreakerPolicy()
    assert policy.wait_for_recovery is False
    assert policy.precheck_context is True
    assert policy.hedge_after is None
    assert policy.output_retries == 1


def test_breaker_defaults_match_the_docs() -> None:
    assert BreakerPolicy().model_dump() == {
        "enabled": True,
        "failure_threshold": 5,
        "failure_rate": None,
        "window": 60.0,
        "min_calls": 20,
        "cooldown": 30.0,
    }


def test_a_config_without_policies_gets_the_defaults() -> None:
    config = turnout.Config.from_dict({"providers": {"p": {"type": "vllm"}}, "models": {"m": {"targets": ["p:a"]}}})
    assert config.policy("m") == RoutePolicy()
    assert config.policy("p:a") == RoutePolicy()
