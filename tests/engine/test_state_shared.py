"""`RouteState` over `[state]` on Redis: latency averages and retry budgets written to the shared store.

Needs the real Redis of ``scripts/services`` (``TURNOUT_TEST_REDIS_URL``); skipped without it, or
failed under ``TURNOUT_REQUIRE_SERVICES=1``. See docs/many-workers.md ("What is shared").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

import turnout
from turnout.cost.prices import Pricing
from turnout.engine.state import RouteState
from turnout.limits import RateLimit
from turnout.policies.retry import RetryPolicy
from turnout.policies.route import RoutePolicy
from turnout.shared import SharedState, StateConfig
from turnout.testing import FakeClock

from ..shared.conftest import redis_url
from .conftest import Stub

__all__ = ["redis_url"]  # the fixture, used by name below


@pytest.fixture
def shared(redis_url: str) -> Iterator[SharedState]:
    state = SharedState(StateConfig(url=redis_url, prefix=f"test-{uuid.uuid4().hex[:12]}", timeout=1))
    yield state
    state.close()


def _hash(shared: SharedState, name: str) -> dict[str, str]:
    """The shared hash ``{prefix}:<name>`` once the background writes are done."""
    shared.drain()
    with redis.Redis.from_url(shared.config.url or "", decode_responses=True) as client:
        found = client.hgetall(f"{shared.base}:{name}")
    return {str(k): str(v) for k, v in found.items()}


def _route_state(shared: SharedState) -> RouteState:
    return RouteState(FakeClock(), Pricing(turnout.Config.from_dict({}).prices), shared=shared)


def test_latency_goes_into_the_shared_moving_average_too(shared: SharedState) -> None:
    state = _route_state(shared)
    assert state.shared is shared
    state.observe("a:m", 1.0)
    state.observe("a:m", 2.0)
    assert state.shared_latency() == {"a:m": pytest.approx(1.2)}
    assert float(_hash(shared, "latency")["a:m"]) == pytest.approx(1.2)  # the same weight, one fifth


def test_retry_deposits_and_spends_go_to_the_shared_count(shared: SharedState) -> None:
    state = _route_state(shared)
    budget = state.budget("a:m", RoutePolicy(retry=RetryPolicy(budget_ratio=0.5, budget_burst=2)))
    assert (budget.ratio, budget.burst, budget.tokens) == (0.5, 2, 2)
    assert budget.try_spend() and budget.try_spend()
    assert _hash(shared, "retry") == {"a:m": "0"}
    budget.deposit()
    assert _hash(shared, "retry") == {"a:m": "0.5"}
    assert not budget.try_spend()  # half a token: no retry, and nothing taken from the shared count
    assert budget.tokens == 0.5
    assert _hash(shared, "retry") == {"a:m": "0.5"}
    state.budget("b:m", RoutePolicy()).deposit()  # each target its own count, at most its burst
    assert _hash(shared, "retry") == {"a:m": "0.5", "b:m": "10"}


def test_a_rate_limit_is_kept_on_the_shared_state(shared: SharedState) -> None:
    state = _route_state(shared)
    state.limits = {"a": RateLimit(requests_per_minute=1)}
    limiter = state.limiter(Stub("a", turnout.ProviderConfig(type="engine-stub")), "m")
    assert limiter is not None and limiter.shared is shared
