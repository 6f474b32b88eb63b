"""`RouteState`: what a client remembers between calls, per target: breaker, retry budget, latency.

Also `Retries`, one target's retry decisions within a call (tenacity deciding, the driver sleeping).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..events import CallFinished, Events
from ..policies.breaker import CircuitBreaker, TargetHealth
from ..policies.retry_budget import RetryBudget

if TYPE_CHECKING:
    from ..cost.budgets import Budgets
    from ..cost.prices import Pricing
    from ..cost.spend_ledger import Ledger
    from ..errors import ProviderError
    from ..limits import Limiter, RateLimit
    from ..policies.clock import Clock
    from ..policies.route import RoutePolicy
    from ..provider import Provider
    from ..shared import SharedState

__all__ = ["Retries", "RouteState", "Target", "label"]

Target = tuple["Provider", str]
_EWMA_WEIGHT = 0.2


def label(provider: Provider, model: str) -> str:
    """A target's name in messages and state keys: ``"<provider>:<model>"``."""
    return f"{provider.name}:{model}"


class Retries:
    """tenacity deciding one target's retries; the sync or async driver does the sleeping.

    tenacity's ``Retrying.iter`` makes each decision without I/O (retry? stop? how long to
    wait?) from the same strategy objects for both paths, as its own ``AsyncRetrying`` does.
    Built at a target's first failure, so tenacity loads only then.
    """

    def __init__(
        self,
        policy: RoutePolicy,
        remaining: Callable[[], float],
        budget: RetryBudget,
        log: Callable[[float, int, ProviderError], None],
    ) -> None:
        from tenacity import RetryCallState, Retrying

        from ..policies._tenacity import retry_if_retryable, stop_for, wait_retry_after

        self._retrying = Retrying(
            retry=retry_if_retryable,
            stop=stop_for(policy.retry, remaining, budget),
            wait=wait_retry_after(policy.retry),
            reraise=True,
        )
        self._retrying.begin()
        self._state = RetryCallState(self._retrying, None, (), {})
        self._log = log

    def after(self, exc: ProviderError) -> float:
        """Seconds to wait before trying again after ``exc``; re-raises ``exc`` when no retry is due."""
        from tenacity import DoSleep

        self._state.set_exception((type(exc), exc, exc.__traceback__))
        action = self._retrying.iter(self._state)  # raises exc: not retryable, or a stop condition hit
        if not isinstance(action, DoSleep):
            raise AssertionError(f"tenacity decided {action!r} after a failure")
        self._log(float(action), self._state.attempt_number, exc)
        self._state.prepare_for_next_attempt()
        return float(action)


class RouteState:
    """What a client remembers across calls, per target: breaker, retry budget, latency.

    It also owns the client's `Events`: the budgets and the ledger subscribe to `CallFinished`.
    """

    def __init__(
        self,
        clock: Clock,
        pricing: Pricing,
        budgets: Budgets | None = None,
        ledger: Ledger | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self.clock = clock
        self.shared = shared
        """Redis ([state]), where budgets and open circuits are shared with other workers; None: in-process."""
        self.pricing = pricing
        self.budgets = budgets
        self.ledger = ledger
        self.events = Events()
        if budgets is not None:
            self.events.subscribe(CallFinished, _settle_budget)
        if ledger is not None:
            self.events.subscribe(CallFinished, ledger.call_finished)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._budgets: dict[str, RetryBudget] = {}
        self._latency: dict[str, float] = {}
        self._lock = threading.Lock()
        self.limits: Mapping[str, RateLimit] = {}
        """``[limits]``: rate limits per ``"provider:model"`` or ``"provider"``."""
        self._limiters: dict[str, Limiter] = {}

    def limiter(self, provider: Provider, model: str) -> Limiter | None:
        """The rate limiter a request to this target goes through (its own, else its provider's), or None."""
        if not self.limits:
            return None
        name = label(provider, model)
        if name not in self.limits:
            name = provider.name
            if name not in self.limits:
                return None
        found = self._limiters.get(name)
        if found is None:
            from ..limits import Limiter

            with self._lock:
                found = self._limiters.setdefault(name, Limiter(name, self.limits[name], self.shared))
        return found

    def breaker(self, name: str, policy: RoutePolicy) -> CircuitBreaker:
        """The circuit breaker of a target (created with the first route's policy that uses it)."""
        found = self._breakers.get(name)
        if found is None:
            with self._lock:
                found = self._breakers.setdefault(name, CircuitBreaker(name, policy.breaker, self.clock))
        return found

    def budget(self, name: str, policy: RoutePolicy) -> RetryBudget:
        """The retry budget of a target."""
        found = self._budgets.get(name)
        if found is None:
            budget = RetryBudget(policy.retry.budget_ratio, policy.retry.budget_burst)
            if self.shared is not None:
                budget = _SharedRetryBudget(name, budget, self.shared)
            with self._lock:
                found = self._budgets.setdefault(name, budget)
        return found

    def retry_tokens(self, name: str, policy: RoutePolicy, tokens: float) -> None:
        """The shared state's count of a target's retry budget, read before a call."""
        self.budget(name, policy).sync(tokens)

    def observe(self, name: str, seconds: float) -> None:
        """Fold a successful attempt's latency into the target's moving average."""
        old = self._latency.get(name)
        self._latency[name] = seconds if old is None else old + _EWMA_WEIGHT * (seconds - old)
        if self.shared is not None:
            self.shared.observe(name, seconds, _EWMA_WEIGHT)

    def shared_latency(self) -> dict[str, float]:
        """The dict of latency averages the shared state's answer updates (for ``least-latency``)."""
        return self._latency

    def health(self) -> list[TargetHealth]:
        """Every known target's circuit."""
        return [b.health() for _, b in sorted(self._breakers.items())]

    def order(self, targets: list[Target], policy: RoutePolicy) -> list[Target]:
        """The targets in the order this call tries them, per the route's ``balance``."""
        if policy.balance == "weighted":
            weights = list(policy.weights or [1.0] * len(targets))
            pool, ordered = list(zip(targets, weights, strict=False)), []
            while pool:
                left = [w for _, w in pool]
                # only weight-0 targets left: they come last, in route order (random.choices needs a weight)
                pick = random.choices(range(len(pool)), weights=left)[0] if any(w > 0 for w in left) else 0
                ordered.append(pool.pop(pick)[0])
            return ordered
        if policy.balance == "least-latency":  # unmeasured targets first, so each gets measured
            return sorted(targets, key=lambda t: self._latency.get(label(*t), 0.0))
        if policy.balance == "lowest-cost":
            return sorted(targets, key=lambda t: self.pricing.unit_price(t[0], t[1]))
        return targets


class _SharedRetryBudget(RetryBudget):
    """A retry budget whose deposits and spends also go to the shared state (read back before each call)."""

    def __init__(self, target: str, local: RetryBudget, shared: SharedState) -> None:
        super().__init__(local.ratio, local.burst)
        self.target, self.shared = target, shared

    def deposit(self) -> None:
        super().deposit()
        self.shared.retry_deposit(self.target, self.ratio, self.burst)

    def try_spend(self) -> bool:
        spent = super().try_spend()
        if spent:
            self.shared.retry_spend(self.target, self.burst)
        return spent


def _settle_budget(event: CallFinished) -> None:
    """The budgets' subscriber: spend what the call cost and free the rest of its hold."""
    hold = event.hold
    if hold is None:
        return
    if event.cost_unknown:
        hold.commit(None)  # tokens were generated but their cost is unknown: the whole hold is spent
    elif event.cost is not None:
        hold.commit(event.cost.total)
    elif event.response is not None or event.usage is not None:
        hold.commit(None)  # paid for, but the target has no price
    hold.release()
