"""Sending a built request straight to the pool's transport, where httpx2's client layers would do nothing.

``httpx2.Client.send`` runs every request through an auth flow, a redirect loop, event hooks,
a proxy lookup, cookie extraction and an access log line before and after its transport's
``handle_request``. For turnout's requests most of that is idle: it never follows redirects
(a 3xx is an error), sets no event hooks, and authenticates with a header. So where no proxy
applies and the pool has no `httpx2.Auth`, a pool made by `pool` sends through the transport it
was given (the public transport API: https://www.python-httpx.org/advanced/transports/), keeping
what the client layers would have done that can matter: cookies a server sets are stored and
sent back, ``response.request`` is set (and ``response.elapsed`` on a reply read whole), and the ``httpx2`` logger gets
the same INFO line. This saves about 20 µs of CPU per call (docs/performance.md).

A body, a reply's read whole or a stream's, is read by `body_chunks`: where it has no
``content-encoding``, from the transport's byte stream itself. ``response.read()`` would pass
the same bytes through its identity decoder, a chunker, two generators and two exception
contexts, 10–13 µs of a call (docs/performance.md). What ``read()`` leaves is left too: the body
where ``response.content`` finds it (``_content``, the one private name turnout sets: checked
once at import, `_content_slot`, with ``read()`` used instead where an httpx2 keeps it
elsewhere), the response marked consumed and closed, a read error naming its request.

Elsewhere (a ``proxy`` key, proxy environment variables, credentials in ``base_url``, an Azure
token provider) requests go through ``Client.send`` as before.
"""

from __future__ import annotations

import logging
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import httpx2

__all__ = ["abody_chunks", "aclose_chunks", "asend", "body_chunks", "pool", "send"]

_log = logging.getLogger("httpx2")  # where httpx2's client logs each request
#: Each pool made by `pool` without a proxy in play, and the transport it was given.
_DIRECT: weakref.WeakKeyDictionary[httpx2.Client | httpx2.AsyncClient, Any] = weakref.WeakKeyDictionary()

C = TypeVar("C", httpx2.Client, httpx2.AsyncClient)


def pool(cls: type[C], network: dict[str, Any], limits: httpx2.Limits, **options: Any) -> C:
    """A new ``cls`` (`httpx2.Client` or `httpx2.AsyncClient`) whose requests `send` may give its transport directly.

    ``network`` holds its ``verify`` (and ``proxy``) arguments, ``options`` the rest. Where a
    proxy may apply (a ``proxy``, or one in the environment, which httpx2 reads from
    `urllib.request.getproxies`) the pool picks its transport per URL, and `send` leaves it to.
    """
    if "proxy" in network or any(scheme != "no" for scheme in urllib.request.getproxies()):
        return cls(limits=limits, **network, **options)
    kind: Any = httpx2.HTTPTransport if cls is httpx2.Client else httpx2.AsyncHTTPTransport
    transport = kind(verify=network["verify"], limits=limits)
    made = cls(limits=limits, transport=transport, **network, **options)
    _DIRECT[made] = transport
    return made


def _direct(client: httpx2.Client | httpx2.AsyncClient) -> Any:
    """The transport to send ``client``'s requests to, or None.

    None when a proxy may apply, or when the pool has an `httpx2.Auth` (an Azure token provider
    sets one after the pool is made).
    """
    return None if client.auth is not None else _DIRECT.get(client)


def send(client: httpx2.Client, request: httpx2.Request, *, stream: bool = False) -> httpx2.Response:
    """``client.send(request, stream=stream)``, through its transport directly where `pool` allows.

    Raises what ``client.send`` raises.
    """
    transport = _direct(client)
    if transport is None:
        return client.send(request, stream=stream)
    start = time.perf_counter()
    response: httpx2.Response = transport.handle_request(request)
    response.request = request
    if not stream:
        try:
            if _READ_INTO:
                _keep(response, b"".join(body_chunks(response)))
                response.close()
            else:
                response.read()
        except BaseException as exc:
            _attach(exc, request)
            response.close()
            raise
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
    _after(client, request, response)
    return response


async def asend(client: httpx2.AsyncClient, request: httpx2.Request, *, stream: bool = False) -> httpx2.Response:
    """Async twin of `send`."""
    transport = _direct(client)
    if transport is None:
        return await client.send(request, stream=stream)
    start = time.perf_counter()
    response: httpx2.Response = await transport.handle_async_request(request)
    response.request = request
    if not stream:
        try:
            if _READ_INTO:
                _keep(response, b"".join([part async for part in abody_chunks(response)]))
                await response.aclose()
            else:
                await response.aread()
        except BaseException as exc:
            _attach(exc, request)
            await response.aclose()
            raise
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
    _after(client, request, response)
    return response


def body_chunks(response: httpx2.Response) -> Iterator[bytes]:
    """A body's byte chunks, as they arrive (the caller closes ``response``): a stream's, or a reply's read whole.

    A body without ``content-encoding`` (the usual one) is read from the response's byte
    stream itself (``response.stream``, what its transport returned: the public transport API,
    https://www.python-httpx.org/advanced/transports/), as httpx2's ``iter_raw`` reads it: not
    through ``iter_bytes``' identity decoder and chunker, and not through ``iter_raw``'s own
    generator either (a byte count and a chunker per read, for the same bytes). The response
    is marked consumed, as ``iter_raw`` marks it; its ``num_bytes_downloaded`` stays 0. A read
    error is httpx2's, mapped by the transport, without the request ``iter_raw`` would attach:
    the caller attaches it (``exc.request = response.request``).
    """
    if "content-encoding" in response.headers:
        return response.iter_bytes()
    stream = response.stream
    if response.is_stream_consumed or response.is_closed or not isinstance(stream, httpx2.SyncByteStream):
        return response.iter_raw()  # which raises what fits (StreamConsumed, StreamClosed, an async stream)
    response.is_stream_consumed = True
    return iter(stream)


def abody_chunks(response: httpx2.Response) -> AsyncIterator[bytes]:
    """Async twin of `body_chunks`; the caller closes the iterator (`aclose_chunks`) and ``response``."""
    if "content-encoding" in response.headers:
        return response.aiter_bytes()
    stream = response.stream
    if response.is_stream_consumed or response.is_closed or not isinstance(stream, httpx2.AsyncByteStream):
        return response.aiter_raw()
    response.is_stream_consumed = True
    return aiter(stream)


async def aclose_chunks(chunks: AsyncIterator[bytes]) -> None:
    """Close what `abody_chunks` returned, now (an async generator left open is closed later, by the loop)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _content_slot() -> bool:
    """Whether an `httpx2.Response` keeps its read body in ``_content``, which ``content`` returns."""
    probe = httpx2.Response(200, content=b"probe")
    return vars(probe).get("_content") == b"probe" and probe.content == b"probe"


#: Read a body without content-encoding into the response directly (see the module's docstring).
_READ_INTO = _content_slot()


def _keep(response: httpx2.Response, body: bytes) -> None:
    """Give ``response`` its whole ``body``, read by `body_chunks` (which marked it consumed), as ``read()`` does."""
    response._content = body  # noqa: SLF001 - where read() keeps it; _READ_INTO checked that it does


def _attach(exc: BaseException, request: httpx2.Request) -> None:
    """Name ``request`` on a read error, as httpx2's own readers do."""
    if isinstance(exc, httpx2.RequestError):
        exc.request = request


def _after(client: httpx2.Client | httpx2.AsyncClient, request: httpx2.Request, response: httpx2.Response) -> None:
    """What the client does with every reply that can matter here: keep its cookies, log it."""
    if "set-cookie" in response.headers:
        client.cookies.extract_cookies(response)
    if _log.isEnabledFor(logging.INFO):
        _log.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
