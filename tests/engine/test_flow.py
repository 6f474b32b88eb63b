"""The route engine: hedging, recovery and streams take the same path as a plain call.

Each test here failed before the engine was written once (issue 12): hedging skipped the
breaker and fallback, streams ignored ``wait_for_recovery``, a stream that kept sending ran past
the deadline, and a stream left early cost nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import turnout
from turnout import AsyncClient, Client
from turnout.testing import FakeClock, FakeServer, Fault, Reply, ToolCallSpec

MODES = ["sync", "async"]


@pytest.fixture
def ledger_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("TURNOUT_LEDGER", str(path))
    return path


@pytest.fixture
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer(flavor="openai") as primary, FakeServer(flavor="vllm", models=["llama"]) as backup:
        yield primary, backup


def config(primary: FakeServer, backup: FakeServer | None = None, **route: Any) -> dict[str, Any]:
    targets = ["primary:gpt-4o-mini"] + ([] if backup is None else ["backup:llama"])
    providers: dict[str, Any] = {"primary": {"type": "openai-compatible", "base_url": primary.base_url}}
    if backup is not None:
        providers["backup"] = {"type": "vllm", "base_url": backup.base_url}
    return {
        "providers": providers,
        "models": {"m": {"targets": targets, **route}},
        "prices": {
            "primary:gpt-4o-mini": {"input_per_million": 1000, "output_per_million": 1000},
            **({} if backup is None else {"backup:llama": {"input_per_million": 1, "output_per_million": 1}}),
        },
        "ledger": {"enabled": False},
    }


def chat(cfg: dict[str, Any], mode: str, clock: FakeClock | None = None, **kwargs: Any) -> turnout.ChatResponse:
    if mode == "sync":
        with Client(cfg, clock=clock) as client:
            return client.chat("m", "Hi", **kwargs)

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client:
            return await client.chat("m", "Hi", **kwargs)

    return asyncio.run(go())


def stream_text(cfg: dict[str, Any], mode: str, clock: FakeClock | None = None, **kwargs: Any) -> turnout.ChatResponse:
    if mode == "sync":
        with Client(cfg, clock=clock) as client, client.stream("m", "Hi", **kwargs) as stream:
            return stream.get_response()

    async def go() -> turnout.ChatResponse:
        async with AsyncClient(cfg, clock=clock) as client, client.stream("m", "Hi", **kwargs) as stream:
            return await stream.get_response()

    return asyncio.run(go())


# --- hedging: the same gates, retries and fallback as any attempt ---------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_hedged_route_falls_back_when_the_first_target_fails(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """Unhedged, a 503 after retries falls back; hedged, it used to raise ServerError."""
    primary, backup = servers
    primary.enqueue(*[Fault.server_error(503)] * 3)
    clock = FakeClock()
    reply = chat(config(primary, backup, hedge_after=2), mode, clock)
    assert reply.provider == "backup"
    assert [a.outcome for a in reply.attempts] == ["ServerError"] * 3 + ["ok"]
    assert len(primary.chat_requests) == 3 and len(backup.chat_requests) == 1


@pytest.mark.parametrize("mode", MODES)
def test_hedged_route_skips_an_open_circuit(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """The first target's open circuit keeps hedged calls away from it, and health() says so."""
    primary, backup = servers
    primary.enqueue(Fault.server_error(503))
    cfg = config(primary, backup, hedge_after=2, retry={"max_attempts": 1}, breaker={"failure_threshold": 1})

    async def run_async() -> list[turnout.ChatResponse]:
        async with AsyncClient(cfg, clock=FakeClock()) as client:
            replies = [await client.chat("m", "Hi") for _ in range(3)]
            assert {h.target: h.state for h in client.health()}["primary:gpt-4o-mini"] == "open"
            return replies

    if mode == "sync":
        with Client(cfg, clock=FakeClock()) as client:
            replies = [client.chat("m", "Hi") for _ in range(3)]
            assert {h.target: h.state for h in client.health()}["primary:gpt-4o-mini"] == "open"
    else:
        replies = asyncio.run(run_async())
    assert len(primary.chat_requests) == 1
    assert [r.provider for r in replies] == ["backup"] * 3
    assert [(a.outcome, a.skipped) for a in replies[1].attempts] == [("CircuitOpenError", True), ("ok", False)]


@pytest.mark.parametrize("mode", MODES)
def test_hedged_route_runs_the_context_precheck(mode: str) -> None:
    """A prompt too long for the first target's window is not sent to it, hedged or not."""
    with (
        FakeServer(flavor="vllm", models=["small"], max_model_len=64) as primary,
        FakeServer(flavor="vllm", models=["llama"]) as backup,
    ):
        cfg = config(primary, backup, hedge_after=2)
        cfg["providers"]["primary"] = {"type": "vllm", "base_url": primary.base_url}
        cfg["models"]["m"]["targets"] = ["primary:small", "backup:llama"]
        cfg["prices"]["primary:small"] = {"input_per_million": 1, "output_per_million": 1}
        reply = chat(cfg, mode, FakeClock(), max_tokens=100)
        assert reply.provider == "backup"
        assert primary.chat_requests == []
        assert (reply.attempts[0].outcome, reply.attempts[0].skipped) == ("ContextWindowExceededError", True)


@pytest.mark.wallclock
@pytest.mark.parametrize("mode", MODES)
def test_hedge_loser_is_recorded_in_the_ledger(
    servers: tuple[FakeServer, FakeServer], mode: str, ledger_file: Path
) -> None:
    primary, backup = servers
    primary.enqueue(Reply("late", delay=1.0))
    cfg = config(primary, backup, hedge_after=0.1)
    started = time.monotonic()
    reply = chat(cfg, mode)
    assert time.monotonic() - started < 0.9  # the loser was not waited for
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("backup", "ok"), ("primary", "cancelled")]
    assert [(attempts, outcome) for _, _, attempts, _, outcome in _ledger_rows(ledger_file)] == [(2, "ok")]


@pytest.mark.wallclock
def test_async_hedge_cancels_the_loser(servers: tuple[FakeServer, FakeServer]) -> None:
    """The losing request's task is cancelled: its connection is closed before the server answers."""
    primary, backup = servers
    primary.enqueue(Reply("late", delay=2.0))
    cfg = config(primary, backup, hedge_after=0.1)

    async def go() -> tuple[turnout.ChatResponse, int]:
        async with AsyncClient(cfg) as client:
            reply = await client.chat("m", "Hi")
            await asyncio.sleep(0.2)  # far less than the 2 s the loser's reply takes
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            return reply, len(tasks)

    reply, pending = asyncio.run(go())
    assert reply.provider == "backup"
    assert pending == 0


# --- recovery: streams wait for a circuit like plain calls ---------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["chat", "stream"])
def test_wait_for_recovery_applies_to_streams(mode: str, kind: str) -> None:
    with FakeServer(flavor="openai") as primary:
        primary.enqueue(Fault.server_error(503))
        cfg = config(
            primary,
            retry={"max_attempts": 1},
            breaker={"failure_threshold": 1, "cooldown": 5},
            wait_for_recovery=True,
            deadline=30,
        )
        clock = FakeClock()
        if mode == "sync":
            with Client(cfg, clock=clock) as client:
                with pytest.raises(turnout.ServerError):
                    client.chat("m", "Hi")
                if kind == "chat":
                    reply = client.chat("m", "Hi")
                else:
                    with client.stream("m", "Hi") as stream:
                        reply = stream.get_response()
        else:

            async def go() -> turnout.ChatResponse:
                async with AsyncClient(cfg, clock=clock) as client:
                    with pytest.raises(turnout.ServerError):
                        await client.chat("m", "Hi")
                    if kind == "chat":
                        return await client.chat("m", "Hi")
                    async with client.stream("m", "Hi") as stream:
                        return await stream.get_response()

            reply = asyncio.run(go())
        assert reply.text
        assert clock.sleeps == [5.0]
        assert [a.outcome for a in reply.attempts] == ["CircuitOpenError", "ok"]


@pytest.mark.parametrize("mode", MODES)
def test_wait_for_recovery_never_waits_past_the_deadline(mode: str) -> None:
    with FakeServer(flavor="openai") as primary:
        primary.enqueue(Fault.server_error(503))
        cfg = config(
            primary,
            retry={"max_attempts": 1},
            breaker={"failure_threshold": 1, "cooldown": 5},
            wait_for_recovery=True,
            deadline=4,
        )
        clock = FakeClock()
        with Client(cfg, clock=clock) as client:
            with pytest.raises(turnout.ServerError):
                client.chat("m", "Hi")
            with pytest.raises(turnout.CircuitOpenError):
                if mode == "sync":
                    client.chat("m", "Hi")
                else:
                    with client.stream("m", "Hi") as stream:
                        stream.get_response()
        assert clock.sleeps == []
        assert len(primary.chat_requests) == 1


# --- streams: the deadline bounds them, a cut tool call is never passed off, leaving early is paid ---


@pytest.mark.wallclock
@pytest.mark.parametrize("mode", MODES)
def test_deadline_bounds_a_stream_that_keeps_sending(mode: str) -> None:
    with FakeServer(flavor="openai") as primary:
        primary.enqueue(Reply(" ".join(f"w{i}" for i in range(12)), chunk_delay=0.4))  # 4.8 s of chunks
        started = time.monotonic()
        with pytest.raises(turnout.StreamInterruptedError) as info:
            stream_text(config(primary, deadline=1), mode)
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 3.0, elapsed
        assert isinstance(info.value.__cause__, turnout.APITimeoutError)
        assert info.value.partial_text.startswith("w0")


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_cut_inside_a_tool_call_raises(servers: tuple[FakeServer, FakeServer], mode: str) -> None:
    """A tool-call fragment is content: the cut stream is neither retried nor re-routed."""
    primary, backup = servers
    call = ToolCallSpec("get_weather", '{"city": "Paris", "unit": "celsius"}')
    primary.enqueue(Fault.truncate_stream(after_chunks=1, reply=Reply(tool_calls=[call])))
    with pytest.raises(turnout.StreamInterruptedError) as info:
        stream_text(
            config(primary, backup),
            mode,
            FakeClock(),
            tools=[{"type": "function", "function": {"name": "get_weather"}}],
        )
    assert info.value.after_content
    assert backup.chat_requests == [] and len(primary.chat_requests) == 1


def _ledger_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT provider, model, attempts, cost, outcome FROM calls").fetchall()


@pytest.mark.parametrize("mode", MODES)
def test_a_stream_left_early_is_paid_for(mode: str, ledger_file: Path) -> None:
    """break after some chunks: the target, the attempt and an estimated cost reach the budget and the ledger."""
    words = " ".join(f"w{i}" for i in range(400))
    with FakeServer(flavor="openai") as primary:
        primary.enqueue(Reply(words))
        cfg = config(primary)
        cfg["budget"] = {"max_usd": 100, "period": "day"}
        seen: list[turnout.StreamAbandoned] = []

        def consume(client: Client) -> None:
            with client.stream("m", "Hi", max_tokens=1000) as stream:
                for n, _chunk in enumerate(stream):
                    if n == 50:
                        break

        async def aconsume(client: AsyncClient) -> None:
            async with client.stream("m", "Hi", max_tokens=1000) as stream:
                n = 0
                async for _chunk in stream:
                    n += 1
                    if n == 51:
                        break

        if mode == "sync":
            with Client(cfg) as client:
                client.on(turnout.StreamAbandoned, seen.append)
                consume(client)
                spent: Decimal | None = client.budgets.status()[0].spent if client.budgets else None
        else:

            async def go() -> Decimal | None:
                async with AsyncClient(cfg) as client:
                    client.on(turnout.StreamAbandoned, seen.append)
                    await aconsume(client)
                    return client.budgets.status()[0].spent if client.budgets else None

            spent = asyncio.run(go())
    assert len(seen) == 1
    usage, cost = seen[0].usage, seen[0].cost
    assert usage.estimated and cost is not None and cost.estimated
    assert usage.completion_tokens is not None and 40 <= usage.completion_tokens <= 120
    assert spent == cost.total > 0
    [(provider, model, attempts, row_cost, outcome)] = _ledger_rows(ledger_file)
    assert (provider, model, attempts, outcome) == ("primary", "gpt-4o-mini", 1, "GeneratorExit")
    assert Decimal(row_cost) == cost.total
    with sqlite3.connect(ledger_file) as db:
        assert db.execute("SELECT estimated FROM calls").fetchall() == [(1,)]


@pytest.mark.wallclock
def test_a_cancelled_stream_task_is_paid_for(ledger_file: Path) -> None:
    with FakeServer(flavor="openai") as primary:
        primary.enqueue(Reply(" ".join(f"w{i}" for i in range(200)), chunk_delay=0.01))
        cfg = config(primary)
        seen: list[turnout.StreamAbandoned] = []

        async def go() -> None:
            async with AsyncClient(cfg) as client:
                client.on(turnout.StreamAbandoned, seen.append)
                got = asyncio.Event()

                async def read() -> None:
                    async with client.stream("m", "Hi") as stream:
                        async for _ in stream:
                            got.set()

                task = asyncio.create_task(read())
                await got.wait()
                await asyncio.sleep(0.1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

        asyncio.run(go())
    assert len(seen) == 1 and seen[0].cost is not None and seen[0].cost.total > 0
    [(provider, _, attempts, row_cost, outcome)] = _ledger_rows(ledger_file)
    assert (provider, attempts, outcome) == ("primary", 1, "CancelledError")
    assert Decimal(row_cost) > 0
