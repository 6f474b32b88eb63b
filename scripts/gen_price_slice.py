"""Write src/turnout/cost/_price_slice.jsonl from the installed genai-prices (``--check``: fail if it is stale).

For every provider of the catalogue and every model id or exact alias its models list (and those
of the providers it falls back to, and turnout's ``CATALOGUE_ALIASES``), the slice records what
the catalogue answers for that id: the context window (``provider.find_model``) and the standard
token prices ``calc_price`` uses. A price goes in only when the slice computes exactly
``calc_price``'s input, output and total for a set of usages; otherwise the entry says so
(``"p": null``) and turnout asks the catalogue.
Source: https://github.com/pydantic/genai-prices (MIT).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from genai_prices import Usage, __version__, calc_price
from genai_prices.data import providers as catalogue
from genai_prices.types import (
    ClauseEquals,
    ClauseOr,
    ClauseStartsWith,
    ConditionalPrice,
    MatchLogic,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
)

from turnout.cost._price_slice import _parse
from turnout.cost.prices import CATALOGUE_ALIASES

TARGET = Path(__file__).resolve().parents[1] / "src" / "turnout" / "cost" / "_price_slice.jsonl"
SOURCE = "https://github.com/pydantic/genai-prices"

#: Prompt, completion and cached tokens the slice's prices are checked with (plus each tier's edges).
USAGES = (
    (0, 0, 0),
    (1, 1, 0),
    (1, 1, 1),
    (1234, 567, 0),
    (1234, 567, 1000),
    (1234, 567, 1234),
    (1_000_000, 1_000_000, 0),
    (1_000_000, 1_000_000, 250_000),
    (3_000_000, 10, 3_000_000),
)


def _literals(match: MatchLogic) -> list[str]:
    """Ids that name a model outright: its ``equals`` and ``starts_with`` clauses, not under an ``and``."""
    if isinstance(match, ClauseOr):
        return [ref for clause in match.or_ for ref in _literals(clause)]
    if isinstance(match, ClauseEquals):
        return [match.equals]
    if isinstance(match, ClauseStartsWith):
        return [match.starts_with]
    return []


def _candidates(provider: Provider, by_id: dict[str, Provider]) -> list[str]:
    refs: list[str] = []
    for source in [provider, *(by_id[i] for i in provider.fallback_model_providers or () if i in by_id)]:
        for model in source.models:
            refs += [model.id, *_literals(model.match)]
    refs += CATALOGUE_ALIASES.get(provider.id, {})  # turnout's own aliases: recorded even as misses
    return sorted({ref.lower() for ref in refs if ref})


def _rate(price: Decimal | TieredPrices) -> str | list[Any]:
    if isinstance(price, TieredPrices):
        return [str(price.base), [[tier.start, str(tier.price)] for tier in price.tiers]]
    return str(price)


def _standard(model: ModelInfo) -> tuple[ModelPrice, date | None] | None:
    """The standard price at any time from some day on, and that day; None if it varies by time of day."""
    if isinstance(model.prices, ModelPrice):
        return model.prices, None
    prices: list[ConditionalPrice] = model.prices
    if any(p.constraint is not None and not isinstance(p.constraint, StartDateConstraint) for p in prices):
        return None
    starts = [p.constraint.start_date for p in prices if isinstance(p.constraint, StartDateConstraint)]
    # from the newest start date on, every constraint is active and the last price wins
    return prices[-1].prices, max(starts, default=None)


def _usages(price: dict[str, Any]) -> list[tuple[int, int, int]]:
    usages = list(USAGES)
    for rate in price.values():
        if isinstance(rate, list):
            for start, _ in rate[1]:
                usages += [(start, 10, 0), (start + 1, 10, 0), (start + 1, 10, start // 2)]
    return usages


def _price_entry(provider: Provider, ref: str, model: ModelInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"m": model.id, "p": None}
    standard = _standard(model)
    if standard is None:
        return entry
    prices, valid_from = standard
    price = {
        short: _rate(value)
        for short, key in (("in", "input_mtok"), ("out", "output_mtok"), ("cached", "cache_read_mtok"))
        if (value := getattr(prices, key, None)) is not None
    }
    candidate = {**entry, "p": price}
    if valid_from is not None:
        candidate["from"] = valid_from.isoformat()
    parsed = _parse(candidate, __version__)
    when = datetime.now(UTC)
    if valid_from is not None and when.date() < valid_from:
        return entry
    for prompt, completion, cached in _usages(price):
        try:
            calc = calc_price(
                Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached),
                ref,
                provider_id=provider.id,
                genai_request_timestamp=when,
            )
        except Exception:  # noqa: BLE001 - whatever the catalogue raises, it answers itself
            return entry
        got_in, got_out = parsed.costs(prompt, completion, cached)
        if (calc.model.id, calc.input_price, calc.output_price, calc.total_price) != (
            model.id,
            got_in,
            got_out,
            got_in + got_out,
        ):
            return entry
    return candidate


def build() -> dict[str, Any]:
    """The slice of the installed catalogue (without its generation date)."""
    by_id = {p.id: p for p in catalogue}
    providers: dict[str, dict[str, Any]] = {}
    for provider in catalogue:
        models: dict[str, Any] = {}
        for ref in _candidates(provider, by_id):
            own = provider.find_model(ref)
            priced = provider.find_model(ref, all_providers=catalogue)
            if priced is None:
                models[ref] = {}  # the catalogue knows no such model: turnout tries its next ref
                continue
            entry = _price_entry(provider, ref, priced)
            if own is not None:
                entry["w"] = own.context_window
            models[ref] = entry
        providers[provider.id] = models
    return {"source": SOURCE, "genai_prices_version": __version__, "providers": providers}


def render(data: dict[str, Any], generated: str) -> str:
    """The file's text: JSON Lines, a header, then one provider per line.

    The header gives each provider's line as (offset from the end of the header, length) in
    bytes, so that turnout reads only the lines of the providers its calls use.
    """
    rows = [json.dumps([provider, models], sort_keys=True) for provider, models in data["providers"].items()]
    index: dict[str, list[int]] = {}
    offset = 0
    for provider, row in zip(data["providers"], rows, strict=True):
        size = len(row.encode())
        index[provider] = [offset, size]
        offset += size + 1
    header = {
        "source": data["source"],
        "genai_prices_version": data["genai_prices_version"],
        "generated": generated,
        "rows": index,
    }
    return "\n".join([json.dumps(header), *rows]) + "\n"


def read(text: str) -> dict[str, Any]:
    """The slice a file holds, as `build` returns it, with its generation date and row index."""
    header, *rows = text.splitlines()
    data: dict[str, Any] = json.loads(header)
    data["providers"] = dict(json.loads(row) for row in rows)
    return data


def main() -> int:
    data = build()
    if "--check" in sys.argv:
        current = read(TARGET.read_text()) if TARGET.exists() else {}
        current.pop("generated", None)
        current.pop("rows", None)
        if current != data:
            print(f"{TARGET} is stale for genai-prices {__version__}: run python scripts/gen_price_slice.py")
            return 1
        return 0
    TARGET.write_text(render(data, datetime.now(UTC).date().isoformat()))
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
