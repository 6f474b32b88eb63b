"""Call events: what subscribers see, in order, and that a failing subscriber never fails the call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.events import AttemptFinished, AttemptStarted, CallFinished
from turnout.testing import FakeClock, FakeServer, Fault


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(flavor="openai") as server:
        yield server


def config(server: FakeServer) -> dict[str, Any]:
    return {
        "providers": {"p": {"type": "openai-compatible", "base_url": server.base_url}},
        "models": {"m": {"targets": ["p:gpt-4o-mini"]}},
        "prices": {"p:gpt-4o-mini": {"input_per_million": 1, "output_per_million": 2}},
    }


def _subscribe(client: Client | AsyncClient, seen: list[Any]) -> None:
    client.on(AttemptStarted, seen.append)
    client.on(AttemptFinished, seen.append)
    client.on(CallFinished, seen.append)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_events_of_a_retried_call_in_order(server: FakeServer, mode: str) -> None:
    server.enqueue(Fault.server_error(503))
    seen: list[Any] = []
    if mode == "sync":
        with Client(config(server), clock=FakeClock()) as client:
            _subscribe(client, seen)
            reply = client.chat("m", "Hi")
    else:

        async def go() -> turnout.ChatResponse:
            async with AsyncClient(config(server), clock=FakeClock()) as client:
                _subscribe(client, seen)
                return await client.chat("m", "Hi")

        reply = asyncio.run(go())
    assert [type(e).__name__ for e in seen] == [
        "AttemptStarted",
        "AttemptFinished",
        "AttemptStarted",
        "AttemptFinished",
        "CallFinished",
    ]
    assert [e.attempt.outcome for e in seen if isinstance(e, AttemptFinished)] == ["ServerError", "ok"]
    finished = seen[-1]
    assert finished.route == "m" and finished.response == reply and finished.error is None
    assert finished.cost == reply.cost and finished.usage == reply.usage


def test_a_failed_call_is_published_with_its_error(server: FakeServer) -> None:
    server.enqueue(Fault.status(400, "bad"))
    seen: list[CallFinished] = []
    with Client(config(server), clock=FakeClock()) as client:
        client.on(CallFinished, seen.append)
        with pytest.raises(turnout.BadRequestError) as info:
            client.chat("m", "Hi")
    [event] = seen
    assert event.error is info.value and event.response is None and event.cost is None
    assert [a.outcome for a in event.attempts] == ["BadRequestError"]


def test_a_raising_subscriber_is_logged_and_the_call_goes_on(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: CallFinished) -> None:
        raise RuntimeError("subscriber bug")

    after: list[CallFinished] = []
    with Client(config(server)) as client:
        client.on(CallFinished, broken)
        client.on(CallFinished, after.append)
        with caplog.at_level(logging.ERROR, logger="turnout"):
            reply = client.chat("m", "Hi")
    assert reply.text
    assert len(after) == 1  # later subscribers still ran
    assert "CallFinished subscriber raised" in caplog.text


def test_budgets_settle_through_the_event(server: FakeServer) -> None:
    """The budgets are a subscriber: what a call cost is spent, the rest of the hold freed."""
    cfg = config(server)
    cfg["budget"] = {"max_usd": 1, "period": "day"}
    with Client(cfg) as client:
        reply = client.chat("m", "Hi", max_tokens=50)
        [status] = client.budgets.status() if client.budgets else []
    assert reply.cost is not None
    assert status.spent == reply.cost.total and status.reserved == 0
