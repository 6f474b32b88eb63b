"""`turnout.engine.embed_call.EmbedCall`: batches to one target, the worst case held, the reply priced once."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import turnout
from turnout import Client
from turnout.cost.prices import CostUnknownWarning
from turnout.embeddings import EmbeddingRequest, EmbeddingResponse
from turnout.engine import AttemptFinished, CallFinished
from turnout.errors import BudgetExceededError, ResponseValidationError
from turnout.providers import register
from turnout.testing import FakeClock

from .conftest import Stub, stub_config
from .test_call import MODES, run


def test_batch_size_splits_the_input(clock: FakeClock) -> None:
    with Client(stub_config("a"), clock=clock) as client:
        reply = client.embed("r", ["a", "bb", "ccc"], batch_size=1)
    assert [r.input for r in Stub.sent["a"]] == [["a"], ["bb"], ["ccc"]]
    assert reply.vectors == [[1.0], [2.0], [3.0]]


def test_without_batch_size_the_providers_own_limit_splits_it(clock: FakeClock) -> None:
    with Client(stub_config("a"), clock=clock) as client:
        client.embed("r", ["a", "bb", "ccc"])
    assert [r.input for r in Stub.sent["a"]] == [["a", "bb"], ["ccc"]]  # Stub.embed_batch_size is 2


@pytest.mark.parametrize(("spare", "refused"), [(0, False), (-1, True)])
def test_tokens_per_minute_counts_four_bytes_a_token(spare: int, refused: bool, clock: FakeClock) -> None:
    """The first reply's usage (1 token, the stub's) stays in the window; the next asks for ceil(bytes / 4) a text."""
    cfg = stub_config("a")
    cfg["limits"] = {"a:m": {"tokens_per_minute": 1 + 3 + 2 + 2 + spare, "max_wait": 0}}
    with Client(cfg, clock=clock) as client:
        client.embed("r", ["x"], batch_size=3)
        try:
            client.embed("r", ["é" * 4 + "x", "abcde", "fghij"], batch_size=3)  # 9 UTF-8 bytes, then 5 and 5
        except turnout.LocalRateLimitError:
            assert refused
        else:
            assert not refused


def _budget(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg["budget"] = {"max_usd": "0.000001", "period": "day"}
    return cfg


def test_the_worst_case_is_every_byte_a_token_on_the_dearest_target(clock: FakeClock) -> None:
    cfg = _budget(stub_config("a", "b"))
    cfg["prices"]["b:m"] = {"input_per_million": 3, "output_per_million": 100}
    with pytest.raises(BudgetExceededError) as info, Client(cfg, clock=clock) as client:
        client.embed("r", ["abc", "dé"])  # 3 + 1 and 3 + 1 bytes (one token more than bytes each)
    assert info.value.needed == Decimal("0.000024")  # 8 tokens at $3 per million; no output priced
    assert "a" not in Stub.sent


def test_an_embedding_without_a_price_has_no_bound(clock: FakeClock) -> None:
    cfg = _budget(stub_config("a"))
    del cfg["prices"]["a:m"]
    with (
        pytest.raises(BudgetExceededError) as info,
        pytest.warns(CostUnknownWarning, match="a:m"),
        Client(cfg, clock=clock) as client,
    ):
        client.embed("r", ["abc"])
    assert "has no upper bound: no price is known for a:m; add [prices];" in str(info.value)


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_vector_count_names_the_target(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [[[1.0]]]
    with pytest.raises(ResponseValidationError) as info:
        run(stub_config("a", retry={"max_attempts": 1}), mode, clock, kind="embed", texts=["a", "b"])
    assert (info.value.message, info.value.provider, info.value.model) == (
        "sent 2 inputs but got 1 vectors back",
        "a",
        "m",
    )


@pytest.mark.parametrize("mode", MODES)
def test_the_reply_is_priced_once_and_carries_attempts_and_tags(mode: str, clock: FakeClock) -> None:
    reply = run(stub_config("a"), mode, clock, kind="embed", texts=["a", "b", "c"], tags={"team": "x"})
    assert reply.cost is not None and reply.cost.total == Decimal(3) / 1_000_000  # 3 prompt tokens at $1 per million
    assert [(a.provider, a.model, a.outcome) for a in reply.attempts] == [("a", "m", "ok"), ("a", "m", "ok")]
    assert (reply.provider, reply.model) == ("a", "m")
    assert reply.tags == {"team": "x"}
    assert run(stub_config("a"), mode, clock, kind="embed", texts=["a"]).tags is None


def test_each_batch_reply_goes_to_the_attempt_event(clock: FakeClock) -> None:
    seen: list[Any] = []
    with Client(stub_config("a"), clock=clock) as client:
        client.on(AttemptFinished, seen.append)
        client.on(CallFinished, seen.append)
        client.embed("r", ["a", "b", "c"])
    *batches, done = seen
    assert [len(e.response.vectors) if isinstance(e.response, EmbeddingResponse) else None for e in batches] == [2, 1]
    assert {e.route for e in seen} == {"r"}


class Counts(Stub):
    """A stub whose embedding usage has other counts (``counts``: None to leave one out)."""

    counts: dict[str, int | None] = {}

    def embed(self, model: str, request: EmbeddingRequest) -> EmbeddingResponse:
        reply = super().embed(model, request)
        return reply.model_copy(update={"usage": reply.usage.model_copy(update=Counts.counts)})


@pytest.fixture
def stub() -> Iterator[type[Counts]]:
    register("engine-stub-counts", Counts)
    yield Counts
    Counts.counts = {}


@pytest.mark.parametrize(
    ("counts", "cost"),
    [
        ({"completion_tokens": None}, Decimal(2) / 1_000_000),
        ({"completion_tokens": 3}, Decimal(2 + 3 * 2) / 1_000_000),
        ({"prompt_tokens": None}, None),
    ],
)
def test_an_embedding_without_output_tokens_is_priced_and_one_without_input_is_not(
    counts: dict[str, int | None], cost: Decimal | None, stub: type[Counts], clock: FakeClock
) -> None:
    stub.counts = counts
    cfg = stub_config("a")
    cfg["providers"]["a"]["type"] = "engine-stub-counts"
    with Client(cfg, clock=clock) as client:
        reply = client.embed("r", ["a", "b"])
    assert (None if reply.cost is None else reply.cost.total) == cost
