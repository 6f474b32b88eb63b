"""[state] when Redis stalls and comes back (commits kept and counted once), and shared circuits in health()."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import LLAMA
from tests.shared.conftest import OTHER, OwnRedis, shared_config
from turnout import AsyncClient, Budget, Client
from turnout._state_budgets import SharedBudgets, SharedReservation
from turnout.cli import main
from turnout.shared import SharedState, StateConfig
from turnout.testing import FakeServer, Fault


def _wait_for(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_commit_lost_while_redis_stalls_is_counted_once_when_it_answers(
    server: FakeServer, own_redis: OwnRedis, prefix: str, mode: str
) -> None:
    config = shared_config(server, own_redis.url, prefix, budget={"max_usd": "1"})
    config["state"]["hold_ttl"] = 0.5  # the hold expires while Redis is stalled
    server.enqueue(Fault.slow(1.0))  # then the default reply: 25 tokens, $0.000025
    store = redis.Redis.from_url(own_redis.url)
    spent_key = f"{{{prefix}}}:budget:client:all"
    finish, kept = threading.Event(), list[SharedState]()

    async def in_async() -> None:
        async with AsyncClient(config=config) as client:
            await client.chat("llama", "Hi", max_tokens=10)
            assert client._shared is not None
            kept.append(client._shared)
            await asyncio.to_thread(finish.wait, 30)

    def in_sync() -> None:
        with Client(config=config) as client:
            client.chat("llama", "Hi", max_tokens=10)
            assert client._shared is not None
            kept.append(client._shared)
            finish.wait(30)

    worker = threading.Thread(target=in_sync if mode == "sync" else lambda: asyncio.run(in_async()))
    worker.start()
    try:
        _wait_for(lambda: bool(server.chat_requests))
        own_redis.pause(2.5)  # the call ends while Redis holds every script: its commit times out
        _wait_for(lambda: bool(kept and kept[0].background.unsettled))  # kept, not dropped
        _wait_for(lambda: store.hget(spent_key, "spent") == b"25000")  # nano-dollars, sent from the kept copy
        time.sleep(1.5)  # a second resend, if there were one, would have landed by now
        assert store.hget(spent_key, "spent") == b"25000"
        assert not kept[0].background.unsettled and store.hlen(f"{spent_key}:holds") == 0
    finally:
        finish.set()
        worker.join(10)
        store.close()


def _reserve(state: SharedState, budgets: SharedBudgets, amount: str) -> SharedReservation:
    step, read = state.before(budgets, "llama", Decimal(amount), [])
    hold, _ = read(step.run())
    assert isinstance(hold, SharedReservation)
    return hold


def test_a_late_commit_counts_once_even_after_its_hold_expired(redis_url: str, prefix: str) -> None:
    state = SharedState(StateConfig(url=redis_url, prefix=prefix, timeout=1, hold_ttl=0.2))
    budgets = SharedBudgets(state, Budget(max_usd=Decimal(1)), {})
    first = _reserve(state, budgets, "0.001")
    time.sleep(0.3)
    _reserve(state, budgets, "0.002")  # drops the first hold, expired: it lapses (remembered, not counted)
    (key,) = [budgets.key(x) for x in budgets.limits("llama", None)]
    assert state.settle([key], first.hold_id, Decimal("0.0004")) is True
    assert state.settle([key], first.hold_id, Decimal("0.0004")) is False  # sent again: not counted again
    assert state.settle([key], "never-held", Decimal("0.0004")) is False
    (status,) = budgets.status()
    assert status.spent == Decimal("0.0004") and status.reserved == Decimal("0.002")
    state.close()


def test_commits_kept_while_redis_is_down_are_bounded(redis_url: str, prefix: str) -> None:
    from turnout import _state_writes

    state = SharedState(StateConfig(url="redis://127.0.0.1:1/0", prefix=prefix, timeout=0.05))
    background = state.background
    background.resend_every = 60
    old, _state_writes.MAX_UNSETTLED = _state_writes.MAX_UNSETTLED, 3
    try:
        for n in range(5):
            background.commit(f"hold-{n}", lambda: state._redis.ping())
        _wait_for(
            lambda: len(background.unsettled) == 3 and list(background.unsettled) == ["hold-2", "hold-3", "hold-4"]
        )
    finally:
        _state_writes.MAX_UNSETTLED = old
        state.close()
    del redis_url


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_health_shows_a_circuit_another_client_opened(
    server: FakeServer, redis_url: str, prefix: str, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = shared_config(server, redis_url, prefix)
    server.enqueue(Fault.status(500), model=OTHER)
    with Client(config=config) as first:
        assert first.chat("pair", "Hi").text == "ok"  # OTHER failed once: its circuit opens (threshold 1)
        first.close()  # the open circuit is written to Redis
        (mine,) = [h for h in first.health() if h.target == f"local:{OTHER}"]
        assert (mine.state, mine.source) == ("open", "local")

    async def ahealth() -> Any:
        async with AsyncClient(config=config) as client:
            return client.health()

    if mode == "sync":
        with Client(config=config) as second:
            health = second.health()
    else:
        health = asyncio.run(ahealth())
    (seen,) = health  # this process never called OTHER: only the shared state knows
    assert (seen.target, seen.state, seen.source) == (f"local:{OTHER}", "open", "shared")
    assert seen.reason == mine.reason == "ServerError"
    assert seen.retry_in is not None and 25 < seen.retry_in <= 30

    path = tmp_path / "turnout.toml"
    path.write_text("\n".join(f"{k} = {_toml(v)}" for k, v in config.items()) + "\n")
    assert main(["health", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"local:{OTHER}  circuit open (shared state: opened by another worker)" in out
    assert main(["health", "--config", str(path), "--json"]) == 0
    rows = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[f"local:{OTHER}"]["circuit"] == "open" and rows[f"local:{OTHER}"]["circuit_source"] == "shared"
    assert rows[f"local:{LLAMA}"]["circuit"] == "closed"


def test_health_without_redis_shows_this_process_only(server: FakeServer, prefix: str) -> None:
    config = shared_config(server, "redis://127.0.0.1:1/0", prefix)
    server.enqueue(Fault.status(500), model=OTHER)
    with Client(config=config) as client:
        assert client.chat("pair", "Hi").text == "ok"
        (seen,) = [h for h in client.health() if h.state == "open"]
    assert (seen.target, seen.source) == (f"local:{OTHER}", "local")
