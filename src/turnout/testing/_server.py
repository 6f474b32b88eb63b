"""`FakeServer`: an in-process OpenAI or vLLM server on 127.0.0.1 for tests."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, get_args

from turnout.testing._batches import Batches
from turnout.testing._embed import DEFAULT_DIMENSIONS
from turnout.testing._handler import handler_class
from turnout.testing._script import Fault, RecordedRequest, Reply, Scripted
from turnout.testing._wire import Flavor

__all__ = ["FakeServer"]

logger = logging.getLogger("turnout.testing")

_DEFAULT_MODELS: dict[Flavor, str] = {"openai": "gpt-4o-mini", "vllm": "fake-model"}
#: `max_model_len` of a vllm-flavor server when none is given.
_VLLM_MAX_MODEL_LEN = 4096
_JOIN_TIMEOUT = 5.0


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


class FakeServer:
    """An OpenAI or vLLM chat-completions server on 127.0.0.1, scripted with replies and faults.

    It speaks the real wire format over real HTTP/1.1 (keep-alive, SSE over chunked encoding) on
    daemon threads, so sync and async clients can use it at once. Scripted answers are consumed
    first-in first-out, one per chat request that passes validation; when none is left the server
    sends `default_reply` (by default an echo of the last user message).

    Example:
        ```python
        with FakeServer(flavor="vllm", models=["llama-2-7b"]) as server:
            server.enqueue(Fault.rate_limit(retry_after=1), Reply("Hello!"))
            client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            ...
            assert len(server.chat_requests) == 2
        ```

    Args:
        flavor: `"openai"` or `"vllm"`: which server's bodies, errors and extras to imitate.
        models: The served model ids. When given, other models get a 404; when `None`, any model
            is accepted and `/v1/models` lists one default ("gpt-4o-mini" or "fake-model").
        max_model_len: Context length in tokens. Prompt tokens plus `max_tokens` over it get the
            flavor's context-length error. `None`: no limit on openai, 4096 on vllm.
        api_key: If set, `/v1/...` requests need `Authorization: Bearer <api_key>`.
        default_reply: What to answer when no scripted item is queued; `None` echoes.
        host: The interface to bind.
        port: The port to bind; 0 picks a free one.
        runner: vllm flavour: `"generate"` (a chat model: `/v1/embeddings` is a 404) or
            `"pooling"` (an embedding model: `/v1/embeddings` answers, chat is a 404).
        ssl_context: A server-side context (`ssl.Purpose.CLIENT_AUTH`, with `load_cert_chain`):
            serve HTTPS; `url` then starts with `https://`.
    """

    def __init__(
        self,
        flavor: Flavor = "openai",
        *,
        models: Sequence[str] | None = None,
        max_model_len: int | None = None,
        api_key: str | None = None,
        default_reply: Reply | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        runner: Literal["generate", "pooling"] = "generate",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if flavor not in get_args(Flavor):
            raise ValueError(f"flavor must be 'openai' or 'vllm', not {flavor!r}")
        if models is not None and (isinstance(models, str) or not models):
            raise ValueError("models must be a non-empty sequence of model ids")
        self._flavor: Flavor = flavor
        #: vllm flavour: ``"pooling"`` serves ``/v1/embeddings`` and no chat (``vllm serve --runner pooling``).
        self.runner = runner
        #: Length of the vectors ``/v1/embeddings`` returns when the request sets no ``dimensions``.
        self.embedding_dimensions = DEFAULT_DIMENSIONS
        self._models = tuple(models) if models is not None else (_DEFAULT_MODELS[flavor],)
        self._any_model = models is None
        if max_model_len is None and flavor == "vllm":
            max_model_len = _VLLM_MAX_MODEL_LEN
        self._max_model_len = max_model_len
        self._api_key = api_key
        self._address = (host, port)
        self._ssl_context = ssl_context
        self._initial_reply = default_reply
        #: What to answer when no scripted item is queued (`None`: echo the last user message).
        self.default_reply: Reply | None = default_reply
        self._queues = _Queues()
        #: openai flavour: uploaded files and batches of the Files and Batch APIs (`turnout.testing._batches`).
        self.batches = Batches()
        #: How often a batch is polled (``GET /v1/batches/{id}``) before it reads ``completed``.
        self.batch_polls = 1
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._stop = threading.Event()
        self._created = int(time.time())
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None and not self._closed else "not running"
        return f"FakeServer(flavor={self._flavor!r}, {where})"

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and start serving (a no-op if already started).

        Returns:
            The server itself.

        Raises:
            RuntimeError: If the server was closed; start a new one instead.
        """
        if self._closed:
            raise RuntimeError("this FakeServer is closed; create a new one")
        if self._httpd is None:
            httpd = _HTTPServer(self._address, self._handler_class(), self._ssl_context)
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="turnout-fake-server", daemon=True
            )
            self._httpd = httpd
            self._thread.start()
        return self

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler bound to this server (subclasses serve other protocols)."""
        return handler_class(self)

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

    # -- addresses and configuration -------------------------------------------------------------

    @property
    def flavor(self) -> Flavor:
        """`"openai"` or `"vllm"`."""
        return self._flavor

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("the FakeServer is not running; call start() or use it as a context manager")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The server root, e.g. `http://127.0.0.1:PORT` (vLLM's `/health`, `/tokenize` live here)."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, `url + "/v1"`: pass it to clients."""
        return self.url + "/v1"

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since the server started (a client that reuses its connection adds none)."""
        if self._httpd is None:
            raise RuntimeError("the FakeServer is not running; call start() or use it as a context manager")
        return self._httpd.accepted

    @property
    def models(self) -> list[str]:
        """The served model ids, as listed by `GET /v1/models`."""
        return list(self._models)

    @property
    def max_model_len(self) -> int | None:
        """The context length enforced, or `None` for none."""
        return self._max_model_len

    @property
    def api_key(self) -> str | None:
        """The key `/v1/...` requests must send, or `None`."""
        return self._api_key

    def _serves(self, model: str) -> bool:
        return self._any_model or model in self._models

    # -- scripting -----------------------------------------------------------------------------

    def enqueue(self, *items: Scripted, model: str | None = None) -> None:
        """Queue replies and faults; each chat request that passes validation consumes one.

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

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        """Only the `POST /v1/embeddings` requests, in arrival order."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/embeddings"]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the `POST /v1/chat/completions` requests, in arrival order."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/chat/completions"]
