"""Deprecated: the spend ledger moved to `turnout.cost.spend_ledger` (this alias goes in 0.3.0)."""

import warnings

from ..cost.spend_ledger import (
    GROUP_KEYS,
    Entry,
    Ledger,
    LedgerConfig,
    Total,
    default_ledger_path,
    ledger_labels,
    ledger_path,
    parse_bound,
    totals,
)

__all__ = [
    "GROUP_KEYS",
    "Entry",
    "Ledger",
    "LedgerConfig",
    "Total",
    "default_ledger_path",
    "ledger_labels",
    "ledger_path",
    "parse_bound",
    "totals",
]

warnings.warn("turnout.ledger is now turnout.cost.spend_ledger", DeprecationWarning, stacklevel=2)
