"""What a call cost, in exact ``Decimal`` US dollars.

Precedence: a ``[prices."provider:model"]`` entry in the config, then the genai-prices
catalogue (pydantic's maintained price data, read from the installed package: never fetched
at import or at call time) for providers that have list prices. No price means ``cost=None``
and one `CostUnknownWarning` per model, never a made-up ``0``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from .config import Price
from .types import Cost, Usage

if TYPE_CHECKING:
    from .provider import Provider

__all__ = ["CostUnknownWarning", "Pricing"]

_MILLION = Decimal(1_000_000)


class CostUnknownWarning(UserWarning):
    """No price is known for a model, so its replies have ``cost=None``."""


class Pricing:
    """Turns usage into cost for a configuration's providers and models."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._warned: set[str] = set()
        self._catalogue_misses: set[tuple[str, str]] = set()

    def cost(self, provider: Provider, model: str, usage: Usage) -> Cost | None:
        """The cost of one reply, or None when tokens or the price are unknown."""
        if usage.prompt_tokens is None or usage.completion_tokens is None:
            return None
        price = self._prices.get(f"{provider.name}:{model}")
        if price is not None:
            return _from_price(price, usage)
        catalogue = provider.price_catalogue()
        if catalogue is not None:
            found = self._catalogue(catalogue, model, usage)
            if found is not None:
                return found
        self._warn_once(provider.name, model)
        return None

    def _catalogue(self, catalogue: str, model: str, usage: Usage) -> Cost | None:
        if (catalogue, model) in self._catalogue_misses:
            return None
        from genai_prices import Usage as CatalogueUsage
        from genai_prices import __version__, calc_price

        assert usage.prompt_tokens is not None and usage.completion_tokens is not None
        try:
            calc = calc_price(
                CatalogueUsage(
                    input_tokens=usage.prompt_tokens,
                    output_tokens=usage.completion_tokens,
                    cache_read_tokens=usage.cached_tokens or 0,
                ),
                model,
                provider_id=catalogue,
            )
        except LookupError:
            self._catalogue_misses.add((catalogue, model))
            return None
        return Cost(
            input=calc.input_price,
            output=calc.output_price,
            total=calc.total_price,
            source=f"genai-prices {__version__} ({catalogue}/{calc.model.id})",
        )

    def _warn_once(self, provider: str, model: str) -> None:
        key = f"{provider}:{model}"
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f'no price known for {key}: its cost is None. Add [prices."{key}"] with '
                "input_per_million and output_per_million to turnout.toml.",
                CostUnknownWarning,
                stacklevel=_caller_level(),
            )


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside turnout."""
    package = os.path.dirname(__file__)
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def _from_price(price: Price, usage: Usage) -> Cost:
    assert usage.prompt_tokens is not None and usage.completion_tokens is not None
    cached = usage.cached_tokens or 0
    if price.cached_input_per_million is None:
        cached = 0
    uncached = usage.prompt_tokens - cached
    input_cost = uncached * price.input_per_million / _MILLION
    if cached:
        assert price.cached_input_per_million is not None
        input_cost += cached * price.cached_input_per_million / _MILLION
    output_cost = usage.completion_tokens * price.output_per_million / _MILLION
    return Cost(input=input_cost, output=output_cost, total=input_cost + output_cost, source="config")
