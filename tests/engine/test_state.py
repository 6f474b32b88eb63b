"""`RouteState`: what a client remembers between calls (breakers, retry budgets, latency, order)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

import turnout
from turnout.cost.budgets import Budget, Budgets
from turnout.cost.prices import Pricing
from turnout.engine.state import RouteState, label
from turnout.events import CallFinished
from turnout.policies.retry import RetryPolicy
from turnout.policies.route import RoutePolicy
from turnout.testing import FakeClock
from turnout.types import Cost, Usage

from .conftest import Stub


def _stub(name: str) -> turnout.Provider:
    return Stub(name, turnout.ProviderConfig(type="engine-stub"))


def _state(prices: dict[str, Any] | None = None, budgets: Budgets | None = None) -> RouteState:
    config = turnout.Config.from_dict(
        {"providers": {n: {"type": "engine-stub"} for n in "abc"}, "prices": prices or {}}
    )
    return RouteState(FakeClock(), Pricing(config.prices), budgets)


def test_label_names_a_target() -> None:
    assert label(_stub("a"), "m-1") == "a:m-1"


def test_latency_is_an_ewma_with_weight_one_fifth() -> None:
    state = _state()
    state.observe("a:m", 1.0)
    assert state.shared_latency() == {"a:m": 1.0}  # the first measurement is taken as it is
    state.observe("a:m", 2.0)
    assert state.shared_latency()["a:m"] == pytest.approx(1.2)
    state.observe("a:m", 0.2)
    assert state.shared_latency()["a:m"] == pytest.approx(1.2 + 0.2 * (0.2 - 1.2))


def test_least_latency_puts_unmeasured_targets_first_then_the_fastest() -> None:
    state = _state()
    a, b, c = (_stub("a"), "m"), (_stub("b"), "m"), (_stub("c"), "m")
    state.observe("a:m", 0.5)
    state.observe("c:m", 0.1)
    ordered = state.order([a, b, c], RoutePolicy(balance="least-latency"))
    assert [p.name for p, _ in ordered] == ["b", "c", "a"]


def test_lowest_cost_orders_by_price_unknown_last() -> None:
    prices = {
        "a:m": {"input_per_million": 5, "output_per_million": 5},
        "c:m": {"input_per_million": 1, "output_per_million": 2},
    }
    state = _state(prices)
    ordered = state.order([(_stub("b"), "m"), (_stub("a"), "m"), (_stub("c"), "m")], RoutePolicy(balance="lowest-cost"))
    assert [p.name for p, _ in ordered] == ["c", "a", "b"]


def test_ordered_keeps_the_route_order() -> None:
    targets = [(_stub("c"), "m"), (_stub("a"), "m")]
    assert _state().order(targets, RoutePolicy()) == targets


def test_weighted_draws_every_target_once_in_proportion_to_its_weight() -> None:
    random.seed(7)
    state, targets = _state(), [(_stub("a"), "m"), (_stub("b"), "m")]
    firsts = [state.order(targets, RoutePolicy(balance="weighted", weights=[9, 1]))[0][0].name for _ in range(400)]
    assert sorted({len(state.order(targets, RoutePolicy(balance="weighted", weights=[9, 1])))}) == [2]
    assert 320 <= firsts.count("a") <= 395  # 90 % expected
    never = [state.order(targets, RoutePolicy(balance="weighted", weights=[0, 1])) for _ in range(50)]
    assert {tuple(p.name for p, _ in o) for o in never} == {("b", "a")}  # weight 0: tried last, never first


def test_one_breaker_and_one_retry_budget_per_target() -> None:
    state, policy = _state(), RoutePolicy(retry=RetryPolicy(budget_ratio=0.3, budget_burst=4))
    breaker = state.breaker("a:m", policy)
    assert state.breaker("a:m", policy) is breaker and state.breaker("b:m", policy) is not breaker
    budget = state.budget("a:m", policy)
    assert state.budget("a:m", policy) is budget
    assert (budget.ratio, budget.burst, budget.tokens) == (0.3, 4, 4)


def test_health_lists_every_known_circuit_sorted() -> None:
    state, policy = _state(), RoutePolicy()
    state.breaker("b:m", policy)
    state.breaker("a:m", policy)
    assert [h.target for h in state.health()] == ["a:m", "b:m"]


def _finished(hold: Any, **fields: Any) -> CallFinished:
    base: dict[str, Any] = dict(
        route="r", attempts=[], response=None, error=None, latency=0.0, usage=None, cost=None, hold=hold
    )
    return CallFinished(**(base | fields))


def _cost(total: str) -> Cost:
    return Cost(input=Decimal(total), output=Decimal(0), total=Decimal(total), source="config")


@pytest.mark.parametrize(
    ("fields", "spent"),
    [
        ({}, Decimal(0)),  # failed before costing anything: the hold is freed
        ({"usage": Usage(prompt_tokens=1), "cost": _cost("0.2")}, Decimal("0.2")),  # paid for: the cost
        ({"usage": Usage(prompt_tokens=1)}, Decimal("0.5")),  # paid for, no price: the whole hold
        ({"cost_unknown": True}, Decimal("0.5")),  # a cut stream without usage: the whole hold
    ],
)
def test_the_budgets_settle_what_the_call_spent(fields: dict[str, Any], spent: Decimal) -> None:
    budgets = Budgets(Budget(max_usd=Decimal(1)), {})
    state = _state(budgets=budgets)
    hold = budgets.reserve("r", Decimal("0.5"))
    state.events.publish(_finished(hold, **fields))
    (status,) = budgets.status()
    assert (status.spent, status.reserved) == (spent, Decimal(0))


def test_a_call_without_a_hold_settles_nothing() -> None:
    budgets = Budgets(Budget(max_usd=Decimal(1)), {})
    _state(budgets=budgets).events.publish(_finished(None, cost=_cost("0.2")))
    assert budgets.status()[0].spent == 0
