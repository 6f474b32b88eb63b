"""A fast fake OpenAI chat-completions server for the benchmark, on 127.0.0.1 only.

Raw asyncio HTTP/1.1 (keep-alive, pipelining) with pre-rendered replies, so its own cost per
request is small; on uvloop when that is installed, else the standard loop. Standard library
only otherwise. ``POST /v1/chat/completions`` answers JSON, or SSE when the body says
``"stream": true``: a role chunk, N content chunks, a finish chunk, a usage chunk, ``[DONE]``.

    python benchmarks/_server.py --port 0 --chunks 64    # prints "listening on <url>"
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
from collections.abc import Callable, Coroutine
from functools import lru_cache
from typing import Any, cast

from _wire import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY, stream_pieces

_CREATED = 1_700_000_000
_MAX_HEAD = 65_536


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _response(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        len(body),
        body,
    )


def _error(status: bytes, message: str) -> tuple[bytes, ...]:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return (_response(status, _dumps(body)),)


def _usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }


@lru_cache(maxsize=16)
def chat_reply(model: str) -> tuple[bytes, ...]:
    """The whole HTTP response to a non-streamed chat request."""
    message = {"role": "assistant", "content": REPLY, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    body = {
        "id": "chatcmpl-turnout-bench-1",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [choice],
        "usage": _usage(COMPLETION_TOKENS),
    }
    return (_response(b"200 OK", _dumps(body)),)


def _event(payload: bytes) -> bytes:
    """One SSE event as one HTTP chunk."""
    event = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


@lru_cache(maxsize=16)
def stream_reply(model: str, chunks: int) -> tuple[bytes, ...]:
    """The parts of the HTTP response to a streamed chat request (chunked transfer encoding)."""

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: object) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {
            "id": "chatcmpl-turnout-bench-2",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [choice],
            **extra,
        }
        return _event(_dumps(body))

    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    usage = chunk({}, choices=[], usage=_usage(chunks))
    return (
        head,
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": text}) for text in stream_pieces(chunks)),
        chunk({}, "stop"),
        usage,
        _event(b"[DONE]"),
        b"0\r\n\r\n",
    )


class _Connection(asyncio.Protocol):
    """One client connection: parse requests as they arrive, answer each in order."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._reply(_error(b"431 Request Header Fields Too Large", "header too large"), close=True)
                return
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            method, _, rest = lines[0].partition(b" ")
            target, _, version = rest.partition(b" ")
            connection = headers.get(b"connection", b"").lower()
            close = connection == b"close" or (version == b"HTTP/1.0" and connection != b"keep-alive")
            self._reply(self._route(method, target.split(b"?")[0], body), close=close)

    def _route(self, method: bytes, path: bytes, body: bytes) -> tuple[bytes, ...]:
        if method != b"POST" or path != b"/v1/chat/completions":
            return _error(b"404 Not Found", f"no route for {method.decode()} {path.decode()}")
        try:
            request: Any = json.loads(body)
            model = request["model"]
        except (ValueError, KeyError, TypeError):
            return _error(b"400 Bad Request", "the body must be JSON with a 'model' field")
        if request.get("stream"):
            return stream_reply(model, self.chunks)
        return chat_reply(model)

    def _reply(self, parts: tuple[bytes, ...], *, close: bool) -> None:
        assert self.transport is not None
        self.transport.writelines(parts)
        if close:
            self.transport.close()


def main() -> None:
    """Serve until interrupted; print ``listening on <base url> (<loop>)`` once ready."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--chunks", type=int, default=64, help="content chunks per streamed reply")
    args = parser.parse_args()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(args.chunks), "127.0.0.1", args.port, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{port}/v1 ({type(loop).__module__})", flush=True)
        await server.serve_forever()

    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    try:
        run = importlib.import_module("uvloop").run
    except ImportError:
        pass
    try:
        run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
