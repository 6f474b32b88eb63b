"""The response cache ([cache]): hits send nothing, on the memory, SQLite and a real Redis backend."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from turnout import AsyncClient, ChatResponse, Client, ConfigError, InvalidArgumentError
from turnout.cache import MemoryCache, ResponseCache, request_key
from turnout.cli import main
from turnout.errors import OutputValidationError, ServerError, StreamInterruptedError
from turnout.testing import FakeServer, Fault, Reply

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"
PRICE = {"input_per_million": "1.00", "output_per_million": "2.00"}


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 (scripts/redis-test-server), or ``$TURNOUT_REDIS_URL``.

    Without one the Redis tests skip, unless ``TURNOUT_REQUIRE_SERVICES=1`` (``make test``): then they fail.
    """
    given = os.environ.get("TURNOUT_REDIS_URL")
    if given:
        yield given
        return
    port = _free_port()
    script = str(ROOT / "scripts" / "redis-test-server")
    done = subprocess.run([script, "start", "--port", str(port)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = f"no Redis server for the tests: {done.stderr.strip() or done.stdout.strip()}"
        if os.environ.get("TURNOUT_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield done.stdout.strip()
    finally:
        subprocess.run([script, "stop", "--port", str(port)], check=False)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(flavor="openai", models=[MODEL], api_key="sk-one") as fake:
        yield fake


def _cache_table(backend: str, tmp_path: Path, redis_url: str | None) -> dict[str, Any]:
    if backend == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "cache.sqlite3")}
    if backend == "redis":
        assert redis_url is not None
        return {"backend": "redis", "url": redis_url}
    return {"backend": "memory"}


def _config(server: FakeServer, table: dict[str, Any] | None, *, key: str = "sk-one", **route: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {"openai": {"type": "openai", "base_url": server.base_url, "api_key": key}},
        "models": {"fast": {"targets": [f"openai:{MODEL}"], **route}},
        "prices": {f"openai:{MODEL}": PRICE},
        "defaults": {"retry": {"max_attempts": 1}},
        "ledger": {"enabled": False},
    }
    if table is not None:
        config["cache"] = table
    return config


@pytest.fixture(params=["memory", "sqlite", "redis"])
def cache_table(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return _cache_table(request.param, tmp_path, url)


def _unique(text: str) -> str:
    """A prompt no other test (or earlier run against the same Redis) has cached."""
    return f"{text} {time.time_ns()}"


Twice = tuple[ChatResponse, ChatResponse, list[str]]


def _twice(mode: str, streamed: bool, config: dict[str, Any], prompt: str) -> Twice:
    """The same call twice on one client: both replies, and the second one's chunk texts (when streamed)."""
    if mode == "sync":
        with Client(config=config) as client:
            if not streamed:
                return client.chat("fast", prompt, max_tokens=16), client.chat("fast", prompt, max_tokens=16), []
            with client.stream("fast", prompt, max_tokens=16) as first:
                first.get_response()
            with client.stream("fast", prompt, max_tokens=16) as second:
                texts = [c.text or "" for c in second]
            return first.response, second.response, texts

    async def go() -> Twice:
        async with AsyncClient(config=config) as client:
            if not streamed:
                one = await client.chat("fast", prompt, max_tokens=16)
                return one, await client.chat("fast", prompt, max_tokens=16), []
            async with client.stream("fast", prompt, max_tokens=16) as first:
                await first.get_response()
            async with client.stream("fast", prompt, max_tokens=16) as second:
                texts = [c.text or "" async for c in second]
            return first.response, second.response, texts

    return asyncio.run(go())


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_repeated_request_is_served_with_no_request_sent(
    server: FakeServer, cache_table: dict[str, Any], mode: str, streamed: bool
) -> None:
    text = "a reply long enough to be replayed in several chunks"
    server.enqueue(Reply(text, prompt_tokens=10, completion_tokens=12))
    first, second, chunks = _twice(mode, streamed, _config(server, cache_table), _unique("Hi"))
    assert len(server.chat_requests) == 1  # the second call sent nothing
    assert not first.from_cache and first.cost is not None and first.cost.total > 0
    assert second.from_cache and second.text == text
    assert second.cost is not None and second.cost.total == 0 and second.cost.source == "cache"
    assert second.usage == first.usage
    assert [a.outcome for a in second.attempts] == ["cached"]
    if streamed:
        assert len(chunks) > 2 and "".join(chunks) == text


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_sqlite_and_redis_entries_are_shared_between_clients(
    request: pytest.FixtureRequest, server: FakeServer, backend: str, tmp_path: Path
) -> None:
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    cache_table = _cache_table(backend, tmp_path, url)
    prompt = _unique("shared")
    with Client(config=_config(server, cache_table)) as one:
        one.chat("fast", prompt, max_tokens=8)
    with Client(config=_config(server, cache_table, key="sk-two")) as two:  # another API key: the same entry
        assert two.chat("fast", prompt, max_tokens=8).from_cache
    assert len(server.chat_requests) == 1


def test_the_key_holds_every_parameter_and_the_target_but_no_secret(server: FakeServer) -> None:
    cache = ResponseCache(MemoryCache())
    with Client(config=_config(server, {"backend": "memory"})) as client:
        call = client._plan("fast", "Hi", {"max_tokens": 8})
        base = request_key(call.route, call.targets, call.request)
        for change in ({"temperature": 0.5}, {"max_tokens": 9}, {"seed": 1}, {"stop": "x"}, {"tools": [_tool]}):
            other = client._plan("fast", "Hi", {"max_tokens": 8, **change})
            assert request_key(other.route, other.targets, other.request) != base, change
        same = client._plan("fast", "Hi", {"max_tokens": 8, "timeout": 5, "extra_headers": {"X-Trace": "1"}})
        assert request_key(same.route, same.targets, same.request) == base
        assert request_key("openai:gpt-4o-mini", call.targets, call.request) != base  # the route is part of it
    with Client(config=_config(server, {"backend": "memory"}, key="sk-other")) as other_key:
        call = other_key._plan("fast", "Hi", {"max_tokens": 8})
        assert request_key(call.route, call.targets, call.request) == base
    with FakeServer(flavor="openai", models=[MODEL]) as elsewhere, Client(config=_config(elsewhere, None)) as client:
        call = client._plan("fast", "Hi", {"max_tokens": 8})
        assert request_key(call.route, call.targets, call.request) != base  # another base URL
    assert cache.get(base) is None


def _tool(city: str) -> str:
    """Weather in a city."""
    return city


def test_cache_false_and_a_route_without_cache_send_every_time(server: FakeServer) -> None:
    with Client(config=_config(server, {"backend": "memory"})) as client:
        client.chat("fast", "Hi", max_tokens=8)
        assert not client.chat("fast", "Hi", max_tokens=8, cache=False).from_cache
        assert client.chat("fast", "Hi", max_tokens=8).from_cache
    with Client(config=_config(server, {"backend": "memory"}, cache=False)) as client:
        client.chat("fast", "Hi", max_tokens=8)
        assert not client.chat("fast", "Hi", max_tokens=8).from_cache
    assert len(server.chat_requests) == 4
    with Client(config=_config(server, None)) as client, pytest.raises(InvalidArgumentError, match=r"\[cache\]"):
        client.chat("fast", "Hi", max_tokens=8, cache=True)


def test_errors_interrupted_streams_and_rejected_outputs_are_never_stored(server: FakeServer) -> None:
    class City(BaseModel):
        name: str

    with Client(config=_config(server, {"backend": "memory"})) as client:
        server.enqueue(Fault.server_error())
        with pytest.raises(ServerError):
            client.chat("fast", "err", max_tokens=8)
        assert not client.chat("fast", "err", max_tokens=8).from_cache  # sent again
        server.enqueue(Fault.truncate_stream(after_chunks=2, reply=Reply("one two three four five")))
        with pytest.raises(StreamInterruptedError), client.stream("fast", "cut", max_tokens=8) as stream:
            stream.get_response()
        with client.stream("fast", "cut", max_tokens=8) as stream:
            assert not stream.get_response().from_cache
        server.enqueue(Reply("not json"))
        with pytest.raises(OutputValidationError):
            client.chat("fast", "city", max_tokens=8, response_model=City, output_retries=0)
        server.enqueue(Reply('{"name": "Paris"}'))
        fresh = client.chat("fast", "city", max_tokens=8, response_model=City, output_retries=0)
        hit = client.chat("fast", "city", max_tokens=8, response_model=City, output_retries=0)
    assert not fresh.from_cache and hit.from_cache
    assert hit.parsed == City(name="Paris")  # validated again from the stored text
    assert len(server.chat_requests) == 6


def test_ttl_expires_entries(server: FakeServer) -> None:
    with Client(config=_config(server, {"backend": "memory", "ttl": 0.2})) as client:
        client.chat("fast", "Hi", max_tokens=8)
        assert client.chat("fast", "Hi", max_tokens=8).from_cache
        time.sleep(0.3)
        assert not client.chat("fast", "Hi", max_tokens=8).from_cache
    assert len(server.chat_requests) == 2


def test_an_unreachable_backend_is_a_logged_miss(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:secret-pw@127.0.0.1:{_free_port()}/0"  # nothing listens there
    config = _config(server, {"url": url, "backend": "redis"})
    with caplog.at_level(logging.WARNING, "turnout"), Client(config=config) as c:
        assert c.chat("fast", "Hi", max_tokens=8).text
        assert not c.chat("fast", "Hi", max_tokens=8).from_cache
    assert "response cache failed" in caplog.text and "secret-pw" not in caplog.text
    assert len(server.chat_requests) == 2


def test_cache_config_errors_name_the_fix(server: FakeServer) -> None:
    with pytest.raises(ConfigError, match="needs path"):
        Client(config=_config(server, {"backend": "sqlite"}))
    with pytest.raises(ConfigError, match="needs url"):
        Client(config=_config(server, {"backend": "redis"}))
    with pytest.raises(ConfigError, match='url is for backend "redis"'):
        Client(config=_config(server, {"backend": "memory", "url": "redis://x"}))
    with Client(config=_config(server, {"backend": "redis", "url": "redis://:pw-123@127.0.0.1:1/0"})) as client:
        assert "pw-123" not in repr(client.config.cache)


def test_the_ledger_records_hits_and_usage_shows_the_savings(
    server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TURNOUT_LEDGER")
    ledger = tmp_path / "ledger.sqlite3"
    config = {**_config(server, {"backend": "memory"}), "ledger": {"path": str(ledger)}}
    server.enqueue(Reply("cached answer", prompt_tokens=1000, completion_tokens=500))
    with Client(config=config) as client:
        paid = client.chat("fast", "Hi", max_tokens=600)
        client.chat("fast", "Hi", max_tokens=600)
        client.chat("fast", "Hi", max_tokens=600)
    assert paid.cost is not None and paid.cost.total == Decimal("0.002")
    with closing(sqlite3.connect(ledger)) as db:
        rows = db.execute("SELECT cache_hit, cost, saved, provider, model FROM calls ORDER BY rowid").fetchall()
    assert rows == [(0, "0.002", None, "openai", MODEL), *[(1, "0", "0.002", "openai", MODEL)] * 2]
    assert main(["usage", "--ledger", str(ledger), "--plain", "--by", "alias"]) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert table[0][-2:] == ["cache_hits", "saved_usd"]
    assert table[2] == ["fast", "3", "0", "3000", "1500", "0.002", "0", "2", "0.004"]
