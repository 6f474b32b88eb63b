"""[state] on a real Redis: budgets and open circuits shared between clients; Redis failures."""

from __future__ import annotations

import asyncio
import socket
import time
from decimal import Decimal
from typing import Any, cast

import pytest

from tests.conftest import LLAMA
from tests.shared.conftest import OTHER, shared_config
from turnout import AsyncClient, BudgetExceededError, Client, ConfigError, LocalRateLimitError, ServerError
from turnout.testing import FakeServer, Fault, Reply


def _spend_until_refused(client: Client) -> int:
    for calls in range(1000):
        try:
            client.chat("llama", "Hello", max_tokens=10)
        except BudgetExceededError:
            return calls
    raise AssertionError("never refused")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_clients_share_one_budget(server: FakeServer, redis_url: str, prefix: str) -> None:
    config = shared_config(server, redis_url, prefix, budget={"max_usd": "0.0005"})
    with Client(config=config) as first, Client(config=config) as second:
        calls = _spend_until_refused(first)
        first.close()  # its commits are written before the next client looks
        assert calls >= 5
        with pytest.raises(BudgetExceededError, match=r"client budget \(shared\)"):
            second.chat("llama", "Hello", max_tokens=10)
        assert len(server.chat_requests) == calls
        assert second.budgets is not None
        (status,) = second.budgets.status()
        assert status.spent == Decimal(25 * calls) / 1_000_000 and status.reserved == 0
    other_app = shared_config(server, redis_url, prefix + "-other", budget={"max_usd": "0.0005"})
    with Client(config=other_app) as third:  # another prefix: another budget
        assert third.chat("llama", "Hello", max_tokens=10).text == "ok"


def test_async_clients_share_the_budget_of_sync_ones(server: FakeServer, redis_url: str, prefix: str) -> None:
    config = shared_config(
        server, redis_url, prefix, models={"llama": {"targets": [f"local:{LLAMA}"], "budget": {"max_usd": "0.0005"}}}
    )
    with Client(config=config) as sync_client:
        calls = _spend_until_refused(sync_client)

    async def go() -> None:
        async with AsyncClient(config=config) as client:
            with pytest.raises(BudgetExceededError, match=r"models.llama budget \(shared\)"):
                await client.chat("llama", "Hello", max_tokens=10)

    asyncio.run(go())
    assert len(server.chat_requests) == calls


def test_an_async_call_reserves_and_commits_on_redis(server: FakeServer, redis_url: str, prefix: str) -> None:
    config = shared_config(server, redis_url, prefix, budget={"max_usd": "1"})

    async def go() -> None:
        async with AsyncClient(config=config) as client:
            await client.chat("llama", "Hello", max_tokens=10)
            await client.chat("llama", "Hello", max_tokens=10)

    asyncio.run(go())
    with Client(config=config) as reader:
        assert reader.budgets is not None
        (status,) = reader.budgets.status()
    assert status.spent == Decimal("0.000050") and status.reserved == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_open_circuit_is_skipped_by_another_client(
    server: FakeServer, redis_url: str, prefix: str, mode: str
) -> None:
    config = shared_config(server, redis_url, prefix)
    server.enqueue(Fault.status(500), model=OTHER)
    with Client(config=config) as first:
        assert first.chat("pair", "Hi").text == "ok"  # OTHER failed (its circuit opens), LLAMA answered
    server.reset()
    server.default_reply = Reply("ok", prompt_tokens=20, completion_tokens=5)

    async def second_call() -> Any:
        async with AsyncClient(config=config) as client:
            return await client.chat("pair", "Hi")

    if mode == "sync":
        with Client(config=config) as second:
            reply = second.chat("pair", "Hi")
    else:
        reply = asyncio.run(second_call())
    assert [r.json["model"] for r in server.chat_requests] == [LLAMA]  # OTHER was never sent to
    skipped = reply.attempts[0]
    assert skipped.skipped and skipped.model == OTHER and "circuit open (shared state)" in (skipped.error or "")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_down_refuses_budgeted_calls_by_default(server: FakeServer, prefix: str, mode: str) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    config = shared_config(server, url, prefix, budget={"max_usd": "1"})
    started = time.monotonic()
    with pytest.raises(BudgetExceededError, match="could not be reached") as info:
        if mode == "sync":
            with Client(config=config) as client:  # built while Redis is down
                client.chat("llama", "Hello", max_tokens=10)
        else:

            async def go() -> None:
                async with AsyncClient(config=config) as client:
                    await client.chat("llama", "Hello", max_tokens=10)

            asyncio.run(go())
    assert time.monotonic() - started < 2
    assert server.requests == [] and "on_failure" in str(info.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_redis_down_falls_back_to_local_state_when_configured(server: FakeServer, prefix: str, mode: str) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    config = shared_config(server, url, prefix, budget={"max_usd": "1"})
    config["state"]["on_failure"] = {"budgets": "local"}
    if mode == "sync":
        with Client(config=config) as client:
            assert client.chat("llama", "Hello", max_tokens=10).text == "ok"
            assert client.chat("pair", "Hi", max_tokens=10).text == "ok"
            assert client.budgets is not None
            (status,) = client.budgets.status()  # Redis down: this process's own
            assert status.spent == Decimal("0.000050")  # two calls of 25 tokens
    else:

        async def go() -> None:
            async with AsyncClient(config=config) as client:
                assert (await client.chat("llama", "Hello", max_tokens=10)).text == "ok"

        asyncio.run(go())


def test_a_bad_state_url_is_a_config_error(server: FakeServer, prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"\[state\] url"):
        Client(config=shared_config(server, "http://127.0.0.1:1/0", prefix))


def test_a_tag_budget_is_shared_per_value(server: FakeServer, redis_url: str, prefix: str) -> None:
    config = shared_config(server, redis_url, prefix, tag_budgets={"tenant": {"max_usd": "0.0002", "period": "day"}})
    acme = {"tenant": "acme"}
    with Client(config=config) as first:
        for _ in range(100):
            try:
                first.chat("llama", "Hello", max_tokens=10, tags=acme)
            except BudgetExceededError as exc:
                assert exc.budget == "tags.tenant=acme"
                break
    served = len(server.chat_requests)
    with Client(config=config) as second:
        with pytest.raises(BudgetExceededError, match=r"tags.tenant=acme budget \(shared\)"):
            second.chat("llama", "Hello", max_tokens=10, tags=acme)
        assert second.chat("llama", "Hello", max_tokens=10, tags={"tenant": "beta"}).text == "ok"
    assert len(server.chat_requests) == served + 1 and served >= 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_clients_share_a_rate_limit(server: FakeServer, redis_url: str, prefix: str, mode: str) -> None:
    config = shared_config(server, redis_url, prefix)
    config["limits"] = {f"local:{LLAMA}": {"requests_per_minute": 3, "window": 30, "max_wait": 0}}
    with Client(config=config) as first:
        for _ in range(2):
            first.chat("llama", "Hi")

    async def two() -> list[str]:
        out = []
        async with AsyncClient(config=config) as client:
            for _ in range(2):
                try:
                    out.append((await client.chat("llama", "Hi")).text)
                except LocalRateLimitError:
                    out.append("refused")
        return out

    if mode == "sync":
        with Client(config=config) as second:
            second.chat("llama", "Hi")
            with pytest.raises(LocalRateLimitError):
                second.chat("llama", "Hi")
    else:
        assert asyncio.run(two()) == ["ok", "refused"]
    assert len(server.chat_requests) == 3


def test_limits_count_in_process_while_redis_is_down(server: FakeServer, prefix: str) -> None:
    config = shared_config(server, f"redis://127.0.0.1:{_closed_port()}/0", prefix)
    config["limits"] = {f"local:{LLAMA}": {"requests_per_minute": 1, "window": 30, "max_wait": 0}}
    with Client(config=config) as client:
        assert client.chat("llama", "Hi").text == "ok"
        with pytest.raises(LocalRateLimitError):
            client.chat("llama", "Hi")
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_least_latency_uses_every_workers_averages(server: FakeServer, redis_url: str, prefix: str, mode: str) -> None:
    config = shared_config(server, redis_url, prefix)
    config["models"]["pair"]["balance"] = "least-latency"
    server.enqueue(Fault.slow(0.3, Reply("slow")), model=OTHER)
    with Client(config=config) as first:
        assert first.chat("pair", "Hi").text == "slow"  # both unmeasured: the route's order, OTHER first
        assert first.chat("pair", "Hi").model == LLAMA  # LLAMA unmeasured yet: tried next
    server.reset()
    server.default_reply = Reply("ok", prompt_tokens=20, completion_tokens=5)

    async def second_call() -> Any:
        async with AsyncClient(config=config) as client:
            return await client.chat("pair", "Hi")

    if mode == "sync":
        with Client(config=config) as second:
            reply = second.chat("pair", "Hi")
    else:
        reply = asyncio.run(second_call())
    assert reply.model == LLAMA  # a fresh client knows OTHER is slow from the first one's averages
    assert [r.json["model"] for r in server.chat_requests] == [LLAMA]


def test_a_forked_child_never_replays_its_parents_queued_writes(redis_url: str, prefix: str) -> None:
    import multiprocessing
    import threading

    import redis

    from turnout.shared import SharedState, StateConfig

    state = SharedState(StateConfig(url=redis_url, prefix=prefix, timeout=1))
    store = redis.Redis.from_url(redis_url)
    release = threading.Event()
    state.later(lambda: release.wait(0.5))  # the thread is busy: the next write waits in the queue
    state.later(lambda: store.incr(f"{prefix}:parent"))

    def child() -> None:
        state.later(lambda: store.incr(f"{prefix}:child"))
        state.drain()

    worker = multiprocessing.get_context("fork").Process(target=child)
    worker.start()
    worker.join(10)
    release.set()
    state.close()
    assert worker.exitcode == 0
    assert store.get(f"{prefix}:parent") == b"1" and store.get(f"{prefix}:child") == b"1"
    store.close()


def test_a_hold_lives_for_the_routes_deadline_not_hold_ttl(server: FakeServer, redis_url: str, prefix: str) -> None:
    import threading

    import redis

    config = shared_config(server, redis_url, prefix, budget={"max_usd": "1"})
    config["models"]["llama"]["deadline"] = 2.0  # hold_ttl stays 600
    server.enqueue(Fault.slow(1.0, Reply("late")))
    store = redis.Redis.from_url(redis_url)
    with Client(config=config) as client:
        call = threading.Thread(target=client.chat, args=("llama", "Hi"), kwargs={"max_tokens": 10})
        call.start()
        deadline = time.monotonic() + 10
        while not server.chat_requests:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (key,) = store.keys(f"{{{prefix}}}:budget:client:*:exp")
        ((_, expires),) = cast("list[tuple[bytes, float]]", store.zrange(key, 0, -1, withscores=True))
        seconds, micros = store.time()
        call.join(10)
    store.close()
    assert expires / 1000 - (seconds + micros / 1e6) == pytest.approx(2.0 + 5.0, abs=1.0)  # deadline + margin


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_retry_budget_drained_by_one_client_is_empty_for_the_next(
    server: FakeServer, redis_url: str, prefix: str, mode: str
) -> None:
    config = shared_config(server, redis_url, prefix)
    config["models"]["llama"]["retry"] = {
        "max_attempts": 3,
        "initial_delay": 0.01,
        "budget_ratio": 0,  # calls earn nothing back: two retries in all, for every worker together
        "budget_burst": 2,
    }
    server.enqueue(Fault.status(500), Fault.status(500), Fault.status(500))
    with Client(config=config) as first, pytest.raises(ServerError):
        first.chat("llama", "Hi")  # three attempts: both retries spent
    server.enqueue(Fault.status(500))  # then the default reply: a retry would succeed

    async def second_call() -> Any:
        async with AsyncClient(config=config) as client:
            return await client.chat("llama", "Hi")

    with pytest.raises(ServerError) as info:
        if mode == "sync":
            with Client(config=config) as second:
                second.chat("llama", "Hi")
        else:
            asyncio.run(second_call())
    assert len(info.value.attempts) == 1  # no retry left in the shared budget
    assert len(server.chat_requests) == 4
