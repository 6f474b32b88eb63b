"""Money in one place: `Usage` and `Cost` add up the same way for every caller."""

from __future__ import annotations

import random
from decimal import Decimal

from turnout.embeddings import EmbeddingResponse, combine
from turnout.money import USD, Cost, Usage, fixed_point, to_usd


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


def test_a_costs_text_names_every_amount_and_the_source() -> None:
    """docs/cost.md: ``str(reply.cost)`` reads ``$total (in $input + out $output; source)``."""
    cost = Cost(input=Decimal("0.00008"), output=Decimal("0.0001"), total=Decimal("0.00018"), source="config")
    assert str(cost) == "$0.00018 (in $0.00008 + out $0.0001; config)"
    estimated = Cost(
        input=Decimal("9E-7"), output=Decimal(0), total=Decimal("9E-7"), source="genai-prices", estimated=True
    )
    assert str(estimated) == "$0.0000009 (in $0.0000009 + out $0; genai-prices, estimated)"


def test_to_usd_makes_a_usd_and_keeps_one() -> None:
    amount = to_usd(Decimal("9E-7"))
    assert type(amount) is USD and str(amount) == "0.0000009"
    assert to_usd(amount) is amount  # already a USD: unchanged
    cost = Cost(input=Decimal("1E-7"), output=Decimal("2E-7"), total=Decimal("3E-7"), source="config")
    assert [type(x) for x in (cost.input, cost.output, cost.total)] == [USD, USD, USD]
    assert (str(cost.input), str(cost.output), str(cost.total)) == ("0.0000001", "0.0000002", "0.0000003")


def test_display_gives_every_place_asked_for_at_any_size() -> None:
    """More digits than Decimal's default 28 are kept: many places, or a large amount."""
    assert USD("123.456").display(30) == "123.456"
    assert USD("0.5").display(28) == "0.5"
    assert USD("1E+18").display() == "1000000000000000000"
    assert USD("2.00000000005").display() == "2" and USD("2.00000000015").display() == "2.0000000002"  # half-even


def test_fixed_point_gives_every_digit_without_exponent_or_trailing_zeros() -> None:
    # The fast path takes Decimal's own text when it is already plain; compare with the slow,
    # obviously right form over many shapes: exponents, trailing zeros, signs, integers, zero.

    def slow(value: Decimal) -> str:
        text = format(value, "f")
        return "0" if not value else text.rstrip("0").rstrip(".") if "." in text else text

    rng = random.Random(7)
    values = [
        Decimal(f"{rng.choice('-+')}{rng.randrange(10 ** rng.randrange(1, 12))}E{rng.randrange(-30, 12)}")
        for _ in range(500)
    ]
    values += [Decimal(text) for text in ("0", "-0", "0.000", "0E-8", "10", "1E+1", "100.0", "-0.50", "12.5", "7")]
    values += [
        Decimal(f"{rng.randrange(10**6)}.{rng.randrange(10**6):06d}").scaleb(rng.randrange(-12, 6)) for _ in range(500)
    ]
    for value in values:
        assert fixed_point(value) == slow(value), value
    assert fixed_point(Decimal("4.8E-7")) == "0.00000048" and fixed_point(Decimal("-1.20")) == "-1.2"
