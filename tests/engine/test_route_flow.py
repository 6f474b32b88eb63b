"""The decisions of `turnout.engine.flow`, pinned exactly over the scripted Stub provider.

Each test holds one promise of docs/reliability.md, docs/streaming.md or docs/bulk.md: the response
cache, rate-limit admission, ``wait_for_recovery`` against the deadline (chat, stream, embed),
Retry-After, the ``fallback_on`` categories (and what they leave out), resuming a cut stream, and
embedding batches. No sockets and a `FakeClock`, so `make mutation` can run them per mutant.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from pydantic import BaseModel

import turnout
from turnout import AsyncClient, Client
from turnout.engine.steps import FELL_THROUGH
from turnout.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
)
from turnout.events import CallFinished, CallStarted
from turnout.testing import FakeClock
from turnout.types import ProviderRateLimit

from .conftest import Stub, stub_config

MODES = ["sync", "async"]


def err(cls: type[turnout.ProviderError], provider: str = "a", **kwargs: Any) -> turnout.ProviderError:
    return cls("boom", provider=provider, model="m", **kwargs)


def run(
    cfg: dict[str, Any],
    mode: str,
    clock: FakeClock,
    kind: str = "chat",
    seen: list[Any] | None = None,
    events: tuple[type[Any], ...] = (),
    **kwargs: Any,
) -> Any:
    """One call on route ``r``: chat, stream (the final reply) or embed (``texts=``); events into ``seen``."""

    def subscribe(client: Client | AsyncClient) -> None:
        for kind_ in events:
            client.on(kind_, (seen if seen is not None else []).append)

    async def go() -> Any:
        async with AsyncClient(cfg, clock=clock) as client:
            subscribe(client)
            if kind == "chat":
                return await client.chat("r", "Hi", **kwargs)
            if kind == "embed":
                return await client.embed("r", kwargs.pop("texts"), **kwargs)
            async with client.stream("r", "Hi", **kwargs) as stream:
                return await stream.get_response()

    if mode == "async":
        return asyncio.run(go())
    with Client(cfg, clock=clock) as client:
        subscribe(client)
        if kind == "chat":
            return client.chat("r", "Hi", **kwargs)
        if kind == "embed":
            return client.embed("r", kwargs.pop("texts"), **kwargs)
        with client.stream("r", "Hi", **kwargs) as stream:
            return stream.get_response()


def outcomes(reply_or_error: Any) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome) for a in reply_or_error.attempts]


# --- the response cache (docs/bulk.md, "The response cache") ---------------------------------------


def cached(*names: str, **route: Any) -> dict[str, Any]:
    cfg = stub_config(*names or ("a",), **route)
    cfg["cache"] = {"backend": "memory"}
    return cfg


@pytest.mark.parametrize("mode", MODES)
def test_a_repeated_request_is_answered_from_the_cache(mode: str, clock: FakeClock) -> None:
    seen: list[CallFinished] = []

    async def go() -> tuple[turnout.ChatResponse, turnout.ChatResponse, str]:
        async with AsyncClient(cached(), clock=clock) as client:
            client.on(CallFinished, seen.append)
            first = await client.chat("r", "Hi")
            again = await client.chat("r", "Hi")
            async with client.stream("r", "Hi") as stream:
                text = "".join([chunk.text or "" async for chunk in stream])
                replayed = await stream.get_response()
            assert replayed.from_cache
            return first, again, text

    if mode == "async":
        first, again, text = asyncio.run(go())
    else:
        with Client(cached(), clock=clock) as client:
            client.on(CallFinished, seen.append)
            first = client.chat("r", "Hi")
            again = client.chat("r", "Hi")
            with client.stream("r", "Hi") as stream:
                text = "".join(chunk.text or "" for chunk in stream)
            assert stream.response is not None and stream.response.from_cache
    assert not first.from_cache and again.from_cache
    assert again.text == first.text == text == "ok"
    assert again.cost is not None and again.cost.total == 0
    assert len(Stub.sent["a"]) == 1  # nothing was sent for the hit nor for the replayed stream
    assert first.cost is not None and [e.saved for e in seen] == [None, first.cost, first.cost]
    assert outcomes(again) == [("a", "cached")]


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_call_is_not_stored(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(BadRequestError, status_code=400)]
    with pytest.raises(BadRequestError):
        run(cached(), mode, clock)
    reply = run(cached(), mode, clock)
    assert not reply.from_cache and len(Stub.sent["a"]) == 2


# --- rate-limit admission (docs/many-workers.md, "Rate limits") ------------------------------------


def limited(limit: dict[str, Any], *names: str, **route: Any) -> dict[str, Any]:
    cfg = stub_config(*names or ("a",), **route)
    cfg["limits"] = {"a:m": limit}
    return cfg


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STATE_DOWN = {"url": f"redis://127.0.0.1:{_closed_port()}/0", "prefix": "engine-tests"}
"""[state] on a Redis that refuses connections: every round trip fails at once and the process counts alone."""


@pytest.mark.parametrize("mode", MODES)
def test_a_shared_limit_counts_in_process_while_the_store_is_down(mode: str, clock: FakeClock) -> None:
    """The limiter's round trip (a `Store` step) fails; the request is admitted, or refused, as a local one."""
    cfg = limited({"requests_per_minute": 1, "window": 10, "max_wait": 5})
    cfg["state"] = STATE_DOWN

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            await client.chat("r", "Hi")
            await client.chat("r", "Hi")

    with pytest.raises(turnout.LocalRateLimitError) as info:
        if mode == "async":
            asyncio.run(go())
        else:
            with Client(cfg, clock=clock) as client:
                client.chat("r", "Hi")
                client.chat("r", "Hi")
    assert info.value.retry_after == 10.0 and clock.sleeps == []
    assert len(Stub.sent["a"]) == 1


def test_a_request_waits_for_room_in_the_window(clock: FakeClock) -> None:
    with Client(limited({"requests_per_minute": 1, "window": 10}), clock=clock) as client:
        client.chat("r", "Hi")
        clock.advance(4)
        reply = client.chat("r", "Hi")
    assert clock.sleeps == [6.0]  # the first request leaves the 10 s window 6 s later
    assert outcomes(reply) == [("a", "ok")] and len(Stub.sent["a"]) == 2


@pytest.mark.parametrize("mode", MODES)
def test_no_room_within_max_wait_is_a_local_rate_limit_error(mode: str, clock: FakeClock) -> None:
    cfg = limited({"requests_per_minute": 1, "window": 60, "max_wait": 30})

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            await client.chat("r", "Hi")
            await client.chat("r", "Hi")

    with pytest.raises(turnout.LocalRateLimitError) as info:
        if mode == "async":
            asyncio.run(go())
        else:
            with Client(cfg, clock=clock) as client:
                client.chat("r", "Hi")
                client.chat("r", "Hi")
    assert clock.sleeps == [] and len(Stub.sent["a"]) == 1
    [attempt] = info.value.attempts
    assert (attempt.provider, attempt.outcome, attempt.skipped) == ("a", "LocalRateLimitError", True)
    assert info.value.retry_after == 60.0
    assert "no room under [limits.'a:m'] for 60s more" in str(info.value)


def test_no_room_falls_back_to_the_next_target(clock: FakeClock) -> None:
    with Client(limited({"requests_per_minute": 1, "max_wait": 30}, "a", "b"), clock=clock) as client:
        client.chat("r", "Hi")
        reply = client.chat("r", "Hi")
    assert reply.provider == "b" and clock.sleeps == []
    assert [(a.provider, a.outcome, a.skipped) for a in reply.attempts] == [
        ("a", "LocalRateLimitError", True),
        ("b", "ok", False),
    ]


def test_a_wait_exactly_up_to_max_wait_is_taken(clock: FakeClock) -> None:
    with Client(limited({"requests_per_minute": 1, "window": 30, "max_wait": 30}), clock=clock) as client:
        client.chat("r", "Hi")
        client.chat("r", "Hi")
    assert clock.sleeps == [30.0]


@pytest.mark.parametrize("kind", ["chat", "stream"])
def test_the_deadline_bounds_the_wait_for_room(kind: str, clock: FakeClock) -> None:
    """With a deadline the call waits up to it, not up to max_wait."""
    cfg = limited({"requests_per_minute": 1, "window": 10, "max_wait": 60}, deadline=5)
    with Client(cfg, clock=clock) as client:
        client.chat("r", "Hi")
        with pytest.raises(turnout.LocalRateLimitError):
            if kind == "chat":
                client.chat("r", "Hi")
            else:
                with client.stream("r", "Hi") as stream:
                    stream.get_response()
    assert clock.sleeps == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["chat"])
def test_tokens_are_corrected_by_the_replys_usage(mode: str, kind: str, clock: FakeClock) -> None:
    """60 max_tokens are held per request; the reply says 15 were used, so a second request fits in 100."""
    cfg = limited({"tokens_per_minute": 100, "max_wait": 30})

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            for _ in range(2):
                if kind == "chat":
                    await client.chat("r", "Hi", max_tokens=60)
                else:
                    async with client.stream("r", "Hi", max_tokens=60) as stream:
                        await stream.get_response()

    if mode == "async":
        asyncio.run(go())
    else:
        with Client(cfg, clock=clock) as client:
            for _ in range(2):
                if kind == "chat":
                    client.chat("r", "Hi", max_tokens=60)
                else:
                    with client.stream("r", "Hi", max_tokens=60) as stream:
                        stream.get_response()
    assert clock.sleeps == [] and len(Stub.sent["a"]) == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["chat", "stream", "embed"])
def test_each_request_frees_its_concurrency_slot(mode: str, kind: str, clock: FakeClock) -> None:
    """max_concurrent = 1: a failed attempt and a finished call each free the slot for the next."""
    cfg = limited({"max_concurrent": 1, "max_wait": 1}, retry={"jitter": 0, "initial_delay": 2})
    if kind == "stream":
        Stub.scripts["a"] = [[err(APIConnectionError)]]
    else:
        Stub.scripts["a"] = [err(ServerError, status_code=503)]

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            for _ in range(2):
                if kind == "chat":
                    await client.chat("r", "Hi")
                elif kind == "embed":
                    await client.embed("r", ["x"])
                else:
                    async with client.stream("r", "Hi") as stream:
                        await stream.get_response()

    if mode == "async":
        asyncio.run(go())
    else:
        with Client(cfg, clock=clock) as client:
            for _ in range(2):
                if kind == "chat":
                    client.chat("r", "Hi")
                elif kind == "embed":
                    client.embed("r", ["x"])
                else:
                    with client.stream("r", "Hi") as stream:
                        stream.get_response()
    assert clock.sleeps == [2.0]  # the retry's backoff only: no wait for a slot
    assert len(Stub.sent["a"]) == 3


# --- wait_for_recovery against the deadline (docs/reliability.md) ---------------------------------


def recovering(deadline: float) -> dict[str, Any]:
    return stub_config(
        "a",
        retry={"max_attempts": 1, "jitter": 0},
        breaker={"failure_threshold": 1, "cooldown": 5},
        wait_for_recovery=True,
        deadline=deadline,
    )


def twice(cfg: dict[str, Any], mode: str, clock: FakeClock, kind: str) -> Any:
    """Fail once (opening the circuit), then make the same call again on the same client."""

    async def one(client: AsyncClient) -> Any:
        if kind == "chat":
            return await client.chat("r", "Hi")
        if kind == "embed":
            return await client.embed("r", ["x"])
        async with client.stream("r", "Hi") as stream:
            return await stream.get_response()

    def sync_one(client: Client) -> Any:
        if kind == "chat":
            return client.chat("r", "Hi")
        if kind == "embed":
            return client.embed("r", ["x"])
        with client.stream("r", "Hi") as stream:
            return stream.get_response()

    async def go() -> Any:
        async with AsyncClient(cfg, clock=clock) as client:
            with pytest.raises(ServerError):
                await one(client)
            return await one(client)

    if mode == "async":
        return asyncio.run(go())
    with Client(cfg, clock=clock) as client:
        with pytest.raises(ServerError):
            sync_one(client)
        return sync_one(client)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["chat", "stream", "embed"])
def test_wait_for_recovery_waits_for_the_probe(mode: str, kind: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [[err(ServerError, status_code=503)] if kind == "stream" else err(ServerError, status_code=503)]
    reply = twice(recovering(30), mode, clock, kind)
    assert clock.sleeps == [5.0]
    assert [(a.outcome, a.skipped) for a in reply.attempts] == [("CircuitOpenError", True), ("ok", False)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["chat", "stream", "embed"])
@pytest.mark.parametrize("deadline", [4, 5])
def test_wait_for_recovery_never_waits_up_to_the_deadline(
    mode: str, kind: str, deadline: float, clock: FakeClock
) -> None:
    """A 5 s cooldown inside a 5 s (or 4 s) deadline is not waited for: the call fails at once."""
    Stub.scripts["a"] = [[err(ServerError, status_code=503)] if kind == "stream" else err(ServerError, status_code=503)]
    with pytest.raises(turnout.CircuitOpenError) as info:
        twice(recovering(deadline), mode, clock, kind)
    assert clock.sleeps == [] and len(Stub.sent["a"]) == 1
    assert info.value.retry_in == 5


def test_without_wait_for_recovery_an_open_circuit_fails_at_once(clock: FakeClock) -> None:
    cfg = recovering(30)
    cfg["models"]["r"]["wait_for_recovery"] = False
    Stub.scripts["a"] = [err(ServerError, status_code=503)]
    with pytest.raises(turnout.CircuitOpenError):
        twice(cfg, "sync", clock, "chat")
    assert clock.sleeps == []


# --- Retry-After (docs/reliability.md, "Retries") ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["chat", "embed"])
def test_retry_after_is_slept_exactly(mode: str, kind: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(RateLimitError, status_code=429, retry_after=7)]
    texts: dict[str, Any] = {"texts": ["x"]} if kind == "embed" else {}
    reply = run(stub_config("a"), mode, clock, kind, **texts)
    assert clock.sleeps == [7]
    assert outcomes(reply) == [("a", "RateLimitError"), ("a", "ok")]


@pytest.mark.parametrize("mode", MODES)
def test_a_retry_after_past_the_deadline_moves_to_the_next_target(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [err(RateLimitError, status_code=429, retry_after=30)]
    reply = run(stub_config("a", "b", deadline=10), mode, clock)
    assert clock.sleeps == [] and reply.provider == "b"
    assert outcomes(reply) == [("a", "RateLimitError"), ("b", "ok")]


# --- fallback_on: each category, and what is not in it ---------------------------------------------

CATEGORIES: list[tuple[str, turnout.ProviderError]] = [
    ("bad_request", err(BadRequestError, status_code=400)),
    ("auth", err(AuthenticationError, status_code=401)),
    ("not_found", err(NotFoundError, status_code=404)),
    ("quota", err(QuotaExceededError, status_code=429)),
    ("invalid_response", err(ResponseValidationError)),
    ("context_window", err(ContextWindowExceededError, status_code=400)),
    ("connection", err(APIConnectionError)),
    ("retryable", err(ServerError, status_code=503)),
]


WIDER = {"context_window": {"bad_request"}, "connection": {"retryable"}, "retryable": {"connection"}}
"""The other categories that also take an error: a context overflow is a 400, a dropped connection retryable."""


@pytest.mark.parametrize(("category", "error"), CATEGORIES, ids=[c for c, _ in CATEGORIES])
def test_each_fallback_category_falls_back(category: str, error: turnout.ProviderError, clock: FakeClock) -> None:
    Stub.scripts["a"] = [error]
    reply = run(stub_config("a", "b", fallback_on=[category], retry={"max_attempts": 1}), "sync", clock)
    assert reply.provider == "b"
    assert outcomes(reply) == [("a", type(error).__name__), ("b", "ok")]


@pytest.mark.parametrize(("category", "error"), CATEGORIES, ids=[c for c, _ in CATEGORIES])
def test_an_error_outside_fallback_on_is_raised(category: str, error: turnout.ProviderError, clock: FakeClock) -> None:
    covers = {category} | WIDER.get(category, set())
    others = [c for c, _ in CATEGORIES if c not in covers]
    Stub.scripts["a"] = [error]
    with pytest.raises(type(error)) as info:
        run(stub_config("a", "b", fallback_on=others, retry={"max_attempts": 1}), "sync", clock)
    assert "b" not in Stub.sent
    assert outcomes(info.value) == [("a", type(error).__name__)]


# --- embeddings: batches on one target (docs/embeddings.md) ----------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_retried_batch_keeps_its_place(mode: str, clock: FakeClock) -> None:
    """Five texts in batches of 2: the second batch's 503 is retried; the vectors stay in order."""
    Stub.scripts["a"] = ["ok", err(ServerError, status_code=503)]  # async: whichever batch is sent second
    seen: list[Any] = []
    reply = run(
        stub_config("a", "b"), mode, clock, "embed", seen, (CallStarted,), texts=["a", "bb", "ccc", "dddd", "e"]
    )
    assert reply.vectors == [[1.0], [2.0], [3.0], [4.0], [1.0]]
    assert reply.provider == "a" and "b" not in Stub.sent
    assert len(Stub.sent["a"]) == 4 and len(clock.sleeps) == 1
    assert sorted(a.outcome for a in reply.attempts) == ["ServerError", "ok", "ok", "ok"]
    assert reply.usage.prompt_tokens == 5
    assert [e.operation for e in seen] == ["embed"]


@pytest.mark.parametrize("mode", MODES)
def test_a_single_batch_sends_the_whole_request(mode: str, clock: FakeClock) -> None:
    reply = run(stub_config("a"), mode, clock, "embed", texts=["a", "bb"], timeout=60, deadline=7)
    assert reply.vectors == [[1.0], [2.0]]
    [sent] = Stub.sent["a"]
    assert sent.input == ["a", "bb"] and sent.timeout == 7


@pytest.mark.parametrize("mode", MODES)
def test_async_batches_run_at_most_four_at_once(mode: str, clock: FakeClock) -> None:
    """Ten batches; the async driver has at most EMBED_CONCURRENCY (4) in flight, the sync one 1."""
    flying: list[int] = []
    peak: list[int] = [0]
    original = Stub.aembed

    async def aembed(self: Stub, model: str, request: Any) -> Any:
        flying.append(1)
        peak[0] = max(peak[0], len(flying))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        flying.pop()
        return await original(self, model, request)

    Stub.aembed = aembed  # type: ignore[method-assign]
    try:
        reply = run(stub_config("a"), mode, clock, "embed", texts=[str(i) for i in range(20)])
    finally:
        Stub.aembed = original  # type: ignore[method-assign]
    assert len(reply.vectors) == 20 and len(Stub.sent["a"]) == 10
    assert peak[0] == (4 if mode == "async" else 0)


# --- the context pre-check asks this target about this request ---------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_precheck_asks_the_target_about_its_model_and_the_request(
    mode: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, str, Any]] = []

    def window(self: Stub, model: str) -> int | None:
        asked.append(("window", model, None))
        return 100

    def count(self: Stub, model: str, request: turnout.ChatRequest) -> int | None:
        asked.append(("count", model, str(request.messages[0].content)[:3]))
        return 91

    monkeypatch.setattr(Stub, "context_window", window)
    monkeypatch.setattr(Stub, "count_tokens", count)
    with pytest.raises(ContextWindowExceededError) as info:
        _long(mode, clock)
    assert asked == [("window", "m", None), ("count", "m", "xxx")]
    assert (info.value.provider, info.value.model) == ("a", "m")
    assert "a" not in Stub.sent


def _long(mode: str, clock: FakeClock) -> turnout.ChatResponse:
    cfg = stub_config("a")

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            return await client.chat("r", "x" * 200, max_tokens=10)

    if mode == "async":
        return asyncio.run(go())
    with Client(cfg, clock=clock) as client:
        return client.chat("r", "x" * 200, max_tokens=10)


# --- the engine's own pieces -----------------------------------------------------------------------


def test_fell_through_says_what_it_is() -> None:
    assert repr(FELL_THROUGH) == "FELL_THROUGH"


# --- structured output: a target is re-asked, a stream is validated once (docs/structured-output.md) --


class Answer(BaseModel):
    x: int


@pytest.mark.parametrize("mode", MODES)
def test_a_reply_that_does_not_fit_is_re_asked(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = ["not json", '{"x": 1}']
    reply = run(stub_config("a", "b"), mode, clock, response_model=Answer)
    assert reply.parsed == Answer(x=1) and reply.provider == "a"
    assert len(Stub.sent["a"]) == 2 and "b" not in Stub.sent
    assert Stub.sent["a"][1].messages[-2].content == "not json"  # the re-ask carries the rejected reply


@pytest.mark.parametrize("mode", MODES)
def test_a_streamed_reply_is_validated_once_and_never_re_asked(mode: str, clock: FakeClock) -> None:
    Stub.scripts["a"] = [['{"x": ', "2}"], ["not json"]]
    reply = run(stub_config("a"), mode, clock, "stream", response_model=Answer)
    assert reply.parsed == Answer(x=2)
    with pytest.raises(turnout.OutputValidationError):
        run(stub_config("a"), mode, clock, "stream", response_model=Answer)
    assert len(Stub.sent["a"]) == 2


# --- a provider's rate-limit headers pause its limiter (docs/many-workers.md) -------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shared", [False, True], ids=["local", "state-down"])
def test_a_reply_saying_no_requests_are_left_pauses_the_target(
    mode: str, shared: bool, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Stub.chat

    def chat(self: Stub, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:
        said = ProviderRateLimit(remaining_requests=0, reset_requests=0.5) if len(self.sent.get("a", [])) == 0 else None
        return original(self, model, request).model_copy(update={"rate_limit": said})

    monkeypatch.setattr(Stub, "chat", chat)
    cfg = limited({"requests_per_minute": 100})
    if shared:
        cfg["state"] = STATE_DOWN

    async def go() -> None:
        async with AsyncClient(cfg, clock=clock) as client:
            await client.chat("r", "Hi")
            await client.chat("r", "Hi")

    if mode == "async":
        asyncio.run(go())
    else:
        with Client(cfg, clock=clock) as client:
            client.chat("r", "Hi")
            client.chat("r", "Hi")
    assert clock.sleeps == [0.5]
