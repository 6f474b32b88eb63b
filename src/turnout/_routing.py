"""Bookkeeping for one call across a route's targets: attempts, fallback decisions, the final error.

No I/O here: `Client`, `AsyncClient` and the stream classes run the loop and ask this object
what to do, so sync and async decide identically.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .errors import (
    AllTargetsFailedError,
    APIConnectionError,
    ContextWindowExceededError,
    ProviderError,
    StreamInterruptedError,
)
from .types import Attempt, ChatResponse

if TYPE_CHECKING:
    from .pricing import Pricing
    from .provider import Provider

__all__ = ["CallLog", "should_fall_back"]

logger = logging.getLogger("turnout")


def should_fall_back(exc: ProviderError) -> bool:
    """Whether another target may succeed where this one failed.

    Yes for retryable errors (rate limits, 5xx, timeouts, dropped connections), for a context
    window too small for the request, and for unreachable servers; no for errors the request
    itself causes (bad request, auth, unknown model, quota).
    """
    return exc.retryable or isinstance(exc, ContextWindowExceededError | APIConnectionError)


class CallLog:
    """The attempts of one call, in order, and what to do after each failure."""

    def __init__(self, route: str, pricing: Pricing) -> None:
        self.route = route
        self.attempts: list[Attempt] = []
        self.errors: list[ProviderError] = []
        self._pricing = pricing

    def failed(
        self, exc: ProviderError, provider: str, model: str, started: float, *, more: bool
    ) -> ProviderError | AllTargetsFailedError | None:
        """Record a failed attempt; return None to try the next target, else the error to raise.

        The error is ``exc`` itself when it ends the route early (it is not worth falling back
        on), or `exhausted()` after the last target.
        """
        self.attempts.append(
            Attempt(
                provider=provider,
                model=model,
                outcome=type(exc).__name__,
                latency=time.perf_counter() - started,
                status_code=exc.status_code,
                error=exc.message,
            )
        )
        exc.attempts = list(self.attempts)
        self.errors.append(exc)
        fall_back = more and should_fall_back(exc)
        logger.debug(
            "route %s: %s:%s failed with %s (status %s); %s",
            self.route,
            provider,
            model,
            type(exc).__name__,
            exc.status_code,
            "falling back to the next target" if fall_back else "giving up",
        )
        if fall_back:
            return None
        return self.exhausted() if not more else exc

    def succeeded(self, provider: Provider, model: str, started: float, response: ChatResponse) -> ChatResponse:
        """Record the successful attempt; return the reply with its cost and attempts filled in."""
        self.attempts.append(
            Attempt(provider=provider.name, model=model, outcome="ok", latency=time.perf_counter() - started)
        )
        cost = self._pricing.cost(provider, model, response.usage)
        return response.model_copy(update={"cost": cost, "attempts": self.attempts})

    def exhausted(self) -> ProviderError | AllTargetsFailedError:
        """The error to raise when no target is left: the only one, or all of them as a group."""
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
        """The error for a stream that failed after content was delivered (no fallback then)."""
        if isinstance(exc, StreamInterruptedError):
            exc.partial_text = partial_text
            return exc
        wrapped = StreamInterruptedError(
            f"stream failed after content was delivered: {exc.message}",
            partial_text=partial_text,
            provider=exc.provider,
            model=exc.model,
            status_code=exc.status_code,
            request_id=exc.request_id,
        )
        wrapped.attempts = exc.attempts
        return wrapped
