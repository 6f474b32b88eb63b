"""Retrying one target: `RetryPolicy`, and the tenacity strategies shared by the sync and async paths.

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
from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field

from .. import _defaults
from .._checks import NoBoolNumbers
from .._lazy import lazy

if TYPE_CHECKING:
    from ._tenacity import retry_if_retryable, stop_if_budget_spent, stop_if_past_deadline, wait_retry_after

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


# The tenacity strategies (`turnout.policies._tenacity`) load with the first retry decision: a
# call that succeeds never makes one, so tenacity is not imported until a target fails.
_STRATEGIES = frozenset(
    {"retry_if_retryable", "stop_for", "stop_if_budget_spent", "stop_if_past_deadline", "wait_retry_after"}
)


__getattr__ = lazy(__name__, dict.fromkeys(_STRATEGIES, "turnout.policies._tenacity"))
