"""Spending limits: per client and per model alias, reserved before sending, settled after.

Before a call sends anything, turnout reserves its worst-case cost (the estimate's high bound,
computed offline) against every limit that applies. A call that could overspend one raises
`BudgetExceededError` and sends nothing. When the reply arrives its actual cost is committed
and the rest of the reservation released; a failed call releases all of it. One lock guards
every limit, so concurrent calls (threads or asyncio tasks) never reserve past a limit.

```toml
[budget]                 # the whole client
max_usd = 5.00
period = "day"           # optional: "day" or "month" (UTC); no period: the client's lifetime

[models.fast]
targets = ["openai:gpt-4o-mini"]
budget = { max_usd = 1.00 }

[tag_budgets.tenant]     # each value of the call's tags={"tenant": ...} has its own limit
max_usd = 0.50
period = "day"
```
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field

from .._checks import NoBoolNumbers
from .._lazy import lazy
from ..errors import BudgetExceededError
from ..money import USD, fixed_point

if TYPE_CHECKING:
    from ._budget_status import BudgetStatus

__all__ = ["Budget", "BudgetStatus", "Budgets", "Reservation"]

Period = Literal["day", "month"]


class Budget(NoBoolNumbers):
    """A spending limit in US dollars, optionally renewed each UTC day or month."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    max_usd: Decimal = Field(ge=0, description="the most that may be spent in a period")
    period: Period | None = Field(default=None, description='"day", "month", or none: the client\'s lifetime')


class _Limit:
    def __init__(self, name: str, budget: Budget, today: Callable[[], date]) -> None:
        self.name, self.budget, self._today = name, budget, today
        self.spent = self.reserved = Decimal(0)
        self._period = self._key()

    def _key(self) -> tuple[int, ...]:
        day = self._today()
        if self.budget.period == "day":
            return (day.year, day.month, day.day)
        return (day.year, day.month) if self.budget.period == "month" else ()

    def roll(self) -> None:
        """Start a new period's spending when the day or month has changed."""
        key = self._key()
        if key != self._period:
            self._period, self.spent = key, Decimal(0)

    def status(self) -> BudgetStatus:
        from ._budget_status import BudgetStatus

        return BudgetStatus(self.name, USD(self.budget.max_usd), USD(self.spent), USD(self.reserved))


class Reservation:
    """Money held for one call; `commit` the actual cost, or `release` it all. Only the first counts."""

    def __init__(self, owner: Budgets, limits: list[_Limit], amount: Decimal) -> None:
        self._owner, self._limits, self.amount = owner, limits, amount
        self._open = True

    def commit(self, actual: Decimal | None) -> None:
        """Spend ``actual`` (None: the whole reservation, when the cost is unknown) and free the rest."""
        self._settle(self.amount if actual is None else actual)

    def release(self) -> None:
        """Free the whole reservation (the call failed before costing anything)."""
        self._settle(Decimal(0))

    def _settle(self, spent: Decimal) -> None:
        with self._owner.lock:
            if not self._open:
                return
            self._open = False
            for limit in self._limits:
                limit.reserved -= self.amount
                limit.spent += spent


class Budgets:
    """Every limit of a client: its own and its aliases'."""

    def __init__(
        self,
        client: Budget | None,
        aliases: Mapping[str, Budget],
        today: Callable[[], date] | None = None,
        tags: Mapping[str, Budget] | None = None,
    ) -> None:
        """Create the limits.

        Args:
            client: the limit on every call, or None.
            aliases: the limit on each model alias's calls.
            today: the current UTC date (tests pass a fake).
            tags: tag name -> the limit of each value of that tag (one per tenant, say).
        """
        self._clock = today or (lambda: datetime.now(UTC).date())
        self.lock = threading.Lock()
        self._client = None if client is None else _Limit("client", client, self._clock)
        self._aliases = {alias: _Limit(f"models.{alias}", b, self._clock) for alias, b in aliases.items()}
        self._tag_budgets = dict(tags or {})
        self._tagged: dict[tuple[str, str], _Limit] = {}

    def applies(self, route: str, tags: Mapping[str, str] | None = None) -> bool:
        """Whether a call on ``route`` with ``tags`` is under any limit."""
        if self._client is not None or route in self._aliases:
            return True
        return bool(tags) and any(key in self._tag_budgets for key in tags or ())

    def limits(self, route: str, tags: Mapping[str, str] | None = None) -> list[_Limit]:
        """The limits a call on ``route`` with ``tags`` is under (a tag value's is made on first use)."""
        found = [x for x in (self._client, self._aliases.get(route)) if x is not None]
        for key, value in sorted((tags or {}).items()):
            budget = self._tag_budgets.get(key)
            if budget is None:
                continue
            limit = self._tagged.get((key, value))
            if limit is None:
                with self.lock:
                    limit = self._tagged.setdefault((key, value), _Limit(f"tags.{key}={value}", budget, self._clock))
            found.append(limit)
        return found

    def reserve(self, route: str, amount: Decimal, tags: Mapping[str, str] | None = None) -> Reservation:
        """Hold ``amount`` against every limit ``route`` (and ``tags``) is under, all or none.

        Raises:
            BudgetExceededError: a limit has less than ``amount`` left; nothing is held.
        """
        limits = self.limits(route, tags)
        with self.lock:
            for limit in limits:
                limit.roll()
                left = limit.status().remaining
                if amount > left:
                    raise BudgetExceededError(
                        f"{limit.name} budget: this call could cost up to ${fixed_point(amount)}, but only "
                        f"${left} of ${fixed_point(limit.budget.max_usd)} is left; nothing was sent",
                        budget=limit.name,
                        needed=amount,
                        remaining=left,
                    )
            for limit in limits:
                limit.reserved += amount
        return Reservation(self, limits, amount)

    def unbounded(self, route: str, why: str, tags: Mapping[str, str] | None = None) -> BudgetExceededError:
        """The error for a call under a budget whose cost has no upper bound."""
        limit = self._aliases.get(route) or self._client or next(iter(self.limits(route, tags)), None)
        assert limit is not None, "only called when a budget applies"
        return BudgetExceededError(
            f"{limit.name} budget: the cost of this call has no upper bound: {why}; nothing was sent",
            budget=limit.name,
            needed=None,
            remaining=limit.status().remaining,
        )

    def status(self) -> list[BudgetStatus]:
        """Every limit's spending so far in its current period."""
        with self.lock:
            limits = [x for x in (self._client, *self._aliases.values(), *self._tagged.values()) if x is not None]
            for limit in limits:
                limit.roll()
            return [limit.status() for limit in limits]


# `BudgetStatus` (what ``budget_status()`` reports) loads on first use.
__getattr__ = lazy(__name__, {"BudgetStatus": "turnout.cost._budget_status"})
