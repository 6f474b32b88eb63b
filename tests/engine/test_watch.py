"""The stream watchdog (turnout.engine.watch): unit tests of its bookkeeping, no sockets."""

from __future__ import annotations

import time

from turnout.engine.watch import INF, Watch, _Watchdog


def test_finished_watches_do_not_pile_up_under_long_timeouts() -> None:
    dog = _Watchdog()
    for _ in range(200):
        watch = Watch(3600, 3600)
        dog.add(watch)
        dog.finished(watch)
    dog.add(Watch(3600, None))
    assert len(dog._heap) < 100


def test_a_late_watch_fires_and_a_paused_one_does_not() -> None:
    dog = _Watchdog()
    late, paused = Watch(0.05, None), Watch(0.05, 0.05)
    paused.content = True
    paused.pause()
    dog.add(late)
    dog.add(paused)
    time.sleep(0.3)
    assert late.fired and late.late()
    assert not paused.fired and paused.deadline == INF
    paused.go()  # the caller asks for more: the silence is timed from now
    assert not paused.late()
    time.sleep(0.3)
    assert paused.fired
