"""Reliability policies: retry, retry budget, circuit breaker, route policy, clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy
from .breaker import BreakerPolicy, CircuitBreaker, TargetHealth
from .clock import Clock, SystemClock
from .retry import RetryPolicy
from .retry_budget import RetryBudget
from .route import FallbackOn, RoutePolicy

if TYPE_CHECKING:
    from ._tenacity import retry_if_retryable, stop_if_budget_spent, stop_if_past_deadline, wait_retry_after

__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "Clock",
    "FallbackOn",
    "RetryBudget",
    "RetryPolicy",
    "RoutePolicy",
    "SystemClock",
    "TargetHealth",
    "retry_if_retryable",
    "stop_if_budget_spent",
    "stop_if_past_deadline",
    "wait_retry_after",
]


# The tenacity strategies load on first use (see turnout.policies.retry).
_STRATEGIES = ("retry_if_retryable", "stop_if_budget_spent", "stop_if_past_deadline", "wait_retry_after")
__getattr__ = lazy(__name__, dict.fromkeys(_STRATEGIES, "turnout.policies.retry"))
