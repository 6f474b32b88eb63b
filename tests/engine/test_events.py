"""Call events: what subscribers see, in order, and that a failing subscriber never fails the call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.events import AttemptFinished, AttemptStarted, CallFinished, CallStarted, RetryScheduled
from turnout.testing import FakeClock, FakeServer, Fault

from ..conftest import CANARY_KEY, make_config


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


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_events_carry_the_request_sent_and_the_reply(server: FakeServer, mode: str) -> None:
    """What telemetry reads: the operation, the request each attempt sent, its target, the raw reply, the retry."""
    server.enqueue(Fault.server_error(503))
    seen: list[Any] = []

    def subscribe(client: Client | AsyncClient) -> None:
        client.on(CallStarted, seen.append)
        client.on(AttemptStarted, seen.append)
        client.on(AttemptFinished, seen.append)
        client.on(RetryScheduled, seen.append)
        client.on(CallFinished, seen.append)

    if mode == "sync":
        with Client(config(server), clock=FakeClock()) as client:
            subscribe(client)
            reply = client.chat("m", "Hi", max_tokens=7)
    else:

        async def go() -> turnout.ChatResponse:
            async with AsyncClient(config(server), clock=FakeClock()) as client:
                subscribe(client)
                return await client.chat("m", "Hi", max_tokens=7)

        reply = asyncio.run(go())
    started, first, failed, retry, second, ok, finished = seen
    assert isinstance(started, CallStarted) and started.operation == "chat"
    assert isinstance(started.request, turnout.ChatRequest) and started.request.max_tokens == 7
    assert len({e.call_id for e in seen}) == 1 and started.call_id != 0
    assert isinstance(first, AttemptStarted) and isinstance(first.request, turnout.ChatRequest)
    assert first.request.max_tokens == 7
    assert first.target is not None and first.target.config.type == "openai-compatible"
    assert isinstance(failed, AttemptFinished) and isinstance(failed.error, turnout.ServerError)
    assert failed.started == first.started and failed.response is None
    assert (
        isinstance(retry, RetryScheduled) and retry.attempt == 1 and retry.seconds > 0 and retry.error is failed.error
    )
    assert isinstance(ok, AttemptFinished) and ok.started == second.started and ok.error is None
    assert isinstance(ok.response, turnout.ChatResponse) and ok.response.id == reply.id
    assert ok.response.usage == reply.usage
    assert isinstance(finished, CallFinished) and finished.call_id == started.call_id


def test_a_stream_reports_its_time_to_first_chunk(server: FakeServer) -> None:
    seen: list[Any] = []
    with Client(config(server)) as client:
        client.on(CallStarted, seen.append)
        client.on(AttemptFinished, seen.append)
        with client.stream("m", "Hi there") as stream:
            list(stream)
    started, finished = seen
    assert started.operation == "stream"
    assert finished.first_chunk is not None and 0 < finished.first_chunk <= finished.attempt.latency


def handler(event: CallFinished) -> None:
    """A hook named in [hooks] (tests.engine.test_events:handler)."""
    HOOKED.append(event)


HOOKED: list[CallFinished] = []


def test_hooks_named_in_the_config_are_called(server: FakeServer) -> None:
    cfg = {**config(server), "hooks": {"on_call_finished": "tests.engine.test_events:handler"}}
    HOOKED.clear()
    with Client(cfg) as client:
        reply = client.chat("m", "Hi")
    [event] = HOOKED
    assert event.response == reply


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("tests.engine.no_such_module:handler", "hooks.on_call_finished: cannot import"),
        ("tests.engine.test_events:no_such_function", "hooks.on_call_finished: cannot import"),
        ("tests.engine.test_events:HOOKED", "is not callable"),
        ("no-colon", "is not 'package.module:function'"),
    ],
)
def test_a_bad_hook_is_a_config_error(server: FakeServer, ref: str, message: str) -> None:
    with pytest.raises(turnout.ConfigError, match=message):
        Client({**config(server), "hooks": {"on_call_finished": ref}})


def test_log_records_carry_structured_fields_and_no_secret(
    caplog: pytest.LogCaptureFixture, fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    """INFO for a fallback, DEBUG per attempt and per call, fields in ``extra``; the API key is never in a record."""
    fake_openai.enqueue(Fault.unauthorized())
    cfg = make_config(fake_openai, fake_vllm)
    cfg["models"]["fast"]["fallback_on"] = ["auth"]
    with caplog.at_level(logging.DEBUG, logger="turnout"), Client(cfg) as client:
        reply = client.chat("fast", "Hi")
    records = [r for r in caplog.records if r.name == "turnout"]
    [fallback] = [r for r in records if r.levelno == logging.INFO]
    assert fallback.__dict__["alias"] == "fast" and fallback.__dict__["target"] == "openai:gpt-4o-mini"
    assert fallback.__dict__["outcome"] == "AuthenticationError"
    attempts = [r for r in records if r.levelno == logging.DEBUG and "latency" in r.__dict__ and "target" in r.__dict__]
    assert [(r.__dict__["attempt"], r.__dict__["outcome"]) for r in attempts] == [(1, "AuthenticationError"), (2, "ok")]
    [done] = [r for r in records if "cost" in r.__dict__]
    assert reply.cost is not None and done.__dict__["cost"] == str(reply.cost.total)
    for record in records:
        assert CANARY_KEY not in record.getMessage()
        assert all(CANARY_KEY not in repr(value) for value in record.__dict__.values())
