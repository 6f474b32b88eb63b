"""`turnout.engine.attempt_log.AttemptLog`: each attempt as the caller, the breaker, the logs and the events see it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import turnout
from turnout import Client
from turnout.engine import AttemptFinished, AttemptStarted, CallFinished
from turnout.errors import ServerError
from turnout.testing import FakeClock

from .conftest import Stub, stub_config
from .test_call import err


@pytest.fixture
def slow(clock: FakeClock) -> Iterator[dict[str, float]]:
    """Seconds each stub target takes to answer (by name), on the fake clock."""
    seconds: dict[str, float] = {}
    original = Stub.chat

    def chat(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        clock.advance(seconds.get(self.name, 0))
        return original(self, model, request)

    Stub.chat = chat  # type: ignore[method-assign]
    yield seconds
    Stub.chat = original  # type: ignore[method-assign]


def _seen(cfg: dict[str, Any], clock: FakeClock, **kwargs: Any) -> tuple[list[Any], Any]:
    seen: list[Any] = []
    with Client(cfg, clock=clock) as client:
        client.on(AttemptStarted, seen.append)
        client.on(AttemptFinished, seen.append)
        client.on(CallFinished, seen.append)
        try:
            outcome: Any = client.chat("r", "Hi", **kwargs)
        except turnout.ProviderError as exc:
            outcome = exc
    return seen, outcome


def test_attempt_events_carry_the_target_times_and_outcome(slow: dict[str, float], clock: FakeClock) -> None:
    failure = ServerError("overloaded", provider="a", model="m", status_code=503)
    Stub.scripts["a"] = [failure]
    slow["a"], slow["b"] = 2, 3
    seen, reply = _seen(stub_config("a", "b", retry={"max_attempts": 1}), clock)
    start_a, end_a, start_b, end_b, done = seen
    assert isinstance(start_a, AttemptStarted) and isinstance(start_b, AttemptStarted)
    assert (start_a.route, start_a.provider, start_a.model, start_a.started) == (
        "r",
        "a",
        "m",
        1000,
    )  # FakeClock starts at 1000
    assert start_a.request is Stub.sent["a"][0] and start_a.target is not None and start_a.target.name == "a"
    assert (start_b.provider, start_b.started, start_b.request) == ("b", 1002, Stub.sent["b"][0])
    assert (end_a.route, end_a.error, end_a.response, end_a.started, end_a.first_chunk) == (
        "r",
        failure,
        None,
        1000,
        None,
    )
    failed = end_a.attempt
    assert (failed.provider, failed.model, failed.outcome, failed.latency) == ("a", "m", "ServerError", 2)
    assert (failed.status_code, failed.error, failed.skipped) == (503, "overloaded", False)
    assert (end_b.route, end_b.error, end_b.started, end_b.first_chunk) == ("r", None, 1002, None)
    assert isinstance(end_b.response, turnout.ChatResponse) and end_b.response.text == "ok"
    ok = end_b.attempt
    assert (ok.provider, ok.model, ok.outcome, ok.latency) == ("b", "m", "ok", 3)
    assert (ok.status_code, ok.error, ok.skipped) == (None, None, False)
    assert reply.attempts == [failed, ok] and failure.attempts == [failed]
    ids = {e.call_id for e in seen}
    assert len(ids) == 1 and id(None) not in ids


def test_attempts_are_logged_one_by_one(
    caplog: pytest.LogCaptureFixture, slow: dict[str, float], clock: FakeClock
) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    slow["a"] = 2
    keys = ("alias", "target", "attempt", "outcome", "latency")
    with caplog.at_level(logging.DEBUG, logger="turnout"):
        _seen(stub_config("a", retry={"initial_delay": 1, "jitter": 0}), clock)
    logged = [
        (r.getMessage(), {k: r.__dict__[k] for k in keys}) for r in caplog.records if "attempt on" in r.getMessage()
    ]
    assert logged == [
        (
            "route r: attempt on a:m: ServerError in 2.000s",
            {"alias": "r", "target": "a:m", "attempt": 1, "outcome": "ServerError", "latency": 2},
        ),
        (
            "route r: attempt on a:m: ok in 2.000s",
            {"alias": "r", "target": "a:m", "attempt": 2, "outcome": "ok", "latency": 2},
        ),
    ]


def test_least_latency_goes_by_each_targets_measured_latency(slow: dict[str, float], clock: FakeClock) -> None:
    """Unmeasured targets first, then the fastest: a (3 s), then b (1 s, unmeasured), then b again."""
    slow["a"], slow["b"] = 3, 1
    with Client(stub_config("a", "b", balance="least-latency"), clock=clock) as client:
        assert [client.chat("r", "Hi").provider for _ in range(3)] == ["a", "b", "b"]


def test_a_stream_left_early_is_noted_as_abandoned(clock: FakeClock) -> None:
    Stub.scripts["a"] = [["one ", "two"]]
    seen: list[CallFinished] = []
    with Client(stub_config("a"), clock=clock) as client:
        client.on(CallFinished, seen.append)
        with client.stream("r", "Hi") as stream:
            next(iter(stream))
            clock.advance(2)
    [done] = seen
    [attempt] = done.attempts
    assert (attempt.provider, attempt.model, attempt.outcome, attempt.latency) == ("a", "m", "abandoned", 2)
    assert attempt.error == "the caller stopped reading the stream"


def test_the_hedges_loser_is_noted_as_cancelled(clock: FakeClock) -> None:
    """a is still out after ``hedge_after``; b answers; a's request is noted (it may still be billed)."""
    release = threading.Event()
    original = Stub.chat

    def chat(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        if self.name == "a":
            release.wait(5)
        return original(self, model, request)

    Stub.chat = chat  # type: ignore[method-assign]
    try:
        with Client(stub_config("a", "b", hedge_after=0.05), clock=clock) as client:
            reply = client.chat("r", "Hi")
    finally:
        release.set()
        Stub.chat = original  # type: ignore[method-assign]
    assert reply.provider == "b"
    winner, loser = reply.attempts
    assert (winner.provider, winner.outcome) == ("b", "ok")
    assert (loser.provider, loser.model, loser.outcome, loser.latency) == ("a", "m", "cancelled", 0)
    assert loser.error == "lost the hedge: another target answered first"
