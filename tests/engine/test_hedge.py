"""Hedging, pinned over the scripted Stub provider (docs/reliability.md, "Load balancing and hedging").

Each side of a hedge takes the path of an unhedged call (gates, retries, fallback); the first reply
wins; a loser still sending is recorded as a ``cancelled`` attempt (in the reply and the ledger);
async hedging cancels the loser, sync hedging drops its reply when it comes. A target is held back
with a `threading.Event`, so the order of events is fixed without waiting in real time beyond the
few milliseconds of ``hedge_after``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.errors import BadRequestError, ServerError
from turnout.events import AttemptFinished
from turnout.testing import FakeClock

from .conftest import Stub, stub_config

MODES = ["sync", "async"]
QUICK = 0.01  # hedge_after for tests where the first target is held back: the rest starts after 10 ms
NEVER = 30.0  # hedge_after for tests where the rest must start only because the first side is done


class Gates:
    """Per target: ``hold`` keeps its reply back until set; ``entered`` is set when it is sent to;
    ``failed`` is set when its scripted error is raised. ``cancelled`` lists async sends cancelled."""

    def __init__(self) -> None:
        self.hold: dict[str, threading.Event] = {}
        self.hold_first: dict[str, threading.Event] = {}  # sync: held before its script (a reply or an error)
        self.entered: dict[str, threading.Event] = {}
        self.failed: dict[str, threading.Event] = {}
        self.cancelled: list[str] = []
        self.cancelled_in_call: list[str] | None = None  # async: what was cancelled before the call returned
        self.returned: list[str] = []
        self.where: list[str] = []  # the thread (sync) or task (async) each send ran on
        self.original = Stub.chat

    def release(self) -> None:
        for event in [*self.hold.values(), *self.hold_first.values()]:
            event.set()

    def send(self, stub: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        if stub.name in self.entered:
            self.entered[stub.name].set()
        try:
            return self.original(stub, model, request)
        except BaseException:
            if stub.name in self.failed:
                self.failed[stub.name].set()
            raise

    def chat(self, stub: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        self.where.append(threading.current_thread().name)
        if stub.name in self.hold_first:
            assert self.hold_first[stub.name].wait(5), "a held target was never released"
        reply = self.send(stub, model, request)
        if stub.name in self.hold:
            assert self.hold[stub.name].wait(5), "a held target was never released"
        self.returned.append(stub.name)
        return reply

    async def achat(self, stub: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        self.where.append(getattr(asyncio.current_task(), "get_name", lambda: "")())
        reply = self.send(stub, model, request)
        if stub.name in self.hold:
            try:
                while not self.hold[stub.name].is_set():
                    await asyncio.sleep(0.001)
            except asyncio.CancelledError:
                self.cancelled.append(stub.name)
                raise
        self.returned.append(stub.name)
        return reply


def join_hedge_threads() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("turnout-hedge"):
            thread.join(10)


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gates]:
    gates = Gates()
    monkeypatch.setattr(Stub, "chat", lambda self, model, request: gates.chat(self, model, request))
    monkeypatch.setattr(Stub, "achat", lambda self, model, request: gates.achat(self, model, request))
    yield gates
    gates.release()
    join_hedge_threads()


def hedged(
    mode: str,
    hedge_after: float,
    *names: str,
    events: list[Any] | None = None,
    gates: Gates | None = None,
    clock: FakeClock | None = None,
    **route: Any,
) -> Any:
    """One call to a hedged route over stub targets (``retry.max_attempts = 1`` unless given)."""
    route.setdefault("retry", {"max_attempts": 1, "jitter": 0})
    cfg = stub_config(*names or ("a", "b"), hedge_after=hedge_after, **route)
    clock = clock or FakeClock()

    async def go() -> Any:
        asyncio.current_task().set_name("caller")  # type: ignore[union-attr]
        async with AsyncClient(cfg, clock=clock) as client:
            if events is not None:
                client.on(AttemptFinished, events.append)
            reply = await client.chat("r", "Hi")
            for _ in range(5):  # let a cancelled loser's task run its cancellation
                await asyncio.sleep(0)
            if gates is not None:  # before asyncio.run cancels whatever is left
                gates.cancelled_in_call = list(gates.cancelled)
            return reply

    if mode == "async":
        return asyncio.run(go())
    with Client(cfg, clock=clock) as client:
        if events is not None:
            client.on(AttemptFinished, events.append)
        return client.chat("r", "Hi")


def outcomes(reply: turnout.ChatResponse) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome) for a in reply.attempts]


@pytest.mark.parametrize("mode", MODES)
def test_a_first_reply_within_hedge_after_sends_nothing_else(mode: str, gates: Gates) -> None:
    reply = hedged(mode, NEVER)
    assert reply.provider == "a" and outcomes(reply) == [("a", "ok")]
    assert "b" not in Stub.sent


@pytest.mark.parametrize("mode", MODES)
def test_a_first_reply_within_hedge_after_leaves_the_rest_untouched(mode: str, gates: Gates) -> None:
    """The rest is never started: b's circuit is not even consulted, so only a is in the client's health."""
    cfg = stub_config("a", "b", hedge_after=NEVER, retry={"max_attempts": 1, "jitter": 0})

    async def go() -> list[str]:
        async with AsyncClient(cfg, clock=FakeClock()) as client:
            await client.chat("r", "Hi")
            for _ in range(5):  # a rest side started by mistake would have run its gate by now
                await asyncio.sleep(0)
            return [h.target for h in client.health()]

    if mode == "async":
        targets = asyncio.run(go())
    else:
        with Client(cfg, clock=FakeClock()) as client:
            client.chat("r", "Hi")
            targets = [h.target for h in client.health()]
    assert targets == ["a:m"]
    assert "b" not in Stub.sent


@pytest.mark.parametrize("mode", MODES)
def test_a_silent_first_target_loses_to_the_rest_and_is_recorded_cancelled(mode: str, gates: Gates) -> None:
    gates.hold["a"] = threading.Event()
    reply = hedged(mode, QUICK)
    assert reply.provider == "b"
    assert outcomes(reply) == [("b", "ok"), ("a", "cancelled")]
    assert reply.attempts[1].error == "lost the hedge: another target answered first"
    assert len(Stub.sent["a"]) == 1 and len(Stub.sent["b"]) == 1


def test_the_async_loser_is_cancelled(gates: Gates) -> None:
    gates.hold["a"] = threading.Event()
    reply = hedged("async", QUICK, gates=gates)
    assert reply.provider == "b"
    assert gates.cancelled_in_call == ["a"] and gates.returned == ["b"]


def test_the_sync_loser_finishes_and_its_reply_is_dropped(gates: Gates) -> None:
    """A blocking read cannot be interrupted: the loser's thread runs on, and nothing it gets is recorded."""
    gates.hold["a"] = threading.Event()
    events: list[AttemptFinished] = []
    reply = hedged("sync", QUICK, events=events)
    assert gates.returned == ["b"]
    gates.release()
    join_hedge_threads()
    assert gates.returned == ["b", "a"]  # the loser's reply came, after the call ended
    assert [(e.attempt.provider, e.attempt.outcome) for e in events] == [("b", "ok")]
    assert outcomes(reply) == [("b", "ok"), ("a", "cancelled")]


@pytest.mark.parametrize("mode", MODES)
def test_the_first_target_wins_and_the_rest_still_sending_is_cancelled(mode: str, gates: Gates) -> None:
    """The first target answers once the rest has been sent to: the rest's send is the loser."""
    gates.hold["a"] = gates.entered["b"] = threading.Event()  # a answers once b was sent to
    gates.hold["b"] = threading.Event()  # b never answers
    reply = hedged(mode, QUICK, gates=gates)
    assert reply.provider == "a"
    assert outcomes(reply) == [("a", "ok"), ("b", "cancelled")]
    if mode == "async":
        assert gates.cancelled_in_call == ["b"]


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_side_lets_the_other_answer(mode: str, gates: Gates) -> None:
    """The rest fails while the first target is still out: the first target's reply is the answer."""
    gates.hold["a"] = gates.failed["b"] = threading.Event()
    Stub.scripts["b"] = [ServerError("down", provider="b", model="m", status_code=503)]
    reply = hedged(mode, QUICK)
    assert reply.provider == "a"
    assert sorted(outcomes(reply)) == [("a", "ok"), ("b", "ServerError")]


@pytest.mark.parametrize("mode", MODES)
def test_a_first_side_failing_after_the_rest_started_does_not_go_on_to_the_rest(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first side is the first target only: once the rest has started, a's failure ends that side,
    and b is sent to once (by the rest). b answers when it has been sent to twice, or after 0.2 s."""
    Stub.scripts["a"] = [ServerError("down", provider="a", model="m", status_code=503)]
    original = Stub.chat
    b_out = threading.Event()

    def chat(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        if self.name == "a":
            assert b_out.wait(5)  # a fails once the rest has sent to b
            return original(self, model, request)
        reply = original(self, model, request)
        b_out.set()
        end = time.monotonic() + 0.2
        while len(Stub.sent["b"]) < 2 and time.monotonic() < end:
            time.sleep(0.001)
        return reply

    async def achat(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        if self.name == "a":
            while not b_out.is_set():
                await asyncio.sleep(0.001)
            return original(self, model, request)
        reply = original(self, model, request)
        b_out.set()
        end = time.monotonic() + 0.2
        while len(Stub.sent["b"]) < 2 and time.monotonic() < end:
            await asyncio.sleep(0.001)
        return reply

    monkeypatch.setattr(Stub, "chat", chat)
    monkeypatch.setattr(Stub, "achat", achat)
    reply = hedged(mode, QUICK)
    assert reply.provider == "b"
    assert len(Stub.sent["a"]) == 1 and len(Stub.sent["b"]) == 1
    assert sorted(outcomes(reply)) == [("a", "ServerError"), ("b", "ok")]


@pytest.mark.parametrize("mode", MODES)
def test_a_first_target_that_falls_back_starts_the_rest_at_once(mode: str, gates: Gates) -> None:
    """A 503 in fallback_on: the rest starts without waiting out hedge_after; nothing was out to cancel."""
    Stub.scripts["a"] = [ServerError("down", provider="a", model="m", status_code=503)]
    started = time.monotonic()
    reply = hedged(mode, 2.0)
    assert time.monotonic() - started < 1.5
    assert reply.provider == "b"
    assert outcomes(reply) == [("a", "ServerError"), ("b", "ok")]


@pytest.mark.parametrize("mode", MODES)
def test_each_side_of_a_hedge_waits_its_retries_on_the_clients_clock(mode: str, gates: Gates) -> None:
    """Each side retries as an unhedged call would: a's two 503s (one retry), then b's one retry, each
    backoff slept on the client's clock, so no real time passes."""
    Stub.scripts["a"] = [ServerError("down", provider="a", model="m", status_code=503)] * 2
    Stub.scripts["b"] = [ServerError("down", provider="b", model="m", status_code=503)]
    clock = FakeClock()
    reply = hedged(mode, NEVER, clock=clock, retry={"max_attempts": 2, "jitter": 0, "initial_delay": 1})
    assert reply.provider == "b"
    assert outcomes(reply) == [("a", "ServerError"), ("a", "ServerError"), ("b", "ServerError"), ("b", "ok")]
    assert clock.sleeps == [1.0, 1.0]


@pytest.mark.parametrize("mode", MODES)
def test_an_error_outside_fallback_on_ends_the_hedged_call(mode: str, gates: Gates) -> None:
    Stub.scripts["a"] = [BadRequestError("bad", provider="a", model="m", status_code=400)]
    with pytest.raises(BadRequestError) as info:
        hedged(mode, NEVER)
    assert "b" not in Stub.sent
    assert [(a.provider, a.outcome) for a in info.value.attempts] == [("a", "BadRequestError")]


@pytest.mark.parametrize("mode", MODES)
def test_both_sides_failing_raise_one_error_per_target(mode: str, gates: Gates) -> None:
    Stub.scripts["a"] = [ServerError("down", provider="a", model="m", status_code=503)]
    Stub.scripts["b"] = [ServerError("down too", provider="b", model="m", status_code=502)]
    with pytest.raises(turnout.AllTargetsFailedError) as info:
        hedged(mode, NEVER)
    assert [(e.provider, e.status_code) for e in info.value.exceptions] == [("a", 503), ("b", 502)]


@pytest.mark.parametrize("mode", MODES)
def test_the_rest_failing_after_the_first_falls_back_raises_the_rests_error(mode: str, gates: Gates) -> None:
    """Three targets: the first falls back, the rest of the route (b, then c) is tried in order."""
    Stub.scripts["a"] = [ServerError("down", provider="a", model="m", status_code=503)]
    Stub.scripts["b"] = [ServerError("down", provider="b", model="m", status_code=503)]
    reply = hedged(mode, NEVER, "a", "b", "c")
    assert reply.provider == "c"
    assert outcomes(reply) == [("a", "ServerError"), ("b", "ServerError"), ("c", "ok")]


@pytest.mark.parametrize("mode", MODES)
def test_a_single_target_route_is_not_hedged(mode: str, gates: Gates) -> None:
    """hedge_after needs a second target; a lone held target is simply waited for."""
    gates.hold["a"] = gates.entered["a"] = threading.Event()  # released as soon as it is sent to
    reply = hedged(mode, QUICK, "a")
    assert outcomes(reply) == [("a", "ok")]
    assert gates.where == ["MainThread" if mode == "sync" else "caller"]  # no hedge worker, no hedge task


@pytest.mark.parametrize("mode", MODES)
def test_a_hedged_stream_is_not_hedged(mode: str) -> None:
    """hedge_after applies to plain calls only: a stream goes to its first target alone."""
    cfg = stub_config("a", "b", hedge_after=QUICK)

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=FakeClock()) as client, client.stream("r", "Hi") as stream:
            return await stream.get_response()

    async def chunks() -> list[str]:
        async with AsyncClient(cfg, clock=FakeClock()) as client, client.stream("r", "Hi") as stream:
            return [chunk.text async for chunk in stream if chunk.text]

    if mode == "async":
        reply = asyncio.run(go())
        texts = asyncio.run(chunks())
    else:
        with Client(cfg, clock=FakeClock()) as client:
            with client.stream("r", "Hi") as stream:
                reply = stream.get_response()
            with client.stream("r", "Hi") as stream:
                texts = [chunk.text for chunk in stream if chunk.text]
    assert outcomes(reply) == [("a", "ok")] and "b" not in Stub.sent
    assert texts == ["ok"]  # streamed chunk by chunk, not a plain call's reply


@pytest.mark.parametrize("mode", MODES)
def test_a_sent_loser_is_in_the_ledger_row(
    mode: str, gates: Gates, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(path))
    gates.hold["a"] = threading.Event()
    reply = hedged(mode, QUICK)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT provider, attempts, outcome FROM calls").fetchall()
    assert rows == [("b", 2, "ok")]
    assert outcomes(reply) == [("b", "ok"), ("a", "cancelled")]


def test_a_sync_loser_failing_after_the_call_is_neither_recorded_nor_retried(gates: Gates) -> None:
    gates.hold_first["a"] = threading.Event()
    Stub.scripts["a"] = [ServerError("down", provider="a", model="m", status_code=503)]
    events: list[AttemptFinished] = []
    reply = hedged("sync", QUICK, events=events, retry={"max_attempts": 3, "jitter": 0})
    gates.release()
    join_hedge_threads()
    assert len(Stub.sent["a"]) == 1  # the lost side sent nothing more
    assert [(e.attempt.provider, e.attempt.outcome) for e in events] == [("b", "ok")]
    assert outcomes(reply) == [("b", "ok"), ("a", "cancelled")]


class PausingClock(FakeClock):
    """A fake clock that pauses one thread at its ``at``-th read after `arm` (on that thread).

    The pause is where the loser's thread would be when the other side wins: ``paused`` is set
    when it starts, and the thread waits for ``go`` (at most half a second: a thread paused after
    its side has already won goes on by itself, and the other side is the one that loses).
    """

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.armed: threading.Thread | None = None
        self.reads = 0
        self.paused = threading.Event()
        self.go = threading.Event()

    def arm(self) -> None:
        if self.armed is None:
            self.armed = threading.current_thread()

    def now(self) -> float:
        if self.armed is threading.current_thread() and not self.paused.is_set():
            self.reads += 1
            if self.reads == self.at:
                self.paused.set()
                self.go.wait(0.5)
        return super().now()


def race_at(monkeypatch: pytest.MonkeyPatch, at: int, first_fails: bool) -> tuple[turnout.ChatResponse, list[Any]]:
    """a is out when b is sent; a's reply (or failure) comes back, and a's thread pauses at its
    ``at``-th clock read after it while b answers and wins. Return the reply and the events."""
    clock = PausingClock(at)
    b_out = threading.Event()
    original = Stub.chat

    def chat(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        if self.name == "b":
            b_out.set()
            clock.paused.wait(1)  # a's thread is paused (or has no read left to pause at)
            return original(self, model, request)
        assert b_out.wait(5)
        try:
            return original(self, model, request)
        finally:
            clock.arm()

    monkeypatch.setattr(Stub, "chat", chat)
    if first_fails:
        Stub.scripts["a"] = [ServerError("down", provider="a", model="m", status_code=503)]
    events: list[Any] = []
    cfg = stub_config("a", "b", hedge_after=QUICK, retry={"max_attempts": 2, "jitter": 0})
    try:
        with Client(cfg, clock=clock) as client:
            client.on(AttemptFinished, events.append)
            reply = client.chat("r", "Hi")
    finally:
        clock.go.set()
        join_hedge_threads()
    return reply, events


@pytest.mark.parametrize("at", range(1, 8))
@pytest.mark.parametrize("first_fails", [False, True], ids=["reply-back", "retry-going-out"])
def test_every_request_a_sync_hedge_sent_is_recorded_once(
    monkeypatch: pytest.MonkeyPatch, at: int, first_fails: bool
) -> None:
    """Wherever the loser's thread is when the other side wins, each request sent is in the record once.

    ``reply-back``: a's reply comes back while b wins; a's request must be ``cancelled``, never
    missing and never ``ok``. ``retry-going-out``: a failed and is about to retry while b wins;
    the retry is either not sent, or sent and recorded ``cancelled``.
    """
    reply, events = race_at(monkeypatch, at, first_fails)
    sent = {name: len(Stub.sent.get(name, [])) for name in ("a", "b")}
    recorded = {name: sum(a.provider == name for a in reply.attempts) for name in ("a", "b")}
    assert recorded == sent
    [answered] = [a for a in reply.attempts if a.outcome == "ok"]
    assert answered.provider == reply.provider
    assert [e.attempt.outcome for e in events].count("ok") == 1  # the loser's reply is dropped, not reported
