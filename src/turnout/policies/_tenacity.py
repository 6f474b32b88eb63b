"""The tenacity strategies of `RetryPolicy` (importable from `turnout.policies.retry`).

They load with a call's first retry decision (`turnout.engine.state.Retries`): a call whose
first attempt succeeds never imports tenacity.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryCallState, stop_after_attempt
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ..errors import APIStatusError, ProviderError
from .retry import RetryPolicy
from .retry_budget import RetryBudget

__all__ = ["retry_if_retryable", "stop_for", "stop_if_budget_spent", "stop_if_past_deadline", "wait_retry_after"]


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
