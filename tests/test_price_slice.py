"""turnout's slice of the genai-prices catalogue answers exactly what the installed catalogue answers."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from genai_prices import Usage as CatalogueUsage
from genai_prices import __version__, calc_price, data_snapshot

from turnout import Usage
from turnout.cost import _price_slice
from turnout.cost._price_slice import FULL, SliceModel, slice_price, slice_window
from turnout.cost.prices import Pricing, catalogue_context_window
from turnout.providers.openai_compatible import OpenAICompatibleProvider

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_price_slice", ROOT / "scripts" / "gen_price_slice.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _file() -> dict[str, Any]:
    data: dict[str, Any] = _script().read(Path(_price_slice._PATH).read_text(encoding="utf-8"))
    return data


@pytest.fixture
def fresh_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slice as a new process first reads it."""
    monkeypatch.setattr(_price_slice, "_header", None)
    monkeypatch.setattr(_price_slice, "_rows", {})
    monkeypatch.setattr(_price_slice, "_entries", {})
    monkeypatch.setattr(_price_slice, "_parsed", {})


def _entries() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for provider, models in _file()["providers"].items():
        for ref, entry in models.items():
            yield provider, ref, entry


def _usages(model: SliceModel, rng: random.Random) -> list[tuple[int, int, int]]:
    usages = [(0, 0, 0), (1, 1, 1), (1000, 500, 0), (1000, 500, 400), (1000, 500, 1000), (2_000_000, 10, 5)]
    for rate in (model.input, model.output, model.cached_input):
        if isinstance(rate, tuple):
            for start, _ in rate[1]:
                usages += [(start, 7, 0), (start + 1, 7, 0), (start + 1, 7, start)]
    prompt = rng.randrange(0, 3_000_000)
    return [*usages, (prompt, rng.randrange(0, 100_000), rng.randrange(0, prompt + 1))]


def test_the_slice_is_for_the_installed_genai_prices_and_not_stale() -> None:
    """Regenerating the slice from the installed catalogue gives the shipped file (run the script if not)."""
    shipped = _file()
    assert shipped["genai_prices_version"] == __version__
    assert shipped["source"] == "https://github.com/pydantic/genai-prices"
    assert len(shipped.pop("generated")) == len("2026-12-06")
    assert list(shipped.pop("rows")) == list(shipped["providers"])  # each line found through the index
    assert shipped == _script().build(), "stale: run python scripts/gen_price_slice.py"


def test_every_entry_answers_what_the_catalogue_answers() -> None:
    """Context windows, the priced model and input, output and total costs, for every provider and id in the slice."""
    providers = {p.id: p for p in data_snapshot.get_snapshot().providers}
    rng = random.Random(19)
    priced = 0
    for catalogue, ref, entry in _entries():
        provider = providers[catalogue]
        own = provider.find_model(ref)
        assert ("w" in entry) == (own is not None), (catalogue, ref)
        if own is not None:
            assert entry["w"] == own.context_window, (catalogue, ref)
        assert slice_window(catalogue, [ref]) == entry.get("w"), (catalogue, ref)
        found = provider.find_model(ref, all_providers=list(providers.values()))
        assert ("p" in entry) == (found is not None), (catalogue, ref)
        if found is None:
            assert slice_price(catalogue, [ref]) is None
            continue
        sliced = slice_price(catalogue, [ref])
        if entry["p"] is None:
            assert sliced is FULL
            continue
        assert isinstance(sliced, SliceModel) and sliced.model_id == found.id
        priced += 1
        for prompt, completion, cached in _usages(sliced, rng):
            counts = CatalogueUsage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)
            expected = calc_price(counts, ref, provider_id=catalogue)
            got_in, got_out = sliced.costs(prompt, completion, cached)
            assert (got_in, got_out, got_in + got_out) == (
                expected.input_price,
                expected.output_price,
                expected.total_price,
            ), (catalogue, ref, prompt, completion, cached)
    assert priced > 3000  # the catalogue had 3,839 priced ids when this was written


def test_a_lookup_parses_only_the_entries_it_asks_for(fresh_slice: None) -> None:
    """The provider's line is kept as read; of its 251 entries, only the id looked up is parsed."""
    assert isinstance(slice_price("openai", ["gpt-4o-mini"]), SliceModel)
    assert slice_window("openai", ["GPT-4o-mini", "gpt-4o"]) == 128000
    assert list(_price_slice._entries) == [("openai", "gpt-4o-mini")]
    assert list(_price_slice._rows) == ["openai"] and isinstance(_price_slice._rows["openai"], str)


def test_an_id_that_is_also_a_key_inside_entries_finds_its_own_entry(
    monkeypatch: pytest.MonkeyPatch, fresh_slice: None
) -> None:
    """Ids spelled like an entry's own keys (``p``, ``w``, ``m``, ``in``) are found at the top level only."""
    models = {
        ref: {"m": ref, "p": {"in": "1", "out": "2"}, "w": window}
        for ref, window in (("in", 5), ("m", 6), ("p", 7), ("w", 8), ("from", 9))
    }
    monkeypatch.setattr(_price_slice, "_header", {"usable": True, "genai_prices_version": __version__})
    monkeypatch.setattr(_price_slice, "_rows", {"x": json.dumps(["x", models], sort_keys=True)})
    assert [slice_window("x", [ref]) for ref in ("in", "m", "p", "w", "from", "out")] == [5, 6, 7, 8, 9, FULL]
    found = slice_price("x", ["p"])
    assert isinstance(found, SliceModel) and (found.model_id, found.input) == ("p", Decimal(1))


def test_a_chat_price_needs_no_catalogue_import() -> None:
    """A fresh process prices gpt-4o-mini and reads its context window from the slice alone."""
    probe = """
import json, sys
from turnout import Usage
from turnout.cost.prices import Pricing, catalogue_context_window
from turnout.providers.openai_compatible import OpenAICompatibleProvider as P
raw = {"type": "openai-compatible", "base_url": "http://x", "price_catalogue": "openai"}
provider = P("p", P.config_model.model_validate(raw))
cost = Pricing({}).cost(provider, "gpt-4o-mini", Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400))
window = catalogue_context_window("openai", "gpt-4o-mini")
loaded = sorted(m for m in sys.modules if m.startswith("genai_prices"))
print(json.dumps([str(cost.total), cost.source, window, loaded]))
"""
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    total, source, window, loaded = json.loads(out.stdout)
    assert (total, window, loaded) == ("0.00042", 128000, [])
    assert source == f"genai-prices {__version__} (openai/gpt-4o-mini)"


def _provider(catalogue: str) -> OpenAICompatibleProvider:
    config = OpenAICompatibleProvider.config_model.model_validate(
        {"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", "price_catalogue": catalogue}
    )
    return OpenAICompatibleProvider(catalogue, config)


def test_another_installed_version_uses_the_full_catalogue(monkeypatch: pytest.MonkeyPatch, fresh_slice: None) -> None:
    """After an upgrade of genai-prices the slice is not used: prices and windows come from the catalogue."""
    import importlib.metadata

    import genai_prices

    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "9.9.9" if name == "genai-prices" else real_version(name)
    )
    calls: list[str] = []
    real_calc = genai_prices.calc_price

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return real_calc(*args, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", counting)
    assert slice_price("openai", ["gpt-4o-mini"]) is FULL
    assert slice_window("openai", ["gpt-4o-mini"]) is FULL
    cost = Pricing({}).cost(_provider("openai"), "gpt-4o-mini", Usage(prompt_tokens=1000, completion_tokens=500))
    assert calls == ["gpt-4o-mini"]
    assert cost is not None and cost.total == Decimal("0.00045")
    assert catalogue_context_window("openai", "gpt-4o-mini") == 128000


def test_the_same_version_uses_the_slice(monkeypatch: pytest.MonkeyPatch, fresh_slice: None) -> None:
    """The version check reads the installed version: equal versions answer from the slice."""
    import genai_prices

    monkeypatch.setattr(genai_prices, "calc_price", None)  # would raise if called
    cost = Pricing({}).cost(_provider("openai"), "gpt-4o-mini", Usage(prompt_tokens=1000, completion_tokens=500))
    assert cost is not None and cost.total == Decimal("0.00045")


def test_updated_prices_replace_the_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A custom snapshot (genai-prices' UpdatePrices sets one) is used instead of the slice."""
    bundled = data_snapshot.get_snapshot().providers
    changed = []
    for provider in bundled:
        if provider.id == "openai":
            models = [
                replace(m, prices=replace_price(m.prices), context_window=5) if m.id == "gpt-4o-mini" else m
                for m in provider.models
            ]
            provider = replace(provider, models=models)
        changed.append(provider)
    monkeypatch.setattr(data_snapshot, "_custom_snapshot", data_snapshot.DataSnapshot(changed, from_auto_update=True))
    cost = Pricing({}).cost(_provider("openai"), "gpt-4o-mini", Usage(prompt_tokens=1000, completion_tokens=500))
    assert cost is not None and cost.total == Decimal("1.5")
    assert catalogue_context_window("openai", "gpt-4o-mini") == 5


def replace_price(prices: Any) -> Any:
    from genai_prices.types import ModelPrice

    return ModelPrice(input_mtok=Decimal(1000), output_mtok=Decimal(1000))


def test_ids_the_slice_does_not_hold_go_to_the_catalogue() -> None:
    """A dated id only a regex or prefix of the catalogue matches, or an unknown provider: the catalogue answers."""
    assert slice_price("openai", ["gpt-4o-mini-2099-01-01"]) is FULL
    assert slice_price("no-such-catalogue", ["gpt-4o"]) is FULL
    assert slice_window("openai", ["openai/gpt-4"]) is FULL
    assert slice_window("openai", ["gpt-4"]) == 8192
    assert slice_price("together", ["togethercomputer/llama-2-7b-chat"]) is None  # a recorded miss ...
    found = slice_price("together", ["togethercomputer/llama-2-7b-chat", "meta-llama/llama-2-7b-chat-hf"])
    assert isinstance(found, SliceModel) and found.model_id  # ... so the alias is tried next


def test_a_dated_price_is_used_only_from_its_start(monkeypatch: pytest.MonkeyPatch, fresh_slice: None) -> None:
    """A price the catalogue lists from a date on: before that date (a clock set back) the catalogue answers."""
    from datetime import UTC, datetime

    entry = _file()["providers"]["anthropic"]["claude-opus-4-6"]
    start = datetime.fromisoformat(entry["from"]).replace(tzinfo=UTC)
    assert isinstance(slice_price("anthropic", ["claude-opus-4-6"]), SliceModel)

    class Before(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Before:
            return cls.fromtimestamp(start.timestamp() - 86_400, tz)

    monkeypatch.setattr(_price_slice, "datetime", Before)
    assert slice_price("anthropic", ["claude-opus-4-6"]) is FULL
