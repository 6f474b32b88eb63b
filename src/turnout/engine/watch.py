"""Stream timeouts (a route's ``first_token_timeout`` and ``stall_timeout``) for both drivers.

A `Watch` holds one stream's deadline. The async driver bounds each ``__anext__`` with
``asyncio.timeout``. The sync driver cannot interrupt a blocking read, so one shared daemon
thread (`watchdog`) keeps a heap of deadlines and, when a stream's passes, shuts down that
stream's socket (``socket.shutdown``: the blocked ``recv`` returns at once); the driver then
raises `StreamTimeoutError` in place of the connection error. The socket comes from the httpx2
response, which `turnout.providers._http.HTTPProvider` attaches to the watch found in `WATCH`
(httpcore's ``network_stream`` response extension:
https://www.encode.io/httpcore/extensions/#network_stream). A provider that does not go
through `HTTPProvider` (huggingface, over huggingface_hub) is only checked when a chunk arrives.

Cost per chunk with a timeout set: three ``time.monotonic()`` calls and a few attribute writes
(sync), one ``asyncio.timeout`` context (async); nothing without one.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..errors import StreamTimeoutError

if TYPE_CHECKING:
    from ..provider import Provider
    from ..types import ChatChunk

__all__ = ["INF", "WATCH", "Watch", "watchdog"]

INF = float("inf")
WATCH: ContextVar[Watch | None] = ContextVar("turnout_stream_watch", default=None)
"""The watch of the stream being opened on this thread, for `HTTPProvider.post_stream` to attach its response to."""


class Watch:
    """The deadline of one streamed request: its first content chunk, then each silence between chunks."""

    __slots__ = ("content", "deadline", "done", "fired", "first", "held", "response", "stall")

    def __init__(self, first: float | None, stall: float | None) -> None:
        self.first, self.stall = first, stall
        self.deadline = INF if first is None else time.monotonic() + first
        """``time.monotonic()`` past which the stream has timed out (INF: no bound now)."""
        self.content = False
        self.done = False
        self.fired = False
        self.response: Any = None
        self.held = (0.0, INF)

    def left(self) -> float | None:
        """Seconds until the deadline (None: no bound now)."""
        return None if self.deadline == INF else max(self.deadline - time.monotonic(), 0.0)

    def attach(self, response: Any) -> None:
        """Note the httpx2 response whose socket to shut down when the deadline passes."""
        self.response = response
        if self.fired:
            self.fire()

    def saw(self, chunk: ChatChunk) -> None:
        """Note a chunk on its way to the caller: once it carries content, the stall timeout applies."""
        if not self.content and (chunk.text or chunk.tool_calls or chunk.function_call is not None):
            self.content = True

    def pause(self) -> None:
        """The caller holds a chunk: its own time is not the server's silence."""
        self.held = (time.monotonic(), self.deadline)
        self.deadline = INF

    def go(self) -> None:
        """The caller asks for the next chunk: the silence starts now (before content: the first-token clock)."""
        if self.content:
            self.deadline = INF if self.stall is None else time.monotonic() + self.stall
        else:
            paused, deadline = self.held
            self.deadline = deadline + (time.monotonic() - paused)

    def late(self) -> bool:
        """Whether the deadline has passed (or the watchdog fired)."""
        return self.fired or time.monotonic() > self.deadline

    def fire(self) -> None:
        """The deadline passed: shut the stream's socket down so its blocked read returns."""
        self.fired = True
        stream = None if self.response is None else self.response.extensions.get("network_stream")
        sock = None if stream is None else stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass

    def error(self, provider: Provider, model: str) -> StreamTimeoutError:
        """The timeout error for this stream."""
        if self.content:
            message = f"the stream sent nothing for {self.stall} s (stall_timeout)"
        else:
            message = f"no content {self.first} s after sending (first_token_timeout)"
        return StreamTimeoutError(message, provider=provider.name, model=model)


class _Watchdog:
    """One daemon thread for every sync stream with a timeout: a heap of (check time, watch)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._finished = 0  # watches done but still in the heap (dropped lazily, or all at once below)

    def add(self, watch: Watch) -> None:
        """Watch ``watch`` until its ``done`` is set."""
        with self._cond:
            if self._finished > 64 and self._finished * 2 > len(self._heap):  # long timeouts: do not hoard
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._finished = 0
            heapq.heappush(self._heap, (self._check_at(watch, time.monotonic()), next(self._seq), watch))
            if self._thread is None or self._pid != os.getpid():  # none yet, or lost in a fork
                self._heap = [entry for entry in self._heap if entry[2] is watch]
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="turnout-stream-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def finished(self, watch: Watch) -> None:
        """``watch``'s stream has ended: stop watching it."""
        watch.done = True
        with self._cond:
            self._finished += 1

    @staticmethod
    def _check_at(watch: Watch, now: float) -> float:
        """When to look at ``watch`` next: its deadline, or (paused) one timeout from now."""
        if watch.deadline != INF:
            return watch.deadline
        return now + (watch.stall or watch.first or 1.0)

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, watch = self._heap[0]
                now = time.monotonic()
                if at > now:
                    self._cond.wait(at - now)
                    continue
                heapq.heappop(self._heap)
                if watch.done:
                    self._finished = max(self._finished - 1, 0)
                    continue
                if watch.deadline <= now:
                    watch.fire()
                    continue
                heapq.heappush(self._heap, (self._check_at(watch, now), next(self._seq), watch))


watchdog = _Watchdog()
