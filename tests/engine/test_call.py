"""Each decision of `turnout.engine.call.Call`, pinned exactly, over a scripted in-memory provider."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

import turnout
from turnout import AsyncClient, Client
from turnout.engine import CallFinished, RetryScheduled, should_fall_back
from turnout.errors import (
    APIConnectionError,
    BadRequestError,
    BudgetExceededError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from turnout.providers import register
from turnout.testing import FakeClock
from turnout.types import ProviderRateLimit

from ..shared.conftest import _url
from .conftest import Stub, stub_config

MODES = ["sync", "async"]


def run(cfg: dict[str, Any], mode: str, clock: FakeClock, kind: str = "chat", **kwargs: Any) -> Any:
    async def go() -> Any:
        async with AsyncClient(cfg, clock=clock) as client:
            if kind == "chat":
                return await client.chat("r", "Hi", **kwargs)
            if kind == "embed":
                return await client.embed("r", kwargs.pop("texts"), **kwargs)
            async with client.stream("r", "Hi", **kwargs) as stream:
                return await stream.get_response()

    if mode == "async":
        return asyncio.run(go())
    with Client(cfg, clock=clock) as client:
        if kind == "chat":
            return client.chat("r", "Hi", **kwargs)
        if kind == "embed":
            return client.embed("r", kwargs.pop("texts"), **kwargs)
        with client.stream("r", "Hi", **kwargs) as stream:
            return stream.get_response()


def err(cls: type[turnout.ProviderError], **kwargs: Any) -> turnout.ProviderError:
    return cls("boom", provider="a", model="m", **kwargs)


# --- should_fall_back ------------------------------------------------------------------------------


def test_fall_back_on_retryable_only_when_listed() -> None:
    assert should_fall_back(err(ServerError, status_code=503), ["retryable"])
    assert not should_fall_back(err(ServerError, status_code=503), ["context_window"])
    assert not should_fall_back(err(BadRequestError, status_code=400), ["retryable"])
    assert should_fall_back(err(BadRequestError, status_code=400), ["bad_request"])


def test_never_fall_back_after_content() -> None:
    cut = err(StreamInterruptedError)
    cut.after_content = True
    assert not should_fall_back(cut, ["retryable", "connection"])
    before = err(StreamInterruptedError)
    assert should_fall_back(before, ["retryable"])


# --- route: retries, fallback, what is raised -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_retry_then_fallback_then_answer(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)] * 3
    reply = run(stub_config("a", "b"), mode, clock)
    assert reply.provider == "b"
    assert [a.outcome for a in reply.attempts] == ["ServerError"] * 3 + ["ok"]
    assert len(Stub.sent["a"]) == 3 and len(Stub.sent["b"]) == 1
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("mode", MODES)
def test_a_non_fallback_error_on_the_first_target_is_raised_as_is(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(BadRequestError, status_code=400)]
    with pytest.raises(BadRequestError) as info:
        run(stub_config("a", "b"), mode, clock)
    assert "b" not in Stub.sent
    assert [a.outcome for a in info.value.attempts] == ["BadRequestError"]


@pytest.mark.parametrize("mode", MODES)
def test_every_target_failing_raises_a_group_with_one_error_each(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=500)]
    Stub.scripts["b"] = [err(APIConnectionError)]
    with pytest.raises(turnout.AllTargetsFailedError) as info:
        run(stub_config("a", "b", retry={"max_attempts": 1}), mode, clock)
    assert [type(e) for e in info.value.exceptions] == [ServerError, APIConnectionError]
    assert [a.outcome for a in info.value.attempts] == ["ServerError", "APIConnectionError"]
    assert "all 2 targets of 'r' failed" in str(info.value)


@pytest.mark.parametrize("mode", MODES)
def test_the_only_target_failing_raises_its_own_error(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=500)]
    with pytest.raises(ServerError):
        run(stub_config("a", retry={"max_attempts": 1}), mode, clock)


@pytest.mark.parametrize("mode", MODES)
def test_a_caller_fault_counts_as_a_healthy_target(mode: str, clock: FakeClock) -> None:
    """A 400 is the caller's fault: the breaker records a success, the circuit stays closed."""
    Stub.scripts["a"] = [err(BadRequestError, status_code=400)] * 3
    cfg = stub_config("a", breaker={"failure_threshold": 1})
    for _ in range(3):
        with pytest.raises(BadRequestError):
            run(cfg, mode, clock)
    assert len(Stub.sent["a"]) == 3


def test_a_target_fault_opens_the_circuit_and_later_calls_skip_it(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    cfg = stub_config("a", "b", retry={"max_attempts": 1}, breaker={"failure_threshold": 1, "cooldown": 30})
    with Client(cfg, clock=clock) as client:
        assert client.chat("r", "Hi").provider == "b"
        second = client.chat("r", "Hi")
        [health] = [h for h in client.health() if h.target == "a:m"]
    assert len(Stub.sent["a"]) == 1
    skipped = second.attempts[0]
    assert (skipped.provider, skipped.outcome, skipped.skipped, skipped.latency) == ("a", "CircuitOpenError", True, 0)
    assert health.state == "open" and health.retry_in == 30


# --- time ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_each_attempt_timeout_is_shortened_to_the_time_left(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503), "ok"]
    run(stub_config("a", deadline=10, retry={"initial_delay": 4, "jitter": 0}), mode, clock, timeout=60)
    first, second = (r.timeout for r in Stub.sent["a"])
    assert first == 10 and second == 6


@pytest.mark.parametrize("mode", MODES)
def test_a_shorter_own_timeout_is_kept(mode: str, clock: FakeClock) -> None:
    run(stub_config("a", deadline=10), mode, clock, timeout=3)
    assert Stub.sent["a"][0].timeout == 3


@pytest.mark.parametrize("mode", MODES)
def test_no_deadline_leaves_the_timeout_alone(mode: str, clock: FakeClock) -> None:
    run(stub_config("a"), mode, clock, timeout=60)
    assert Stub.sent["a"][0].timeout == 60


@pytest.mark.parametrize("mode", MODES)
def test_a_target_reached_after_the_deadline_is_skipped(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    cfg = stub_config("a", "b", deadline=5, retry={"max_attempts": 1})
    original = Stub.chat

    def slow(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        clock.advance(6)
        return original(self, model, request)

    Stub.chat = slow  # type: ignore[method-assign]
    try:
        with pytest.raises(turnout.AllTargetsFailedError) as info:
            run(cfg, mode, clock)
    finally:
        Stub.chat = original  # type: ignore[method-assign]
    skipped = info.value.attempts[-1]
    assert (skipped.provider, skipped.skipped) == ("b", True)
    assert "deadline has passed" in (skipped.error or "")
    assert "b" not in Stub.sent


# --- context pre-check ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("counted", "skipped"), [(91, True), (90, False)])
def test_precheck_boundary(mode: str, clock: FakeClock, counted: int, skipped: bool) -> None:
    """Prompt + max_tokens must fit the window: 90 + 10 = 100 fits a 100-token window, 91 does not."""
    Stub.windows["a"], Stub.counts["a"] = 100, counted
    cfg = stub_config("a", "b")
    long_prompt = "x" * 200  # longer than the window in bytes, so it is counted

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            return await client.chat("r", long_prompt, max_tokens=10)

    if mode == "async":
        reply = asyncio.run(go())
    else:
        with Client(cfg, clock=clock) as client:
            reply = client.chat("r", long_prompt, max_tokens=10)
    assert (reply.provider == "b") is skipped
    if skipped:
        assert "a" not in Stub.sent
        assert "the prompt is 91 tokens and max_tokens is 10, more than the 100-token" in (
            reply.attempts[0].error or ""
        )


def test_a_small_prompt_is_not_counted(clock: FakeClock) -> None:
    """UTF-8 size + max_tokens within the window: surely fits, no token count needed."""
    Stub.windows["a"], Stub.counts["a"] = 100, 1000  # a count would skip it
    with Client(stub_config("a", "b"), clock=clock) as client:
        assert client.chat("r", "Hi", max_tokens=10).provider == "a"


def test_precheck_off(clock: FakeClock) -> None:
    Stub.windows["a"], Stub.counts["a"] = 100, 1000
    with Client(stub_config("a", "b", precheck_context=False), clock=clock) as client:
        assert client.chat("r", "x" * 200, max_tokens=10).provider == "a"


# --- money -----------------------------------------------------------------------------------------


def test_a_cut_stream_without_usage_spends_the_whole_hold(clock: FakeClock) -> None:
    Stub.scripts["a"] = [["partial", err(APIConnectionError)]]
    cfg = stub_config("a")
    cfg["budget"] = {"max_usd": 1, "period": "day"}
    with Client(cfg, clock=clock) as client:
        with pytest.raises(StreamInterruptedError) as info, client.stream("r", "Hi", max_tokens=100) as stream:
            for _ in stream:
                pass
        [status] = client.budgets.status() if client.budgets else []
    assert info.value.partial_text == "partial"
    assert status.reserved == 0 and status.spent > 0
    held = client._pricing.bounds(client.provider("a"), "m", 0, 100)[1]
    assert held is not None and status.spent >= held.total


def test_a_failed_call_frees_its_hold(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(BadRequestError, status_code=400)]
    cfg = stub_config("a")
    cfg["budget"] = {"max_usd": 1, "period": "day"}
    with Client(cfg, clock=clock) as client:
        with pytest.raises(BadRequestError):
            client.chat("r", "Hi", max_tokens=10)
        [status] = client.budgets.status() if client.budgets else []
    assert status.spent == 0 and status.reserved == 0


@pytest.mark.parametrize("mode", MODES)
def test_reply_cost_is_priced_from_its_usage(mode: str, clock: FakeClock) -> None:
    reply = run(stub_config("a"), mode, clock)
    assert reply.cost is not None
    assert reply.cost.total == Decimal(10 * 1 + 5 * 2) / 1_000_000


# --- embeddings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_embedding_batches_go_to_one_target_and_sum(mode: str, clock: FakeClock) -> None:
    reply = run(stub_config("a", "b"), mode, clock, kind="embed", texts=["a", "bb", "ccc", "dddd", "e"])
    assert reply.vectors == [[1.0], [2.0], [3.0], [4.0], [1.0]]
    assert len(Stub.sent["a"]) == 3 and "b" not in Stub.sent
    assert reply.usage.prompt_tokens == 5
    assert [a.outcome for a in reply.attempts] == ["ok"] * 3


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_vector_count_fails_the_attempt(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [[[1.0]]]  # one vector for a batch of two
    reply = run(
        stub_config("a", "b", fallback_on=["retryable", "invalid_response"]),
        mode,
        clock,
        kind="embed",
        texts=["a", "b"],
    )
    assert reply.provider == "b"
    assert reply.attempts[0].outcome == "ResponseValidationError"
    assert "sent 2 inputs but got 1 vectors back" in (reply.attempts[0].error or "")


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_batch_moves_the_whole_input_to_the_next_target(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = ["ok", err(ServerError, status_code=503)]
    reply = run(stub_config("a", "b", retry={"max_attempts": 1}), mode, clock, kind="embed", texts=["a", "b", "c"])
    assert reply.provider == "b" and len(Stub.sent["b"]) == 2
    assert len(reply.vectors) == 3


# --- streams ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_failing_before_content_is_retried(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [[err(APIConnectionError)], ["hello ", "world"]]
    reply = run(stub_config("a"), mode, clock, kind="stream")
    assert reply.text == "hello world"
    assert [a.outcome for a in reply.attempts] == ["APIConnectionError", "ok"]


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_failing_after_content_is_interrupted_not_retried(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [["hello ", err(APIConnectionError)]]
    with pytest.raises(StreamInterruptedError) as info:
        run(stub_config("a", "b"), mode, clock, kind="stream")
    assert info.value.partial_text == "hello "
    assert info.value.after_content
    assert isinstance(info.value.__cause__, APIConnectionError)
    assert len(Stub.sent["a"]) == 1 and "b" not in Stub.sent


@pytest.mark.parametrize("mode", MODES)
def test_rate_limited_stream_waits_as_the_server_says(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [[err(RateLimitError, status_code=429, retry_after=7)], ["ok"]]
    run(stub_config("a"), mode, clock, kind="stream")
    assert clock.sleeps == [7]


# --- a call's own deadline ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_calls_own_deadline_overrides_the_routes(mode: str, clock: FakeClock) -> None:
    """deadline= on the call: each attempt's timeout is what is left of it (the route has none)."""
    Stub.scripts["a"] = [err(ServerError, status_code=503), "ok"]
    run(stub_config("a", retry={"initial_delay": 4, "jitter": 0}), mode, clock, timeout=60, deadline=10)
    first, second = (r.timeout for r in Stub.sent["a"])
    assert first == 10 and second == 6


def test_a_calls_deadline_stops_retries_it_cannot_wait_for(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(RateLimitError, status_code=429, retry_after=30)]
    with pytest.raises(RateLimitError), Client(stub_config("a"), clock=clock) as client:
        client.chat("r", "Hi", deadline=5)
    assert clock.sleeps == [] and len(Stub.sent["a"]) == 1


@pytest.mark.parametrize("bad", [0, -1, True, "5", 10**9])
def test_a_bad_deadline_is_refused_before_sending(bad: object, clock: FakeClock) -> None:
    with Client(stub_config("a"), clock=clock) as client, pytest.raises(turnout.InvalidArgumentError, match="deadline"):
        client.chat("r", "Hi", deadline=bad)  # type: ignore[arg-type]
    assert "a" not in Stub.sent


@pytest.mark.parametrize("mode", MODES)
def test_an_embedding_call_takes_a_deadline(mode: str, clock: FakeClock) -> None:
    run(stub_config("a"), mode, clock, kind="embed", texts=["x"], deadline=7, timeout=60)
    assert Stub.sent["a"][0].timeout == 7


# --- what is logged and published along the route ---------------------------------------------------


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, dict[str, Any]]]:
    keys = ("alias", "target", "attempt", "outcome", "latency", "cost")
    return [
        (r.levelno, r.getMessage(), {k: r.__dict__[k] for k in keys if k in r.__dict__})
        for r in caplog.records
        if r.name == "turnout"
    ]


def test_fallback_and_giving_up_are_logged_with_their_fields(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    Stub.scripts["b"] = [BadRequestError("boom", provider="b", model="m", status_code=400)]
    with (
        caplog.at_level(logging.DEBUG, logger="turnout"),
        Client(stub_config("a", "b", retry={"max_attempts": 1}), clock=clock) as client,
    ):
        with pytest.raises(turnout.AllTargetsFailedError):
            client.chat("r", "Hi")
    records = _records(caplog)
    fields = {"alias": "r", "target": "a:m", "attempt": 1, "outcome": "ServerError"}
    assert (logging.INFO, "route r: a:m gave ServerError; falling back to the next target", fields) in records
    fields = {"alias": "r", "target": "b:m", "attempt": 2, "outcome": "BadRequestError"}
    assert (logging.DEBUG, "route r: b:m gave BadRequestError; giving up", fields) in records


def test_a_retry_is_logged_and_published(caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    first = err(ServerError, status_code=503)
    Stub.scripts["a"] = [first]
    seen: list[RetryScheduled] = []
    cfg = stub_config("a", retry={"initial_delay": 2, "jitter": 0})
    with caplog.at_level(logging.DEBUG, logger="turnout"), Client(cfg, clock=clock) as client:
        client.on(RetryScheduled, seen.append)
        client.chat("r", "Hi")
    fields = {"alias": "r", "target": "a:m", "attempt": 1, "outcome": "ServerError"}
    assert (logging.DEBUG, "route r: retrying a:m in 2.000s (attempt 1 failed)", fields) in _records(caplog)
    [event] = seen
    assert (event.route, event.provider, event.model, event.seconds, event.attempt) == ("r", "a", "m", 2, 1)
    assert event.error is first and event.call_id != 0


def test_every_target_failing_names_each_in_the_message(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=500)]
    Stub.scripts["b"] = [APIConnectionError("boom", provider="b", model="m")]
    with (
        pytest.raises(turnout.AllTargetsFailedError) as info,
        Client(stub_config("a", "b", retry={"max_attempts": 1}), clock=clock) as client,
    ):
        client.chat("r", "Hi")
    assert info.value.message == "all 2 targets of 'r' failed: a:m ServerError; b:m APIConnectionError"


# --- gates -------------------------------------------------------------------------------------------


def test_an_open_circuit_is_named_in_the_skip(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    cfg = stub_config("a", "b", retry={"max_attempts": 1}, breaker={"failure_threshold": 1, "cooldown": 30})
    with Client(cfg, clock=clock) as client:
        client.chat("r", "Hi")
        clock.advance(10)
        Stub.scripts["b"] = [err(ServerError, status_code=503)]
        with pytest.raises(turnout.AllTargetsFailedError) as info:
            client.chat("r", "Hi")
    skip = info.value.exceptions[0]
    assert isinstance(skip, turnout.CircuitOpenError)
    assert skip.message == "skipped a:m: circuit open (ServerError)"
    assert (skip.provider, skip.model, skip.retry_in) == ("a", "m", 20)


def test_a_skip_for_the_deadline_has_no_retry_in(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    original = Stub.chat

    def slow(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        clock.advance(5)  # exactly the deadline: nothing is left
        return original(self, model, request)

    Stub.chat = slow  # type: ignore[method-assign]
    try:
        with (
            pytest.raises(turnout.AllTargetsFailedError) as info,
            Client(stub_config("a", "b", deadline=5, retry={"max_attempts": 1}), clock=clock) as client,
        ):
            client.chat("r", "Hi")
    finally:
        Stub.chat = original  # type: ignore[method-assign]
    skip = info.value.exceptions[1]
    assert isinstance(skip, turnout.CircuitOpenError)
    assert skip.message == "skipped b:m: the call's deadline has passed"
    assert (skip.provider, skip.model, skip.retry_in) == ("b", "m", None)


def test_embeddings_skip_the_context_precheck(clock: FakeClock) -> None:
    """Only chat checks context windows: an embedding target with a tiny window is still sent to."""
    Stub.windows["a"] = 1
    with Client(stub_config("a"), clock=clock) as client:
        reply = client.embed("r", ["a long text"])
    assert reply.provider == "a"


# --- waiting for a circuit (wait_for_recovery) --------------------------------------------------------


def _recovery(clock: FakeClock, deadline: float) -> dict[str, Any]:
    Stub.scripts["a"] = [err(ServerError, status_code=503), err(ServerError, status_code=503)]
    return stub_config(
        "a",
        retry={"max_attempts": 1},
        breaker={"failure_threshold": 1, "cooldown": 5},
        wait_for_recovery=True,
        deadline=deadline,
    )


def test_recovery_waits_for_the_probe_and_a_failed_probe_is_raised(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    with Client(_recovery(clock, 5.5), clock=clock) as client:
        with pytest.raises(ServerError):
            client.chat("r", "Hi")
        with caplog.at_level(logging.DEBUG, logger="turnout"), pytest.raises(ServerError) as info:
            client.chat("r", "Hi")
    assert clock.sleeps == [5]
    assert [a.outcome for a in info.value.attempts] == ["CircuitOpenError", "ServerError"]
    assert (logging.DEBUG, "route r: every circuit is open; waiting 5.000s for the first probe", {}) in _records(caplog)


def test_recovery_never_waits_as_long_as_the_time_left(clock: FakeClock) -> None:
    with Client(_recovery(clock, 5), clock=clock) as client:
        with pytest.raises(ServerError):
            client.chat("r", "Hi")
        with pytest.raises(turnout.CircuitOpenError):
            client.chat("r", "Hi")
    assert clock.sleeps == []


# --- rate limits ([limits]) ---------------------------------------------------------------------------


def _limited(limit: dict[str, Any], **route: Any) -> dict[str, Any]:
    cfg = stub_config("a", **route)
    cfg["limits"] = {"a:m": limit}
    return cfg


def test_a_refusal_by_the_local_limit_says_what_and_why(clock: FakeClock) -> None:
    with Client(_limited({"requests_per_minute": 1, "max_wait": 0}), clock=clock) as client:
        client.chat("r", "Hi")
        with pytest.raises(turnout.LocalRateLimitError) as info:
            client.chat("r", "Hi")
    exc = info.value
    assert exc.message == (
        "a:m: no room under [limits.'a:m'] for 60s more, longer than this call may wait "
        "(its deadline, else max_wait); nothing was sent"
    )
    assert (exc.provider, exc.model, exc.retry_after) == ("a", "m", 60)
    [attempt] = exc.attempts
    assert (attempt.outcome, attempt.skipped, attempt.latency) == ("LocalRateLimitError", True, 0)
    assert len(Stub.sent["a"]) == 1


@pytest.mark.parametrize(("route", "waits"), [({}, [60]), ({"deadline": 59}, [])])
def test_a_call_waits_for_room_until_its_deadline_else_max_wait(
    route: dict[str, Any], waits: list[float], clock: FakeClock
) -> None:
    with Client(_limited({"requests_per_minute": 1, "max_wait": 61}, **route), clock=clock) as client:
        client.chat("r", "Hi")
        try:
            client.chat("r", "Hi")
        except turnout.LocalRateLimitError:
            assert waits == []
    assert clock.sleeps == waits
    assert len(Stub.sent["a"]) == 1 + len(waits)


@pytest.mark.parametrize(("spare", "refused"), [(0, False), (-1, True)])
def test_tokens_per_minute_counts_the_prompt_estimate_plus_max_tokens(
    spare: int, refused: bool, clock: FakeClock
) -> None:
    """The first reply's usage (15) stays in the window; the next asks for "Hi"'s estimate (9) plus max_tokens."""
    with Client(_limited({"tokens_per_minute": 15 + 9 + 40 + spare, "max_wait": 0}), clock=clock) as client:
        client.chat("r", "Hi", max_tokens=40)
        try:
            client.chat("r", "Hi", max_tokens=40)
        except turnout.LocalRateLimitError:
            assert refused
        else:
            assert not refused


def test_tokens_per_minute_counts_max_completion_tokens_without_max_tokens(clock: FakeClock) -> None:
    with Client(_limited({"tokens_per_minute": 15 + 9 + 39, "max_wait": 0}), clock=clock) as client:
        client.chat("r", "Hi")
        with pytest.raises(turnout.LocalRateLimitError):
            client.chat("r", "Hi", max_completion_tokens=40)


class Headers(Stub):
    """A stub whose replies carry the rate-limit headers in ``said`` (as OpenAI's ``x-ratelimit-*``)."""

    said: ProviderRateLimit | None = None

    def chat(self, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        reply = super().chat(model, request)
        return reply.model_copy(update={"rate_limit": Headers.said})


@pytest.fixture
def headers() -> Iterator[type[Headers]]:
    register("engine-stub-headers", Headers)
    yield Headers
    Headers.said = None


def _headers_config(limits: bool = True) -> dict[str, Any]:
    cfg = stub_config("a")
    cfg["providers"]["a"]["type"] = "engine-stub-headers"
    if limits:
        cfg["limits"] = {"a:m": {"requests_per_minute": 1000}}
    return cfg


@pytest.mark.parametrize(
    ("said", "resets"),
    [
        (ProviderRateLimit(remaining_requests=0, reset_requests=5), [5]),
        (ProviderRateLimit(remaining_tokens=0, reset_tokens=7), [7]),
        (ProviderRateLimit(remaining_requests=0, reset_requests=5, remaining_tokens=0, reset_tokens=7), [5, 7]),
        (ProviderRateLimit(remaining_requests=1, reset_requests=5, remaining_tokens=1, reset_tokens=7), []),
        (ProviderRateLimit(remaining_requests=0, reset_requests=0, remaining_tokens=0, reset_tokens=0), []),
        (ProviderRateLimit(remaining_requests=0, remaining_tokens=0), []),
    ],
)
def test_the_providers_headers_pause_its_limiter(
    said: ProviderRateLimit,
    resets: list[float],
    headers: type[Headers],
    caplog: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    """Used up until a reset: the next request waits for the longest reset (no 429 needed)."""
    headers.said = said
    with caplog.at_level(logging.DEBUG, logger="turnout"), Client(_headers_config(), clock=clock) as client:
        client.chat("r", "Hi")
        client.chat("r", "Hi")
    assert clock.sleeps == resets[-1:]
    logged = [m for _, m, _ in _records(caplog) if "pausing" in m]
    assert logged == [f"route r: a:m says its limit resets in {s:.3f}s; pausing" for s in resets] * 2


def test_the_providers_headers_need_no_limiter(headers: type[Headers], clock: FakeClock) -> None:
    headers.said = ProviderRateLimit(remaining_requests=0, reset_requests=5)
    with Client(_headers_config(limits=False), clock=clock) as client:
        assert client.chat("r", "Hi").rate_limit == headers.said
    assert clock.sleeps == []


# --- the response cache --------------------------------------------------------------------------------


class Parsed(BaseModel):
    n: int


def test_a_cache_hit_keeps_the_stored_attempts_and_what_it_saved(clock: FakeClock) -> None:
    Stub.scripts["a"] = ['{"n": 1}']
    cfg = stub_config("a")
    cfg["cache"] = {"backend": "memory"}
    seen: list[CallFinished] = []
    with Client(cfg, clock=clock) as client:
        client.on(CallFinished, seen.append)
        first = client.chat("r", "Hi", response_model=Parsed)
        second = client.chat("r", "Hi", response_model=Parsed)
    assert second.from_cache and len(Stub.sent["a"]) == 1
    assert second.parsed == Parsed(n=1) and [a.outcome for a in second.attempts] == ["cached"]
    assert seen[1].attempts == second.attempts
    assert [f.saved for f in seen] == [None, first.cost]


# --- shared state ([state] on Redis) -------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    """The test Redis (skipped without one, as in tests/shared)."""
    return _url("TURNOUT_TEST_REDIS_URL")


def _shared(redis_url: str, **extra: Any) -> dict[str, Any]:
    cfg = stub_config("a", "b", retry={"max_attempts": 1}, breaker={"failure_threshold": 1, "cooldown": 30})
    cfg["state"] = {"url": redis_url, "prefix": f"test-{uuid.uuid4().hex[:12]}"}
    cfg.update(extra)
    return cfg


def test_a_circuit_opened_by_another_client_is_skipped(redis_url: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    cfg = _shared(redis_url)
    with Client(cfg, clock=clock) as first:
        assert first.chat("r", "Hi").provider == "b"
    with Client(cfg, clock=clock) as second:
        with pytest.raises(turnout.AllTargetsFailedError) as info:
            Stub.scripts["b"] = [BadRequestError("boom", provider="b", model="m", status_code=400)]
            second.chat("r", "Hi")
    skip = info.value.exceptions[0]
    assert isinstance(skip, turnout.CircuitOpenError)
    assert (skip.message, skip.provider, skip.model) == ("skipped a:m: circuit open (shared state)", "a", "m")
    assert skip.retry_in == pytest.approx(30, abs=1)
    assert len(Stub.sent["a"]) == 1


def test_a_shared_budget_holds_the_worst_case(redis_url: str, clock: FakeClock) -> None:
    cfg = _shared(redis_url, budget={"max_usd": "0.00001"})
    with pytest.raises(BudgetExceededError) as info, Client(cfg, clock=clock) as client:
        client.chat("r", "Hi", max_tokens=10)
    assert (info.value.budget, info.value.needed) == ("client", Decimal("0.000033"))
    assert "(shared)" in str(info.value) and "a" not in Stub.sent


def test_the_last_moments_before_the_deadline_are_used(clock: FakeClock) -> None:
    """Half a second left: the next target is still tried, its timeout cut to that half second."""
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    original = Stub.chat

    def slow(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        if self.name == "a":
            clock.advance(9.5)
        return original(self, model, request)

    Stub.chat = slow  # type: ignore[method-assign]
    try:
        with Client(stub_config("a", "b", deadline=10, retry={"max_attempts": 1}), clock=clock) as client:
            assert client.chat("r", "Hi", timeout=60).provider == "b"
    finally:
        Stub.chat = original  # type: ignore[method-assign]
    assert [r.timeout for r in (*Stub.sent["a"], *Stub.sent["b"])] == [10, 0.5]


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_on_the_last_target_is_raised_alone_not_grouped(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [[err(ServerError, status_code=503)]]
    Stub.scripts["b"] = [["hello ", APIConnectionError("reset", provider="b", model="m")]]
    with pytest.raises(StreamInterruptedError) as info:
        run(stub_config("a", "b", retry={"max_attempts": 1}), mode, clock, kind="stream")
    assert (info.value.provider, info.value.partial_text) == ("b", "hello ")


def test_least_latency_orders_by_every_clients_averages(redis_url: str, clock: FakeClock) -> None:
    """A new client with [state] goes by what other clients measured: b (1 s) before a (3 s)."""
    cfg = _shared(redis_url)
    cfg["models"]["r"]["balance"] = "least-latency"
    original = Stub.chat

    def slow(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        clock.advance({"a": 3, "b": 1}[self.name])
        return original(self, model, request)

    Stub.chat = slow  # type: ignore[method-assign]
    try:
        with Client(cfg, clock=clock) as first:
            assert [first.chat("r", "Hi").provider for _ in range(2)] == ["a", "b"]  # unmeasured ones first
        with Client(cfg, clock=clock) as second:
            assert second.chat("r", "Hi").provider == "b"
    finally:
        Stub.chat = original  # type: ignore[method-assign]


def test_recovery_waits_for_the_first_circuit_to_half_open(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    cfg = stub_config(
        "a",
        "b",
        retry={"max_attempts": 1},
        breaker={"failure_threshold": 1, "cooldown": 5},
        wait_for_recovery=True,
        deadline=30,
    )
    with Client(cfg, clock=clock) as client:
        assert client.chat("r", "Hi").provider == "b"  # a opened at 1000 (until 1005)
        clock.advance(2)
        Stub.scripts["b"] = [err(ServerError, status_code=503)]
        with pytest.raises(turnout.AllTargetsFailedError):  # a skipped, b failed: not every skip was a circuit
            client.chat("r", "Hi")
        assert clock.sleeps == []
        reply = client.chat("r", "Hi")  # a opens again in 3 s, b in 5 s
    assert clock.sleeps == [3] and reply.provider == "a"


def test_without_wait_for_recovery_an_open_circuit_is_raised_at_once(clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    cfg = stub_config("a", retry={"max_attempts": 1}, breaker={"failure_threshold": 1, "cooldown": 5}, deadline=30)
    with Client(cfg, clock=clock) as client:
        with pytest.raises(ServerError):
            client.chat("r", "Hi")
        with pytest.raises(turnout.CircuitOpenError):
            client.chat("r", "Hi")
    assert clock.sleeps == [] and len(Stub.sent["a"]) == 1


def test_a_budget_on_another_route_holds_nothing_on_shared_state(redis_url: str, clock: FakeClock) -> None:
    cfg = _shared(redis_url)
    cfg["models"]["other"] = {"targets": ["a:m"], "budget": {"max_usd": "0.00001"}}
    with Client(cfg, clock=clock) as client:
        assert client.chat("r", "Hi").text == "ok"  # no max_tokens needed: no budget applies to r


def test_route_and_tag_budgets_hold_on_shared_state(redis_url: str, clock: FakeClock) -> None:
    cfg = _shared(redis_url, tag_budgets={"team": {"max_usd": "0.00001"}})
    cfg["models"]["r"]["budget"] = {"max_usd": "0.00001"}
    cfg["models"]["other"] = {"targets": ["a:m"]}
    with Client(cfg, clock=clock) as client:
        with pytest.raises(BudgetExceededError) as route:
            client.chat("r", "Hi", max_tokens=10)
        with pytest.raises(BudgetExceededError) as tag:
            client.chat("other", "Hi", max_tokens=10, tags={"team": "x"})
    assert (route.value.budget, tag.value.budget) == ("models.r", "tags.team=x")
    assert "a" not in Stub.sent
