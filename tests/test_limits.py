"""[limits]: client-side rate limits in one process (shared ones: tests/shared)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LLAMA
from turnout import AsyncClient, Client, ConfigError, LocalRateLimitError, RateLimitError
from turnout.testing import FakeServer, Fault, Reply

OTHER = "other-model"
TARGET = f"local:{LLAMA}"
PRICE = {"input_per_million": "1", "output_per_million": "1"}
PROMPT_ESTIMATE = 9  # "Hi" as turnout's heuristic counts it (UTF-8 size plus message overhead)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(flavor="vllm", models=[OTHER, LLAMA], max_model_len=4096) as fake:
        fake.default_reply = Reply("ok", prompt_tokens=20, completion_tokens=5)
        yield fake


def _config(server: FakeServer, limits: dict[str, Any], **route: Any) -> dict[str, Any]:
    return {
        "providers": {"local": {"type": "vllm", "base_url": server.base_url}},
        "models": {
            "llama": {"targets": [TARGET], "retry": {"max_attempts": 1}, **route},
            "pair": {"targets": [TARGET, f"local:{OTHER}"], "retry": {"max_attempts": 1}},
        },
        "prices": {TARGET: PRICE, f"local:{OTHER}": PRICE},
        "limits": limits,
    }


def _calls(mode: str, config: dict[str, Any], n: int, model: str = "llama", **options: Any) -> list[Any]:
    """``n`` calls one after another: each reply, or the error it raised."""

    def one(client: Client) -> Any:
        try:
            return client.chat(model, "Hi", **options)
        except RateLimitError as exc:
            return exc

    if mode == "sync":
        with Client(config=config) as client:
            return [one(client) for _ in range(n)]

    async def go() -> list[Any]:
        async with AsyncClient(config=config) as client:
            out: list[Any] = []
            for _ in range(n):
                try:
                    out.append(await client.chat(model, "Hi", **options))
                except RateLimitError as exc:
                    out.append(exc)
            return out

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_requests_per_minute_refuses_locally_without_sending(server: FakeServer, mode: str) -> None:
    config = _config(server, {TARGET: {"requests_per_minute": 3, "max_wait": 0}})
    results = _calls(mode, config, 5)
    assert len(server.chat_requests) == 3
    refused = results[3:]
    assert all(isinstance(r, LocalRateLimitError) for r in refused)
    error = refused[0]
    assert error.status_code is None and 0 < (error.retry_after or 0) <= 60
    assert [(a.skipped, a.outcome) for a in error.attempts] == [(True, "LocalRateLimitError")]
    assert "nothing was sent" in str(error)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_call_waits_for_room(server: FakeServer, mode: str) -> None:
    config = _config(server, {"local": {"requests_per_minute": 2, "window": 0.3}})  # the provider's limit
    started = time.monotonic()
    results = _calls(mode, config, 5)
    elapsed = time.monotonic() - started
    assert all(r.text == "ok" for r in results)
    assert elapsed >= 0.6  # requests 3-4 waited one window, request 5 two


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_wait_ends_at_the_routes_deadline(server: FakeServer, mode: str) -> None:
    config = _config(server, {TARGET: {"requests_per_minute": 1, "window": 30}}, deadline=0.2)
    started = time.monotonic()
    first, second = _calls(mode, config, 2)
    assert first.text == "ok" and isinstance(second, LocalRateLimitError)
    assert time.monotonic() - started < 5 and len(server.chat_requests) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_local_refusal_falls_back_and_leaves_the_breaker_alone(server: FakeServer, mode: str) -> None:
    config = _config(server, {TARGET: {"requests_per_minute": 1, "max_wait": 0}})
    config["models"]["pair"]["breaker"] = {"failure_threshold": 1}
    first, second, third = _calls(mode, config, 3, model="pair")
    assert first.model == LLAMA and second.model == OTHER and third.model == OTHER
    assert [(a.model, a.skipped) for a in second.attempts] == [(LLAMA, True), (OTHER, False)]
    with Client(config=config) as client:
        assert all(h.state == "closed" for h in client.health())


def test_tokens_per_minute_counts_the_estimate_then_the_actual_usage(server: FakeServer) -> None:
    estimate = PROMPT_ESTIMATE + 40
    # room for the actual 25 tokens of one reply plus one estimate, but not for two estimates
    config = _config(server, {TARGET: {"tokens_per_minute": 25 + estimate, "max_wait": 0}})
    results = _calls("sync", config, 3, max_tokens=40)
    assert [getattr(r, "text", None) for r in results[:2]] == ["ok", "ok"]
    assert isinstance(results[2], LocalRateLimitError)


def test_max_concurrent(server: FakeServer) -> None:
    config = _config(server, {TARGET: {"max_concurrent": 1}})
    server.enqueue(*(Fault.slow(0.2, Reply("ok")) for _ in range(3)))

    async def go() -> list[Any]:
        async with AsyncClient(config=config) as client:
            return list(await asyncio.gather(*(client.chat("llama", "Hi") for _ in range(3))))

    started = time.monotonic()
    replies = asyncio.run(go())
    assert [r.text for r in replies] == ["ok"] * 3
    assert time.monotonic() - started >= 0.55  # one at a time


def test_streams_and_embeddings_go_through_the_limiter(server: FakeServer) -> None:
    config = _config(server, {TARGET: {"requests_per_minute": 1, "max_wait": 0}})
    with Client(config=config) as client:
        with client.stream("llama", "Hi") as stream:
            list(stream)
        with pytest.raises(LocalRateLimitError), client.stream("llama", "Hi") as stream:
            list(stream)
    with FakeServer(flavor="openai") as fake:
        embed = {
            "providers": {"oa": {"type": "openai", "base_url": fake.base_url, "api_key": "k"}},
            "limits": {"oa": {"requests_per_minute": 1, "max_wait": 0}},
            "prices": {"oa:text-embedding-3-small": {"input_per_million": "0.02", "output_per_million": "0"}},
        }
        with Client(config=embed) as client:
            client.embed("oa:text-embedding-3-small", "a")
            with pytest.raises(LocalRateLimitError):
                client.embed("oa:text-embedding-3-small", "b")
        assert len(fake.embedding_requests) == 1


def test_a_limit_on_an_unknown_provider_is_a_config_error(server: FakeServer) -> None:
    with pytest.raises(ConfigError, match="limits: 'nope:x' names provider 'nope'"):
        Client(config=_config(server, {"nope:x": {"requests_per_minute": 1}}))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_providers_ratelimit_headers_slow_it_down_before_a_429(server: FakeServer, mode: str) -> None:
    config = _config(server, {TARGET: {"requests_per_minute": 1000}})
    used_up = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"}
    server.enqueue(Reply("first", headers=used_up))
    started = time.monotonic()
    first, second = _calls(mode, config, 2)
    assert first.rate_limit is not None and first.rate_limit.reset_requests == pytest.approx(0.3)
    assert second.text == "ok" and time.monotonic() - started >= 0.3  # it waited for the reset
    refused = _config(server, {TARGET: {"requests_per_minute": 1000, "max_wait": 0}})
    server.enqueue(Reply("first", headers=used_up))
    assert isinstance(_calls(mode, refused, 2)[1], LocalRateLimitError)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_streams_ratelimit_headers_slow_it_down_too(server: FakeServer, mode: str) -> None:
    """On a stream the x-ratelimit-* headers come before the body: read them there as on a plain reply."""
    config = _config(server, {TARGET: {"requests_per_minute": 1000, "max_wait": 0}})
    used_up = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "5s",
        "x-ratelimit-remaining-tokens": "7",
    }
    server.enqueue(Reply("first", headers=used_up))

    def in_sync() -> tuple[list[Any], Any, Any]:
        with Client(config=config) as client:
            stream = client.stream("llama", "Hi")
            chunks = list(stream)
            try:
                after: Any = client.chat("llama", "Hi")
            except LocalRateLimitError as exc:
                after = exc
            return chunks, stream.response, after

    async def in_async() -> tuple[list[Any], Any, Any]:
        async with AsyncClient(config=config) as client:
            stream = client.stream("llama", "Hi")
            chunks = [c async for c in stream]
            try:
                after: Any = await client.chat("llama", "Hi")
            except LocalRateLimitError as exc:
                after = exc
            return chunks, stream.response, after

    chunks, response, after = in_sync() if mode == "sync" else asyncio.run(in_async())
    said = response.rate_limit
    assert said is not None and (said.remaining_requests, said.reset_requests, said.remaining_tokens) == (0, 5.0, 7)
    assert chunks[0].rate_limit == said and all(c.rate_limit is None for c in chunks[1:])
    assert isinstance(after, LocalRateLimitError)  # paused until the reset: nothing more sent
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("soon", None), ("", None)],
)
def test_reset_durations(text: str, seconds: float | None) -> None:
    from turnout.providers._ratelimit_headers import parse_duration

    assert parse_duration(text) == (None if seconds is None else pytest.approx(seconds))
