"""`AttemptLog`: the attempts of one call, recorded in the order they happened. No I/O here.

Each attempt that starts, fails, succeeds, loses a hedge or is left by the caller is appended to
the call's ``attempts``, told to its target's circuit breaker and latency average, logged at
DEBUG, and published as `AttemptStarted` / `AttemptFinished` for subscribers. `Call`
(`turnout.engine.call`) builds on it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Generic, TypeVar

from .._construct import construct
from ..errors import APIConnectionError, ProviderError
from ..events import AttemptFinished, AttemptStarted
from ..types import Attempt
from .hedge import SIDE, Lost
from .state import label

if TYPE_CHECKING:
    from ..embeddings import EmbeddingRequest, EmbeddingResponse
    from ..policies.clock import Clock
    from ..policies.route import RoutePolicy
    from ..provider import Provider
    from ..types import ChatRequest, ChatResponse
    from .state import RouteState

__all__ = ["AttemptLog", "RequestT", "ResponseT"]

logger = logging.getLogger("turnout")
RequestT = TypeVar("RequestT", bound="ChatRequest | EmbeddingRequest")
ResponseT = TypeVar("ResponseT", bound="ChatResponse | EmbeddingResponse")


class AttemptLog(Generic[RequestT, ResponseT]):
    """The attempts of one call in order, with what each told its target's breaker and the subscribers."""

    route: str
    policy: RoutePolicy
    state: RouteState
    clock: Clock
    attempts: list[Attempt]

    def starting(self, provider: Provider, model: str, request: RequestT | None = None) -> float:
        """Note that an attempt sending ``request`` starts now (an event for subscribers); return the start time."""
        started = self.clock.now()
        side = SIDE.get()
        if side is not None:  # a hedge's side: mark the request as out, unless the other side has won
            hedge, index = side
            with hedge.lock:
                if hedge.winner is not None:
                    raise Lost
                hedge.sending[index] = (provider, model, started)
        events = self.state.events
        if events.wants(AttemptStarted):
            events.publish(AttemptStarted(self.route, provider.name, model, request, provider, started, id(self)))
        return started

    def validate(self, provider: Provider, model: str, request: RequestT, reply: ResponseT) -> None:
        """Check a reply before accepting it (raise a `ProviderError` to count the attempt as failed)."""

    def attempt_failed(self, provider: Provider, model: str, exc: ProviderError, started: float) -> None:
        """Record one failed attempt and tell the target's breaker when the failure is the target's."""
        self._record(provider.name, model, exc, self.clock.now() - started, started=started)
        breaker = self.state.breaker(label(provider, model), self.policy)
        if exc.retryable or isinstance(exc, APIConnectionError):
            breaker.record(False, type(exc).__name__)
            shared = self.state.shared
            if shared is not None and breaker.retry_in() > 0:  # it opened: the other workers skip it too
                shared.opened(breaker.target, type(exc).__name__, breaker.retry_in())
        else:
            breaker.record(True)

    def record_success(
        self,
        provider: Provider,
        model: str,
        started: float,
        reply: ResponseT | None = None,
        first_chunk: float | None = None,
    ) -> None:
        """Record a successful attempt that started at ``started``: its attempt, circuit and latency.

        ``reply`` (the target's, as it came) and ``first_chunk`` (a stream's time to its first
        chunk) only go to `AttemptFinished` subscribers.
        """
        latency = self.clock.now() - started
        name = label(provider, model)
        attempt = construct(
            Attempt,
            provider=provider.name,
            model=model,
            outcome="ok",
            latency=latency,
            status_code=None,
            error=None,
            skipped=False,
        )
        self._append(attempt, won=True)
        self.state.breaker(name, self.policy).record(True)
        self.state.observe(name, latency)
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(self.route, attempt, len(self.attempts))
        events = self.state.events
        if events.wants(AttemptFinished):
            events.publish(AttemptFinished(self.route, attempt, reply, None, started, first_chunk, id(self)))

    def accepted(
        self, provider: Provider, model: str, started: float, reply: ResponseT, first_chunk: float | None = None
    ) -> ResponseT:
        """A target's reply is accepted: record it and return the reply the flow goes on with."""
        raise NotImplementedError

    def _note(self, provider: Provider, model: str, outcome: str, started: float, why: str) -> None:
        """Record an attempt that ended without a reply or an error of its own (cancelled, abandoned)."""
        self._append(self._ended(provider, model, outcome, started, why))

    def _ended(self, provider: Provider, model: str, outcome: str, started: float, why: str) -> Attempt:
        latency = self.clock.now() - started
        return Attempt(provider=provider.name, model=model, outcome=outcome, latency=latency, error=why)

    def _append(self, attempt: Attempt, won: bool = False) -> None:
        """Append ``attempt``; on a hedge's side, in one step with its hedge (`turnout.engine.hedge`).

        ``won``: the attempt answered. On a hedge's side that ends the race: the other side's
        request still out is recorded ``cancelled`` (sent, its reply dropped; a provider may
        still bill it), and whatever that side records later is dropped (`Lost`).
        """
        side = SIDE.get()
        if side is None:
            self.attempts.append(attempt)
            return
        hedge, index = side
        with hedge.lock:
            if hedge.winner is not None:  # the other side won, and recorded this side's request
                raise Lost
            hedge.sending[index] = None
            self.attempts.append(attempt)
            if won:
                hedge.winner = index
                out = hedge.sending[1 - index]
                if out is not None:
                    provider, model, started = out
                    why = "lost the hedge: another target answered first"
                    self.attempts.append(self._ended(provider, model, "cancelled", started, why))

    def _record(
        self,
        provider: str,
        model: str,
        exc: ProviderError,
        latency: float,
        skipped: bool = False,
        started: float = 0.0,
    ) -> None:
        attempt = Attempt(
            provider=provider,
            model=model,
            outcome=type(exc).__name__,
            latency=latency,
            status_code=exc.status_code,
            error=exc.message,
            skipped=skipped,
        )
        self._append(attempt)
        exc.attempts = list(self.attempts)
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(self.route, attempt, len(self.attempts))
        events = self.state.events
        if events.wants(AttemptFinished):
            events.publish(AttemptFinished(self.route, attempt, None, exc, started, None, id(self)))


def _log_attempt(route: str, attempt: Attempt, number: int) -> None:
    """One DEBUG record per attempt, its fields also as ``extra`` (for structured log handlers)."""
    target = f"{attempt.provider}:{attempt.model}"
    logger.debug(
        "route %s: attempt on %s: %s in %.3fs",
        route,
        target,
        attempt.outcome,
        attempt.latency,
        extra={
            "alias": route,
            "target": target,
            "attempt": number,
            "outcome": attempt.outcome,
            "latency": attempt.latency,
        },
    )
