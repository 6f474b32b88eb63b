"""`Call`: the bookkeeping and decisions of one call along its route. No I/O here.

The flow (`turnout.engine.flow`) asks a `Call` what to do at each turn (is this target open?
retry or fall back? which error to raise?) and tells it what happened; the drivers do the I/O.
`Call` is generic over the request it sends and the reply it returns: `ChatCall`
(`turnout.engine.chat_call`) for chat and streams, `EmbedCall` (`turnout.engine.embed_call`) for
embeddings (several batches to one target). What it records of each attempt is `AttemptLog`'s
(`turnout.engine.attempt_log`), its money `Settlement`'s (`turnout.engine.settlement`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from ..errors import (
    AllTargetsFailedError,
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ContextWindowExceededError,
    LocalRateLimitError,
    NotFoundError,
    OutputValidationError,
    ProviderError,
    QuotaExceededError,
    ResponseValidationError,
)
from ..events import RetryScheduled
from ..policies.route import FallbackOn, RoutePolicy
from ..types import Attempt, ChatResponse, Cost, Usage
from .attempt_log import RequestT, ResponseT
from .settlement import Settlement
from .state import Retries, RouteState, Target, label

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..cost.budgets import Reservation
    from ..limits import Limiter
    from ..provider import Provider
    from .hooks import CallHook, ReplyCheck, ReplyStore

__all__ = ["Call", "should_fall_back"]

logger = logging.getLogger("turnout")


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


def should_fall_back(exc: ProviderError, fallback_on: list[FallbackOn]) -> bool:
    """Whether ``exc`` (after its target's retries) sends the call on to the next target."""
    if exc.after_content:  # content reached the caller: never re-routed
        return False
    if "retryable" in fallback_on and exc.retryable:
        return True
    return any(isinstance(exc, _FALLBACK_CLASSES[name]) for name in fallback_on if name in _FALLBACK_CLASSES)


class Call(Settlement[RequestT, ResponseT]):
    """The bookkeeping of one call across its route: attempts in order, and what to do next."""

    embeds = False
    """Whether attempts send embeddings requests (else chat)."""

    def __init__(
        self,
        route: str,
        policy: RoutePolicy,
        request: RequestT,
        targets: list[Target],
        state: RouteState,
        hooks: Sequence[CallHook] = (),
    ) -> None:
        self.route = route
        self.policy = policy
        self.request = request
        self.targets = state.order(targets, policy)
        self.state = state
        self.clock = state.clock
        self.hooks = hooks
        self.attempts: list[Attempt] = []
        self.errors: list[ProviderError] = []
        self.started = self.clock.now()
        self.deadline = None if policy.deadline is None else self.started + policy.deadline
        self.paid: list[tuple[Usage, Cost | None]] = []
        """Usage and cost of what the call paid for without returning it (rejected replies, a stream left early)."""
        self.cost_unknown = False
        self.saved: Cost | None = None
        """What a reply served from the response cache would have cost (its original cost)."""
        self._hold: Reservation | None = None
        self.tags: dict[str, str] | None = None
        """The caller's ``tags=``: on the reply, in the ledger, and the key of tag budgets."""
        self.open_elsewhere: dict[str, float] = {}
        """Targets whose circuit is open in the shared state ([state]): seconds until they may be tried."""
        self._read_store: Callable[[object], tuple[Reservation | None, dict[str, float]]] | None = None

    # -- time -----------------------------------------------------------------------------------

    def remaining(self) -> float:
        """Seconds left before the call's deadline (infinite without one)."""
        return float("inf") if self.deadline is None else self.deadline - self.clock.now()

    def in_time(self, request: RequestT) -> RequestT:
        """``request`` with its network timeout shortened to the time left, if the call has a deadline."""
        if self.deadline is None:
            return request
        left = max(self.remaining(), 0.001)
        if request.timeout is not None and request.timeout <= left:
            return request
        return cast("RequestT", request.model_copy(update={"timeout": left}))

    # -- targets --------------------------------------------------------------------------------

    def gate(self, provider: Provider, model: str) -> CircuitOpenError | None:
        """Why this target must be skipped before sending (an open circuit, the deadline), or None."""
        name = label(provider, model)
        if self.remaining() <= 0:
            return CircuitOpenError(
                f"skipped {name}: the call's deadline has passed", provider=provider.name, model=model, retry_in=None
            )
        elsewhere = self.open_elsewhere.get(name)
        if elsewhere is not None:
            return CircuitOpenError(
                f"skipped {name}: circuit open (shared state)", provider=provider.name, model=model, retry_in=elsewhere
            )
        breaker = self.state.breaker(name, self.policy)
        if breaker.allow():
            self.state.budget(name, self.policy).deposit()
            return None
        return CircuitOpenError(
            f"skipped {name}: circuit open ({breaker.health().reason})",
            provider=provider.name,
            model=model,
            retry_in=breaker.retry_in(),
        )

    def needs_precheck(self) -> bool:
        """Whether targets' context windows are checked before sending (chat, when the route says so)."""
        return False

    def request_tokens(self, request: RequestT) -> int:  # noqa: ARG002 - the subclasses read it
        """What one request counts against a ``tokens_per_minute`` limit, before its reply says."""
        return 0

    def wait_limit(self, limiter: Limiter) -> float:
        """The longest this call waits for room under a rate limit: until its deadline, else ``max_wait``."""
        return self.remaining() if self.deadline is not None else limiter.limit.max_wait

    def provider_limits(self, provider: Provider, model: str, reply: ResponseT) -> None:
        """Slow down before a 429: the provider's headers said its requests or tokens are used up until a reset."""
        said = getattr(reply, "rate_limit", None)
        limiter = None if said is None else self.state.limiter(provider, model)
        if said is None or limiter is None:
            return
        for remaining, reset in (
            (said.remaining_requests, said.reset_requests),
            (said.remaining_tokens, said.reset_tokens),
        ):
            if remaining == 0 and reset:
                logger.debug("route %s: %s says its limit resets in %.3fs; pausing", self.route, limiter.name, reset)
                limiter.pause(self.clock.now(), reset)

    def rate_limited(self, provider: Provider, model: str, limiter: Limiter, wait: float) -> LocalRateLimitError:
        """The error for a request the rate limiter had no room for in time (recorded as a skipped attempt)."""
        exc = LocalRateLimitError(
            f"{label(provider, model)}: no room under [limits.{limiter.name!r}] for {wait:.3g}s more, longer "
            "than this call may wait (its deadline, else max_wait); nothing was sent",
            provider=provider.name,
            model=model,
            retry_after=wait,
        )
        self._record(provider.name, model, exc, 0.0, skipped=True)
        return exc

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

    def target_failed(self, exc: ProviderError, more: bool) -> BaseException | None:
        """After a target's last attempt: None to fall back to the next target, else the error to raise."""
        self.errors.append(exc)
        fall_back = more and should_fall_back(exc, self.policy.fallback_on)
        extra = {
            "alias": self.route,
            "target": f"{exc.provider}:{exc.model}",
            "attempt": len(self.attempts),
            "outcome": type(exc).__name__,
        }
        if fall_back:
            logger.info(
                "route %s: %s:%s gave %s; falling back to the next target",
                self.route,
                exc.provider,
                exc.model,
                type(exc).__name__,
                extra=extra,
            )
            return None
        logger.debug(
            "route %s: %s:%s gave %s; giving up", self.route, exc.provider, exc.model, type(exc).__name__, extra=extra
        )
        if exc.after_content or more:
            return exc
        return self.exhausted()

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

    # -- attempts -------------------------------------------------------------------------------

    def retries(self, provider: Provider, model: str) -> Retries:
        """The retry decisions for one target, made after its first failure (the success path skips them)."""
        name = label(provider, model)

        def note(seconds: float, attempt: int, exc: ProviderError) -> None:
            logger.debug(
                "route %s: retrying %s in %.3fs (attempt %d failed)",
                self.route,
                name,
                seconds,
                attempt,
                extra={"alias": self.route, "target": name, "attempt": attempt, "outcome": type(exc).__name__},
            )
            events = self.state.events
            if events.wants(RetryScheduled):
                events.publish(RetryScheduled(self.route, provider.name, model, seconds, attempt, exc, id(self)))

        return Retries(self.policy, self.remaining, self.state.budget(name, self.policy), note)

    def cache_slot(self) -> ReplyStore | None:
        """The call's place in a response cache (a hook's), or None when it is not cached."""
        for hook in self.hooks:
            found = hook.cache_slot(self)
            if found is not None:
                return found
        return None

    def from_cache(self, reply: ResponseT, saved: Cost | None) -> ResponseT:
        """A reply served from the cache: record it (and the cost it saved); ``response_model`` parses it again."""
        self.attempts = list(reply.attempts)
        self.saved = saved
        if self.targets:
            check = self.check(*self.targets[0])
            if check is not None:
                return cast("ResponseT", check.verify_streamed(cast("ChatResponse", reply), self.clock.now()))
        return reply

    def check(self, provider: Provider, model: str) -> ReplyCheck | None:
        """A hook's check of this target's replies (``response_model``), or None."""
        for hook in self.hooks:
            found = hook.check(self, provider, model)
            if found is not None:
                return found
        return None
