"""`ScriptedServer`: the base of every fake server: HTTP on 127.0.0.1, a script, a request log.

Each provider's fake (`FakeServer` for the OpenAI and vLLM wire, `FakeAzureServer`,
`FakeTGIServer`, `FakeTEIServer`) subclasses `ScriptedServer` and adds only its own wire format:
its routes, bodies, error bodies and SSE framing, in a `ScriptedHandler` subclass. The base
holds what they share: a threaded HTTP/1.1 server (keep-alive, optional TLS) whose connections
`close()` ends, the queues of scripted `Reply` and `Fault` values (one shared, one per model),
the log of every request, and start/stop as a context manager. It serves on daemon threads, so
sync and async clients can use one server at once.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from turnout.testing._script import Fault, Reply, Scripted
from turnout.testing._wire import new_request_id

__all__ = ["RecordedRequest", "ScriptedHandler", "ScriptedServer"]

logger = logging.getLogger("turnout.testing")

_JOIN_TIMEOUT = 5.0
_JSON = "application/json"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake server received.

    Attributes:
        method: `GET`, `POST`, …
        path: The path without the query string, e.g. `/v1/chat/completions`.
        query: The raw query string (`""` if none).
        headers: Request headers with lower-cased names (repeated headers joined with ", ").
        body: The raw request body.
        json: The parsed JSON body, or `None` if the body was empty or not JSON.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    json: Any

    @property
    def model(self) -> str | None:
        """The body's `model` field, if any."""
        value = self.json.get("model") if isinstance(self.json, dict) else None
        return value if isinstance(value, str) else None

    @property
    def stream(self) -> bool:
        """Whether the body asked for `stream: true`."""
        return isinstance(self.json, dict) and self.json.get("stream") is True


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so `close()` can end them all."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 resets bursts of parallel connections

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self.accepted = 0
        self.ssl_context = ssl_context
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve each connection on its own daemon thread, remembering both."""
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"turnout-fake-conn-{client_address[1]}",
            daemon=True,
        )
        with self._lock:
            self._connections[request] = thread
            self.accepted += 1
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        connection = request
        try:
            if self.ssl_context is not None:  # the TLS handshake on this connection's thread
                connection = self.ssl_context.wrap_socket(request, server_side=True)
            self.finish_request(connection, client_address)
        except Exception:
            self.handle_error(connection, client_address)
        finally:
            self.shutdown_request(connection)
            with self._lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002 (the base signature)
        """Log connection errors at debug level instead of printing a traceback."""
        logger.debug("connection from %s failed", client_address, exc_info=True)

    def end_connections(self) -> None:
        """Unblock every connection thread (idle keep-alive ones included) and wait for them."""
        with self._lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, thread in connections:
            thread.join(_JOIN_TIMEOUT)


class _Queues:
    """Thread-safe FIFO queues of scripted answers: one shared, plus one per model id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: deque[Scripted] = deque()
        self._by_model: dict[str, deque[Scripted]] = {}

    def push(self, items: Sequence[Scripted], model: str | None) -> None:
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"expected Reply or Fault, got {type(item).__name__}")
        with self._lock:
            queue = self._shared if model is None else self._by_model.setdefault(model, deque())
            queue.extend(items)

    def pop(self, model: str | None) -> Scripted | None:
        with self._lock:
            queue = self._by_model.get(model) if model is not None else None
            if queue:
                return queue.popleft()
            return self._shared.popleft() if self._shared else None

    def pending(self, model: str | None) -> int:
        with self._lock:
            if model is None:
                return len(self._shared) + sum(len(q) for q in self._by_model.values())
            return len(self._by_model.get(model, ()))

    def clear(self) -> None:
        with self._lock:
            self._shared.clear()
            self._by_model.clear()


class ScriptedServer:
    """A fake server on 127.0.0.1: lifecycle, scripted answers and the request log, no wire format.

    Subclasses set `handler` to their `ScriptedHandler` subclass and add their own settings.

    Args:
        api_key: The key requests must send (how, and on which routes, is the wire format's).
        default_reply: What to answer when no scripted item is queued; `None` echoes.
        host: The interface to bind.
        port: The port to bind; 0 picks a free one.
        ssl_context: A server-side context: serve HTTPS; `url` then starts with `https://`.
    """

    #: The request handler class; the server binds a subclass of it to itself.
    handler: ClassVar[type[ScriptedHandler]]

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default_reply: Reply | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._api_key = api_key
        self._address = (host, port)
        self._ssl_context = ssl_context
        self._initial_reply = default_reply
        #: What to answer when no scripted item is queued (`None`: echo the last user message).
        self.default_reply: Reply | None = default_reply
        self._queues = _Queues()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._stop = threading.Event()
        self._created = int(time.time())
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def _not_running(self) -> RuntimeError:
        return RuntimeError(f"the {type(self).__name__} is not running; call start() or use it as a context manager")

    def _where(self) -> str:
        """The URL while serving, else ``not running`` (for reprs)."""
        return self.url if self._httpd is not None and not self._closed else "not running"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and start serving (a no-op if already started).

        Returns:
            The server itself.

        Raises:
            RuntimeError: If the server was closed; start a new one instead.
        """
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed; create a new one")
        if self._httpd is None:
            bound = type(f"{type(self).__name__}Handler", (self.handler,), {"fake": self})
            httpd = _HTTPServer(self._address, bound, self._ssl_context)
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="turnout-fake-server", daemon=True
            )
            self._httpd = httpd
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end open connections and release the port. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.end_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise self._not_running()
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The server root, e.g. `http://127.0.0.1:PORT`."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._address[0]}:{self.port}"

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since the server started (a client that reuses its connection adds none)."""
        if self._httpd is None:
            raise self._not_running()
        return self._httpd.accepted

    @property
    def api_key(self) -> str | None:
        """The key requests must send, or `None`."""
        return self._api_key

    # -- scripting -----------------------------------------------------------------------------

    def enqueue(self, *items: Scripted, model: str | None = None) -> None:
        """Queue replies and faults; each request that passes validation consumes one.

        Args:
            *items: `Reply` and `Fault` values, answered in order.
            model: Queue them for requests naming this model only. Requests for a model whose
                queue is empty fall back to the shared queue.
        """
        self._queues.push(items, model)

    def pending(self, model: str | None = None) -> int:
        """How many scripted items are still queued (all queues, or one model's)."""
        return self._queues.pending(model)

    def _next(self, model: str) -> Scripted | None:
        return self._queues.pop(model)

    def reset(self) -> None:
        """Forget queued items and recorded requests, and restore the initial `default_reply`."""
        self._queues.clear()
        with self._lock:
            self._requests.clear()
        self.default_reply = self._initial_reply

    # -- recording -----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def _posts(self, match: Callable[[str], bool]) -> list[RecordedRequest]:
        """The ``POST`` requests whose path ``match`` accepts, in arrival order."""
        return [r for r in self.requests if r.method == "POST" and match(r.path)]


class _Closing(Exception):
    """The server is closing: stop answering this connection."""


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers one connection (HTTP/1.1 keep-alive) for a `ScriptedServer`: reading, recording, writing.

    A wire format overrides `_route` (and the `Server` header, `version_string`, and the headers
    on every reply, `_base_headers`) and writes with `_send`, `_send_head` and `_chunk`.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: headers and body otherwise wait on delayed ACKs (~40 ms)
    fake: ScriptedServer  # set on the subclass the server builds

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Log to the `turnout.testing` logger at debug level instead of stderr."""
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        """Answer a GET."""
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        """Answer a POST."""
        self._dispatch()

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _route(self, record: RecordedRequest) -> None:
        """Answer one recorded request: the wire format's routes."""
        raise NotImplementedError(f"{type(self).__name__} must define _route")

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.fake._stop.wait(seconds):
            raise _Closing

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            body = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return body
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _record(self) -> RecordedRequest:
        body = self._read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        url = urlsplit(self.path)
        record = RecordedRequest(self.command, url.path, url.query, headers, body, parsed)
        self.fake._record(record)
        return record

    def _dispatch(self) -> None:
        self._started = time.monotonic()
        self._request_id = new_request_id()
        try:
            record = self._record()
            self._route(record)
        except (_Closing, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            name = type(self.fake).__name__
            logger.exception("turnout.testing.%s failed answering %s %s", name, self.command, self.path)
            self.close_connection = True

    def _base_headers(self) -> dict[str, str]:
        """Headers every reply carries (none by default)."""
        return {}

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] = {}, content_type: str = _JSON) -> None:
        self._send_head(status, {"content-type": content_type, "content-length": str(len(body)), **headers})
        self.wfile.write(body)

    def _send_head(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in {**self._base_headers(), **headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_raw(self, fault: Fault) -> None:
        """A `Fault.response`: its status, headers and body exactly."""
        headers = {"content-length": str(len(fault.body)), **fault.headers}
        if fault.content_type is not None:
            headers["content-type"] = fault.content_type
        self._send_head(fault.status_code or 200, headers)
        self.wfile.write(fault.body)

    def _chunk(self, data: bytes) -> None:
        """Write one chunk of the chunked body; empty `data` writes the terminating chunk."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
