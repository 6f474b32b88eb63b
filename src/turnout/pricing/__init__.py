"""Deprecated: prices moved to `turnout.cost.prices` (this alias goes in 0.3.0)."""

import warnings

from ..cost.prices import CATALOGUE_ALIASES, CostUnknownWarning, Pricing, catalogue_context_window, catalogue_refs

__all__ = ["CATALOGUE_ALIASES", "CostUnknownWarning", "Pricing", "catalogue_context_window", "catalogue_refs"]

warnings.warn("turnout.pricing is now turnout.cost.prices", DeprecationWarning, stacklevel=2)
