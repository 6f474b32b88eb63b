r"""Server-sent events, decoded straight from the body's bytes.

A stream's cost per chunk is mostly its decoding, so turnout does not go through httpx2's
text decoder and line splitter: `SSEDecoder` splits the bytes itself (lines end with ``\n``,
``\r\n`` or ``\r``, as the SSE spec allows, even when a chunk boundary falls between ``\r``
and ``\n``) and hands out each event's ``data`` as bytes, ready for the JSON parser. Fields
other than ``data`` (``event``, ``id``, ``retry``) and comments are ignored: the chat APIs
turnout speaks put everything in ``data``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Iterator

import httpx2

__all__ = [
    "SSEDecoder",
    "afinish_sse",
    "aiter_sse_data",
    "aiter_sse_rest",
    "finish_sse",
    "iter_sse_data",
]

_BOM = b"\xef\xbb\xbf"
_AFTER_DONE = 4  # events read past a stream's last one before giving its connection up


class SSEDecoder:
    """Incremental decoder: feed it the body's chunks, get each complete event's data."""

    def __init__(self) -> None:
        self._rest = b""  # an incomplete line (and a held-back trailing ``\r``)
        self._data: list[bytes] = []  # the data lines of the event being read
        self._started = False
        self._clean = False  # started, nothing held from before: a whole one-event chunk needs no line loop

    def feed(self, chunk: bytes) -> list[bytes]:
        r"""The data of the events that ``chunk`` completes (multi-line data joined with ``\n``)."""
        if (  # the usual chunk: exactly one whole event of one data line (its only ``\n`` the last two)
            self._clean
            and chunk[:6] == b"data: "
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk[-1:] == b"\n"
            and chunk.find(b"\r") < 0
        ):
            return [chunk[6:-2]]
        if not self._started:
            self._started = bool(chunk)
            chunk = chunk.removeprefix(_BOM)
        buffer = self._rest + chunk if self._rest else chunk
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # perhaps the first half of a ``\r\n`` split across chunks
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._rest = lines.pop() + held
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
        self._data = data
        self._clean = self._started and not self._rest and not data
        return events

    def close(self) -> list[bytes]:
        """The data of an event the body ended in the middle of (no blank line after it)."""
        events = self.feed(b"\n") if self._rest else []
        if self._data:
            events.append(b"\n".join(self._data))
            self._data = []
        return events


def iter_sse_data(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The ``data`` of each server-sent event in a body given as byte chunks, as they arrive.

    Chained in C (``itertools``), not a generator: no Python frame to resume per event.
    """
    decoder = SSEDecoder()
    return itertools.chain(itertools.chain.from_iterable(map(decoder.feed, chunks)), _closed(decoder))


def _closed(decoder: SSEDecoder) -> Iterator[bytes]:
    """The event a body ended in the middle of, once the body has ended."""
    yield from decoder.close()


def aiter_sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Async twin of `iter_sse_data`."""
    return aiter_sse_rest((), chunks, SSEDecoder())


async def aiter_sse_rest(
    pending: Iterable[bytes], chunks: AsyncIterator[bytes], decoder: SSEDecoder
) -> AsyncIterator[bytes]:
    """The events of a body begun with ``decoder``: ``pending`` (decoded, not handled yet), then the rest.

    For a caller that decodes the body itself (no async generator to resume per event) and
    hands what is left to `afinish_sse`.
    """
    for data in pending:
        yield data
    async for chunk in chunks:
        for data in decoder.feed(chunk):
            yield data
    for data in decoder.close():
        yield data


def finish_sse(events: Iterator[bytes]) -> None:
    """Read the body to its end after the stream's last event, so its connection returns to the pool.

    Leaving the body unread closes the connection: every stream would then open (and, on
    HTTPS, handshake) a new one. A server that sends more than a few events past the last
    one, or fails now, loses its connection instead; the stream itself is complete either way.
    """
    try:
        for _ in itertools.islice(events, _AFTER_DONE):
            pass
    except httpx2.TransportError:
        pass


async def afinish_sse(events: AsyncIterator[bytes]) -> None:
    """Async twin of `finish_sse`."""
    try:
        count = 0
        async for _ in events:
            count += 1
            if count >= _AFTER_DONE:
                break
    except httpx2.TransportError:
        pass
