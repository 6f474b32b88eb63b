"""Budgets: reserve before sending, commit after, refuse without I/O, hold under concurrency."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

import turnout.cost.budgets
from tests.conftest import LLAMA, Runner
from turnout import AsyncClient, Budget, BudgetExceededError, Client, ServerError, StreamInterruptedError
from turnout.cost.budgets import Budgets
from turnout.testing import FakeServer, Fault, Reply

# $1 per million input and output tokens: a call's cost in millionths is its token count.
PRICE = {"input_per_million": "1", "output_per_million": "1"}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(flavor="vllm", models=[LLAMA], max_model_len=4096) as fake:
        yield fake


def _config(server: FakeServer, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {"llama": {"targets": [f"local:{LLAMA}"], "retry": {"max_attempts": 1}}},
        "prices": {f"local:{LLAMA}": PRICE},
    }
    config.update(extra)
    return config


@pytest.mark.parametrize("streamed", [False, True])
def test_refused_call_sends_nothing(runner: Runner, server: FakeServer, streamed: bool) -> None:
    config = _config(server, budget={"max_usd": "0.00001"})  # 10 tokens' worth
    with pytest.raises(BudgetExceededError, match="client budget: this call could cost up to") as info:
        runner.call(streamed, config, "llama", "Hello there", max_tokens=100)
    assert info.value.budget == "client" and info.value.remaining == Decimal("0.00001")
    assert server.requests == []


def test_a_call_without_max_tokens_cannot_be_bounded(server: FakeServer) -> None:
    with Client(config=_config(server), budget=Budget(max_usd=Decimal(5))) as client:
        with pytest.raises(BudgetExceededError, match="no upper bound: pass max_tokens"):
            client.chat("llama", "Hi")
    assert server.requests == []


def test_unpriced_target_cannot_be_bounded(server: FakeServer) -> None:
    config = _config(server, prices={})
    with Client(config=config, budget=Budget(max_usd=Decimal(5))) as client:
        with (
            pytest.warns(match="no price known"),
            pytest.raises(BudgetExceededError, match="no price is known for local:"),
        ):
            client.chat("llama", "Hi", max_tokens=5)
    assert server.requests == []


@pytest.mark.parametrize("streamed", [False, True])
def test_success_commits_the_actual_cost_and_failure_releases(
    runner: Runner, server: FakeServer, streamed: bool
) -> None:
    config = _config(server)
    config["models"]["llama"]["budget"] = {"max_usd": "1"}
    server.enqueue(Reply("ok", prompt_tokens=30, completion_tokens=7), Fault.status(500))
    if runner.mode == "sync":
        with Client(config=config) as client:
            reply = runner_call(client, streamed)
            with pytest.raises(ServerError):
                runner_call(client, streamed)
            assert client.budgets is not None
            (status,) = client.budgets.status()
    else:

        async def go() -> Any:
            async with AsyncClient(config=config) as client:
                first = await arunner_call(client, streamed)
                with pytest.raises(ServerError):
                    await arunner_call(client, streamed)
                assert client.budgets is not None
                return first, client.budgets.status()[0]

        reply, status = asyncio.run(go())
    assert reply.cost is not None and reply.cost.total == Decimal("0.000037")
    assert (status.name, status.spent, status.reserved) == ("models.llama", Decimal("0.000037"), Decimal(0))
    assert status.remaining == Decimal(1) - Decimal("0.000037")


def runner_call(client: Client, streamed: bool) -> Any:
    if streamed:
        with client.stream("llama", "Hello", max_tokens=10) as stream:
            return stream.get_response()
    return client.chat("llama", "Hello", max_tokens=10)


async def arunner_call(client: AsyncClient, streamed: bool) -> Any:
    if streamed:
        async with client.stream("llama", "Hello", max_tokens=10) as stream:
            return await stream.get_response()
    return await client.chat("llama", "Hello", max_tokens=10)


def _load(server: FakeServer, count: int) -> Decimal:
    """Script ``count`` replies of 18 tokens each; return the budget for exactly 10 worst cases."""
    # the fake counts "Hi" as 3 + 2 words + 3 priming = 8 prompt tokens; 8 + 10 = 18
    server.enqueue(*[Reply("fine", completion_tokens=10) for _ in range(count)])
    # worst case of "Hi" with max_tokens=10: "Hi" + "user" (6 bytes) + 4 + 3 overhead + 10 output = 23
    return Decimal(10 * 23) / 1_000_000


def test_concurrent_threads_never_overspend(server: FakeServer) -> None:
    limit = _load(server, 40)
    refused: list[BudgetExceededError] = []
    with Client(config=_config(server), budget=Budget(max_usd=limit)) as client:
        barrier = threading.Barrier(40)

        def one() -> None:
            barrier.wait()
            try:
                client.chat("llama", "Hi", max_tokens=10)
            except BudgetExceededError as exc:
                refused.append(exc)

        threads = [threading.Thread(target=one) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.budgets is not None
        (status,) = client.budgets.status()
    sent = len(server.chat_requests)
    assert sent + len(refused) == 40 and sent >= 10
    assert status.reserved == 0
    assert status.spent == Decimal(18 * sent) / 1_000_000 <= limit


def test_concurrent_tasks_never_overspend(server: FakeServer) -> None:
    limit = _load(server, 40)

    async def go() -> tuple[list[Any], Any]:
        async with AsyncClient(config=_config(server), budget=Budget(max_usd=limit)) as client:
            results = await asyncio.gather(
                *[client.chat("llama", "Hi", max_tokens=10) for _ in range(40)], return_exceptions=True
            )
            assert client.budgets is not None
            return results, client.budgets.status()[0]

    results, status = asyncio.run(go())
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(refused) + len(server.chat_requests) == 40
    assert len(refused) == 30  # exactly ten worst cases fit: asyncio reserves one task at a time
    assert status.spent == Decimal(18 * 10) / 1_000_000 <= limit and status.reserved == 0


def test_a_daily_budget_starts_again_each_day() -> None:
    today = [date(2026, 11, 27)]
    budgets = Budgets(Budget(max_usd=Decimal(1), period="day"), {}, today=lambda: today[0])
    budgets.reserve("any", Decimal("0.75")).commit(Decimal("0.75"))
    with pytest.raises(BudgetExceededError, match=r"only \$0.25 of \$1 is left"):
        budgets.reserve("any", Decimal("0.5"))
    today[0] = date(2026, 11, 28)
    held = budgets.reserve("any", Decimal("0.5"))
    held.commit(None)  # unknown cost: the whole reservation counts
    held.release()  # settling twice changes nothing
    assert budgets.status()[0].spent == Decimal("0.5")


def test_alias_and_client_limits_reserve_all_or_nothing() -> None:
    budgets = Budgets(Budget(max_usd=Decimal(10)), {"cheap": Budget(max_usd=Decimal(1))})
    with pytest.raises(BudgetExceededError, match="models.cheap budget"):
        budgets.reserve("cheap", Decimal(2))
    assert [s.reserved for s in budgets.status()] == [0, 0]
    budgets.reserve("other", Decimal(2))
    assert [s.reserved for s in budgets.status()] == [2, 0]


def test_a_stream_cut_off_after_content_spends_its_whole_reservation(server: FakeServer) -> None:
    """A stream without running counts (the call's extra_body turns them off) leaves only the worst case to spend."""
    server.enqueue(Fault.truncate_stream(after_chunks=2, reply=Reply("one two three four five")))
    no_running_counts = {"stream_options": {"include_usage": True, "continuous_usage_stats": False}}
    with Client(config=_config(server), budget=Budget(max_usd=Decimal(1))) as client:
        stream = client.stream("llama", "Hi", max_tokens=10, extra_body=no_running_counts)
        with pytest.raises(StreamInterruptedError), stream:
            for _ in stream:
                pass
        assert client.budgets is not None
        (status,) = client.budgets.status()
    assert (status.spent, status.reserved) == (Decimal(23) / 1_000_000, Decimal(0))  # worst case: 13 + 10 tokens


def test_a_stream_cut_off_under_a_budget_spends_the_servers_running_count(server: FakeServer) -> None:
    """Under a budget vLLM is asked for continuous_usage_stats: the cut stream costs what it generated."""
    server.enqueue(Fault.truncate_stream(after_chunks=2, reply=Reply("one two three four five")))
    with Client(config=_config(server), budget=Budget(max_usd=Decimal(1))) as client:
        with pytest.raises(StreamInterruptedError), client.stream("llama", "Hi", max_tokens=10) as stream:
            for _ in stream:
                pass
        assert client.budgets is not None
        (status,) = client.budgets.status()
    assert server.chat_requests[0].json["stream_options"]["continuous_usage_stats"] is True
    assert (status.spent, status.reserved) == (Decimal(8 + 2) / 1_000_000, Decimal(0))  # 8 prompt + 2 generated


def test_a_budget_without_a_period_lasts_the_clients_lifetime() -> None:
    """docs/configuration.md: `budget.period` absent: the client's lifetime."""
    assert Budget(max_usd=Decimal(1)).period is None


# --- periods (UTC days and months) -------------------------------------------------------------


def _spend_then_move(period: str | None, before: date, after: date) -> Decimal:
    """Spend $0.75 of $1 on ``before``; return what is spent (in the current period) on ``after``."""
    today = [before]
    budgets = Budgets(Budget(max_usd=Decimal(1), period=period), {}, today=lambda: today[0])  # type: ignore[arg-type]
    budgets.reserve("any", Decimal("0.75")).commit(Decimal("0.75"))
    today[0] = after
    return budgets.status()[0].spent


@pytest.mark.parametrize(
    ("period", "before", "after", "spent"),
    [
        ("day", date(2026, 11, 27), date(2026, 11, 27), Decimal("0.75")),
        ("day", date(2026, 11, 27), date(2026, 11, 28), Decimal(0)),
        ("day", date(2026, 11, 27), date(2026, 12, 27), Decimal(0)),  # same day of another month
        ("day", date(2026, 11, 27), date(2027, 11, 27), Decimal(0)),  # same date of another year
        ("month", date(2026, 11, 1), date(2026, 11, 30), Decimal("0.75")),
        ("month", date(2026, 11, 30), date(2026, 12, 1), Decimal(0)),
        ("month", date(2026, 11, 15), date(2027, 11, 15), Decimal(0)),  # same month of another year
        (None, date(2026, 11, 27), date(2027, 3, 1), Decimal("0.75")),  # no period: the client's lifetime
    ],
)
def test_a_period_starts_again_at_its_utc_boundary(
    period: str | None, before: date, after: date, spent: Decimal
) -> None:
    assert _spend_then_move(period, before, after) == spent


def test_a_new_month_frees_the_limit_for_reserving() -> None:
    today = [date(2026, 1, 31)]
    budgets = Budgets(Budget(max_usd=Decimal(1), period="month"), {}, today=lambda: today[0])
    budgets.reserve("any", Decimal(1)).commit(Decimal(1))
    with pytest.raises(BudgetExceededError):
        budgets.reserve("any", Decimal("0.01"))
    today[0] = date(2026, 2, 1)
    budgets.reserve("any", Decimal(1))  # the whole limit again


def test_the_default_date_is_utcs(monkeypatch: pytest.MonkeyPatch) -> None:
    """23:30 UTC on the 27th is already the 28th east of Greenwich: the limit follows UTC."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            utc = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
            return utc if tz is UTC else datetime(2026, 11, 28, 0, 30)

    monkeypatch.setattr(turnout.cost.budgets, "datetime", Clock)
    budgets = Budgets(Budget(max_usd=Decimal(1), period="day"), {})
    assert budgets._client is not None and budgets._client._period == (2026, 11, 27)


# --- reserving, committing, refusing -----------------------------------------------------------


def test_a_reservation_may_use_exactly_what_is_left() -> None:
    budgets = Budgets(Budget(max_usd=Decimal("0.5")), {})
    budgets.reserve("any", Decimal("0.5")).release()
    held = budgets.reserve("any", Decimal("0.5"))
    with pytest.raises(BudgetExceededError) as info:
        budgets.reserve("any", Decimal("0.000001"))
    error = info.value
    assert (error.budget, error.needed, error.remaining) == ("client", Decimal("0.000001"), Decimal(0))
    assert str(error) == (
        "client budget: this call could cost up to $0.000001, but only $0.0 of $0.5 is left; nothing was sent"
    )
    held.commit(Decimal("0.2"))
    (status,) = budgets.status()
    assert (status.name, status.max_usd, status.spent, status.reserved, status.remaining) == (
        "client",
        Decimal("0.5"),
        Decimal("0.2"),
        Decimal(0),
        Decimal("0.3"),
    )


def test_only_the_first_settlement_counts() -> None:
    budgets = Budgets(Budget(max_usd=Decimal(1)), {})
    held = budgets.reserve("any", Decimal("0.5"))
    held.release()
    held.commit(Decimal("0.5"))
    held.release()
    (status,) = budgets.status()
    assert (status.spent, status.reserved) == (Decimal(0), Decimal(0))


def test_an_unbounded_call_names_the_aliass_limit_before_the_clients() -> None:
    budgets = Budgets(Budget(max_usd=Decimal(10)), {"cheap": Budget(max_usd=Decimal(1))})
    budgets.reserve("cheap", Decimal("0.25")).commit(Decimal("0.25"))
    error = budgets.unbounded("cheap", "pass max_tokens")
    assert (error.budget, error.needed, error.remaining) == ("models.cheap", None, Decimal("0.75"))
    assert str(error) == (
        "models.cheap budget: the cost of this call has no upper bound: pass max_tokens; nothing was sent"
    )
    other = budgets.unbounded("other", "why")
    assert (other.budget, other.remaining) == ("client", Decimal("9.75"))


def test_which_routes_a_budget_applies_to() -> None:
    aliases_only = Budgets(None, {"cheap": Budget(max_usd=Decimal(1))})
    assert aliases_only.applies("cheap") and not aliases_only.applies("other")
    assert Budgets(Budget(max_usd=Decimal(1)), {}).applies("other")


# --- budgets per tag value (`[tag_budgets]`) ----------------------------------------------------------


def _per_tenant() -> Budgets:
    return Budgets(None, {}, tags={"tenant": Budget(max_usd=Decimal(1))})


def test_a_tag_budget_applies_only_to_calls_with_that_tag() -> None:
    budgets = _per_tenant()
    assert budgets.applies("any", {"tenant": "a"}) and budgets.applies("any", {"app": "x", "tenant": "a"})
    assert not budgets.applies("any", {"app": "x"})  # a tag without a budget
    assert not budgets.applies("any", {}) and not budgets.applies("any")


def test_each_tag_value_has_its_own_limit() -> None:
    budgets = _per_tenant()
    budgets.reserve("any", Decimal("0.75"), {"tenant": "a"}).commit(Decimal("0.75"))
    held = budgets.reserve("any", Decimal("0.75"), {"tenant": "b"})  # b's dollar is untouched by a's spending
    with pytest.raises(BudgetExceededError, match=r"tags.tenant=a budget: .* only \$0.25 of \$1 is left") as info:
        budgets.reserve("other", Decimal("0.5"), {"tenant": "a"})
    assert info.value.budget == "tags.tenant=a"
    assert [(s.name, s.spent, s.reserved) for s in budgets.status()] == [
        ("tags.tenant=a", Decimal("0.75"), Decimal(0)),
        ("tags.tenant=b", Decimal(0), Decimal("0.75")),
    ]
    held.commit(Decimal("0.5"))
    assert budgets.status()[1].spent == Decimal("0.5")


def test_a_tag_without_a_budget_does_not_hide_one_that_has_one() -> None:
    """``app`` sorts before ``tenant`` and has no budget: the tenant's limit still holds the call."""
    budgets = _per_tenant()
    budgets.reserve("any", Decimal("0.75"), {"app": "x", "tenant": "a"})
    (status,) = budgets.status()
    assert (status.name, status.reserved) == ("tags.tenant=a", Decimal("0.75"))
    error = budgets.unbounded("any", "pass max_tokens", {"app": "x", "tenant": "a"})
    assert (error.budget, error.remaining) == ("tags.tenant=a", Decimal("0.25"))


def test_a_route_without_a_budget_needs_no_max_tokens(server: FakeServer) -> None:
    config = _config(server)
    config["models"]["other"] = {"targets": [f"local:{LLAMA}"]}
    config["models"]["llama"]["budget"] = {"max_usd": "1"}
    with Client(config=config) as client:
        assert client.chat("other", "Hi").text == "Hi"
        with pytest.raises(BudgetExceededError, match="no upper bound"):
            client.chat("llama", "Hi")


def test_n_choices_multiply_the_worst_case(server: FakeServer) -> None:
    """ "Hi" (2 bytes) + "user" (4) + 4 + 3 overhead = 13 prompt tokens at most, plus 2 x 10 output = 33."""
    with Client(config=_config(server), budget=Budget(max_usd=Decimal("0.00003"))) as client:
        with pytest.raises(BudgetExceededError) as info:
            client.chat("llama", "Hi", max_tokens=10, n=2)
    assert info.value.needed == Decimal(33) / 1_000_000
    assert server.requests == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_reply_without_usage_commits_its_whole_reservation(server: FakeServer, mode: str) -> None:
    """No usage, no actual cost: the worst case (13 prompt + 10 output tokens at $1/M) counts as spent."""
    server.enqueue(Reply("fine", usage=False))
    config, budget = _config(server), Budget(max_usd=Decimal(1))
    if mode == "sync":
        with Client(config=config, budget=budget) as client:
            reply = client.chat("llama", "Hi", max_tokens=10)
            assert client.budgets is not None
            (status,) = client.budgets.status()
    else:

        async def go() -> Any:
            async with AsyncClient(config=config, budget=budget) as client:
                reply = await client.chat("llama", "Hi", max_tokens=10)
                assert client.budgets is not None
                return reply, client.budgets.status()[0]

        reply, status = asyncio.run(go())
    assert reply.cost is None
    assert (status.spent, status.reserved) == (Decimal(23) / 1_000_000, Decimal(0))
