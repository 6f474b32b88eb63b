"""Exact cost: the catalogue mapping, cached and reasoning tokens, hourly (self-hosted) prices."""

from __future__ import annotations

import asyncio
import os
import random
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import CANARY_KEY, Runner
from turnout import AsyncClient, Client, ConfigError, Price, Usage
from turnout.config import Config, hourly_price
from turnout.cost.prices import CostUnknownWarning, Pricing, catalogue_context_window, catalogue_refs
from turnout.providers.openai_compatible import OpenAICompatibleProvider
from turnout.testing import FakeServer, Reply

# One usage for every row: 1,000 prompt tokens (400 of them cached) and 500 completion tokens.
USAGE = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400)

# (catalogue, model id as a target names it, total hand-computed from the published price).
# Prices per 1M tokens are the published list prices (https://openai.com/api/pricing/,
# https://www.together.ai/pricing, as of 2026-08), written as
# input / cached input / output; a model with no cached rate bills cached tokens as input.
CATALOGUE_ROWS = [
    # gpt-4o 2.50 / 1.25 / 10: 600*2.50 + 400*1.25 + 500*10 = 7000 per 1e6
    ("openai", "gpt-4o", "0.007"),
    # gpt-4o-mini 0.15 / 0.075 / 0.60: 90 + 30 + 300 = 420 per 1e6 (a dated snapshot, and odd case)
    ("openai", "gpt-4o-mini-2024-07-18", "0.00042"),
    ("openai", "GPT-4o-Mini", "0.00042"),
    # gpt-4.1-nano 0.10 / 0.025 / 0.40: 60 + 10 + 200
    ("openai", "gpt-4.1-nano", "0.00027"),
    # o3-mini 1.10 / 0.55 / 4.40: 660 + 220 + 2200
    ("openai", "o3-mini", "0.00308"),
    # gpt-5-mini 0.25 / 0.025 / 2.00: 150 + 10 + 1000
    ("openai", "gpt-5-mini", "0.00116"),
    # legacy: gpt-4o-2024-05-13 5 / 15: 1000*5 + 500*15
    ("openai", "gpt-4o-2024-05-13", "0.0125"),
    # legacy: gpt-4 (-0613) 30 / 60: 30000 + 30000
    ("openai", "gpt-4-0613", "0.06"),
    # legacy: gpt-4-32k 60 / 120
    ("openai", "gpt-4-32k", "0.12"),
    # legacy: gpt-3.5-turbo-0613 1.50 / 2.00: 1500 + 1000
    ("openai", "gpt-3.5-turbo-0613", "0.0025"),
    # gpt-3.5-turbo (-0125) 0.50 / 1.50: 500 + 750
    ("openai", "gpt-3.5-turbo", "0.00125"),
    # Together Llama 2 chat 7B 0.20 / 0.20: 1500 * 0.20
    ("together", "meta-llama/Llama-2-7b-chat-hf", "0.0003"),
    ("together", "togethercomputer/llama-2-7b-chat", "0.0003"),
    # Together Llama 2 13B chat: litellm's 8.1-21B size tier gives 0.30, but
    # genai-prices 0.2.3 lists the exact SKU at 0.225 / 0.225; we trust the catalogue (2026-11-27):
    # 1500 * 0.225 = 337.5 per 1e6.
    ("together", "meta-llama/Llama-2-13b-chat-hf", "0.0003375"),
    ("together", "togethercomputer/llama-2-13b-chat", "0.0003375"),
    # Together Llama 2 70B chat 0.90 / 0.90: 1500 * 0.90
    ("together", "meta-llama/Llama-2-70b-chat-hf", "0.00135"),
    ("together", "togethercomputer/llama-2-70b-chat", "0.00135"),
]


def _provider(catalogue: str) -> OpenAICompatibleProvider:
    config = OpenAICompatibleProvider.config_model.model_validate(
        {"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", "price_catalogue": catalogue}
    )
    return OpenAICompatibleProvider(catalogue, config)


@pytest.mark.parametrize(("catalogue", "model", "total"), CATALOGUE_ROWS)
def test_catalogue_cost_equals_the_published_price(catalogue: str, model: str, total: str) -> None:
    cost = Pricing({}).cost(_provider(catalogue), model, USAGE)
    assert cost is not None
    assert cost.total == Decimal(total)
    assert cost.input + cost.output == cost.total
    assert cost.source.startswith("genai-prices ") and f"({catalogue}/" in cost.source


@pytest.fixture
def no_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prices and context windows come from the full genai-prices catalogue, as for another installed version."""
    from turnout.cost import _price_slice

    monkeypatch.setattr(_price_slice, "_header", {"usable": False, "genai_prices_version": "0"})


@pytest.mark.parametrize("source", ["slice", "catalogue"])
@pytest.mark.parametrize(("catalogue", "model"), sorted({(c, m) for c, m, _ in CATALOGUE_ROWS}))
def test_a_cached_catalogue_price_gives_the_catalogues_digits(
    catalogue: str, model: str, source: str, request: pytest.FixtureRequest
) -> None:
    """From turnout's slice, or cached after the first call: priced with Decimal, same digits as genai-prices."""
    from genai_prices import Usage as CatalogueUsage
    from genai_prices import calc_price

    from turnout.cost._price_slice import SliceModel, slice_price

    if source == "catalogue":
        request.getfixturevalue("no_slice")
    pricing, provider = Pricing({}), _provider(catalogue)
    rng = random.Random(f"{catalogue}/{model}")
    for _ in range(40):
        prompt = rng.choice([0, 1, 7, 999, 12_345, 3_000_001])
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=rng.randrange(0, 50_000), cached_tokens=rng.randrange(0, prompt + 1)
        )
        cost = pricing.cost(provider, model, usage)
        counts = CatalogueUsage(
            input_tokens=prompt, output_tokens=usage.completion_tokens, cache_read_tokens=usage.cached_tokens
        )
        expected = calc_price(counts, _listed_ref(catalogue, model), provider_id=catalogue)
        assert cost is not None
        assert (cost.input, cost.output, cost.total) == (
            expected.input_price,
            expected.output_price,
            expected.total_price,
        )
    if source == "catalogue":
        assert (catalogue, model) in pricing._catalogue_prices  # the fast path was taken
    else:
        assert isinstance(slice_price(catalogue, catalogue_refs(catalogue, model)), SliceModel)
        assert pricing._catalogue_prices == {}


def _listed_ref(catalogue: str, model: str) -> str:
    from genai_prices import Usage as CatalogueUsage
    from genai_prices import calc_price

    for ref in catalogue_refs(catalogue, model):
        try:
            calc_price(CatalogueUsage(input_tokens=1), ref, provider_id=catalogue)
        except LookupError:
            continue
        return ref
    raise AssertionError(f"{model} is not in the catalogue")


def test_catalogue_refs_map_legacy_ids_and_strip_the_host_prefix() -> None:
    assert catalogue_refs("together", "togethercomputer/LLaMA-2-7b-chat") == [
        "togethercomputer/LLaMA-2-7b-chat",
        "meta-llama/Llama-2-7b-chat-hf",
    ]
    assert catalogue_refs("openai", "openai/gpt-4o") == ["openai/gpt-4o", "gpt-4o"]
    assert catalogue_refs("openai", "gpt-4o") == ["gpt-4o"]


def test_config_price_with_cached_and_reasoning_rates() -> None:
    price = Price(
        input_per_million=Decimal("2"),
        output_per_million=Decimal("8"),
        cached_input_per_million=Decimal("0.5"),
        reasoning_per_million=Decimal("10"),
    )
    pricing = Pricing({"p:m": price})
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=300)
    cost = pricing.cost(_provider("p"), "m", usage)
    assert cost is not None
    # input 600*2 + 400*0.5 = 1400; output 200*8 + 300*10 = 4600 (per 1e6)
    assert (cost.input, cost.output, cost.total) == (Decimal("0.0014"), Decimal("0.0046"), Decimal("0.006"))
    assert cost.source == "config"


def test_hourly_price_follows_the_documented_formula() -> None:
    # Llama 2 7B on one A10G at $1.00/h doing 120 tok/s: 1e6 / (3600 * 120) = 2.3148148... $/1M
    per_million = hourly_price(Decimal("1.00"), Decimal(120))
    assert per_million == Decimal(1_000_000) / Decimal(432_000)
    assert round(per_million, 4) == Decimal("2.3148")
    assert round(hourly_price(Decimal("1.00"), Decimal(120), Decimal("0.5")), 4) == Decimal("4.6296")
    with pytest.raises(ValueError, match="greater than 0"):
        hourly_price(Decimal(1), Decimal(0))


def test_hourly_config_entry_derives_per_token_prices() -> None:
    config = Config.from_dict(
        {
            "providers": {"local": {"type": "vllm"}},  # a price must name a configured provider
            "prices": {
                "local:llama": {"usd_per_hour": 1.00, "tokens_per_second": 120, "utilization": 0.5, "input_weight": 0.2}
            },
        }
    )
    price = config.prices["local:llama"]
    assert price.output_per_million == hourly_price(Decimal("1.0"), Decimal(120), Decimal("0.5"))
    assert price.input_per_million == Decimal("0.2") * price.output_per_million
    cost = Pricing(config.prices).cost(_provider("local"), "llama", Usage(prompt_tokens=0, completion_tokens=432_000))
    assert cost is not None and cost.total == Decimal(2)  # an hour's output at 50 % utilization: $2.00
    assert cost.source == "config (hourly)"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"usd_per_hour": 1}, "needs tokens_per_second"),
        ({"usd_per_hour": 1, "tokens_per_second": 5, "output_per_million": 1}, "not both"),
        ({"usd_per_hour": 1, "tokens_per_second": "fast"}, "not a number"),
    ],
)
def test_bad_hourly_entries_are_config_errors(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_dict({"prices": {"local:llama": entry}})


@pytest.mark.parametrize("streamed", [False, True])
def test_same_exact_cost_streamed_or_not(runner: Runner, streamed: bool) -> None:
    with FakeServer(flavor="openai", models=["gpt-4o-mini"], api_key=CANARY_KEY) as server:
        server.enqueue(Reply("Hi there", prompt_tokens=1000, completion_tokens=500, cached_tokens=400))
        config = {"providers": {"openai": {"type": "openai", "base_url": server.base_url, "api_key": CANARY_KEY}}}
        reply = runner.call(streamed, config, "openai:gpt-4o-mini", "Hello", max_tokens=600)
    assert reply.cost is not None
    assert reply.cost.total == Decimal("0.00042")


# --- Pricing's own rules (docs/cost.md) ----------------------------------------------------------

CONFIG_PRICE = Price(input_per_million=Decimal(2), output_per_million=Decimal(8), reasoning_per_million=Decimal(3))


def test_cost_is_none_when_either_token_count_is_unknown() -> None:
    pricing, provider = Pricing({"p:m": CONFIG_PRICE}), _provider("p")
    assert pricing.cost(provider, "m", Usage(prompt_tokens=10)) is None
    assert pricing.cost(provider, "m", Usage(completion_tokens=10)) is None


def test_no_reported_reasoning_tokens_are_all_priced_as_output() -> None:
    cost = Pricing({"p:m": CONFIG_PRICE}).cost(_provider("p"), "m", Usage(prompt_tokens=0, completion_tokens=1000))
    assert cost is not None and cost.output == Decimal("0.008")


def test_unit_price_is_input_plus_output_per_million() -> None:
    pricing = Pricing({"p:m": CONFIG_PRICE})
    assert pricing.unit_price(_provider("p"), "m") == Decimal(10)
    assert pricing.unit_price(_provider("openai"), "gpt-4o-mini") == Decimal("0.75")  # catalogue: 0.15 + 0.60
    assert pricing.unit_price(_provider("openai"), "no-such-model") == Decimal("Infinity")
    assert pricing.unit_price(_provider("together"), "togethercomputer/llama-2-7b-chat") == Decimal("0.4")  # alias
    assert pricing.unit_price(_provider("p"), "other") == Decimal("Infinity")  # no catalogue, no entry


def test_bounds_low_is_the_cached_prompt_and_high_the_dearer_output_rate() -> None:
    price = Price(
        input_per_million=Decimal(2),
        cached_input_per_million=Decimal(1),
        output_per_million=Decimal(8),
        reasoning_per_million=Decimal(3),  # cheaper than output: the high bound uses the output rate
    )
    pricing = Pricing({"p:m": price})
    low, high = pricing.bounds(_provider("p"), "m", 1000, 500)
    assert low is not None and high is not None
    assert (low.input, low.output, low.total) == (Decimal("0.001"), Decimal(0), Decimal("0.001"))
    assert (high.input, high.output, high.total) == (Decimal("0.002"), Decimal("0.004"), Decimal("0.006"))
    dear = Pricing({"p:m": price.model_copy(update={"reasoning_per_million": Decimal(20)})})
    assert dear.bounds(_provider("p"), "m", 1000, 500)[1].total == Decimal("0.012")  # type: ignore[union-attr]
    assert pricing.bounds(_provider("p"), "m", 1000, None) == (low, None)


def test_a_catalogue_miss_is_looked_up_only_once(monkeypatch: pytest.MonkeyPatch, no_slice: None) -> None:
    import genai_prices

    calls: list[str] = []
    real = genai_prices.calc_price

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", counting)
    pricing, provider = Pricing({}), _provider("openai")
    with pytest.warns(CostUnknownWarning):
        for _ in range(3):
            assert pricing.cost(provider, "openai/no-such-model", USAGE) is None
    assert calls == ["openai/no-such-model", "no-such-model"]  # both refs, once
    calls.clear()
    first = pricing.cost(provider, "gpt-4o", USAGE)
    second = pricing.cost(provider, "gpt-4o", USAGE)
    assert calls == ["gpt-4o"]  # a fixed price is cached: later costs need no catalogue call
    assert first == second and second is not None
    assert second.source.startswith("genai-prices ") and second.source.endswith("(openai/gpt-4o)")


def _catalogue_model(kind: str) -> str:
    """The first openai model in the installed catalogue whose price is ``kind``."""
    from genai_prices import data_snapshot
    from genai_prices.types import ModelPrice

    (openai,) = [p for p in data_snapshot.get_snapshot().providers if p.id == "openai"]
    for model in openai.models:
        price = model.prices
        if kind == "conditional" and not isinstance(price, ModelPrice):
            return model.id
        if isinstance(price, ModelPrice) and kind == "tiered" and not isinstance(price.input_mtok, Decimal | None):
            return model.id
        if isinstance(price, ModelPrice) and kind == "no output" and isinstance(price.input_mtok, Decimal):
            if price.output_mtok is None:
                return model.id
        if isinstance(price, ModelPrice) and kind == "no token price":
            if price.input_mtok is None and price.output_mtok is None:  # free, or priced per audio hour
                return model.id
    raise AssertionError(f"no {kind} price in this genai-prices: pick another case")


@pytest.mark.parametrize("source", ["slice", "catalogue"])
@pytest.mark.parametrize("kind", ["conditional", "tiered", "no output", "no token price"])
def test_catalogue_prices_that_are_not_fixed_per_token_stay_exact(
    kind: str, source: str, request: pytest.FixtureRequest
) -> None:
    """From turnout's slice or the full catalogue, a call after the first is priced as the catalogue prices it."""
    from genai_prices import Usage as CatalogueUsage
    from genai_prices import calc_price

    if source == "catalogue":
        request.getfixturevalue("no_slice")
    model, pricing, provider = _catalogue_model(kind), Pricing({}), _provider("openai")
    for prompt, completion in [(1000, 0), (1000, 500), (400_000, 500), (1000, 1_000_000)]:
        cost = pricing.cost(provider, model, Usage(prompt_tokens=prompt, completion_tokens=completion))
        counts = CatalogueUsage(input_tokens=prompt, output_tokens=completion)
        expected = calc_price(counts, model, provider_id="openai")
        assert cost is not None and (cost.input, cost.output, cost.total) == (
            expected.input_price,
            expected.output_price,
            expected.total_price,
        )


def test_the_unknown_price_warning_names_the_target_and_points_at_the_caller() -> None:
    pricing, provider = Pricing({}), _provider("p")
    with pytest.warns(CostUnknownWarning) as caught:
        pricing.cost(provider, "a", USAGE)
        pricing.cost(provider, "a", USAGE)  # once per model
        pricing.cost(provider, "b", USAGE)
    assert [str(w.message) for w in caught] == [
        f'no price known for p:{m}: its cost is None. Add [prices."p:{m}"] with '
        "input_per_million and output_per_million to turnout.toml."
        for m in ("a", "b")
    ]


def test_the_unknown_price_warning_points_at_the_callers_line() -> None:
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("mutmut's trampolines add stack frames between the caller and turnout")
    with pytest.warns(CostUnknownWarning) as caught:
        Pricing({}).cost(_provider("p"), "a", USAGE)
    assert caught[0].filename == __file__


def test_the_unknown_price_warning_of_a_call_points_at_the_callers_line() -> None:
    """Through `Client` and `AsyncClient`, every frame inside the turnout package is skipped."""
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("mutmut's trampolines add stack frames between the caller and turnout")
    with FakeServer(flavor="openai", models=["no-such-model"], api_key=CANARY_KEY) as server:
        config = {"providers": {"openai": {"type": "openai", "base_url": server.base_url, "api_key": CANARY_KEY}}}
        with Client(config=config) as client, pytest.warns(CostUnknownWarning) as caught:
            client.chat("openai:no-such-model", "Hi")
        assert caught[0].filename == __file__

        async def go() -> None:
            async with AsyncClient(config=config) as client:
                await client.chat("openai:no-such-model", "Hi")

        with pytest.warns(CostUnknownWarning) as caught:
            asyncio.run(go())
        assert caught[0].filename == __file__


def test_catalogue_context_window() -> None:
    assert catalogue_context_window("openai", "openai/gpt-4") == 8192  # prefix stripped
    assert catalogue_context_window("openai", "no-such-model") is None
    assert catalogue_context_window("no-such-catalogue", "gpt-4") is None


def test_the_slice_answers_without_the_full_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    """turnout.cost.prices: genai-prices' 1.6 MB catalogue is read only when turnout's slice cannot answer."""
    from genai_prices import data_snapshot

    def no_catalogue() -> None:
        raise AssertionError("the full catalogue was read")

    monkeypatch.setattr(data_snapshot, "get_snapshot", no_catalogue)
    assert catalogue_context_window("openai", "gpt-4") == 8192
    pricing, provider = Pricing({}), _provider("openai")
    cost = pricing.cost(provider, "gpt-4o", USAGE)
    assert cost is not None and cost.total == Decimal("0.007")
    # an id the slice lists with no price (genai-prices has no model for it): a miss, remembered
    with pytest.warns(CostUnknownWarning):
        for _ in range(2):
            assert pricing.cost(provider, "ft:gpt-4o", USAGE) is None


@pytest.mark.parametrize("source", ["config", "slice", "catalogue"])
def test_a_cost_of_counted_tokens_is_estimated(source: str, request: pytest.FixtureRequest) -> None:
    """docs/cost.md: a cost is ``estimated`` when turnout counted the tokens, whichever price it used."""
    if source == "catalogue":
        request.getfixturevalue("no_slice")
    pricing = Pricing({"openai:gpt-4o": CONFIG_PRICE} if source == "config" else {})
    counted = USAGE.model_copy(update={"estimated": True})
    for usage, estimated in [(counted, True), (USAGE, False), (counted, True)]:  # the catalogue's first, then cached
        cost = pricing.cost(_provider("openai"), "gpt-4o", usage)
        assert cost is not None and cost.estimated is estimated


# --- batch prices (OpenAI's Batch API; `turnout batch --provider-batch`) -----------------------------

BATCH_USAGE = Usage(prompt_tokens=1000, completion_tokens=500)


def _batch_provider(catalogue: str, discount: float | None = None) -> OpenAICompatibleProvider:
    table: dict[str, Any] = {"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}
    table["price_catalogue"] = catalogue
    if discount is not None:
        table["batch_discount"] = discount
    return OpenAICompatibleProvider(catalogue, OpenAICompatibleProvider.config_model.model_validate(table))


def test_a_catalogue_batch_price_is_used_as_it_is() -> None:
    """gpt-4o-mini's batch variant: 0.075 / 0.30 per 1M (half its list price, https://openai.com/api/pricing/)."""
    cost = Pricing({}).batch_cost(_batch_provider("openai"), "gpt-4o-mini", BATCH_USAGE)
    assert cost is not None
    assert (cost.input, cost.output, cost.total) == (Decimal("0.000075"), Decimal("0.00015"), Decimal("0.000225"))
    assert cost.source.startswith("genai-prices ") and cost.source.endswith(" (openai/gpt-4o-mini, batch)")
    assert not cost.estimated
    estimated = Usage(prompt_tokens=1000, completion_tokens=500, estimated=True)
    cost = Pricing({}).batch_cost(_batch_provider("openai"), "gpt-4o-mini", estimated)
    assert cost is not None and cost.estimated


@pytest.mark.parametrize(
    ("catalogue", "model"),
    [
        ("openai", "openai/gpt-4o-mini"),  # the host prefix is stripped, as for the usual price
        ("groq", "openai/gpt-oss-120b"),  # an id that names another provider: looked up under groq only
    ],
)
def test_a_batch_price_is_looked_up_as_the_usual_price_is(catalogue: str, model: str) -> None:
    """Both have a 0.075 / 0.30 per 1M batch price in the installed genai-prices (half their list price)."""
    cost = Pricing({}).batch_cost(_batch_provider(catalogue), model, BATCH_USAGE)
    assert cost is not None
    assert (cost.input, cost.output, cost.total) == (Decimal("0.000075"), Decimal("0.00015"), Decimal("0.000225"))
    bare = model.removeprefix(f"{catalogue}/")
    assert cost.source.startswith("genai-prices ") and cost.source.endswith(f" ({catalogue}/{bare}, batch)")


def test_without_a_batch_variant_the_providers_discount_applies() -> None:
    """Together's Llama 2 7B chat has no batch price: its 0.20 / 0.20 list price less 50 %, then less 25 %."""
    pricing = Pricing({})
    cost = pricing.batch_cost(_batch_provider("together"), "meta-llama/Llama-2-7b-chat-hf", BATCH_USAGE)
    assert cost is not None
    assert (cost.input, cost.output, cost.total) == (Decimal("0.0001"), Decimal("0.00005"), Decimal("0.00015"))
    assert cost.source.endswith(", batch -50%") and cost.source.startswith("genai-prices ")
    cost = pricing.batch_cost(_batch_provider("together", 0.25), "meta-llama/Llama-2-7b-chat-hf", BATCH_USAGE)
    assert cost is not None and cost.total == Decimal("0.000225") and cost.source.endswith(", batch -25%")
    assert not cost.estimated
    counted = BATCH_USAGE.model_copy(update={"estimated": True})
    cost = pricing.batch_cost(_batch_provider("together"), "meta-llama/Llama-2-7b-chat-hf", counted)
    assert cost is not None and cost.estimated and cost.total == Decimal("0.00015")


def test_a_config_price_wins_over_the_catalogues_batch_price() -> None:
    """A `[prices]` entry is the price: the batch discount applies to it, not the catalogue's batch variant."""
    pricing = Pricing({"openai:gpt-4o-mini": Price(input_per_million=Decimal("2"), output_per_million=Decimal("4"))})
    cost = pricing.batch_cost(_batch_provider("openai"), "gpt-4o-mini", BATCH_USAGE)
    assert cost is not None
    assert (cost.input, cost.output, cost.total) == (Decimal("0.001"), Decimal("0.001"), Decimal("0.002"))
    assert cost.source == "config, batch -50%" and not cost.estimated


def test_a_batch_cost_is_unknown_without_counts_or_a_price() -> None:
    pricing, provider = Pricing({}), _batch_provider("openai")
    assert pricing.batch_cost(provider, "gpt-4o-mini", Usage(prompt_tokens=1000)) is None
    assert pricing.batch_cost(provider, "gpt-4o-mini", Usage(completion_tokens=500)) is None
    with pytest.warns(CostUnknownWarning):
        assert pricing.batch_cost(provider, "no-such-model-xyz", BATCH_USAGE) is None
