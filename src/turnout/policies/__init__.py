"""Reliability policies: retry, retry budget, circuit breaker, route policy, clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name not in {"retry_if_retryable", "stop_if_budget_spent", "stop_if_past_deadline", "wait_retry_after"}:
        raise AttributeError(f"module 'turnout.policies' has no attribute {name!r}")
    from . import retry  # the tenacity strategies load on first use (see turnout.policies.retry)

    return getattr(retry, name)
