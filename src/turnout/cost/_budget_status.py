"""`BudgetStatus`: where one spending limit stands (importable from `turnout.cost.budgets`).

Loaded by the first status report; a call that only reserves and settles never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..types import USD

__all__ = ["BudgetStatus"]


@dataclass(frozen=True)
class BudgetStatus:
    """Where one limit stands now; the amounts are `USD` (exact Decimals that print as fixed-point dollars)."""

    name: str
    max_usd: USD
    spent: USD
    reserved: USD

    @property
    def remaining(self) -> USD:
        """What may still be reserved."""
        return USD(self.max_usd - self.spent - self.reserved)
