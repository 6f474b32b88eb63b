"""Streams in the engine's flow, over the scripted Stub provider: resuming a cut answer, the call's clock, timeouts.

docs/streaming.md's promises, pinned exactly: a cut answer is continued on the same target within
its retries, then (``resume_across_targets``) on later targets with retries of their own; the
deadline and time to first chunk are on the call's clock; a stream timeout names its target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.errors import APIConnectionError, ServerError, StreamInterruptedError
from turnout.events import AttemptFinished, AttemptStarted, CallFinished, StreamAbandoned
from turnout.providers import register
from turnout.testing import FakeClock
from turnout.types import ProviderRateLimit

from .conftest import Stub, stub_config
from .test_route_flow import MODES, err, limited, outcomes, run

# --- resume = "continue" over a stub that can continue (docs/streaming.md) ---------------------------

CONTINUED: list[tuple[str, str, str, int | None]] = []
STREAMED: list[tuple[str, str]] = []
RUNNING: list[tuple[str, str]] = []


class Continuing(Stub):
    """A Stub that says how to continue a cut answer (as vLLM does) and records each stream's model."""

    def continuation(self, model: str, request: turnout.ChatRequest, partial: str) -> turnout.ChatRequest | None:
        CONTINUED.append((self.name, model, partial, request.max_tokens))
        messages = [*request.messages, turnout.Message(role="assistant", content=partial)]
        return request.model_copy(update={"messages": messages})

    def stream(self, model: str, request: turnout.ChatRequest) -> Iterator[turnout.ChatChunk]:
        STREAMED.append((self.name, model))
        return super().stream(model, request)

    def with_running_usage(self, model: str, request: turnout.ChatRequest) -> turnout.ChatRequest:
        RUNNING.append((self.name, model))
        return request

    async def astream(self, model: str, request: turnout.ChatRequest) -> AsyncIterator[turnout.ChatChunk]:
        for chunk in self.stream(model, request):
            yield chunk


@pytest.fixture(autouse=True)
def _continuing() -> None:
    register("engine-stub-continue", Continuing)
    CONTINUED.clear()
    STREAMED.clear()
    RUNNING.clear()


def resuming(*names: str, **route: Any) -> dict[str, Any]:
    route.setdefault("retry", {"jitter": 0, "initial_delay": 1})
    cfg = stub_config(*names, resume="continue", **route)
    for provider in cfg["providers"].values():
        provider["type"] = "engine-stub-continue"
    return cfg


CUT = err(APIConnectionError)


def two_streams(cfg: dict[str, Any], mode: str, clock: FakeClock, **kwargs: Any) -> list[str]:
    """Stream route ``r`` twice on one client (sync or async); return the two replies' texts."""

    async def go() -> list[str]:
        async with AsyncClient(cfg, clock=clock) as client:
            texts = []
            for _ in range(2):
                async with client.stream("r", "Hi", **kwargs) as stream:
                    texts.append((await stream.get_response()).text)
            return texts

    if mode == "async":
        return asyncio.run(go())
    with Client(cfg, clock=clock) as client:
        texts = []
        for _ in range(2):
            with client.stream("r", "Hi", **kwargs) as stream:
                texts.append(stream.get_response().text)
        return texts


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_stream_is_continued_on_the_same_target(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [["one ", "two ", CUT], ["three"]]
    seen: list[Any] = []
    reply = run(resuming("a"), mode, clock, "stream", seen, (AttemptStarted, AttemptFinished), max_tokens=50)
    assert reply.text == "one two three"
    assert CONTINUED == [("a", "m", "one two ", 48)]  # 50 less the 2 tokens of the cut piece
    assert STREAMED == RUNNING == [("a", "m"), ("a", "m")]  # each piece asks for running usage
    assert clock.sleeps == [1.0]  # the same target's retry wait
    assert outcomes(reply) == [("a", "APIConnectionError"), ("a", "ok")]
    _, _, second, ok = seen
    assert (second.provider, second.model) == ("a", "m")
    assert second.request.messages[-1].content == "one two "
    assert Stub.sent["a"][1].messages[-1].content == "one two "  # what the stream was sent
    assert ok.attempt.outcome == "ok" and ok.first_chunk is None  # a resumed piece has no time to first chunk


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("where", "running"), [("r", [("a", "m")]), ("other", [])])
def test_a_stream_under_a_route_budget_asks_for_running_usage(
    mode: str, where: str, running: list[Any], clock: FakeClock
) -> None:
    """resume = "off": only a budget on the stream's own route needs the running token counts (to pay a cut)."""
    cfg = resuming("a")
    cfg["models"]["r"]["resume"] = "off"
    cfg["models"]["other"] = {"targets": ["a:m"]}
    cfg["models"][where]["budget"] = {"max_usd": "1"}
    assert run(cfg, mode, clock, "stream", max_tokens=10).text == "ok"
    assert RUNNING == running


@pytest.mark.parametrize("mode", MODES)
def test_the_retries_before_content_count_against_the_continuations(mode: str, clock: FakeClock) -> None:
    """max_attempts = 2: one failure before content and the cut spend both; nothing is continued."""
    Stub.scripts["a"] = [[CUT], ["one ", CUT], ["two"]]
    with pytest.raises(StreamInterruptedError) as info:
        run(resuming("a", retry={"max_attempts": 2, "jitter": 0, "initial_delay": 1}), mode, clock, "stream")
    assert info.value.partial_text == "one "
    assert len(Stub.sent["a"]) == 2
    assert CONTINUED == [("a", "m", "one ", None)]  # asked for, then not sent: no retry is left


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_stream_is_continued_on_the_next_target_at_once(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [["one ", CUT]]
    Stub.scripts["b"] = [err(ServerError, provider="b", status_code=503), ["two"]]
    route = {"resume_across_targets": True, "retry": {"max_attempts": 2, "jitter": 0, "initial_delay": 1}}
    Stub.scripts["a"].append(["x", CUT])  # a's one retry is cut again
    reply = run(resuming("a", "b", **route), mode, clock, "stream")
    assert reply.text == "one xtwo"
    assert [c[:3] for c in CONTINUED] == [
        ("a", "m", "one "),
        ("a", "m", "one x"),  # a's retries are spent: not sent
        ("b", "m", "one x"),
        ("b", "m", "one x"),
    ]
    assert STREAMED == [("a", "m"), ("a", "m"), ("b", "m"), ("b", "m")]
    # a's retry waits 1 s; b's first continuation goes at once, its retry after b's 503 waits 1 s
    assert clock.sleeps == [1.0, 1.0]
    assert outcomes(reply) == [
        ("a", "APIConnectionError"),
        ("a", "APIConnectionError"),
        ("b", "ServerError"),
        ("b", "ok"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_the_next_target_continues_with_retries_of_its_own(mode: str, clock: FakeClock) -> None:
    """a spent its retries (one before content, one on a continuation); b's own retries let it answer."""
    Stub.scripts["a"] = [[CUT], ["one ", CUT], [CUT]]
    Stub.scripts["b"] = [err(ServerError, provider="b", status_code=503), ["two"]]
    route = {"resume_across_targets": True, "retry": {"max_attempts": 3, "jitter": 0, "initial_delay": 1}}
    reply = run(resuming("a", "b", **route), mode, clock, "stream")
    assert reply.text == "one two"
    assert clock.sleeps == [1.0, 2.0, 1.0]  # a: 1 s, then 2 s; b's first goes at once, its retry waits 1 s
    assert [x[0] for x in STREAMED] == ["a", "a", "a", "b", "b"]


@pytest.mark.parametrize("mode", MODES)
def test_a_continuation_spends_the_targets_retry_budget(mode: str, clock: FakeClock) -> None:
    """budget_burst = 1: the first call's retry spends a:m's only token, so the next cut is not continued."""
    cfg = resuming("a", retry={"jitter": 0, "initial_delay": 1, "budget_burst": 1, "budget_ratio": 0})
    Stub.scripts["a"] = [[CUT], ["fine"], ["one ", CUT], ["two"]]

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            async with client.stream("r", "Hi") as stream:
                assert (await stream.get_response()).text == "fine"
            async with client.stream("r", "Hi") as stream:
                await stream.get_response()

    with pytest.raises(StreamInterruptedError) as info:
        if mode == "async":
            asyncio.run(go())
        else:
            with Client(cfg, clock=clock) as client:
                with client.stream("r", "Hi") as stream:
                    assert stream.get_response().text == "fine"
                with client.stream("r", "Hi") as stream:
                    stream.get_response()
    assert info.value.partial_text == "one "
    assert len(Stub.sent["a"]) == 3 and clock.sleeps == [1.0]


@pytest.mark.parametrize("mode", MODES)
def test_a_continuation_skips_a_target_whose_circuit_is_open(mode: str, clock: FakeClock) -> None:
    """b's circuit was opened by another route; a's cut answer is continued on c, b is not sent to."""
    policy = {"retry": {"max_attempts": 1, "jitter": 0}, "breaker": {"failure_threshold": 1, "cooldown": 60}}
    cfg = resuming("a", "b", "c", resume_across_targets=True, **policy)
    cfg["models"]["b-only"] = {"targets": ["b:m"], **policy}
    Stub.scripts["b"] = [err(ServerError, provider="b", status_code=503)]
    Stub.scripts["a"] = [["one ", CUT]]

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            with pytest.raises(ServerError):
                await client.chat("b-only", "Hi")
            async with client.stream("r", "Hi") as stream:
                return await stream.get_response()

    if mode == "async":
        reply = asyncio.run(go())
    else:
        with Client(cfg, clock=clock) as client:
            with pytest.raises(ServerError):
                client.chat("b-only", "Hi")
            with client.stream("r", "Hi") as stream:
                reply = stream.get_response()
    assert reply.text == "one ok" and reply.provider == "c"
    assert len(Stub.sent["b"]) == 1  # only the call that opened its circuit
    assert [c[:2] for c in CONTINUED] == [("a", "m"), ("c", "m")]


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_continuation_is_paid_and_retried(mode: str, clock: FakeClock) -> None:
    """The continuation is cut after text too: that piece is paid for (estimated) and continued again."""
    Stub.scripts["a"] = [["one ", CUT], ["two ", CUT], ["three"]]
    reply = run(resuming("a"), mode, clock, "stream")
    assert reply.text == "one two three"
    assert [c[2] for c in CONTINUED] == ["one ", "one two "]
    assert reply.usage.estimated
    assert reply.cost is not None and reply.cost.total > Decimal(0)


@pytest.mark.parametrize("mode", MODES)
def test_a_continuation_gives_its_concurrency_slot_back(mode: str, clock: FakeClock) -> None:
    """[limits] ``max_concurrent = 1``, no wait: once a cut answer was continued, the next stream is sent."""
    Stub.scripts["a"] = [["one ", CUT], ["two"], ["again"]]
    cfg = resuming("a")
    cfg["limits"] = {"a:m": {"max_concurrent": 1, "max_wait": 0}}

    texts = two_streams(cfg, mode, clock)
    assert texts == ["one two", "again"]
    assert len(Stub.sent["a"]) == 3 and clock.sleeps == [1.0]  # the continuation's retry wait, nothing else


@pytest.mark.parametrize("mode", MODES)
def test_leaving_during_a_continuation_is_recorded(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [["one ", CUT], ["two ", "three"]]
    cfg = resuming("a")
    seen: list[Any] = []

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            client.on(StreamAbandoned, seen.append)
            client.on(CallFinished, seen.append)
            async with client.stream("r", "Hi") as stream:
                async for chunk in stream:
                    if chunk.text == "two ":
                        break

    if mode == "async":
        asyncio.run(go())
    else:
        with Client(cfg, clock=clock) as client:
            client.on(StreamAbandoned, seen.append)
            client.on(CallFinished, seen.append)
            with client.stream("r", "Hi") as stream:
                for chunk in stream:
                    if chunk.text == "two ":
                        break
    abandoned, finished = seen
    assert (abandoned.provider, abandoned.model, abandoned.started) == ("a", "m", clock.time)
    assert outcomes(finished) == [("a", "APIConnectionError"), ("a", "abandoned")]


# --- streams on the call's clock: the deadline, time to first chunk, usage for the limiter ------------


@pytest.fixture
def timed(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """Stub streams where a number in a script advances the clock (time passing between chunks)."""

    def stream(self: Stub, model: str, request: turnout.ChatRequest) -> Iterator[turnout.ChatChunk]:
        item = self._next(request)
        for chunk in item:
            if isinstance(chunk, (int, float)):
                clock.advance(chunk)
            elif isinstance(chunk, BaseException):
                raise chunk
            else:
                yield chunk if isinstance(chunk, turnout.ChatChunk) else turnout.ChatChunk(text=chunk)

    monkeypatch.setattr(Stub, "stream", stream)


DONE = turnout.ChatChunk(
    finish_reason="stop", usage=turnout.Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
)


@pytest.mark.parametrize("mode", MODES)
def test_the_deadline_ends_a_stream_still_sending(mode: str, clock: FakeClock, timed: None) -> None:
    Stub.scripts["a"] = [["one ", 6, "two ", DONE]]
    with pytest.raises(StreamInterruptedError) as info:
        run(stub_config("a", deadline=5), mode, clock, "stream")
    assert isinstance(info.value.__cause__, turnout.APITimeoutError)
    assert info.value.partial_text == "one "


@pytest.mark.parametrize("mode", MODES)
def test_time_to_first_chunk_is_on_the_calls_clock(mode: str, clock: FakeClock, timed: None) -> None:
    Stub.scripts["a"] = [[2, "one ", 3, "two", DONE]]
    seen: list[Any] = []
    reply = run(stub_config("a"), mode, clock, "stream", seen, (AttemptFinished,))
    [finished] = seen
    assert finished.first_chunk == 2.0 and finished.attempt.latency == 5.0
    assert reply.text == "one two"
    Stub.scripts["a"] = [["at once", DONE]]
    seen.clear()
    run(stub_config("a"), mode, clock, "stream", seen, (AttemptFinished,))
    assert seen[0].first_chunk == 0.0  # a first chunk at the very start is 0 s, not unknown


@pytest.mark.parametrize("mode", MODES)
def test_a_streams_usage_corrects_its_tokens(mode: str, clock: FakeClock, timed: None) -> None:
    """Like a chat reply: 60 max_tokens held, 2 used (the stream's usage), so a second stream fits in 100."""
    Stub.scripts["a"] = [["a", DONE], ["b", DONE]]
    cfg = limited({"tokens_per_minute": 100, "max_wait": 30})

    assert two_streams(cfg, mode, clock, max_tokens=60) == ["a", "b"]
    assert clock.sleeps == [] and len(Stub.sent["a"]) == 2


@pytest.mark.parametrize("mode", MODES)
def test_a_streams_rate_limit_headers_pause_the_target(mode: str, clock: FakeClock) -> None:
    """The stream's x-ratelimit-* say no request is left for 5 s: the next stream waits those 5 s first."""
    used_up = ProviderRateLimit(remaining_requests=0, reset_requests=5.0)
    Stub.scripts["a"] = [[turnout.ChatChunk(text="one", rate_limit=used_up)], ["two"]]
    cfg = limited({"requests_per_minute": 100, "max_wait": 30})

    texts = two_streams(cfg, mode, clock)
    assert texts == ["one", "two"]
    assert clock.sleeps == [5.0]


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_without_usage_keeps_its_estimate(mode: str, clock: FakeClock, timed: None) -> None:
    """No usage from the server: the 60 max_tokens stay held, so a second stream waits for the window (60 s)."""
    Stub.scripts["a"] = [["a"], ["b"]]
    cfg = limited({"tokens_per_minute": 100, "max_wait": 120})

    texts = two_streams(cfg, mode, clock, max_tokens=60)
    assert texts == ["a", "b"]
    assert clock.sleeps == [60.0]


# --- stream timeouts name the target (docs/streaming.md, "Stream timeouts") ---------------------------
# The watch runs on time.monotonic(): a 1 ms first_token_timeout against a 20 ms silence is late on any
# machine, so these stay deterministic while waiting only milliseconds.


@pytest.fixture
def slow_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stub streams that are silent for 20 ms before each scripted piece."""
    original = Stub.stream

    def stream(self: Stub, model: str, request: turnout.ChatRequest) -> Iterator[turnout.ChatChunk]:
        time.sleep(0.02)
        yield from original(self, model, request)

    async def astream(self: Stub, model: str, request: turnout.ChatRequest) -> AsyncIterator[turnout.ChatChunk]:
        await asyncio.sleep(0.02)
        for chunk in original(self, model, request):
            yield chunk

    monkeypatch.setattr(Stub, "stream", stream)
    monkeypatch.setattr(Stub, "astream", astream)


@pytest.mark.parametrize("mode", MODES)
def test_a_late_first_chunk_is_a_stream_timeout_of_this_target(mode: str, clock: FakeClock, slow_start: None) -> None:
    cfg = stub_config("a", first_token_timeout=0.001, retry={"max_attempts": 1})
    with pytest.raises(turnout.StreamTimeoutError) as info:
        run(cfg, mode, clock, "stream")
    assert (info.value.provider, info.value.model) == ("a", "m")
    assert "first_token_timeout" in str(info.value)


def test_a_read_failing_after_the_timeout_is_the_timeout(clock: FakeClock, slow_start: None) -> None:
    """A read that fails once the stream is late (the watchdog shut its socket) is reported as the timeout."""
    Stub.scripts["a"] = [[err(APIConnectionError)]]
    cfg = stub_config("a", first_token_timeout=0.001, retry={"max_attempts": 1})
    with pytest.raises(turnout.StreamTimeoutError) as info:
        run(cfg, "sync", clock, "stream")
    assert (info.value.provider, info.value.model) == ("a", "m")
    assert isinstance(info.value.__cause__, APIConnectionError)
