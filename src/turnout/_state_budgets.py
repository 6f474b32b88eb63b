"""USD budgets held on Redis (``[state]``): one limit for every worker, per UTC period.

A call's worst case is reserved by one Lua script that checks and holds it atomically on the
server (`turnout._state_scripts.RESERVE`), and committed or released after the call from the
background thread (`turnout._state_writes`); a hold not settled within ``hold_ttl`` seconds (a
worker that died) expires and its money comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._state_scripts import budget_keys
from .cost.budgets import Budget, Budgets, BudgetStatus, Reservation, _Limit
from .errors import BudgetExceededError
from .money import USD, fixed_point

if TYPE_CHECKING:
    from .shared import SharedState

__all__ = ["NANO", "SharedBudgets", "SharedReservation", "keys_of"]

logger = logging.getLogger("turnout")

NANO = Decimal(1_000_000_000)
"""Amounts are kept on Redis as whole nano-dollars (integers)."""
_PERIOD_KEY_TTL = {"day": 2 * 86_400, "month": 32 * 86_400}  # a period's keys outlive it a little


class SharedReservation(Reservation):
    """A hold on Redis; settled once, from the background thread (kept and sent again while Redis is down)."""

    def __init__(self, owner: SharedBudgets, keys: list[tuple[str, int]], amount: Decimal, hold_id: str) -> None:
        super().__init__(owner, [], amount)
        self._shared, self._keys, self.hold_id = owner, keys, hold_id

    def _settle(self, spent: Decimal) -> None:
        with self._owner.lock:
            if not self._open:
                return
            self._open = False
        state, keys, hold_id = self._shared.state, self._keys, self.hold_id
        state.commit(hold_id, lambda: state.settle(keys, hold_id, spent))


class SharedBudgets(Budgets):
    """The client's budgets, held on Redis (this process's own `Budgets` when Redis fails and ``budgets = "local"``)."""

    def __init__(
        self,
        state: SharedState,
        client: Budget | None,
        aliases: Mapping[str, Budget],
        today: Callable[[], date] | None = None,
        tags: Mapping[str, Budget] | None = None,
    ) -> None:
        """Create the limits; ``state`` is the Redis connection they live on."""
        super().__init__(client, aliases, today, tags)
        self.state = state

    def key(self, limit: _Limit) -> tuple[str, int]:
        """A limit's Redis key for its current period, and how long the key lives (0: for ever)."""
        period = "-".join(f"{part:02d}" for part in limit._key()) or "all"
        ttl = _PERIOD_KEY_TTL.get(limit.budget.period or "", 0)
        return f"{self.state.base}:budget:{limit.name}:{period}", ttl

    def shared_outcome(
        self, route: str, amount: Decimal, hold_id: str, raw: list[Any], tags: Mapping[str, str] | None
    ) -> SharedReservation:
        """The hold the reserve script granted, or the error for the limit it found short."""
        limits = self.limits(route, tags)
        failed, spent, held = int(raw[0]), int(raw[1]), int(raw[2])
        if failed:
            limit = limits[failed - 1]
            left = USD(max(limit.budget.max_usd - (Decimal(spent) + Decimal(held)) / NANO, Decimal(0)))
            raise BudgetExceededError(
                f"{limit.name} budget (shared): this call could cost up to ${fixed_point(amount)}, but only "
                f"${left} of ${fixed_point(limit.budget.max_usd)} is left; nothing was sent",
                budget=limit.name,
                needed=amount,
                remaining=left,
            )
        return SharedReservation(self, [self.key(x) for x in limits], amount, hold_id)

    def when_down(self, route: str, amount: Decimal, exc: BaseException, tags: Mapping[str, str] | None) -> Reservation:
        """Redis failed: this process's own budget (``"local"``), or refuse the call."""
        if self.state.config.on_failure.budgets == "local":
            return Budgets.reserve(self, route, amount, tags)
        limit = self.limits(route, tags)[0]
        raise BudgetExceededError(
            f"{limit.name} budget: the shared state at {self.state.where} could not be reached "
            f"({type(exc).__name__}), so the budget cannot be checked; nothing was sent "
            '(set [state.on_failure] budgets = "local" to fall back to this process\'s own budget)',
            budget=limit.name,
            needed=amount,
            remaining=USD(0),
        ) from None

    def status(self) -> list[BudgetStatus]:
        """Every limit's spending in its current period, as Redis has it (this process's own when Redis fails)."""
        limits = [x for x in (self._client, *self._aliases.values(), *self._tagged.values()) if x is not None]
        try:
            rows = self.state.status([self.key(x)[0] for x in limits])
        except self.state.errors as exc:
            logger.warning("turnout: shared budget status unavailable (%s); showing this process's", type(exc).__name__)
            return super().status()
        return [
            BudgetStatus(x.name, USD(x.budget.max_usd), USD(Decimal(s) / NANO), USD(Decimal(h) / NANO))
            for x, (s, h) in zip(limits, rows, strict=True)
        ]


def keys_of(limits: list[tuple[str, int]]) -> list[str]:
    """Every key the reserve and commit scripts touch for these limits (four per limit)."""
    return [k for key, _ in limits for k in budget_keys(key)]
