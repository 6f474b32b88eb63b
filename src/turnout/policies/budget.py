"""Deprecated: the retry budget moved to `turnout.policies.retry_budget` (this alias goes in 0.3.0)."""

import warnings

from .retry_budget import RetryBudget

__all__ = ["RetryBudget"]

warnings.warn(
    "turnout.policies.budget is now turnout.policies.retry_budget (the USD budgets are turnout.cost.budgets)",
    DeprecationWarning,
    stacklevel=2,
)
