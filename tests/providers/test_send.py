"""Sending through the pool's transport (`turnout.providers._send`): what httpx2's client layers did still happens.

Where no proxy applies, requests skip ``httpx2.Client.send`` (its auth flow, redirect loop and
hooks do nothing for turnout) and go to the transport; a server's cookies, the ``httpx2``
logger's line, ``response.request`` and ``response.elapsed`` must not notice. Where a proxy
may apply (the environment's), every request goes through the client, which picks the proxy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest

import turnout
from turnout import AsyncClient, ChatRequest, Client, Message
from turnout.testing import FakeServer, Reply

from ..conftest import Runner


@contextmanager
def _serving(*replies: Reply) -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.enqueue(*replies)
        yield server


def _config(server: FakeServer) -> dict[str, Any]:
    return {
        "providers": {"p": {"type": "openai-compatible", "base_url": server.base_url}},
        "defaults": {"retry": {"max_attempts": 1}},
        "ledger": {"enabled": False},
    }


@pytest.fixture
def client_sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts the requests that go through ``httpx2.Client.send`` / ``AsyncClient.send``."""
    seen: list[str] = []
    sync_send, async_send = httpx2.Client.send, httpx2.AsyncClient.send

    def send(self: httpx2.Client, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        seen.append("sync")
        return sync_send(self, request, **kwargs)

    async def asend(self: httpx2.AsyncClient, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        seen.append("async")
        return await async_send(self, request, **kwargs)

    monkeypatch.setattr(httpx2.Client, "send", send)
    monkeypatch.setattr(httpx2.AsyncClient, "send", asend)
    yield seen


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_without_a_proxy_requests_skip_the_client_layers(
    runner: Runner, streamed: bool, client_sends: list[str], no_proxy_env: None
) -> None:
    with _serving(Reply("direct")) as server, pytest.warns(turnout.CostUnknownWarning):
        reply = runner.call(streamed, _config(server), "p:m", "hi")
    assert reply.text == "direct" and client_sends == []


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_an_environment_proxy_carries_the_requests(
    runner: Runner, streamed: bool, client_sends: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake answers absolute-form requests, as a forward proxy does (RFC 9112 §3.2.2); the
    # base_url's host cannot resolve, so the reply can only come through the proxy from $HTTP_PROXY.
    with _serving(Reply("via the env proxy")) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        config = {
            "providers": {"p": {"type": "openai-compatible", "base_url": "http://api.turnout-test.invalid/v1"}},
            "defaults": {"retry": {"max_attempts": 1}},
            "ledger": {"enabled": False},
        }
        with pytest.warns(turnout.CostUnknownWarning):
            reply = runner.call(streamed, config, "p:m", "hi")
        [sent] = proxy.chat_requests
    assert reply.text == "via the env proxy" and sent.headers["host"] == "api.turnout-test.invalid"
    assert client_sends == [runner.mode]


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_a_cookie_the_server_sets_is_sent_back(runner: Runner, streamed: bool, no_proxy_env: None) -> None:
    with _serving(Reply("one", headers={"set-cookie": "affinity=node-7; Path=/"}), Reply("two")) as server:
        config = _config(server)
        with pytest.warns(turnout.CostUnknownWarning):
            if runner.mode == "sync":
                with Client(config=config) as client:
                    [_call(client, streamed) for _ in range(2)]
            else:

                async def go() -> None:
                    async with AsyncClient(config=config) as client:
                        for _ in range(2):
                            await _acall(client, streamed)

                asyncio.run(go())
        first, second = server.chat_requests
    assert "cookie" not in first.headers and second.headers["cookie"] == "affinity=node-7"


def _call(client: Client, streamed: bool) -> str:
    if streamed:
        with client.stream("p:m", "hi") as stream:
            return "".join(chunk.text or "" for chunk in stream)
    return client.chat("p:m", "hi").text


async def _acall(client: AsyncClient, streamed: bool) -> str:
    if streamed:
        async with client.stream("p:m", "hi") as stream:
            return "".join([chunk.text or "" async for chunk in stream])
    return (await client.chat("p:m", "hi")).text


@pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])
def test_the_httpx2_logger_gets_each_request(
    runner: Runner, streamed: bool, caplog: pytest.LogCaptureFixture, no_proxy_env: None
) -> None:
    with _serving(Reply("logged")) as server, pytest.warns(turnout.CostUnknownWarning):
        with caplog.at_level(logging.INFO, logger="httpx2"):
            runner.call(streamed, _config(server), "p:m", "hi")
        url = f"{server.base_url}/chat/completions"
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx2"]
    assert lines == [f'HTTP Request: POST {url} "HTTP/1.1 200 OK"']


def test_a_read_reply_carries_its_request_and_elapsed_time(no_proxy_env: None) -> None:
    request = ChatRequest(messages=[Message(role="user", content="hi")])
    body = b'{"model": "m", "messages": []}'
    with _serving(Reply("a"), Reply("b")) as server, Client(config=_config(server)) as client:
        provider: Any = client.provider("p")
        response = provider.post("/chat/completions", body, request, "m")
        assert response.request.url == f"{server.base_url}/chat/completions"
        assert response.elapsed.total_seconds() > 0

        async def go() -> httpx2.Response:
            reply: httpx2.Response = await provider.apost("/chat/completions", body, request, "m")
            await provider.aclose()
            return reply

        areply = asyncio.run(go())
    assert areply.request.method == "POST" and areply.elapsed.total_seconds() > 0
