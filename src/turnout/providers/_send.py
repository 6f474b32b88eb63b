"""Sending a built request straight to the pool's transport, where httpx2's client layers would do nothing.

``httpx2.Client.send`` runs every request through an auth flow, a redirect loop, event hooks,
a proxy lookup, cookie extraction and an access log line before and after its transport's
``handle_request``. For turnout's requests most of that is idle: it never follows redirects
(a 3xx is an error), sets no event hooks, and authenticates with a header. So where no proxy
applies and the pool has no `httpx2.Auth`, a provider sends through the transport it gave the
pool (the public transport API: https://www.python-httpx.org/advanced/transports/) and keeps
what the client layers would have done that can matter: cookies a server sets are stored and
sent back, ``response.request`` is set (and ``response.elapsed`` on a reply read whole), and the ``httpx2`` logger gets
the same INFO line. This saves about 20 µs of CPU per call (docs/performance.md).

Elsewhere (a ``proxy`` key, proxy environment variables, credentials in ``base_url``, an Azure
token provider) requests go through ``Client.send`` as before.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx2

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["asend", "pool_transport", "send"]

_log = logging.getLogger("httpx2")  # where httpx2's client logs each request


def pool_transport(cls: type[Any], network: Mapping[str, Any], limits: httpx2.Limits) -> Any:
    """The transport a new pool should be given so that requests may skip the client layers, or None.

    None when a proxy may apply (the provider's ``proxy``, or one in the environment, which
    httpx2 reads from `urllib.request.getproxies`): the client then picks the transport per URL.
    ``network`` is the pool's ``verify`` (and ``proxy``) arguments; ``cls`` is
    `httpx2.HTTPTransport` or `httpx2.AsyncHTTPTransport`.
    """
    if "proxy" in network or any(scheme != "no" for scheme in urllib.request.getproxies()):
        return None
    return cls(verify=network["verify"], limits=limits)


def send(
    client: httpx2.Client,
    pool: tuple[httpx2.Client, httpx2.HTTPTransport | None] | None,
    request: httpx2.Request,
    *,
    stream: bool = False,
) -> httpx2.Response:
    """``client.send(request, stream=stream)``, through the transport directly where ``pool`` allows.

    ``pool`` is the pool and the transport it was given when it was made (`pool_transport`):
    the transport is used only for that very pool, and only while it has no `httpx2.Auth`
    (an Azure token provider sets one later). Raises what ``client.send`` raises.
    """
    transport = None if pool is None or pool[0] is not client or client.auth is not None else pool[1]
    if transport is None:
        return client.send(request, stream=stream)
    start = time.perf_counter()
    response = transport.handle_request(request)
    response.request = request
    if not stream:
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
    _after(client, request, response)
    return response


async def asend(
    client: httpx2.AsyncClient,
    pool: tuple[httpx2.AsyncClient, httpx2.AsyncHTTPTransport | None] | None,
    request: httpx2.Request,
    *,
    stream: bool = False,
) -> httpx2.Response:
    """Async twin of `send`."""
    transport = None if pool is None or pool[0] is not client or client.auth is not None else pool[1]
    if transport is None:
        return await client.send(request, stream=stream)
    start = time.perf_counter()
    response = await transport.handle_async_request(request)
    response.request = request
    if not stream:
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
    _after(client, request, response)
    return response


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
