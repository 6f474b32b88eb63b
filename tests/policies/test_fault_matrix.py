"""Every fault x {chat, async chat, stream, async stream} -> the documented outcome, attempts counted.

Route: ``primary`` (OpenAI-shaped) then ``backup`` (vLLM-shaped); 3 attempts per target; the
clock is fake, so backoff and Retry-After cost no time (the sleeps are asserted instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, ChatResponse, Client
from turnout.testing import FakeClock, FakeServer, Fault, refused_url

MODES = ["chat", "achat", "stream", "astream"]


@dataclass
class Case:
    """A fault scripted on the primary, and what must happen."""

    faults: list[Fault]
    outcome: str  # "retry" (primary answers), "fallback" (backup answers), or an error class name
    attempts: list[str]  # outcome of each attempt, in order
    sleeps: list[float] | None = None  # exact sleeps, when the server dictated them
    modes: list[str] = field(default_factory=lambda: list(MODES))


def _cases() -> dict[str, Case]:
    fail3 = ["ServerError"] * 3
    return {
        "429-retry-after": Case([Fault.rate_limit(retry_after=2)], "retry", ["RateLimitError", "ok"], [2.0]),
        "429-retry-after-ms": Case([Fault.rate_limit(retry_after_ms=1500)], "retry", ["RateLimitError", "ok"], [1.5]),
        "429-http-date": Case(
            [Fault.rate_limit(retry_after=30, retry_after_date=True)], "retry", ["RateLimitError", "ok"]
        ),
        "429-insufficient-quota": Case([Fault.insufficient_quota()], "QuotaExceededError", ["QuotaExceededError"]),
        "500-once": Case([Fault.server_error(500)], "retry", ["ServerError", "ok"]),
        "500-persistent": Case([Fault.server_error(500)] * 3, "fallback", [*fail3, "ok"]),
        "502-persistent": Case([Fault.server_error(502)] * 3, "fallback", [*fail3, "ok"]),
        "503-persistent": Case([Fault.server_error(503)] * 3, "fallback", [*fail3, "ok"]),
        "504-persistent": Case([Fault.server_error(504)] * 3, "fallback", [*fail3, "ok"]),
        "400-bad-request": Case([Fault.status(400, "bad")], "BadRequestError", ["BadRequestError"]),
        "401-auth": Case([Fault.unauthorized()], "AuthenticationError", ["AuthenticationError"]),
        "context-window": Case([Fault.context_length()], "fallback", ["ContextWindowExceededError", "ok"]),
        "dropped-connection": Case([Fault.drop()], "retry", ["APIConnectionError", "ok"]),
        "reset-mid-body": Case(
            [Fault.truncate_stream(after_chunks=0)],
            "retry",
            ["StreamInterruptedError", "ok"],
            modes=["stream", "astream"],
        ),
        "reset-mid-body-nonstream": Case(
            [Fault.truncate_stream(after_chunks=1)], "retry", ["APIConnectionError", "ok"], modes=["chat", "achat"]
        ),
        "sse-truncated-after-content": Case(
            [Fault.truncate_stream(after_chunks=2)],
            "StreamInterruptedError",
            ["StreamInterruptedError"],
            modes=["stream", "astream"],
        ),
        "error-event-in-200-stream": Case(
            [Fault.stream_error(after_chunks=0, status=500)], "retry", ["ServerError", "ok"]
        ),
        "error-event-after-content": Case(
            [Fault.stream_error(after_chunks=2)], "StreamInterruptedError", ["ServerError"], modes=["stream", "astream"]
        ),
        "malformed-json": Case([Fault.malformed_json()], "ResponseValidationError", ["ResponseValidationError"]),
        "slow-first-byte": Case([Fault.slow(0.2)], "retry", ["ok"]),
    }


CASES = _cases()


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer(flavor="openai") as primary, FakeServer(flavor="vllm") as backup:
        yield primary, backup


def config(primary_url: str, backup: FakeServer, **route: Any) -> dict[str, Any]:
    return {
        "providers": {
            "primary": {"type": "openai-compatible", "base_url": primary_url},
            "backup": {"type": "vllm", "base_url": backup.base_url},
        },
        "models": {"m": {"targets": ["primary:gpt-4o-mini", "backup:llama"], **route}},
        "prices": {
            "primary:gpt-4o-mini": {"input_per_million": 1, "output_per_million": 1},
            "backup:llama": {"input_per_million": 1, "output_per_million": 1},
        },
    }


def run(mode: str, cfg: dict[str, Any], clock: FakeClock) -> ChatResponse:
    if mode == "chat":
        with Client(cfg, clock=clock) as client:
            return client.chat("m", "Hello there")
    if mode == "stream":
        with Client(cfg, clock=clock) as client, client.stream("m", "Hello there") as stream:
            text = "".join(c.text or "" for c in stream)
            assert text == stream.response.text
            return stream.response

    async def go() -> ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            if mode == "achat":
                return await client.chat("m", "Hello there")
            async with client.stream("m", "Hello there") as stream:
                text = "".join([c.text or "" async for c in stream])
                assert text == stream.response.text
                return stream.response

    return asyncio.run(go())


@pytest.mark.parametrize(("name", "mode"), [(n, m) for n, c in CASES.items() for m in c.modes])
def test_fault(name: str, mode: str, servers: tuple[FakeServer, FakeServer]) -> None:
    case = CASES[name]
    primary, backup = servers
    primary.enqueue(*case.faults)
    clock = FakeClock()
    if case.outcome in ("retry", "fallback"):
        reply = run(mode, config(primary.base_url, backup), clock)
        assert [a.outcome for a in reply.attempts] == case.attempts
        assert reply.provider == ("primary" if case.outcome == "retry" else "backup")
        assert reply.text and reply.cost is not None
    else:
        with pytest.raises(turnout.ProviderError) as info:
            run(mode, config(primary.base_url, backup), clock)
        assert type(info.value).__name__ == case.outcome
        assert [a.outcome for a in info.value.attempts] == case.attempts
        assert backup.chat_requests == []
    if case.sleeps is not None:
        assert clock.sleeps == case.sleeps
    assert len(primary.chat_requests) == len(case.attempts) - (1 if case.outcome == "fallback" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_connection_refused_retries_then_falls_back(mode: str, servers: tuple[FakeServer, FakeServer]) -> None:
    _, backup = servers
    clock = FakeClock()
    reply = run(mode, config(refused_url(), backup), clock)
    assert [a.outcome for a in reply.attempts] == ["APIConnectionError"] * 3 + ["ok"]
    assert len(clock.sleeps) == 2  # backoff between the three attempts


@pytest.mark.wallclock
@pytest.mark.parametrize("mode", MODES)
def test_read_timeout_retries_then_falls_back(mode: str, servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    primary.enqueue(*[Fault.slow(1.0)] * 3)
    cfg = config(primary.base_url, backup)
    cfg["providers"]["primary"]["timeout"] = 0.2
    reply = run(mode, cfg, FakeClock())
    assert [a.outcome for a in reply.attempts] == ["APITimeoutError"] * 3 + ["ok"]


@pytest.mark.parametrize("mode", MODES)
def test_retry_after_longer_than_the_deadline_skips_to_the_next_target(
    mode: str, servers: tuple[FakeServer, FakeServer]
) -> None:
    primary, backup = servers
    primary.enqueue(Fault.rate_limit(retry_after=30))
    clock = FakeClock()
    reply = run(mode, config(primary.base_url, backup, deadline=10), clock)
    assert [a.outcome for a in reply.attempts] == ["RateLimitError", "ok"]
    assert clock.sleeps == []  # never slept 30 s inside a 10 s deadline


@pytest.mark.parametrize("mode", MODES)
def test_vllm_shaped_errors(mode: str, servers: tuple[FakeServer, FakeServer]) -> None:
    primary, backup = servers
    cfg = config(primary.base_url, backup)
    cfg["models"]["m"]["targets"] = ["backup:llama", "primary:gpt-4o-mini"]
    backup.enqueue(Fault.not_found())
    with pytest.raises(turnout.NotFoundError) as info:
        run(mode, cfg, FakeClock())
    assert info.value.error_code == 404 and primary.chat_requests == []
