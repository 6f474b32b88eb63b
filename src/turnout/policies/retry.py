"""Retrying one target: tenacity strategies shared by the sync and async paths.

Only errors marked retryable are retried (``ProviderError.retryable``: 408, 409, 429 rate
limits, 5xx, timeouts, dropped connections, ``x-should-retry: true``), never a stream that has
already delivered content. The wait is the server's ``retry-after-ms`` / ``retry-after`` when
it gave one on any retryable status (429, 503...; RFC 9110 section 10.2.3), believed up to
``max_retry_after``, else exponential backoff with jitter. A retry
is skipped (the route moves on to its next target) when its wait would outlast the call's
deadline, or when the target's retry budget is spent.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pydantic import ConfigDict, Field
from tenacity import RetryCallState, stop_after_attempt
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .. import _defaults
from .._checks import NoBoolNumbers
from ..errors import APIStatusError, ProviderError
from .retry_budget import RetryBudget

__all__ = [
    "RetryPolicy",
    "retry_if_retryable",
    "stop_if_budget_spent",
    "stop_if_past_deadline",
    "wait_retry_after",
]


class RetryPolicy(NoBoolNumbers):
    """How one target is retried before the route falls back to the next."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, description="attempts per target, the first included")
    initial_delay: float = Field(
        default=0.5, ge=0, le=_defaults.MAX_TIMEOUT, description="seconds before the first retry"
    )
    max_delay: float = Field(default=8.0, ge=0, le=_defaults.MAX_TIMEOUT, description="cap of the exponential backoff")
    jitter: float = Field(default=0.25, ge=0, le=1, description="waits are scaled by a random factor in [1-jitter, 1]")
    max_retry_after: float = Field(
        default=120.0, ge=0, le=_defaults.MAX_TIMEOUT, description="longest server Retry-After believed"
    )
    budget_ratio: float = Field(default=0.1, ge=0, description="retry tokens each call earns its target")
    budget_burst: float = Field(default=10.0, ge=0, description="most retry tokens a target can hold")

    def backoff(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds before retry number ``retry_number`` (1, 2, ...) when the server gave no delay."""
        base = min(self.initial_delay * 2 ** (retry_number - 1), self.max_delay)
        return float(base * (1 - self.jitter * rand()))


class _RetryIfRetryable(retry_base):
    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or not outcome.failed:
            return False
        exc = outcome.exception()
        return isinstance(exc, ProviderError) and exc.retryable and not getattr(exc, "after_content", False)


retry_if_retryable = _RetryIfRetryable()
"""Retry a `ProviderError` whose ``retryable`` flag is set, unless a stream already delivered content."""


class wait_retry_after(wait_base):  # noqa: N801 - tenacity's naming
    """Wait what the server asked (capped), else the policy's exponential backoff with jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        """Seconds to wait before the next attempt."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, APIStatusError) and exc.retry_after is not None:  # 429, 503, any retryable status
            if exc.retry_after <= self.policy.max_retry_after:
                return exc.retry_after
        return self.policy.backoff(retry_state.attempt_number)


class stop_if_past_deadline(stop_base):  # noqa: N801 - tenacity's naming
    """Stop when the next wait would end after the call's deadline."""

    def __init__(self, remaining: Callable[[], float]) -> None:
        self.remaining = remaining

    def __call__(self, retry_state: RetryCallState) -> bool:
        """True to stop."""
        return retry_state.upcoming_sleep >= self.remaining()


class stop_if_budget_spent(stop_base):  # noqa: N801 - tenacity's naming
    """Stop when the target's retry budget has no token left (spends one otherwise). Put it last."""

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        """True to stop (no retry token left)."""
        del retry_state
        return not self.budget.try_spend()


def stop_for(policy: RetryPolicy, remaining: Callable[[], float], budget: RetryBudget) -> stop_base:
    """The stop condition of one target: attempts, then deadline, then budget (which spends a token)."""
    return stop_after_attempt(policy.max_attempts) | stop_if_past_deadline(remaining) | stop_if_budget_spent(budget)
