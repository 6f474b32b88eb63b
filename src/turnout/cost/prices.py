"""What a call cost, in exact ``Decimal`` US dollars.

Precedence: a ``[prices."provider:model"]`` entry in the config, then the genai-prices
catalogue (pydantic's maintained price data, read from the installed package: never fetched
at import or at call time) for providers that have list prices. No price means ``cost=None``
and one `CostUnknownWarning` per model, never a made-up ``0``.

A call's price and context window come from turnout's slice of that catalogue
(``turnout.cost._price_slice``, generated from the same genai-prices version) while the installed
version is the slice's, so the 1.6 MB catalogue module is imported only when the slice cannot
answer.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from .._construct import construct
from ..config import Price
from ..money import USD, Cost, Usage

if TYPE_CHECKING:
    from genai_prices.types import PriceCalculation

    from ..provider import Provider
    from ._price_slice import SliceModel

__all__ = ["CATALOGUE_ALIASES", "CostUnknownWarning", "Pricing", "catalogue_context_window", "catalogue_refs"]

_MILLION = Decimal(1_000_000)


class CostUnknownWarning(UserWarning):
    """No price is known for a model, so its replies have ``cost=None``."""


class Pricing:
    """Turns usage into cost for a configuration's providers and models."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._warned: set[str] = set()
        self._catalogue_misses: set[tuple[str, str]] = set()
        # (catalogue, model) -> its catalogue price when that is fixed (the same at any time and
        # for any token count): looked up once, then priced with plain Decimal arithmetic.
        self._catalogue_prices: dict[tuple[str, str], tuple[Price, str]] = {}
        # (catalogue, model) -> its prices in turnout's slice of the catalogue, and the cost's source
        self._sliced: dict[tuple[str, str], tuple[SliceModel, str]] = {}

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

    def batch_cost(self, provider: Provider, model: str, usage: Usage) -> Cost | None:
        """The cost of one reply of a provider batch (OpenAI's Batch API), or None when unknown.

        genai-prices' batch price (its ``processing = "batch"`` price variant) where the catalogue
        prices the model and has one; otherwise the usual price less the provider's
        ``batch_discount`` (default 50 %, OpenAI's: https://platform.openai.com/docs/guides/batch).
        """
        if usage.prompt_tokens is None or usage.completion_tokens is None:
            return None
        catalogue = provider.price_catalogue()
        if f"{provider.name}:{model}" not in self._prices and catalogue is not None:
            found = _catalogue_batch(catalogue, model, usage)
            if found is not None:
                return found
        normal = self.cost(provider, model, usage)
        if normal is None:
            return None
        keep = Decimal(1) - Decimal(str(provider.config.batch_discount))
        return Cost(
            input=normal.input * keep,
            output=normal.output * keep,
            total=normal.total * keep,
            source=f"{normal.source}, batch -{provider.config.batch_discount:.0%}",
            estimated=normal.estimated,
        )

    def unit_price(self, provider: Provider, model: str) -> Decimal:
        """USD for one million input plus one million output tokens (for cost-based routing).

        Unknown prices sort last (``Decimal("Infinity")``).
        """
        price = self._prices.get(f"{provider.name}:{model}")
        if price is not None:
            return price.input_per_million + price.output_per_million
        catalogue = provider.price_catalogue()
        if catalogue is not None:
            found = self._catalogue(catalogue, model, Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000))
            if found is not None:
                return found.total
        return Decimal("Infinity")

    def bounds(
        self, provider: Provider, model: str, prompt_tokens: int, max_output: int | None
    ) -> tuple[Cost | None, Cost | None]:
        """The cheapest and dearest cost of a call with this prompt: no output, and ``max_output`` tokens.

        The low bound assumes the whole prompt was read from the cache (where the price has a
        cached rate); the high bound assumes no cached input, and prices the output at the
        dearer of the output and reasoning rates. The high bound is None when ``max_output`` is
        None (no cap is known). Both are None when no price is known.
        """
        low = self.cost(
            provider, model, Usage(prompt_tokens=prompt_tokens, completion_tokens=0, cached_tokens=prompt_tokens)
        )
        if low is None or max_output is None:
            return low, None
        highs = [
            self.cost(provider, model, Usage(prompt_tokens=prompt_tokens, completion_tokens=max_output)),
            self.cost(
                provider,
                model,
                Usage(prompt_tokens=prompt_tokens, completion_tokens=max_output, reasoning_tokens=max_output),
            ),
        ]
        return low, max((h for h in highs if h is not None), key=lambda c: c.total, default=None)

    def _catalogue(self, catalogue: str, model: str, usage: Usage) -> Cost | None:
        key = (catalogue, model)
        fixed = self._catalogue_prices.get(key)
        if fixed is not None:
            return _from_price(fixed[0], usage, fixed[1])
        sliced = self._sliced.get(key)
        if sliced is None:
            if key in self._catalogue_misses:
                return None
            sliced = self._slice(catalogue, model)
        if sliced is not None:
            assert usage.prompt_tokens is not None and usage.completion_tokens is not None
            found, source = sliced
            input_cost, output_cost = found.costs(
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens or 0
            )
            return _cost(input_cost, output_cost, source, usage)
        if key in self._catalogue_misses:
            return None
        from genai_prices import Usage as CatalogueUsage
        from genai_prices import __version__, calc_price

        assert usage.prompt_tokens is not None and usage.completion_tokens is not None
        counts = CatalogueUsage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=usage.cached_tokens or 0,
        )
        for ref in catalogue_refs(catalogue, model):
            try:
                calc = calc_price(counts, ref, provider_id=catalogue)
            except LookupError:
                continue
            break
        else:
            self._catalogue_misses.add(key)
            return None
        source = f"genai-prices {__version__} ({catalogue}/{calc.model.id})"
        cost = Cost(
            input=calc.input_price,
            output=calc.output_price,
            total=calc.total_price,
            source=source,
            estimated=usage.estimated,
        )
        fixed_price = _fixed_price(calc)
        if fixed_price is not None and _from_price(fixed_price, usage, source) == cost:  # no other charges
            self._catalogue_prices[key] = (fixed_price, source)
        return cost

    def _slice(self, catalogue: str, model: str) -> tuple[SliceModel, str] | None:
        """The model's prices from turnout's slice of the catalogue (kept for later calls), or None.

        A model the catalogue does not price is added to the misses; None also when only the full
        catalogue can answer.
        """
        from ._price_slice import FULL, slice_price

        found = slice_price(catalogue, catalogue_refs(catalogue, model))
        if found is None:
            self._catalogue_misses.add((catalogue, model))
            return None
        if found is FULL:
            return None
        sliced = self._sliced[(catalogue, model)] = (
            found,
            f"genai-prices {found.version} ({catalogue}/{found.model_id})",
        )
        return sliced

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


#: Model ids the catalogue does not know, mapped onto the ids it does (same SKU, same price).
#: Together served Llama 2 chat as ``togethercomputer/llama-2-*-chat`` before ``meta-llama/*-hf``.
CATALOGUE_ALIASES: dict[str, dict[str, str]] = {
    "together": {
        "togethercomputer/llama-2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
        "togethercomputer/llama-2-13b-chat": "meta-llama/Llama-2-13b-chat-hf",
        "togethercomputer/llama-2-70b-chat": "meta-llama/Llama-2-70b-chat-hf",
    },
}


def catalogue_refs(catalogue: str, model: str) -> list[str]:
    """The ids to look ``model`` up under in the catalogue, in order.

    genai-prices itself matches case-insensitively and maps dated snapshots
    (``gpt-4o-mini-2024-07-18``) onto their model; this adds known legacy aliases and
    strips a ``<catalogue>/`` prefix some hosts put in front of their ids.

    Args:
        catalogue: the catalogue's provider id, e.g. ``"openai"`` or ``"together"``.
        model: the model id the target names.

    Returns:
        Candidate ids, most specific first, without duplicates.
    """
    refs = [model]
    bare = model.removeprefix(f"{catalogue}/")
    aliases = {k.lower(): v for k, v in CATALOGUE_ALIASES.get(catalogue, {}).items()}
    for ref in (bare, aliases.get(bare.lower())):
        if ref is not None and ref not in refs:
            refs.append(ref)
    return refs


def catalogue_context_window(catalogue: str, model: str) -> int | None:
    """The model's context window as the price catalogue lists it, or None when it does not."""
    from ._price_slice import FULL, slice_window

    sliced = slice_window(catalogue, catalogue_refs(catalogue, model))
    if sliced is not FULL:
        return sliced
    from genai_prices import data_snapshot

    provider = next((p for p in data_snapshot.get_snapshot().providers if p.id == catalogue), None)
    if provider is None:
        return None
    for ref in catalogue_refs(catalogue, model):
        found = provider.find_model(ref)
        if found is not None:
            return found.context_window
    return None


def _catalogue_batch(catalogue: str, model: str, usage: Usage) -> Cost | None:
    """genai-prices' batch price of ``usage``, when the catalogue has one for the model (else None)."""
    from genai_prices import Usage as CatalogueUsage
    from genai_prices import __version__, calc_price

    assert usage.prompt_tokens is not None and usage.completion_tokens is not None
    counts = CatalogueUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens)
    for ref in catalogue_refs(catalogue, model):
        try:
            normal = calc_price(counts, ref, provider_id=catalogue)
            batch = calc_price(counts, ref, provider_id=catalogue, price_context={"processing": "batch"})
        except LookupError:
            continue
        if batch.total_price == normal.total_price and normal.total_price:
            return None  # no batch variant: the discount applies
        return Cost(
            input=batch.input_price,
            output=batch.output_price,
            total=batch.total_price,
            source=f"genai-prices {__version__} ({catalogue}/{batch.model.id}, batch)",
            estimated=usage.estimated,
        )
    return None


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside turnout."""
    package = os.path.dirname(os.path.dirname(__file__))  # turnout/, not turnout/cost/
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def _fixed_price(calc: PriceCalculation) -> Price | None:
    """The catalogue price as a `Price`, if it is the same at any time and for any token count."""
    from genai_prices.types import ModelPrice

    if not isinstance(calc.model.prices, ModelPrice):  # conditional prices depend on the request time
        return None
    price = calc.model_price
    uncached, output, cached = price.input_mtok, price.output_mtok, price.cache_read_mtok
    if not isinstance(uncached, Decimal) or not isinstance(output, Decimal | None):
        return None  # tiered prices depend on the prompt's size
    if not isinstance(cached, Decimal | None):
        return None
    return Price(input_per_million=uncached, output_per_million=output or Decimal(0), cached_input_per_million=cached)


def _from_price(price: Price, usage: Usage, source: str | None = None) -> Cost:
    assert usage.prompt_tokens is not None and usage.completion_tokens is not None
    cached = usage.cached_tokens or 0
    if price.cached_input_per_million is None:
        cached = 0
    uncached = usage.prompt_tokens - cached
    input_cost = uncached * price.input_per_million / _MILLION
    if cached:
        assert price.cached_input_per_million is not None
        input_cost += cached * price.cached_input_per_million / _MILLION
    reasoning = min(usage.reasoning_tokens or 0, usage.completion_tokens)
    if price.reasoning_per_million is None:
        reasoning = 0
    output_cost = (usage.completion_tokens - reasoning) * price.output_per_million / _MILLION
    if reasoning:
        assert price.reasoning_per_million is not None
        output_cost += reasoning * price.reasoning_per_million / _MILLION
    if source is None:
        source = "config" if price.usd_per_hour is None else "config (hourly)"
    return _cost(input_cost, output_cost, source, usage)


def _cost(input_cost: Decimal, output_cost: Decimal, source: str, usage: Usage) -> Cost:
    """The `Cost` of ``usage`` from its two parts (estimated when the usage was)."""
    return construct(
        Cost,
        input=USD(input_cost),
        output=USD(output_cost),
        total=USD(input_cost + output_cost),
        source=source,
        estimated=usage.estimated,
    )
