"""Sending through the pool's transport (`turnout.providers._send`): what httpx2's client layers did still happens.

Where no proxy applies, requests skip ``httpx2.Client.send`` (its auth flow, redirect loop and
hooks do nothing for turnout) and go to the transport; a server's cookies, the ``httpx2``
logger's line, ``response.request`` and ``response.elapsed`` must not notice. Where a proxy
may apply (the environment's), every request goes through the client, which picks the proxy.
A reply read whole without ``content-encoding`` is read from the transport's stream, not through
httpx2's readers, and left as ``read()`` leaves it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpx2
import pytest

import turnout
from turnout import AsyncClient, ChatRequest, Client, Message
from turnout.providers import _send
from turnout.testing import FakeServer, Fault, Reply

from ..conftest import Runner


@contextmanager
def _serving(*replies: Reply | Fault) -> Iterator[FakeServer]:
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


_COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


@pytest.fixture
def readers_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx2's body readers fail the test: a plain reply must be read from the transport's stream."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a reply without content-encoding went through httpx2's readers")

    for reader in ("read", "aread", "iter_bytes", "aiter_bytes", "iter_raw", "aiter_raw"):
        monkeypatch.setattr(httpx2.Response, reader, refuse)


def test_a_read_reply_skips_httpx2s_readers_and_is_left_as_read_leaves_it(
    no_proxy_env: None, readers_refused: None
) -> None:
    request = ChatRequest(messages=[Message(role="user", content="hi")])
    body = b'{"model": "m", "messages": []}'
    replies = [Fault.response(200, json.dumps(_COMPLETION).encode(), content_type="application/json")] * 4
    with _serving(*replies) as server, Client(config=_config(server)) as client:
        provider: Any = client.provider("p")
        first = provider.post("/chat/completions", body, request, "m")
        second = provider.post("/chat/completions", body, request, "m")

        async def go() -> list[httpx2.Response]:
            made = [await provider.apost("/chat/completions", body, request, "m") for _ in range(2)]
            await provider.aclose()
            return made

        replies_read = [first, second, *asyncio.run(go())]
        connections = server.connections_accepted
    for response in replies_read:
        assert response.json() == _COMPLETION and response.text == json.dumps(_COMPLETION)
        assert response.is_stream_consumed and response.is_closed
    assert connections == 2  # one per pool: each reply read whole gave its connection back


def test_a_gzip_encoded_reply_is_decoded(runner: Runner, no_proxy_env: None) -> None:
    encoded = gzip.compress(json.dumps(_COMPLETION).encode())
    fault = Fault.response(200, encoded, content_type="application/json", headers={"content-encoding": "gzip"})
    with _serving(fault) as server, pytest.warns(turnout.CostUnknownWarning):
        reply = runner.chat(_config(server), "p:m", "hi")
    assert reply.text == "whole" and reply.usage.total_tokens == 4


def test_a_reply_cut_mid_body_is_a_connection_error_whose_cause_names_its_request(
    runner: Runner, no_proxy_env: None
) -> None:
    with _serving(Fault.truncate_stream()) as server, pytest.raises(turnout.APIConnectionError) as info:
        url = f"{server.base_url}/chat/completions"
        runner.chat(_config(server), "p:m", "hi")
    cause = info.value.__cause__
    assert isinstance(cause, httpx2.RemoteProtocolError)
    assert cause.request.url == url  # httpx2 raises RuntimeError when no request is attached


def test_an_httpx2_keeping_the_body_elsewhere_is_read_with_read(
    runner: Runner, no_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _send._content_slot()  # the installed httpx2 keeps it in _content
    monkeypatch.setattr(_send, "_READ_INTO", False)  # as if a later httpx2 did not
    used: list[str] = []
    read, aread = httpx2.Response.read, httpx2.Response.aread

    def spy_read(self: httpx2.Response) -> bytes:
        used.append("read")
        return read(self)

    async def spy_aread(self: httpx2.Response) -> bytes:
        used.append("aread")
        return await aread(self)

    monkeypatch.setattr(httpx2.Response, "read", spy_read)
    monkeypatch.setattr(httpx2.Response, "aread", spy_aread)
    with _serving(Reply("by read")) as server, pytest.warns(turnout.CostUnknownWarning):
        reply = runner.chat(_config(server), "p:m", "hi")
    assert reply.text == "by read" and used == ["read" if runner.mode == "sync" else "aread"]


def test_the_body_slot_is_checked_not_assumed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _send._content_slot()

    def keep_elsewhere(self: httpx2.Response) -> bytes:  # an httpx2 whose read() keeps the body in another name
        self.__dict__["_body"] = b"".join(cast(Iterable[bytes], self.stream))
        return cast(bytes, self.__dict__["_body"])

    monkeypatch.setattr(httpx2.Response, "read", keep_elsewhere)
    assert not _send._content_slot()
