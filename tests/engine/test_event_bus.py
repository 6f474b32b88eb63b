"""The event bus (`turnout.events.Events`) by itself: who is called, in what order, and what a raising subscriber does.

docs/observability.md: callbacks run in the order they subscribed, only for their event type;
events nobody subscribed to are not built (`wants`); a subscriber's error is logged, never raised.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import turnout
from turnout.events import AttemptStarted, CallStarted, Events, RetryScheduled


def started(route: str = "r") -> CallStarted:
    return CallStarted(route, "chat", turnout.ChatRequest(messages=[turnout.Message(role="user", content="Hi")]))


def test_subscribers_are_called_in_order_for_their_own_type_only() -> None:
    bus = Events()
    seen: list[tuple[str, Any]] = []
    bus.subscribe(CallStarted, lambda e: seen.append(("first", e)))
    bus.subscribe(AttemptStarted, lambda e: seen.append(("attempt", e)))
    bus.subscribe(CallStarted, lambda e: seen.append(("second", e)))
    event = started()
    bus.publish(event)
    assert seen == [("first", event), ("second", event)]
    attempt = AttemptStarted("r", "p", "m")
    bus.publish(attempt)
    assert seen[2:] == [("attempt", attempt)]


def test_wants_says_whether_anyone_listens() -> None:
    bus = Events()
    assert not bus.wants(CallStarted)
    bus.subscribe(CallStarted, lambda e: None)
    assert bus.wants(CallStarted)
    assert not bus.wants(AttemptStarted)
    bus.publish(AttemptStarted("r", "p", "m"))  # nobody listens: nothing happens, nothing raises


def test_a_raising_subscriber_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    bus = Events()
    after: list[CallStarted] = []

    def broken(event: CallStarted) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(CallStarted, broken)
    bus.subscribe(CallStarted, after.append)
    with caplog.at_level(logging.ERROR, logger="turnout"):
        bus.publish(started())
    assert len(after) == 1
    [record] = caplog.records
    assert record.name == "turnout" and record.levelno == logging.ERROR
    assert record.getMessage() == "turnout: a CallStarted subscriber raised; the call goes on"
    assert record.exc_info is not None and str(record.exc_info[1]) == "subscriber bug"


def test_a_base_exception_from_a_subscriber_is_not_swallowed() -> None:
    """Only an Exception is logged: KeyboardInterrupt / SystemExit still stop the program."""
    bus = Events()

    def interrupt(event: CallStarted) -> None:
        raise KeyboardInterrupt

    bus.subscribe(CallStarted, interrupt)
    with pytest.raises(KeyboardInterrupt):
        bus.publish(started())


def test_event_defaults() -> None:
    """The fields a subscriber reads when the engine leaves them out (mutmut does not mutate these)."""
    attempt = AttemptStarted("r", "p", "m")
    assert (attempt.request, attempt.target, attempt.started, attempt.call_id) == (None, None, 0.0, 0)
    assert started().call_id == 0
    error = turnout.ServerError("x", provider="p", model="m")
    assert RetryScheduled("r", "p", "m", 1.5, 1, error).call_id == 0


def test_a_fast_built_event_is_the_frozen_event_itself() -> None:
    # The engine builds CallFinished with `fast` (a mutable twin turned into the frozen class):
    # what subscribers get must be indistinguishable from one built by the class.
    import dataclasses

    from turnout.events import CallFinished, fast

    build = fast(CallFinished)
    assert build is not CallFinished  # CPython: the fast way is taken, not the fallback to the class
    made = CallFinished("r", [], None, None, 0.5, None, None, call_id=7, tags={"t": "1"})
    built = build("r", [], None, None, 0.5, None, None, call_id=7, tags={"t": "1"})
    assert type(built) is CallFinished and built == made and repr(built) == repr(made)
    assert built.cost_unknown is False and built.hold is None and built.saved is None  # the class's defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.route = "other"  # type: ignore[misc]
    assert dataclasses.replace(built, route="x") == dataclasses.replace(made, route="x")
    with pytest.raises(TypeError, match="latency"):
        build("r", [], None, None)  # type: ignore[call-arg]  # the class's own signature: a missing field is an error
