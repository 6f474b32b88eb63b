"""What ``[state]`` writes to Redis after a call, on a background thread, and the commits it keeps.

A call's commit (its actual cost, the rest of its hold freed), a newly opened circuit, a latency
sample and a retry-budget change are sent by one daemon thread per client, off the caller's
thread and event loop. A commit that fails (Redis down or too slow) is not dropped: it waits in
memory, oldest first (at most `MAX_UNSETTLED`; beyond that the oldest are dropped with a
warning) and is sent again every `RESEND_EVERY` seconds and after every write that reaches
Redis, until it lands. The commit script counts a hold once (`turnout._state_scripts.SETTLE`),
so a commit sent twice, e.g. because the first one's answer timed out after Redis ran it,
counts once. The other writes are not kept: the next call sends fresh ones.

The commits still waiting are sent (once more) when the client closes, at interpreter exit and
when a ``multiprocessing`` worker exits. When the process dies (SIGKILL, a crash) they are lost
with it: their holds expire after ``hold_ttl`` and the calls' spend is not counted on Redis
(it is in the spend ledger). A child made by ``fork`` starts with an empty queue and no waiting
commits: it never sends its parent's writes again.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MAX_UNSETTLED", "RESEND_EVERY", "Background"]

logger = logging.getLogger("turnout")

MAX_UNSETTLED = 100_000
"""The most commits kept while Redis cannot be reached (the oldest beyond it are dropped, with a warning)."""
RESEND_EVERY = 1.0
"""Seconds between tries to send the commits kept while Redis was unreachable."""
_CLOSE_WAIT_S = 5.0


class Background:
    """One client's background thread for Redis writes, and the commits waiting for Redis to answer."""

    def __init__(
        self, errors: tuple[type[Exception], ...], down: Callable[[BaseException], None], up: Callable[[], None]
    ) -> None:
        """Writes raising one of ``errors`` call ``down(exc)``; a kept commit that lands calls ``up()``."""
        self.errors, self._down, self._up = errors, down, up
        self.resend_every = RESEND_EVERY
        self._reset()
        _ALL.add(self)

    def _reset(self) -> None:
        """A fresh state (also in a forked child, where the parent's thread, queue and commits are not ours)."""
        self._queue: queue.SimpleQueue[Callable[[], object] | tuple[str, Callable[[], object]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.unsettled: OrderedDict[str, Callable[[], object]] = OrderedDict()  # hold id -> its commit

    def later(self, work: Callable[[], object]) -> None:
        """Run ``work`` (a Redis write) on the background thread; a failure is logged, not kept."""
        self._put(work)

    def commit(self, hold_id: str, work: Callable[[], object]) -> None:
        """Run the commit of hold ``hold_id`` on the background thread; kept and sent again until it lands."""
        self._put((hold_id, work))

    def _put(self, item: Callable[[], object] | tuple[str, Callable[[], object]]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="turnout-shared-state", daemon=True)
                self._thread.start()
                _on_worker_exit()
        self._queue.put(item)

    def drain(self, timeout: float = _CLOSE_WAIT_S) -> None:
        """Send the writes queued so far and the kept commits (waiting up to ``timeout`` s); the thread then ends."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        if self.unsettled:
            logger.warning(
                "turnout: %d budget commits could not be sent to the shared state; their holds expire "
                "after hold_ttl and that spend is not counted there (it is in the spend ledger)",
                len(self.unsettled),
            )

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.resend_every if self.unsettled else None)
            except queue.Empty:
                self._resend()
                continue
            if item is None:
                self._resend()
                return
            if isinstance(item, tuple):
                hold_id, work = item
                if self._run(work):
                    self._resend()
                else:
                    self._keep(hold_id, work)
            elif self._run(item):
                self._resend()

    def _run(self, work: Callable[[], object]) -> bool:
        try:
            work()
        except self.errors as exc:
            self._down(exc)
            return False
        return True

    def _keep(self, hold_id: str, work: Callable[[], object]) -> None:
        self.unsettled[hold_id] = work
        if len(self.unsettled) > MAX_UNSETTLED:
            self.unsettled.popitem(last=False)
            logger.warning(
                "turnout: more than %d budget commits wait for the shared state; dropped the oldest "
                "(its hold expires after hold_ttl)",
                MAX_UNSETTLED,
            )

    def _resend(self) -> None:
        """Send the kept commits, oldest first, until one fails (Redis is still down)."""
        if not self.unsettled:
            return
        sent = 0
        while self.unsettled:
            hold_id, work = next(iter(self.unsettled.items()))
            if not self._run(work):
                break
            del self.unsettled[hold_id]
            sent += 1
        if sent:
            logger.warning("turnout: the shared state answers again; sent %d budget commits kept meanwhile", sent)
            self._up()


_ALL: weakref.WeakSet[Background] = weakref.WeakSet()
_finalizer_pid = 0


def _drain_all() -> None:
    """At interpreter or ``multiprocessing`` worker exit: send the commits still queued or kept."""
    for background in list(_ALL):
        background.drain()


def _on_worker_exit() -> None:
    """In a ``multiprocessing`` child (which ends with ``os._exit``, skipping atexit): drain at its exit."""
    global _finalizer_pid
    if _finalizer_pid == os.getpid() or "multiprocessing" not in sys.modules:
        return
    import multiprocessing
    import multiprocessing.util

    if multiprocessing.parent_process() is not None:
        _finalizer_pid = os.getpid()
        multiprocessing.util.Finalize(None, _drain_all, exitpriority=100)


def _after_fork_in_child() -> None:
    global _finalizer_pid
    _finalizer_pid = 0
    for background in list(_ALL):
        background._reset()


atexit.register(_drain_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
