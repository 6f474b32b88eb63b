"""Scoring and the arithmetic of a comparison: pure functions, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from turnout._compare import CompareResult, Sample, chosen_letter, normalise
from turnout._compare._result import percentile, summarise
from turnout._compare._score import judge_verdict

CHOICES = ["Paris", "Lyon", "Nice", "Lille"]


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("D. Lille", "D"),
        ("A) Paris", "A"),
        ("The answer is C.", "C"),
        ("Answer: (b)", "B"),
        ("I think it's Lyon.", "B"),
        ("Paris", "A"),
        ("A city in France", None),  # an article, not a letter
        ("Paris or Lyon", None),  # two options named
        ("E", None),  # not an option
        ("", None),
    ],
)
def test_chosen_letter(reply: str, letter: str | None) -> None:
    assert chosen_letter(reply, CHOICES) == letter


def test_normalise() -> None:
    assert normalise("  «Paris.»  ") == normalise("paris") == "paris"
    assert normalise("Ｐａｒｉｓ") == "paris"  # NFKC: full-width letters
    assert normalise("New\n  York") == "new york"


@pytest.mark.parametrize(
    ("text", "verdict"), [("CORRECT", 1.0), ("Correct.", 1.0), ("INCORRECT", 0.0), ("wrong", 0.0), ("maybe", None)]
)
def test_judge_verdict(text: str, verdict: float | None) -> None:
    assert judge_verdict(text) == verdict


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(i) for i in range(1, 21)], 95) == pytest.approx(19.05)


def test_unknown_cost_is_none_never_zero_and_json_keeps_every_digit() -> None:
    priced = Sample(id="a", ok=True, latency=1.0, prompt_tokens=1, completion_tokens=1, cost=Decimal("1E-7"))
    unpriced = Sample(id="b", ok=True, latency=1.0, prompt_tokens=1, completion_tokens=1, cost=None)
    assert summarise("m", [priced, unpriced], 2.0, {}).cost is None
    third = Decimal(1) / Decimal(3)
    result = summarise("m", [priced.model_copy(update={"cost": third})], 2.0, {})
    assert result.cost == third and result.cost_per_1k == third * 1000
    text = CompareResult(started_at=datetime.now(UTC), prompts=1, repeat=1, concurrency=1, models=[result]).to_json()
    assert json.loads(text, parse_float=Decimal)["models"][0]["cost"] == third
    assert '"cost": 0.3333333333333333333333333333,' in text
