"""`Entry` and `Total`, the ledger's rows as the API takes and gives them (importable from `turnout.cost.spend_ledger`).

A call's row is queued as a tuple; these classes load with the first `Ledger.append` or `totals`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["Entry", "Total"]


@dataclass(frozen=True)
class Entry:
    """One call, as the ledger records it."""

    alias: str
    provider: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost: Decimal | None
    cost_source: str | None
    latency: float
    outcome: str
    attempts: int
    ts: datetime | None = None
    estimated: bool = False
    cache_hit: bool = False
    tags: Mapping[str, Any] | None = None
    run_id: str | None = None
    call_id: str | None = None
    saved: Decimal | None = None
    """For a cache hit: what the reply cost when it was stored (the call itself cost nothing)."""


@dataclass(frozen=True)
class Total:
    """Totals of one group of calls (by default: one day, provider and model).

    A key the totals are not grouped by reads ``"*"``.
    """

    day: str
    provider: str
    model: str
    calls: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    unpriced: int
    alias: str = "*"
    cache_hits: int = 0
    """Calls answered by the response cache (nothing sent, cost zero)."""
    saved: Decimal = Decimal(0)
    """What those cache hits would have cost."""
    tags: tuple[tuple[str, str], ...] = ()
    """The values of the ``tag:NAME`` keys grouped by (``"-"``: calls without that tag)."""

    def get(self, key: str) -> str:
        """The group's value of a ``by`` key (``"day"``, ``"alias"``, ..., or ``"tag:NAME"``)."""
        return dict(self.tags).get(key, "*") if key.startswith("tag:") else str(getattr(self, key))
