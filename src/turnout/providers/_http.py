"""HTTP plumbing shared by providers that speak to a server directly over httpx2.

Connection pools are created lazily (sync and async separately), transport failures become
`APIConnectionError`/`APITimeoutError`, error statuses become typed errors via
`error_from_response`. Streamed bodies are decoded in `._sse`.
"""

from __future__ import annotations

import os
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx2

from .. import _defaults
from .._secrets import header_secrets, mask, mask_url, split_userinfo, url_secrets
from .._version import __version__
from ..engine.watch import WATCH
from ..errors import APIConnectionError, APITimeoutError, ProviderError, ResponseValidationError
from ..provider import Provider
from ._http_errors import describe_body, redirect_error
from ._loops import on_loop_shutdown
from ._openai_errors import error_from_response, error_in_body
from ._send import C, asend, pool, send

if TYPE_CHECKING:
    import asyncio

    from ..config import ProviderConfig
    from ..embeddings import EmbeddingRequest
    from ..types import ChatRequest

__all__ = ["HTTPProvider", "default_tls_context", "forget_pools_after_fork", "network_settings"]

_USER_AGENT = f"turnout/{__version__}"
#: What a send can raise for a transport failure. httpcore2 maps `ssl.SSLError` to ConnectError
#: during the handshake only; on asyncio a TLS alert read later (TLS 1.3 sends "certificate
#: required" after the handshake) escapes as a bare `ssl.SSLError`
#: (https://github.com/encode/httpx/issues/3350).
_TRANSPORT_ERRORS = (httpx2.TransportError, ssl.SSLError)


class _PoolOwner(Protocol):
    """What `forget_pools_after_fork` needs: a ``_forget_pools()`` that drops every pooled client."""

    def _forget_pools(self) -> None: ...


_POOL_OWNERS: weakref.WeakSet[_PoolOwner] = weakref.WeakSet()


def forget_pools_after_fork(owner: _PoolOwner) -> None:
    """Have ``owner._forget_pools()`` run in every child made by ``fork``.

    A child must not send on the parent's pooled keep-alive sockets (both would write to, and read
    from, one connection), so it drops the inherited clients, without closing them (that would take
    locks a parent's thread may have held at the fork), and builds its own on first use. Their
    socket copies are closed when collected, which leaves the parent's connections open.
    """
    _POOL_OWNERS.add(owner)


def _forget_all_pools() -> None:
    for owner in list(_POOL_OWNERS):
        owner._forget_pools()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_pools)


class HTTPProvider(Provider):
    """A provider that talks to ``base_url`` with httpx2."""

    default_base_url: ClassVar[str | None] = None

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        base_url = config.base_url or self.default_base_url
        if base_url is None:
            from ..errors import ConfigError

            raise ConfigError(f"providers.{name}.base_url: required for type {config.type!r}. Add base_url = ...")
        # credentials in base_url (http://user:pw@host) go as basic auth, not in the URL that httpx2 logs
        plain_url, credentials = split_userinfo(base_url.rstrip("/"))
        self.base_url = plain_url
        self._auth: httpx2.Auth | None = None if credentials is None else httpx2.BasicAuth(*credentials)
        headers = config.header_values()
        self._headers = {"user-agent": _USER_AGENT, "content-type": "application/json", **headers}
        # what error messages must never repeat: the key, header values, credentials in base_url
        self._secrets = [*header_secrets(headers), *url_secrets(base_url)]
        if config.api_key is not None:
            self._headers["authorization"] = f"Bearer {config.api_key.get_secret_value()}"
            self._secrets.append(config.api_key.get_secret_value())
        self._timeout = httpx2.Timeout(config.timeout, connect=config.connect_timeout)
        self._network = network_settings(name, config)
        self._sync: httpx2.Client | None = None
        self._async: httpx2.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None  # the event loop `_async` belongs to
        self._async_guard: AsyncGenerator[None, None] | None = None  # closes `_async` when its loop shuts down
        self._lock = threading.Lock()  # threads sharing a Client must not each build a pool
        forget_pools_after_fork(self)

    def _forget_pools(self) -> None:
        """In a forked child: drop the parent's pools (see `forget_pools_after_fork`)."""
        self._sync = self._async = None
        self._async_loop = self._async_guard = None
        self._lock = threading.Lock()

    def _limits(self) -> httpx2.Limits:
        size = self.config.max_connections
        return httpx2.Limits(
            max_connections=size, max_keepalive_connections=min(size, _defaults.MAX_KEEPALIVE_CONNECTIONS)
        )

    def _pool(self, cls: type[C]) -> C:
        """A new connection pool (`httpx2.Client` or `httpx2.AsyncClient`) with the provider's settings.

        Without ``ca_bundle`` or ``client_cert`` it shares the process's TLS context.
        """
        network = self._network if "verify" in self._network else {**self._network, "verify": default_tls_context()}
        return pool(cls, network, self._limits(), headers=self._headers, timeout=self._timeout, auth=self._auth)

    @property
    def http(self) -> httpx2.Client:
        """The sync connection pool (created on first use)."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = self._pool(httpx2.Client)
        return self._sync

    @property
    def ahttp(self) -> httpx2.AsyncClient:
        """The async connection pool of the running event loop (created on first use).

        A pool belongs to the event loop it was opened in, and is closed when that loop shuts
        down (`on_loop_shutdown`). An `AsyncClient` used under another loop (a second
        ``asyncio.run()``, pytest-asyncio's loop per test) gets a new pool.
        """
        loop = _running_loop()
        if self._async is None or self._async_loop is not loop:
            with self._lock:
                if self._async is None or self._async_loop is not loop:
                    client = self._pool(httpx2.AsyncClient)
                    self._async, self._async_loop = client, loop
                    if loop is not None:
                        self._async_guard = on_loop_shutdown(partial(self._close_pool, client))
        return self._async

    async def _close_pool(self, client: httpx2.AsyncClient) -> None:
        if self._async is client:
            self._async = self._async_loop = None
        await client.aclose()

    def close(self) -> None:
        """Close the sync connection pool."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the async connection pool."""
        guard, self._async_guard = self._async_guard, None
        if guard is not None and self._async_loop is _running_loop():
            await guard.aclose()  # closes the pool
        elif self._async is not None and self._async_loop is None:  # not asyncio (trio): one pool, no guard
            await self._async.aclose()
        self._async = self._async_loop = None

    def _build(
        self,
        client: httpx2.Client | httpx2.AsyncClient,
        path: str,
        body: bytes,
        request: ChatRequest | EmbeddingRequest,
    ) -> httpx2.Request:
        timeout = httpx2.Timeout(request.timeout, connect=self.config.connect_timeout) if request.timeout else None
        return client.build_request(
            "POST",
            self.base_url + path,
            content=body,
            headers=request.extra_headers,
            timeout=timeout if timeout is not None else httpx2.USE_CLIENT_DEFAULT,
        )

    def post(self, path: str, body: bytes, request: ChatRequest | EmbeddingRequest, model: str) -> httpx2.Response:
        """POST and read the whole reply; raise a typed error for failures and error statuses."""
        client = self.http
        try:
            response = send(client, self._build(client, path, body, request))
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model) from exc
        self._check(response, model)
        return response

    async def apost(
        self, path: str, body: bytes, request: ChatRequest | EmbeddingRequest, model: str
    ) -> httpx2.Response:
        """Async twin of `post`."""
        client = self.ahttp
        try:
            response = await asend(client, self._build(client, path, body, request))
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model) from exc
        self._check(response, model)
        return response

    @contextmanager
    def post_stream(self, path: str, body: bytes, request: ChatRequest, model: str) -> Iterator[httpx2.Response]:
        """POST and yield the response with its body unread; the connection is released on exit."""
        client = self.http
        built = self._build(client, path, body, request)
        watch = WATCH.get()  # a route's first_token_timeout / stall_timeout (turnout.engine.watch)
        timeouts = built.extensions.get("timeout") if watch is not None else None
        read = None if timeouts is None else timeouts.get("read")
        if watch is not None and timeouts is not None and (left := watch.left()) is not None:
            timeouts["read"] = left if read is None else min(read, left)  # the wait for the headers
        try:
            response = send(client, built, stream=True)
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model) from exc
        if watch is not None:
            if timeouts is not None:
                timeouts["read"] = read  # httpcore reads it again when the body starts
            watch.attach(response)
        try:
            if response.status_code >= 300 or not _is_stream(response):
                response.read()
                self._check(response, model)
                raise self._not_a_stream(response, model)
            yield response
        finally:
            response.close()

    @asynccontextmanager
    async def apost_stream(
        self, path: str, body: bytes, request: ChatRequest, model: str
    ) -> AsyncIterator[httpx2.Response]:
        """Async twin of `post_stream`."""
        client = self.ahttp
        try:
            response = await asend(client, self._build(client, path, body, request), stream=True)
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model) from exc
        try:
            if response.status_code >= 300 or not _is_stream(response):
                await response.aread()
                self._check(response, model)
                raise self._not_a_stream(response, model)
            yield response
        finally:
            await response.aclose()

    def request(self, method: str, url: str, model: str, json: object = None) -> httpx2.Response:
        """A plain sync request (e.g. ``GET /models``) with the same error mapping as `post`."""
        try:
            response = self.http.request(method, url, json=json)
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model) from exc
        self._check(response, model)
        return response

    async def arequest(self, method: str, url: str, model: str, json: object = None) -> httpx2.Response:
        """Async twin of `request`."""
        try:
            response = await self.ahttp.request(method, url, json=json)
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc, model) from exc
        self._check(response, model)
        return response

    def classify_error(self, response: httpx2.Response, model: str) -> ProviderError:
        """The typed error for a failed reply (status >= 400, body read): the hook a provider overrides.

        The default reads the error bodies of OpenAI-compatible servers (OpenAI's, vLLM's, TGI's
        Messages API, FastAPI's: `turnout.errors.error_from_response`) and masks the provider's
        secrets in the message.
        A provider whose server has its own error codes overrides it (the ``azure`` provider
        maps ``content_filter`` and ``DeploymentNotFound``) and falls back to ``super()``.
        """
        return error_from_response(
            response.status_code,
            response.headers,
            response.content,
            provider=self.name,
            model=model,
            secrets=self._secrets,
        )

    def _check(self, response: httpx2.Response, model: str) -> None:
        status = response.status_code
        if status >= 400:
            raise self.classify_error(response, model)
        if status >= 300:
            raise redirect_error(status, response.headers, base_url=self.base_url, provider=self.name, model=model)

    def error_in_reply(
        self, response: httpx2.Response, model: str, *, expected: str = "JSON", problem: str | None = None
    ) -> ProviderError:
        """The error for a 2xx reply that is not what was asked: the error its body carries, or what came.

        Args:
            response: the reply, its body read.
            model: the model id that was requested.
            expected: what was asked for, for the message (``"JSON"``, ``"a stream"``).
            problem: what is wrong with the body, when known (it leads the message).
        """
        found = error_in_body(
            response.status_code,
            response.headers,
            response.content,
            provider=self.name,
            model=model,
            secrets=self._secrets,
        )
        if found is not None:
            return found
        what = describe_body(response.headers, response.content, secrets=self._secrets)
        lead = f"{problem}; " if problem else ""
        return ResponseValidationError(
            f"{lead}expected {expected}, the server answered HTTP {response.status_code} with {what}. "
            f"Check that base_url ({mask_url(self.base_url)}) is the API root of an OpenAI-compatible server",
            provider=self.name,
            model=model,
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
        )

    def _not_a_stream(self, response: httpx2.Response, model: str) -> ProviderError:
        return self.error_in_reply(response, model, expected="a stream (text/event-stream)")

    def _transport_error(self, exc: httpx2.TransportError | ssl.SSLError, model: str) -> ProviderError:
        cls = APITimeoutError if isinstance(exc, httpx2.TimeoutException) else APIConnectionError
        reason = mask(str(exc) or type(exc).__name__, self._secrets)
        where = mask_url(self.base_url)
        return cls(f"{type(exc).__name__} talking to {where}: {reason}", provider=self.name, model=model)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop; None under another async library (one pool then serves every call)."""
    import asyncio  # here, not at the top: a sync client never loads asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _is_stream(response: httpx2.Response) -> bool:
    """False for a body that is surely not server-sent events: JSON or an HTML page (a missing type passes)."""
    content_type = response.headers.get("content-type", "").lower()
    return "json" not in content_type and "html" not in content_type


_TLS_CONTEXTS: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def default_tls_context() -> ssl.SSLContext:
    """httpx2's default TLS context, made once per process and shared by every pool without ``ca_bundle``.

    httpx2 makes one for each client it builds, reading the CA bundle again (about 0.8 MiB and a
    few milliseconds each), and turnout builds a pool per provider, client and event loop. One
    context serves any number of connections and threads (as requests does since 2.32:
    https://github.com/psf/requests/pull/6667); turnout never changes it after it is made. Kept
    per value of ``$SSL_CERT_FILE`` and ``$SSL_CERT_DIR``, which httpx2 reads when it makes one, so
    a pool made after either changes trusts what they then name.
    """
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _TLS_CONTEXTS.get(key)
    if context is None:  # two threads may both make one: the first stored is kept
        context = _TLS_CONTEXTS.setdefault(key, httpx2.create_ssl_context())
    return context


def network_settings(name: str, config: ProviderConfig) -> dict[str, Any]:
    """httpx2 client arguments from a provider's ``proxy``, ``ca_bundle`` and ``client_cert`` keys.

    Verification stays on: ``ca_bundle`` replaces the CAs trusted (an `ssl.SSLContext` made with
    ``cafile``, as httpx recommends: https://www.python-httpx.org/advanced/ssl/), it never turns
    checking off. Without these keys, httpx2's defaults apply (its CA bundle, ``$HTTPS_PROXY``...).

    Raises:
        ConfigError: a file is not a usable PEM certificate or key.
    """
    settings: dict[str, Any] = {}
    if config.proxy is not None:
        settings["proxy"] = config.proxy.get_secret_value()
    if config.ca_bundle is None and config.client_cert is None:
        return settings
    from ..errors import ConfigError

    key = f"providers.{name}.ca_bundle"
    try:
        # without ca_bundle: httpx2's own default CAs, as a client without these keys uses
        context = (
            ssl.create_default_context(cafile=config.ca_bundle) if config.ca_bundle else httpx2.create_ssl_context()
        )
        if config.client_cert is not None:
            key = f"providers.{name}.client_cert"
            context.load_cert_chain(config.client_cert, config.client_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{key}: cannot be used for TLS ({exc}). Give a PEM file (and its key).") from None
    settings["verify"] = context
    return settings
