"""The stream watchdog (turnout.engine.watch): a watch's deadlines and the watchdog's bookkeeping.

The deadlines run on a fake ``time.monotonic`` (the module's ``time``), so these tests wait for
nothing; the watchdog thread is waited for only until it has acted. The timeouts end to end, in
real time over HTTP, are in tests/test_stream_timeouts.py (docs/streaming.md, "Timeouts").
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import turnout
from turnout.engine import watch as watch_module
from turnout.engine.watch import INF, Watch, _Watchdog
from turnout.errors import StreamTimeoutError
from turnout.types import ChatChunk, ToolCallDelta

from .conftest import Stub


class _Time:
    """The watch module's ``time``: a monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> _Time:
    fake = _Time()
    monkeypatch.setattr(watch_module, "time", fake)
    return fake


@pytest.fixture
def dog() -> Iterator[_Watchdog]:
    """A watchdog of the test's own; emptied afterwards, so its thread sleeps until the process ends.

    (Left with entries, the thread would go on checking them on the real clock after the test,
    in whatever runs next in the process: mutmut's own runs included.)
    """
    found = _Watchdog()
    yield found
    with found._cond:
        found._heap.clear()
        found._cond.notify()


def _until(done: Callable[[], bool]) -> bool:
    """Whether ``done()`` became true within 5 s (the watchdog thread acting on what it was told)."""
    end = time.monotonic() + 5
    while not done():
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


def test_a_new_watch_times_the_first_token(fake_time: _Time) -> None:
    watch = Watch(2.0, 5.0)
    assert (watch.first, watch.stall, watch.deadline) == (2.0, 5.0, 102.0)
    assert (watch.content, watch.done, watch.fired, watch.response) == (False, False, False, None)
    assert watch.held == (0.0, INF)
    assert watch.left() == 2.0
    fake_time.now = 101.5
    assert watch.left() == 0.5 and not watch.late()
    fake_time.now = 102.0
    assert watch.left() == 0.0 and not watch.late()  # late only once past the deadline
    fake_time.now = 102.5
    assert watch.left() == 0.0 and watch.late()


def test_a_watch_without_a_first_token_timeout_has_no_bound(fake_time: _Time) -> None:
    watch = Watch(None, 5.0)
    fake_time.now = 1e9
    assert watch.deadline == INF and watch.left() is None and not watch.late()


def test_content_switches_to_the_stall_timeout(fake_time: _Time) -> None:
    watch = Watch(2.0, 5.0)
    for empty in (ChatChunk(), ChatChunk(text=""), ChatChunk(finish_reason="stop")):
        watch.saw(empty)
        assert not watch.content
    watch.saw(ChatChunk(text="hi"))
    assert watch.content
    watch.saw(ChatChunk())  # stays on
    assert watch.content
    calls = ChatChunk(tool_calls=[ToolCallDelta(index=0, name="f")])
    for chunk in (calls, ChatChunk(function_call=ToolCallDelta(index=0))):
        other = Watch(2.0, 5.0)
        other.saw(chunk)
        assert other.content


def test_the_callers_own_time_does_not_count_before_content(fake_time: _Time) -> None:
    watch = Watch(2.0, 5.0)  # deadline 102
    fake_time.now = 101.0
    watch.pause()
    assert (watch.deadline, watch.held) == (INF, (101.0, 102.0))
    assert watch.left() is None
    fake_time.now = 111.0
    watch.go()  # the 10 s the caller held the chunk move the deadline
    assert watch.deadline == 112.0


def test_after_content_each_silence_gets_the_stall_timeout(fake_time: _Time) -> None:
    watch = Watch(2.0, 5.0)
    watch.saw(ChatChunk(text="hi"))
    watch.pause()
    fake_time.now = 150.0
    watch.go()
    assert watch.deadline == 155.0
    unbounded = Watch(2.0, None)
    unbounded.saw(ChatChunk(text="hi"))
    unbounded.pause()
    unbounded.go()
    assert unbounded.deadline == INF


class _Stream:
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


class _Response:
    def __init__(self, sock: Any) -> None:
        self.extensions = {"network_stream": _Stream(sock)}


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(1)
    yield a, b
    a.close()
    b.close()


def test_firing_shuts_the_streams_socket_down(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    watch = Watch(1.0, None)
    watch.attach(_Response(ours))
    assert watch.response is not None and not watch.fired
    ours.settimeout(0)
    with pytest.raises(BlockingIOError):  # attaching alone shuts nothing down
        ours.recv(1)
    watch.fire()
    assert watch.fired
    assert ours.recv(1) == b""  # a blocked read returns at once


def test_a_response_attached_after_the_deadline_is_shut_down_at_once(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    watch = Watch(1.0, None)
    watch.fire()  # nothing attached yet: only noted
    assert watch.fired
    watch.attach(_Response(ours))
    assert ours.recv(1) == b""


def test_firing_a_closed_or_missing_socket_is_harmless() -> None:
    closed = socket.socket()
    closed.close()
    for response in (None, _Response(closed), _Response(None), _Response("not a socket")):
        watch = Watch(1.0, None)
        watch.response = response
        watch.fire()
        assert watch.fired


def test_the_error_names_the_timeout_that_passed() -> None:
    provider = Stub("p", turnout.ProviderConfig(type="engine-stub"))
    watch = Watch(2.0, 5.0)
    first = watch.error(provider, "m")
    assert isinstance(first, StreamTimeoutError)
    assert (first.message, first.provider, first.model) == (
        "no content 2.0 s after sending (first_token_timeout)",
        "p",
        "m",
    )
    watch.content = True
    assert watch.error(provider, "m").message == "the stream sent nothing for 5.0 s (stall_timeout)"


# -- the watchdog ------------------------------------------------------------------------------------------


def test_finished_watches_do_not_pile_up_under_long_timeouts(fake_time: _Time, dog: _Watchdog) -> None:
    for _ in range(200):
        watch = Watch(3600, 3600)
        dog.add(watch)
        dog.finished(watch)
    # every 65 finished watches are dropped at the next add: 200 = 65 + 65 + 65 + 5
    assert (len(dog._heap), dog._finished) == (5, 5)
    dog.add(Watch(3600, None))
    assert (len(dog._heap), dog._finished) == (6, 5)


def test_finished_watches_stay_while_most_of_the_heap_is_live(fake_time: _Time, dog: _Watchdog) -> None:
    live = [Watch(3600, 3600) for _ in range(65)]
    for watch in live:
        dog.add(watch)
    for _ in range(65):
        watch = Watch(3600, 3600)
        dog.add(watch)
        dog.finished(watch)
    dog.add(Watch(3600, None))  # 65 finished of 130: not more than half, nothing dropped
    assert (len(dog._heap), dog._finished) == (131, 65)
    dog.add(Watch(3600, None))  # 65 of 131: still not
    assert (len(dog._heap), dog._finished) == (132, 65)


def test_the_watchdog_checks_a_watch_at_its_deadline_or_one_timeout_from_now() -> None:
    bounded, paused_stall = Watch(None, 5.0), Watch(None, 5.0)
    paused_first, unbounded = Watch(2.0, None), Watch(None, None)
    bounded.deadline = 42.0
    assert _Watchdog._check_at(bounded, 10.0) == 42.0
    assert _Watchdog._check_at(paused_stall, 10.0) == 15.0
    paused_first.deadline = INF
    assert _Watchdog._check_at(paused_first, 10.0) == 12.0
    assert _Watchdog._check_at(unbounded, 10.0) == 11.0


def test_the_watchdog_fires_a_late_watch_and_not_a_paused_or_finished_one(fake_time: _Time, dog: _Watchdog) -> None:
    late, paused, finished = Watch(1.0, None), Watch(1.0, 1.0), Watch(1.0, None)
    paused.content = True
    paused.pause()
    for watch in (late, paused, finished):
        dog.add(watch)
    dog.finished(finished)
    assert dog._thread is not None and dog._thread.daemon and dog._thread.name == "turnout-stream-watchdog"
    fake_time.now = 150.0
    dog.add(Watch(None, None))  # wakes the thread: the time has moved
    assert _until(lambda: late.fired)
    assert _until(lambda: dog._finished == 0)  # the finished watch left the heap
    assert not paused.fired and not finished.fired
    assert _until(lambda: any(entry[2] is paused and entry[0] == 151.0 for entry in dog._heap))  # looked at again later
    paused.go()  # the caller asks for more: the stall clock runs from now (deadline 151)
    fake_time.now = 152.0
    dog.add(Watch(None, None))
    assert _until(lambda: paused.fired)


def test_the_watchdog_keeps_watching_after_its_heap_ran_empty(fake_time: _Time, dog: _Watchdog) -> None:
    gone = Watch(1.0, None)  # deadline 101
    dog.finished(gone)
    fake_time.now = 150.0
    dog.add(gone)
    assert _until(lambda: dog._finished == 0)  # dropped: the heap is empty, the thread waits
    late = Watch(1.0, None)  # deadline 151
    fake_time.now = 160.0
    dog.add(late)
    assert _until(lambda: late.fired)


def test_the_watchdog_wakes_by_itself_at_the_next_check_time(
    fake_time: _Time, dog: _Watchdog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing new is added: the thread sleeps until the first watch's check time, then fires it.

    The watch's deadline is 10 ms after the thread's first look; the thread is seen asleep (its
    lock free after it read the clock) before the fake time passes the deadline, unannounced.
    """
    looked = threading.Event()

    def monotonic() -> float:
        if threading.current_thread() is dog._thread:
            looked.set()
        return fake_time.now

    monkeypatch.setattr(fake_time, "monotonic", monotonic)
    watch = Watch(0.01, None)  # deadline 100.01
    dog.add(watch)
    assert looked.wait(5)
    with dog._cond:  # free only while the thread waits
        fake_time.now = 101.0
    assert _until(lambda: watch.fired)


def test_the_watchdog_counts_each_finished_watch_it_drops(fake_time: _Time, dog: _Watchdog) -> None:
    soon, later = Watch(1.0, None), Watch(3600, None)
    dog.add(soon)
    dog.add(later)
    dog.finished(soon)
    dog.finished(later)
    fake_time.now = 150.0
    dog.add(Watch(None, None))  # wakes the thread: it drops `soon`; `later` waits its turn
    assert _until(lambda: dog._finished == 1)
    assert [entry[2] for entry in dog._heap if entry[2].done] == [later]
