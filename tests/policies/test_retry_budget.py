"""The retry budget (docs/reliability.md, "Retries"): every call deposits `budget_ratio`, every retry spends one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from turnout import AsyncClient, Client
from turnout.policies import RetryBudget
from turnout.testing import FakeClock, FakeServer, Fault


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer(flavor="openai") as dead, FakeServer(flavor="openai") as healthy:
        yield dead, healthy


def _config(dead: FakeServer, healthy: FakeServer, **retry: Any) -> dict[str, Any]:
    return {
        "providers": {
            "dead": {"type": "openai-compatible", "base_url": dead.base_url},
            "healthy": {"type": "openai-compatible", "base_url": healthy.base_url},
        },
        "models": {
            "m": {
                "targets": ["dead:m", "healthy:m"],
                "retry": {"max_attempts": 3, **retry},
                "breaker": {"enabled": False},  # only the budget limits the retries here
            }
        },
        "prices": {
            "dead:m": {"input_per_million": 1, "output_per_million": 1},
            "healthy:m": {"input_per_million": 1, "output_per_million": 1},
        },
    }


def test_a_new_bucket_holds_the_burst_and_each_retry_spends_one() -> None:
    budget = RetryBudget(ratio=0.5, burst=2)
    assert budget.tokens == 2
    assert budget.try_spend() and budget.tokens == 1
    assert budget.try_spend() and budget.tokens == 0
    assert not budget.try_spend() and budget.tokens == 0  # an empty bucket stays at 0


def test_a_deposit_adds_the_ratio_and_one_whole_token_is_needed() -> None:
    budget = RetryBudget(ratio=0.5, burst=2)
    budget.try_spend(), budget.try_spend()
    budget.deposit()
    assert budget.tokens == 0.5 and not budget.try_spend() and budget.tokens == 0.5
    budget.deposit()
    assert budget.tokens == 1 and budget.try_spend() and budget.tokens == 0  # exactly one token is enough


def test_deposits_never_fill_the_bucket_past_the_burst() -> None:
    budget = RetryBudget(ratio=1, burst=2)
    budget.try_spend()
    for _ in range(5):
        budget.deposit()
    assert budget.tokens == 2
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_outage_retries_exactly_what_the_budget_allows(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """20 calls to a dead target, 3 attempts each, burst 2, ratio 0.25 (exact in binary floating point).

    Call 1 spends the full bucket (2 retries). Each later call deposits 0.25, so every 4th call
    (calls 5, 9, 13, 17) has one token: 4 more retries. 6 in all, where no budget would allow 40.
    """
    dead, healthy = servers
    dead.enqueue(*[Fault.server_error(503)] * 100)
    cfg = _config(dead, healthy, budget_ratio=0.25, budget_burst=2, jitter=0)
    clock = FakeClock()
    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            replies = [client.chat("m", f"Hi {i}") for i in range(20)]
    else:

        async def go() -> list[Any]:
            async with AsyncClient(cfg, clock=clock) as client:
                return [await client.chat("m", f"Hi {i}") for i in range(20)]

        replies = asyncio.run(go())
    assert [r.provider for r in replies] == ["healthy"] * 20
    assert len(dead.chat_requests) - 20 == 6
    assert [len(r.attempts) for r in replies[:6]] == [4, 2, 2, 2, 3, 2]  # call 1: 3 at dead; call 5: 2 at dead
    assert len(healthy.chat_requests) == 20


def test_each_target_has_its_own_bucket(servers: tuple[FakeServer, FakeServer]) -> None:
    """Retries at one target do not drain another's bucket."""
    dead, healthy = servers
    dead.enqueue(*[Fault.server_error(503)] * 3)
    healthy.enqueue(*[Fault.server_error(503)] * 2)
    cfg = _config(dead, healthy, budget_ratio=0, budget_burst=2, jitter=0)
    with Client(cfg, clock=FakeClock()) as client:
        reply = client.chat("m", "Hi")
    assert [(a.provider, a.outcome) for a in reply.attempts] == [
        ("dead", "ServerError"),
        ("dead", "ServerError"),
        ("dead", "ServerError"),
        ("healthy", "ServerError"),
        ("healthy", "ServerError"),
        ("healthy", "ok"),
    ]


def test_the_old_module_name_still_works_and_warns() -> None:
    import importlib
    import sys

    sys.modules.pop("turnout.policies.budget", None)
    with pytest.warns(DeprecationWarning, match=r"turnout\.policies\.retry_budget"):
        old = importlib.import_module("turnout.policies.budget")
    from turnout.policies.retry_budget import RetryBudget

    assert old.RetryBudget is RetryBudget
