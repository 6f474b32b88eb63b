"""Reliability policies: retry, retry budget, circuit breaker, route policy, clock."""

from __future__ import annotations

from .breaker import BreakerPolicy, CircuitBreaker, TargetHealth
from .clock import Clock, SystemClock
from .retry import RetryPolicy, retry_if_retryable, stop_if_budget_spent, stop_if_past_deadline, wait_retry_after
from .retry_budget import RetryBudget
from .route import FallbackOn, RoutePolicy

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
