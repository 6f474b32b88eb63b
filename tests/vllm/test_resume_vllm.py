"""Resuming a cut stream (route ``resume = "continue"``) against a REAL vLLM server.

A small TCP proxy sits between turnout and the server. It cuts the first streamed response after
a few content events (closing both sockets at an event boundary) and passes everything else
through, keeping what it forwarded. The caller's stream must then complete, start with exactly
the text the proxy let through, carry vLLM's ``continue_final_message`` in the continuation
request, and add up both requests' server usage.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import turnout
from turnout import AsyncClient, Client, VLLMOptions

from .conftest import VLLMServer

pytestmark = pytest.mark.filterwarnings("ignore::turnout.CostUnknownWarning")

_EVENT = re.compile(rb"data: (\{[^\n]*\})\n\n")


class CuttingProxy:
    """Forwards 127.0.0.1:port to ``upstream``; cuts the first streamed reply after ``cut_after`` content events."""

    def __init__(self, upstream: str, cut_after: int) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.cuts_left = 1
        self.cut_after = cut_after
        self.requests: list[dict[str, Any]] = []
        self.replies: list[list[dict[str, Any]]] = []
        """The events each reply forwarded to turnout (the cut one: only those before the cut)."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, socket.create_connection(self.upstream) as up:
            head, body = self._read_request(conn)
            request = json.loads(body) if body else {}
            chat = "messages" in request and head.startswith(b"POST /v1/chat/completions")
            cut = chat and bool(request.get("stream")) and self.cuts_left > 0
            self.cuts_left -= cut
            up.sendall(head + body)
            if chat:
                self.requests.append(request)
                self.replies.append(self._pump(up, conn, cut))
            else:
                self._pump(up, conn, False)

    @staticmethod
    def _read_request(conn: socket.socket) -> tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        found = re.search(rb"(?i)content-length: *(\d+)", head)
        length = int(found.group(1)) if found else 0  # a GET (/v1/models, /tokenize's lookups) has no body
        while len(body) < length:
            body += conn.recv(65536)
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n", body

    def _pump(self, up: socket.socket, conn: socket.socket, cut: bool) -> list[dict[str, Any]]:
        """Forward a reply, whole events at a time; cut it after ``cut_after`` content events; return its events."""
        buffered, sent, content = b"", 0, 0
        events: list[dict[str, Any]] = []
        while data := up.recv(65536):
            buffered += data
            start = buffered.find(b"\r\n\r\n")
            if start < 0:
                continue
            upto = max(sent, start + 4)
            for match in _EVENT.finditer(buffered, upto):
                event = json.loads(match.group(1))
                events.append(event)
                upto = match.end()
                choices = event.get("choices") or [{}]
                content += bool((choices[0].get("delta") or {}).get("content"))
                if cut and content == self.cut_after:
                    conn.sendall(buffered[sent:upto])
                    return events  # both sockets close: the stream is cut at an event boundary
            if not cut:
                upto = len(buffered)
            conn.sendall(buffered[sent:upto])
            sent = upto
        conn.sendall(buffered[sent:])
        return events

    @staticmethod
    def text(events: list[dict[str, Any]]) -> str:
        return "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices"))

    @staticmethod
    def usage(events: list[dict[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = [e["usage"] for e in events if e.get("usage")][-1]
        return found


@pytest.fixture
def proxy(vllm_server: VLLMServer) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(vllm_server.base_url, cut_after=5)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_cut_by_the_network_is_finished_by_vllm(
    vllm_server: VLLMServer, proxy: CuttingProxy, mode: str
) -> None:
    target = f"local:{vllm_server.model}"
    config = {
        "providers": {
            "local": {
                "type": "vllm",
                "base_url": f"http://127.0.0.1:{proxy.port}/v1",
                "api_key": vllm_server.api_key,
            }
        },
        "models": {"m": {"targets": [target], "resume": "continue", "retry": {"initial_delay": 0}}},
        "prices": {target: {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "ledger": {"enabled": False},
    }
    options: dict[str, Any] = {"max_tokens": 24, "temperature": 0, "provider_options": VLLMOptions(ignore_eos=True)}

    if mode == "sync":
        with Client(config) as client, client.stream("m", "Count to twenty.", **options) as stream:
            seen = "".join(chunk.text or "" for chunk in stream)
        reply = stream.response
    else:

        async def go() -> tuple[str, turnout.ChatResponse]:
            async with AsyncClient(config) as client, client.stream("m", "Count to twenty.", **options) as s:
                return "".join([chunk.text or "" async for chunk in s]), s.response

        seen, reply = asyncio.run(go())
    assert len(proxy.requests) == 2
    first, second = proxy.requests
    delivered = CuttingProxy.text(proxy.replies[0])
    assert delivered and seen.startswith(delivered)  # exactly the part delivered before the cut, then the rest
    assert seen == reply.text == delivered + CuttingProxy.text(proxy.replies[1])
    assert second["continue_final_message"] is True and second["add_generation_prompt"] is False
    assert second["messages"][-1] == {"role": "assistant", "content": delivered}
    assert first["stream_options"]["continuous_usage_stats"] is True
    cut, rest = CuttingProxy.usage(proxy.replies[0]), CuttingProxy.usage(proxy.replies[1])
    assert reply.usage.prompt_tokens == cut["prompt_tokens"] + rest["prompt_tokens"]
    assert reply.usage.completion_tokens == cut["completion_tokens"] + rest["completion_tokens"]
    assert not reply.usage.estimated
    assert second["max_tokens"] == 24 - cut["completion_tokens"]  # max_tokens counts across the pieces
    assert [a.outcome for a in reply.attempts] == ["StreamInterruptedError", "ok"]
