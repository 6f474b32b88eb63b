"""One call's journey along a route: gates, retries, fallback decisions, attempts. No I/O here.

`Client`, `AsyncClient` and the stream classes run the loops and ask a `Call` what to do, so
sync and async decide identically. `RouteState` is what a client remembers between calls:
circuit breakers, retry budgets and observed latencies per target.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from tenacity import DoSleep, RetryCallState, Retrying

from ._construct import construct
from .errors import (
    AllTargetsFailedError,
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ContextWindowExceededError,
    NotFoundError,
    OutputValidationError,
    ProviderError,
    QuotaExceededError,
    ResponseValidationError,
    StreamInterruptedError,
)
from .policies.breaker import CircuitBreaker, TargetHealth
from .policies.budget import RetryBudget
from .policies.clock import Clock
from .policies.retry import retry_if_retryable, stop_for, wait_retry_after
from .policies.route import FallbackOn, RoutePolicy
from .types import Attempt, ChatRequest, ChatResponse, Cost, Usage

if TYPE_CHECKING:
    from ._structured import OutputRequest
    from .budget import Budgets, Reservation
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .ledger import Ledger
    from .pricing import Pricing
    from .provider import Provider

__all__ = ["Call", "RouteState", "Target", "should_fall_back"]

logger = logging.getLogger("turnout")
Target = tuple["Provider", str]
R = TypeVar("R", "ChatRequest", "EmbeddingRequest")

_FALLBACK_CLASSES: dict[FallbackOn, type[ProviderError]] = {
    "context_window": ContextWindowExceededError,
    "connection": APIConnectionError,
    "bad_request": BadRequestError,
    "auth": AuthenticationError,
    "not_found": NotFoundError,
    "quota": QuotaExceededError,
    "invalid_response": ResponseValidationError,
    "invalid_output": OutputValidationError,
}
_EWMA_WEIGHT = 0.2


def should_fall_back(exc: ProviderError, fallback_on: list[FallbackOn]) -> bool:
    """Whether ``exc`` (after its target's retries) sends the call on to the next target."""
    if getattr(exc, "after_content", False):  # content reached the caller: never re-routed
        return False
    if "retryable" in fallback_on and exc.retryable:
        return True
    return any(isinstance(exc, _FALLBACK_CLASSES[name]) for name in fallback_on if name in _FALLBACK_CLASSES)


def _label(provider: Provider, model: str) -> str:
    return f"{provider.name}:{model}"


class Retries:
    """tenacity deciding one target's retries; the sync or async caller does the sleeping.

    tenacity's ``Retrying.iter`` makes each decision without I/O (retry? stop? how long to
    wait?) from the same strategy objects for both paths, as its own ``AsyncRetrying`` does.
    """

    def __init__(
        self,
        policy: RoutePolicy,
        remaining: Callable[[], float],
        budget: RetryBudget,
        log: Callable[[float, int], None],
    ) -> None:
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
        self._state.set_exception((type(exc), exc, exc.__traceback__))
        action = self._retrying.iter(self._state)  # raises exc: not retryable, or a stop condition hit
        if not isinstance(action, DoSleep):
            raise AssertionError(f"tenacity decided {action!r} after a failure")
        self._log(float(action), self._state.attempt_number)
        self._state.prepare_for_next_attempt()
        return float(action)


class RouteState:
    """What a client remembers across calls, per target: breaker, retry budget, latency."""

    def __init__(
        self, clock: Clock, pricing: Pricing, budgets: Budgets | None = None, ledger: Ledger | None = None
    ) -> None:
        self.clock = clock
        self.pricing = pricing
        self.budgets = budgets
        self.ledger = ledger
        self._breakers: dict[str, CircuitBreaker] = {}
        self._budgets: dict[str, RetryBudget] = {}
        self._latency: dict[str, float] = {}
        self._lock = threading.Lock()

    def breaker(self, label: str, policy: RoutePolicy) -> CircuitBreaker:
        """The circuit breaker of a target (created with the first route's policy that uses it)."""
        found = self._breakers.get(label)
        if found is None:
            with self._lock:
                found = self._breakers.setdefault(label, CircuitBreaker(label, policy.breaker, self.clock))
        return found

    def budget(self, label: str, policy: RoutePolicy) -> RetryBudget:
        """The retry budget of a target."""
        found = self._budgets.get(label)
        if found is None:
            with self._lock:
                found = self._budgets.setdefault(
                    label, RetryBudget(policy.retry.budget_ratio, policy.retry.budget_burst)
                )
        return found

    def observe(self, label: str, seconds: float) -> None:
        """Fold a successful attempt's latency into the target's moving average."""
        old = self._latency.get(label)
        self._latency[label] = seconds if old is None else old + _EWMA_WEIGHT * (seconds - old)

    def health(self) -> list[TargetHealth]:
        """Every known target's circuit."""
        return [b.health() for _, b in sorted(self._breakers.items())]

    def order(self, targets: list[Target], policy: RoutePolicy) -> list[Target]:
        """The targets in the order this call tries them, per the route's ``balance``."""
        if policy.balance == "weighted":
            weights = list(policy.weights or [1.0] * len(targets))
            pool, ordered = list(zip(targets, weights, strict=False)), []
            while pool:
                pick = random.choices(range(len(pool)), weights=[w for _, w in pool])[0]
                ordered.append(pool.pop(pick)[0])
            return ordered
        if policy.balance == "least-latency":  # unmeasured targets first, so each gets measured
            return sorted(targets, key=lambda t: self._latency.get(_label(*t), 0.0))
        if policy.balance == "lowest-cost":
            return sorted(targets, key=lambda t: self.pricing.unit_price(t[0], t[1]))
        return targets


class Call:
    """The bookkeeping of one call across its route: attempts in order, and what to do next."""

    def __init__(
        self,
        route: str,
        policy: RoutePolicy,
        request: ChatRequest,
        targets: list[Target],
        state: RouteState,
        output: OutputRequest | None = None,
    ) -> None:
        self.route = route
        self.policy = policy
        self.request = request
        self.targets = state.order(targets, policy)
        self.state = state
        self.clock = state.clock
        self.attempts: list[Attempt] = []
        self.errors: list[ProviderError] = []
        self.started = self.clock.now()
        self._deadline = None if policy.deadline is None else self.started + policy.deadline
        self._reservation: Reservation | None = None
        self.output = output
        """The call's ``response_model``, if any (`turnout._structured`)."""
        self.spent: list[tuple[Usage, Cost | None]] = []
        """Usage and cost of replies rejected by ``response_model``: paid for, so added to the call's."""

    def reserve(self) -> None:
        """Hold the call's worst-case cost against its budgets, before anything is sent.

        Raises:
            BudgetExceededError: a budget has less left than the call could cost, or the cost
                cannot be bounded (no ``max_tokens``, or no price for a target).
        """
        budgets = self.state.budgets
        if budgets is not None and budgets.applies(self.route):
            from ._estimate import worst_case

            try:
                if self.output is None:
                    amount = worst_case(self.state.pricing, self.targets, self.request)
                else:
                    from ._structured import output_worst_case

                    amount = output_worst_case(self)
            except ValueError as exc:
                raise budgets.unbounded(self.route, str(exc)) from None
            self._reservation = budgets.reserve(self.route, amount)

    def finish(self, response: ChatResponse | EmbeddingResponse | None, error: BaseException | None) -> None:
        """Settle the budget and append the call to the ledger.

        A failed call frees what it held, except a stream cut off after content: its tokens were
        generated (and likely billed) but never reported, so the whole reservation is spent.
        """
        paid: tuple[Usage, Cost | None] | None = None
        if self.spent and response is None:  # replies rejected by response_model were paid for
            from ._structured import spent_total, spent_usage

            paid = spent_usage(self.spent), spent_total(self.spent)
        if self._reservation is not None:
            if paid is not None:
                self._reservation.commit(None if paid[1] is None else paid[1].total)
            if getattr(error, "after_content", False):
                self._reservation.commit(None)
            self._reservation.release()
        if self.state.ledger is not None:
            latency = self.clock.now() - self.started
            self.state.ledger.record(self.route, self.attempts, response, error, latency, paid=paid)

    def remaining(self) -> float:
        """Seconds left before the call's deadline (infinite without one)."""
        return float("inf") if self._deadline is None else self._deadline - self.clock.now()

    def request_for_attempt(self) -> ChatRequest:
        """The request to send now: its network timeout shortened to the time left, if there is a deadline."""
        return self.in_time(self.request)

    def in_time(self, request: R) -> R:
        """``request`` with its network timeout shortened to the time left, if the call has a deadline."""
        if self._deadline is None:
            return request
        left = max(self.remaining(), 0.001)
        if request.timeout is not None and request.timeout <= left:
            return request
        return request.model_copy(update={"timeout": left})

    def gate(self, provider: Provider, model: str) -> CircuitOpenError | None:
        """Why this target must be skipped before sending (an open circuit, the deadline), or None."""
        label = _label(provider, model)
        if self.remaining() <= 0:
            return CircuitOpenError(
                f"skipped {label}: the call's deadline has passed", provider=provider.name, model=model, retry_in=None
            )
        breaker = self.state.breaker(label, self.policy)
        if breaker.allow():
            self.state.budget(label, self.policy).deposit()
            return None
        return CircuitOpenError(
            f"skipped {label}: circuit open ({breaker.health().reason})",
            provider=provider.name,
            model=model,
            retry_in=breaker.retry_in(),
        )

    def needs_token_count(self, window: int | None) -> bool:
        """Whether the prompt might not fit ``window``, so it is worth counting exactly.

        Byte-level tokenizers never make more tokens than bytes, so a prompt whose UTF-8 size
        plus ``max_tokens`` fits the window surely fits; only bigger ones are counted.
        """
        if window is None or not self.policy.precheck_context:
            return False
        size = sum(len(str(m.content or "").encode()) + 8 for m in self.request.messages)
        return size + (self.request.max_tokens or 0) > window

    def context_problem(
        self, provider: Provider, model: str, window: int, prompt_tokens: int | None
    ) -> ContextWindowExceededError | None:
        """The reason to skip a target whose window cannot hold the prompt plus ``max_tokens``, or None."""
        if prompt_tokens is None:
            return None
        wanted = prompt_tokens + (self.request.max_tokens or 1)
        if wanted <= window:
            return None
        return ContextWindowExceededError(
            f"skipped before sending: the prompt is {prompt_tokens} tokens and max_tokens is "
            f"{self.request.max_tokens or 0}, more than the {window}-token context window",
            provider=provider.name,
            model=model,
        )

    def recovery_wait(self) -> float | None:
        """With ``wait_for_recovery``: seconds to wait when every target was skipped for an open circuit."""
        if not self.policy.wait_for_recovery or not self.errors:
            return None
        if not all(isinstance(e, CircuitOpenError) and e.retry_in is not None for e in self.errors):
            return None
        wait = min(e.retry_in for e in self.errors if isinstance(e, CircuitOpenError) and e.retry_in is not None)
        if wait >= self.remaining():
            return None
        logger.debug("route %s: every circuit is open; waiting %.3fs for the first probe", self.route, wait)
        self.errors = []
        return wait

    def skipped(self, provider: Provider, model: str, exc: ProviderError, more: bool) -> BaseException | None:
        """Record a target skipped before sending; return None to go on, else the error to raise."""
        self._record(provider.name, model, exc, 0.0, skipped=True)
        return self.target_failed(exc, more)

    def retries(self, provider: Provider, model: str) -> Retries:
        """The retry decisions for one target, made after its first failure (the success path skips them)."""
        label = _label(provider, model)
        budget = self.state.budget(label, self.policy)
        return Retries(
            self.policy,
            self.remaining,
            budget,
            lambda seconds, attempt: logger.debug(
                "route %s: retrying %s in %.3fs (attempt %d failed)", self.route, label, seconds, attempt
            ),
        )

    def attempt_failed(self, provider: Provider, model: str, exc: ProviderError, started: float) -> None:
        """Record one failed attempt and tell the target's breaker when the failure is the target's."""
        self._record(provider.name, model, exc, self.clock.now() - started)
        if exc.retryable or isinstance(exc, APIConnectionError):
            self.state.breaker(_label(provider, model), self.policy).record(False, type(exc).__name__)
        else:
            self.state.breaker(_label(provider, model), self.policy).record(True)

    def target_failed(self, exc: ProviderError, more: bool) -> BaseException | None:
        """After a target's last attempt: None to fall back to the next target, else the error to raise."""
        self.errors.append(exc)
        fall_back = more and should_fall_back(exc, self.policy.fallback_on)
        logger.debug(
            "route %s: %s:%s gave %s; %s",
            self.route,
            exc.provider,
            exc.model,
            type(exc).__name__,
            "falling back to the next target" if fall_back else "giving up",
        )
        if fall_back:
            return None
        if getattr(exc, "after_content", False) or more:
            return exc
        return self.exhausted()

    def record_success(self, provider: Provider, model: str, started: float) -> None:
        """Record a successful attempt that started at ``started``: its attempt, circuit and latency."""
        latency = self.clock.now() - started
        label = _label(provider, model)
        self.attempts.append(
            construct(
                Attempt,
                provider=provider.name,
                model=model,
                outcome="ok",
                latency=latency,
                status_code=None,
                error=None,
                skipped=False,
            )
        )
        self.state.breaker(label, self.policy).record(True)
        self.state.observe(label, latency)

    def succeeded(self, provider: Provider, model: str, started: float, response: ChatResponse) -> ChatResponse:
        """Record the successful attempt; return the reply with its cost and attempts filled in."""
        self.record_success(provider, model, started)
        cost = self.state.pricing.cost(provider, model, response.usage)
        update: dict[str, object] = {"attempts": list(self.attempts)}
        if self.spent:  # replies rejected by response_model before this one: paid for, so counted
            from ._structured import add_spent

            update["usage"], cost = add_spent(self.spent, response.usage, cost)
        if self._reservation is not None:
            self._reservation.commit(None if cost is None else cost.total)
        update["cost"] = cost
        if self.request.provider_options:  # say when this target applied none of the call's options
            from ._provider_options import not_applied

            warning = not_applied(provider, model, self.request)
            if warning is not None:
                update["warnings"] = [*response.warnings, warning]
        return construct(type(response), **{**response.__dict__, **update})

    def exhausted(self) -> ProviderError | AllTargetsFailedError:
        """The error to raise when no target is left: the only one, or all of them (one per target) as a group."""
        if len(self.errors) == 1:
            return self.errors[0]
        group = AllTargetsFailedError(
            f"all {len(self.errors)} targets of {self.route!r} failed: "
            + "; ".join(f"{e.provider}:{e.model} {type(e).__name__}" for e in self.errors),
            self.errors,
        )
        group.attempts = list(self.attempts)
        return group

    def interrupted(self, exc: ProviderError, partial_text: str) -> StreamInterruptedError:
        """The error for a stream that failed after content was delivered (never retried or re-routed)."""
        if isinstance(exc, StreamInterruptedError):
            wrapped = exc
            wrapped.partial_text = partial_text
        else:
            wrapped = StreamInterruptedError(
                f"stream failed after content was delivered: {exc.message}",
                partial_text=partial_text,
                provider=exc.provider,
                model=exc.model,
                status_code=exc.status_code,
                request_id=exc.request_id,
            )
            wrapped.__cause__ = exc
        wrapped.after_content = True
        wrapped.attempts = exc.attempts
        return wrapped

    def _record(self, provider: str, model: str, exc: ProviderError, latency: float, skipped: bool = False) -> None:
        self.attempts.append(
            Attempt(
                provider=provider,
                model=model,
                outcome=type(exc).__name__,
                latency=latency,
                status_code=exc.status_code,
                error=exc.message,
                skipped=skipped,
            )
        )
        exc.attempts = list(self.attempts)
