"""Deprecated: the USD budgets moved to `turnout.cost.budgets` (this alias goes in 0.3.0)."""

import warnings

from ..cost.budgets import Budget, Budgets, BudgetStatus, Reservation

__all__ = ["Budget", "BudgetStatus", "Budgets", "Reservation"]

warnings.warn("turnout.budget is now turnout.cost.budgets", DeprecationWarning, stacklevel=2)
