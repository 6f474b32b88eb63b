"""A per-model slice of the genai-prices catalogue: prices and context windows without importing it.

genai-prices keeps its catalogue in one 1.6 MB Python module (``genai_prices.data``) that takes
tens of milliseconds and about 9 MiB to load; a call needs one entry of it. ``_price_slice.jsonl``
holds, for every provider and every model id (and exact alias) the catalogue lists, what the
catalogue itself answers for that id: the context window and the standard token prices. It is
written by ``scripts/gen_price_slice.py`` from the installed genai-prices and records that
version; it is used only while the installed version is the same (and no custom snapshot, such
as genai-prices' ``UpdatePrices``, is active). Otherwise, and for any id or price the slice does
not hold (time-of-day prices, per-request charges, batch prices), the full catalogue answers.
Source of the data: https://github.com/pydantic/genai-prices (MIT).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final

__all__ = ["FULL", "SliceModel", "slice_price", "slice_window"]

_PATH = os.path.join(os.path.dirname(__file__), "_price_slice.jsonl")
_MILLION = Decimal(1_000_000)


class _Ask(Enum):
    CATALOGUE = "ask the full catalogue"


#: Returned when only the full catalogue can answer.
FULL: Final = _Ask.CATALOGUE

#: A token price: a flat rate per million, or a base rate with (start, rate) cliffs by prompt size.
Rate = Decimal | tuple[Decimal, tuple[tuple[int, Decimal], ...]]


@dataclass(frozen=True, slots=True)
class SliceModel:
    """One model's standard token prices, as the catalogue resolves an id to them."""

    model_id: str
    version: str  # of genai-prices
    input: Rate | None
    output: Rate | None
    cached_input: Rate | None
    valid_from: date | None  # the newest of its dated prices took effect on this (UTC) day

    def costs(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> tuple[Decimal, Decimal]:
        """Input and output cost in USD, as genai-prices' ``calc_price`` computes them."""
        cached = cached_tokens if self.cached_input is not None else 0
        input_cost = Decimal(0)
        if self.input is not None:
            input_cost = _rate(self.input, prompt_tokens) * (prompt_tokens - cached) / _MILLION
        if cached:
            assert self.cached_input is not None
            input_cost += _rate(self.cached_input, prompt_tokens) * cached / _MILLION
        output_cost = Decimal(0)
        if self.output is not None:
            output_cost = _rate(self.output, prompt_tokens) * completion_tokens / _MILLION
        return input_cost, output_cost


def _rate(rate: Rate, prompt_tokens: int) -> Decimal:
    """The rate that applies to a prompt of this size (a crossed cliff applies to every token)."""
    if isinstance(rate, Decimal):
        return rate
    base, tiers = rate
    for start, price in reversed(tiers):
        if prompt_tokens > start:
            return price
    return base


_header: dict[str, Any] | None = None
_rows: dict[str, str] = {}  # catalogue -> its line of the file, as read (entries are parsed one by one)
_entries: dict[tuple[str, str], dict[str, Any] | None] = {}  # (catalogue, id) -> its entry, parsed
_parsed: dict[tuple[str, str], SliceModel] = {}
_DECODER = json.JSONDecoder()


def _row(catalogue: str) -> str | None:
    """The slice's line for one provider, or None where the slice cannot answer for it."""
    global _header
    if _header is None:
        _header = _read_header()
    if not _header["usable"]:
        return None
    snapshot = sys.modules.get("genai_prices.data_snapshot")
    if snapshot is not None and getattr(snapshot, "_custom_snapshot", None) is not None:
        return None  # updated prices (genai-prices' UpdatePrices) replace the bundled ones
    row = _rows.get(catalogue)
    if row is None:
        where = _header["rows"].get(catalogue)
        if where is None:
            return None
        with open(_PATH, "rb") as file:  # only this provider's line
            file.seek(_header["size"] + where[0])
            row = _rows[catalogue] = file.read(where[1]).decode("ascii")
    return row


def _entry(catalogue: str, row: str, ref: str) -> dict[str, Any] | None:
    """The row's entry for the (lowercase) id ``ref``, or None when the row has no such id.

    Only that entry is parsed: a call needs one or two of a provider's hundreds (the ``openai``
    line's 251 entries are about 210 KiB once parsed). The generator writes each line with
    ``json.dumps(..., sort_keys=True)``, so an id's key is ``"<id>": {`` right after the models'
    opening brace or after the previous entry's ``}, ``; inside an entry, the one key whose value
    is an object (``"p"``) follows a string (``"m"``'s).
    """
    key = (catalogue, ref)
    if key in _entries:
        return _entries[key]
    needle = json.dumps(ref) + ": {"
    found = None
    at = row.find(needle)
    while at != -1:
        if row.endswith(("}, ", '", {'), 0, at):  # a key of the models' object, not one of an entry's
            found = _DECODER.raw_decode(row, at + len(needle) - 1)[0]
            break
        at = row.find(needle, at + 1)
    _entries[key] = found
    return found


def _read_header() -> dict[str, Any]:
    """The header, with ``usable``: whether the installed genai-prices is the slice's version."""
    from importlib.metadata import PackageNotFoundError, version

    with open(_PATH, "rb") as file:
        first = file.readline()
    header: dict[str, Any] = json.loads(first)
    header["size"] = len(first)
    try:
        installed: str | None = version("genai-prices")
    except PackageNotFoundError:  # pragma: no cover - a dependency of turnout
        installed = None
    header["usable"] = installed == header["genai_prices_version"]
    return header


def slice_window(catalogue: str, refs: list[str]) -> int | None | _Ask:
    """The context window the catalogue lists under the first of ``refs`` it knows, or `FULL`."""
    row = _row(catalogue)
    if row is None:
        return FULL
    for ref in refs:
        entry = _entry(catalogue, row, ref.lower())
        if entry is None:
            return FULL
        if "w" in entry:
            window: int | None = entry["w"]
            return window
    return None  # no ref names a model of this provider


def slice_price(catalogue: str, refs: list[str]) -> SliceModel | _Ask | None:
    """The standard prices the catalogue uses for the first of ``refs`` it prices, None if it prices none, or `FULL`."""
    row = _row(catalogue)
    if row is None:
        return FULL
    for ref in refs:
        key = ref.lower()
        entry = _entry(catalogue, row, key)
        if entry is None:
            return FULL
        if "p" not in entry:
            continue  # the catalogue has no model for this ref: it tries the next
        found = _parsed.get((catalogue, key))
        if found is None:
            if entry["p"] is None:
                return FULL
            assert _header is not None
            found = _parse(entry, _header["genai_prices_version"])
            _parsed[(catalogue, key)] = found
        if found.valid_from is not None and datetime.now(UTC).date() < found.valid_from:
            return FULL
        return found
    return None


def _parse(entry: dict[str, Any], version: str) -> SliceModel:
    price: dict[str, Any] = entry["p"]
    rates = {key: _parse_rate(price[key]) if key in price else None for key in ("in", "out", "cached")}
    return SliceModel(
        model_id=entry["m"],
        version=version,
        input=rates["in"],
        output=rates["out"],
        cached_input=rates["cached"],
        valid_from=date.fromisoformat(entry["from"]) if "from" in entry else None,
    )


def _parse_rate(raw: str | list[Any]) -> Rate:
    if isinstance(raw, str):
        return Decimal(raw)
    base, tiers = raw
    return Decimal(base), tuple((int(start), Decimal(price)) for start, price in tiers)
