"""The public seam for a provider that talks HTTP itself: `HTTPProvider` and the SSE decoder.

Subclass `HTTPProvider` and you get what the built-in providers use: lazily created sync and
async connection pools (one per event loop, reset in a forked child), the provider's network
settings (``proxy``, ``ca_bundle``, ``client_cert``, ``max_connections``), credentials sent
without ever appearing in a message, transport failures as `APIConnectionError` /
`APITimeoutError`, a redirect as `RedirectError`, and error replies classified by
`HTTPProvider.classify_error` (override it for a server with its own error codes).

Its methods:

- ``post(path, body, request, model)`` / ``apost(...)``: POST ``body`` (JSON bytes) to
  ``base_url + path`` with the request's ``extra_headers`` and ``timeout``; the reply, or a
  typed error;
- ``post_stream(...)`` / ``apost_stream(...)``: a context manager yielding the streaming
  response (body unread); leaving it releases the connection;
- ``request(method, url, model)`` / ``arequest(...)``: any other call (``GET /models``...);
- ``classify_error(response, model)``: the error for a reply with status >= 400;
- ``error_in_reply(response, model)``: the error for a 2xx reply that is not what was asked.

Server-sent events: `iter_sse_data` / `aiter_sse_data` turn a body's byte chunks
(``response.iter_bytes()``) into each event's ``data``; `finish_sse` / `afinish_sse` read what
follows the last event so the connection goes back to the pool (https://html.spec.whatwg.org/
multipage/server-sent-events.html#parsing-an-event-stream). See docs/plugins.md.
"""

from ._http import HTTPProvider
from ._sse import SSEDecoder, afinish_sse, aiter_sse_data, finish_sse, iter_sse_data

__all__ = ["HTTPProvider", "SSEDecoder", "afinish_sse", "aiter_sse_data", "finish_sse", "iter_sse_data"]
