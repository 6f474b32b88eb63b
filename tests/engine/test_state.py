"""`RouteState`: what a client remembers between calls (breakers, retry budgets, latency, order)."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

import turnout
from turnout.cost.budgets import Budget, Budgets
from turnout.cost.prices import Pricing
from turnout.cost.spend_ledger import ledger_labels
from turnout.engine.state import Retries, RouteState, label
from turnout.errors import BadRequestError, ProviderError, RateLimitError, ServerError
from turnout.events import CallFinished
from turnout.limits import RateLimit
from turnout.policies.breaker import BreakerPolicy
from turnout.policies.retry import RetryPolicy
from turnout.policies.retry_budget import RetryBudget
from turnout.policies.route import RoutePolicy
from turnout.testing import FakeClock
from turnout.types import Cost, Usage

from .conftest import Stub, reply

if TYPE_CHECKING:
    from pathlib import Path

    from turnout.cost.spend_ledger import Ledger


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


def test_weighted_without_weights_draws_every_target_alike() -> None:
    random.seed(11)
    state, targets = _state(), [(_stub("a"), "m"), (_stub("b"), "m")]
    orders = [tuple(p.name for p, _ in state.order(targets, RoutePolicy(balance="weighted"))) for _ in range(400)]
    assert set(orders) == {("a", "b"), ("b", "a")}
    assert 160 <= orders.count(("a", "b")) <= 240  # 50 % expected


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


# -- Retries: one target's retry decisions (tenacity decides, the driver sleeps) ----------------------


def _retries(
    policy: RetryPolicy, budget: RetryBudget, remaining: float = 100.0
) -> tuple[Retries, list[tuple[float, int, ProviderError]]]:
    logged: list[tuple[float, int, ProviderError]] = []
    retries = Retries(RoutePolicy(retry=policy), lambda: remaining, budget, lambda *a: logged.append(a))
    return retries, logged


def test_retries_wait_the_backoff_and_stop_after_max_attempts_raising_the_error_itself() -> None:
    budget = RetryBudget(0.1, 10)
    retries, logged = _retries(RetryPolicy(jitter=0), budget)
    down = ServerError("down", provider="a", model="m")
    assert retries.after(down) == 0.5  # initial_delay, then doubled
    assert retries.after(down) == 1.0
    with pytest.raises(ServerError) as raised:  # the third attempt was the last (max_attempts = 3)
        retries.after(down)
    assert raised.value is down
    assert logged == [(0.5, 1, down), (1.0, 2, down)]
    assert budget.tokens == 8  # one token per retry; the stop after the last attempt spends none


def test_retries_wait_what_the_server_asked() -> None:
    retries, logged = _retries(RetryPolicy(jitter=0), RetryBudget(0.1, 10))
    limited = RateLimitError("slow down", retry_after=2.5, provider="a", model="m")
    assert retries.after(limited) == 2.5
    assert logged == [(2.5, 1, limited)]


def test_retries_never_retry_an_error_that_is_not_retryable() -> None:
    budget = RetryBudget(0.1, 10)
    retries, logged = _retries(RetryPolicy(jitter=0), budget)
    bad = BadRequestError("bad", provider="a", model="m")
    with pytest.raises(BadRequestError) as raised:
        retries.after(bad)
    assert raised.value is bad and logged == [] and budget.tokens == 10


def test_retries_stop_when_the_wait_would_outlast_the_deadline() -> None:
    budget = RetryBudget(0.1, 10)
    retries, logged = _retries(RetryPolicy(jitter=0), budget, remaining=0.5)  # the wait (0.5) reaches it
    down = ServerError("down", provider="a", model="m")
    with pytest.raises(ServerError) as raised:
        retries.after(down)
    assert raised.value is down and logged == [] and budget.tokens == 10


def test_retries_stop_when_the_retry_budget_is_spent() -> None:
    budget = RetryBudget(0.1, 1)
    retries, logged = _retries(RetryPolicy(jitter=0, max_attempts=5), budget)
    down = ServerError("down", provider="a", model="m")
    assert retries.after(down) == 0.5
    with pytest.raises(ServerError):
        retries.after(down)
    assert len(logged) == 1 and budget.tokens == 0


# -- RouteState: limiters, breakers, retry budgets ------------------------------------------------------


def test_a_target_takes_its_own_rate_limit_else_its_providers() -> None:
    state = _state()
    a, b, c = _stub("a"), _stub("b"), _stub("c")
    assert state.limiter(a, "m") is None  # no [limits]
    own, provider = RateLimit(requests_per_minute=1), RateLimit(requests_per_minute=2)
    state.limits = {"a:m": own, "b": provider}
    found = state.limiter(a, "m")
    assert found is not None and (found.name, found.limit, found.shared) == ("a:m", own, None)
    assert state.limiter(a, "m") is found  # one limiter per name
    by_provider = state.limiter(b, "x")
    assert by_provider is not None and (by_provider.name, by_provider.limit) == ("b", provider)
    assert state.limiter(b, "y") is by_provider  # every model of the provider shares it
    assert state.limiter(a, "other") is None and state.limiter(c, "m") is None


def test_a_breaker_follows_the_routes_policy_on_the_states_clock() -> None:
    clock = FakeClock()
    state = RouteState(clock, Pricing(turnout.Config.from_dict({}).prices))
    policy = RoutePolicy(breaker=BreakerPolicy(failure_threshold=1, cooldown=5))
    breaker = state.breaker("a:m", policy)
    assert breaker.target == "a:m"
    breaker.record(False, "ServerError")
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.allow()  # the probe, after the route's cooldown on the state's clock


def test_the_shared_count_of_a_retry_budget_replaces_the_local_one() -> None:
    state, policy = _state(), RoutePolicy(retry=RetryPolicy(budget_burst=4))
    state.retry_tokens("a:m", policy, 2.5)
    assert state.budget("a:m", policy).tokens == 2.5
    state.retry_tokens("a:m", policy, 9)
    assert state.budget("a:m", policy).tokens == 4  # never above the burst
    state.retry_tokens("a:m", policy, -0.5)
    assert state.budget("a:m", policy).tokens == 0  # nor below zero
    state.retry_tokens("a:m", policy, 0.5)
    assert state.budget("a:m", policy).tokens == 0.5


# -- the ledger's subscriber: one row per call -----------------------------------------------------------


_COLUMNS = (
    "alias, provider, model, prompt_tokens, completion_tokens, cost, latency, outcome, estimated, cache_hit, tags,"
    " run_id, saved"
)


def _ledger_state(tmp_path: Path) -> tuple[RouteState, Ledger]:
    from turnout.cost.spend_ledger import Ledger

    config = turnout.Config.from_dict({})
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    return RouteState(FakeClock(), Pricing(config.prices), ledger=ledger), ledger


def _rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    ledger.close()
    with closing(sqlite3.connect(ledger.path)) as db:
        return db.execute(f"SELECT {_COLUMNS} FROM calls ORDER BY rowid").fetchall()  # noqa: S608


def _response(**fields: Any) -> turnout.ChatResponse:
    return reply("hi", "a", "m").model_copy(update=fields)


def test_the_ledger_records_a_reply_with_its_tags(tmp_path: Path) -> None:
    state, ledger = _ledger_state(tmp_path)
    reply = _response(cost=_cost("0.25"))
    attempt = turnout.Attempt(provider="a", model="m", outcome="ok", latency=0.2)
    state.events.publish(
        _finished(None, attempts=[attempt], response=reply, latency=0.25, usage=reply.usage, tags={"t": "1"})
    )
    tokens = (reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert _rows(ledger) == [("r", "a", "m", *tokens, "0.25", 0.25, "ok", 0, 0, '{"t": "1"}', None, None)]


def test_the_ledger_records_what_a_failed_call_paid_for(tmp_path: Path) -> None:
    state, ledger = _ledger_state(tmp_path)
    error, usage, cost = ServerError("down"), Usage(prompt_tokens=4), _cost("0.1")
    state.events.publish(_finished(None, error=error, usage=usage, cost=cost, latency=1.5))
    state.events.publish(_finished(None, error=error))  # nothing received: nothing paid
    assert _rows(ledger) == [
        ("r", None, None, 4, None, "0.1", 1.5, "ServerError", 0, 0, None, None, None),
        ("r", None, None, None, None, None, 0.0, "ServerError", 0, 0, None, None, None),
    ]


def test_the_ledger_records_a_cache_hit_with_what_it_saved(tmp_path: Path) -> None:
    state, ledger = _ledger_state(tmp_path)
    hit = _response(from_cache=True, cost=_cost("0"))
    state.events.publish(_finished(None, response=hit, saved=_cost("0.3"), tags={"t": "2"}))
    state.events.publish(_finished(None, response=hit))  # a hit whose stored cost is unknown
    with ledger_labels("run-1", {"suite": "s"}):
        state.events.publish(_finished(None, response=hit))
        state.events.publish(_finished(None, response=hit, tags={"t": "3"}))  # its tags, the block's run
    tokens = (hit.usage.prompt_tokens, hit.usage.completion_tokens)
    assert _rows(ledger) == [
        ("r", None, None, *tokens, "0", 0.0, "ok", 0, 1, '{"t": "2"}', None, "0.3"),
        ("r", None, None, *tokens, "0", 0.0, "ok", 0, 1, None, None, None),
        ("r", None, None, *tokens, "0", 0.0, "ok", 0, 1, '{"suite": "s"}', "run-1", None),
        ("r", None, None, *tokens, "0", 0.0, "ok", 0, 1, '{"t": "3"}', "run-1", None),
    ]
