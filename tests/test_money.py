"""Money in one place: `Usage` and `Cost` add up the same way for every caller."""

from __future__ import annotations

from decimal import Decimal

from turnout.embeddings import EmbeddingResponse, combine
from turnout.money import USD, Cost, Usage


def _cost(total: str, source: str, estimated: bool = False) -> Cost:
    return Cost(
        input=Decimal(total) / 2, output=Decimal(total) / 2, total=Decimal(total), source=source, estimated=estimated
    )


def test_usage_sums_every_count_and_keeps_unknowns_unknown() -> None:
    a = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15, cached_tokens=4, reasoning_tokens=2)
    b = Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3, cached_tokens=1, reasoning_tokens=None)
    total = a + b
    assert total == Usage(
        prompt_tokens=11, completion_tokens=7, total_tokens=18, cached_tokens=5, reasoning_tokens=None
    )
    assert Usage.sum([]) == Usage()
    assert not total.estimated and Usage.sum([a, Usage(prompt_tokens=1, estimated=True)]).estimated


def test_cost_sum_joins_sources_once_with_plus() -> None:
    total = Cost.sum([_cost("0.1", "config"), _cost("0.2", "genai-prices"), _cost("0.3", "config")])
    assert total is not None
    assert total.total == Decimal("0.6") and total.input == Decimal("0.3")
    assert total.source == "config + genai-prices"
    assert not total.estimated
    assert (_cost("0.1", "config") + _cost("0.1", "config", estimated=True)).estimated


def test_cost_sum_is_unknown_when_any_cost_is() -> None:
    assert Cost.sum([_cost("0.1", "config"), None]) is None
    assert Cost.sum([]) is None


def test_an_estimated_cost_says_so() -> None:
    assert "estimated" in str(_cost("0.1", "config", estimated=True))
    assert "estimated" not in str(_cost("0.1", "config"))


def test_embedding_batches_keep_cached_and_reasoning_counts() -> None:
    """combine() used to drop every count but prompt, completion and total."""
    parts = [
        EmbeddingResponse(
            vectors=[[1.0]],
            usage=Usage(prompt_tokens=3, completion_tokens=0, total_tokens=3, cached_tokens=1),
            provider="p",
            model="m",
        ),
        EmbeddingResponse(
            vectors=[[2.0]],
            usage=Usage(prompt_tokens=4, completion_tokens=0, total_tokens=4, cached_tokens=2),
            provider="p",
            model="m",
        ),
    ]
    joined = combine(parts, "p", "m")
    assert joined.usage.cached_tokens == 3 and joined.usage.prompt_tokens == 7
    assert joined.vectors == [[1.0], [2.0]]


def test_usd_prints_fixed_point_and_stays_an_exact_decimal() -> None:
    tiny = USD(Decimal("9E-7"))
    assert str(tiny) == "0.0000009" and repr(tiny) == "USD('0.0000009')"
    assert repr(USD(Decimal("0E-8"))) == "USD('0')" and str(USD("1.500")) == "1.5" and str(USD("1E+2")) == "100"
    assert isinstance(tiny, Decimal) and tiny == Decimal("0.0000009") and tiny + 1 == Decimal("1.0000009")
    hourly = USD(Decimal(2) / Decimal(3600 * 7))  # 28 significant digits from an hourly price
    assert hourly.display() == "0.0000793651" and USD("5").display() == "5" and USD("0E-12").display() == "0"
