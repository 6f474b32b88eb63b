"""What the engine tells the rest of turnout about a call: typed events and the bus that carries them.

The ledger and the budgets subscribe to `CallFinished` instead of being called from inside the
loop; an application can subscribe too (``client.on(CallFinished, callback)``). A subscriber's
error is logged and never reaches the call. Events nobody subscribed to are not even built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

if TYPE_CHECKING:
    from ..budget import Reservation
    from ..embeddings import EmbeddingResponse
    from ..types import Attempt, ChatResponse, Cost, Usage

__all__ = ["AttemptFinished", "AttemptStarted", "CallFinished", "Event", "Events", "StreamAbandoned"]

logger = logging.getLogger("turnout")


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """A request is about to be sent to a target."""

    route: str
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One attempt ended: ``attempt.outcome`` is ``"ok"`` or the error's class name."""

    route: str
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class StreamAbandoned:
    """The caller left a stream before its end (break, ``close()``, cancellation, KeyboardInterrupt).

    ``usage`` is the server's when it came, else an estimate from the delivered text
    (``usage.estimated``); ``cost`` is priced from it (None when the target has no price).
    """

    route: str
    provider: str
    model: str
    usage: Usage
    cost: Cost | None


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A call ended, with a reply or an error.

    ``usage`` and ``cost`` are what the call spent: the reply's on success; on failure what was
    paid for anyway (replies rejected by ``response_model``, a stream left early), or None.
    ``cost_unknown`` is True when tokens were generated whose cost cannot be told (a stream cut
    after content without usage): budgets then count the whole amount they held.
    """

    route: str
    attempts: list[Attempt]
    response: ChatResponse | EmbeddingResponse | None
    error: BaseException | None
    latency: float
    usage: Usage | None
    cost: Cost | None
    cost_unknown: bool = False
    hold: Reservation | None = field(default=None, repr=False)
    """The budget hold of this call (for the budgets' subscriber)."""


Event: TypeAlias = AttemptStarted | AttemptFinished | StreamAbandoned | CallFinished
E = TypeVar("E", AttemptStarted, AttemptFinished, StreamAbandoned, CallFinished)


class Events:
    """Subscribers per event type; `publish` calls each in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Any], list[Callable[[Any], object]]] = {}

    def subscribe(self, kind: type[E], callback: Callable[[E], object]) -> None:
        """Call ``callback(event)`` for every event of type ``kind`` from now on."""
        self._subscribers.setdefault(kind, []).append(callback)

    def wants(self, kind: type[Any]) -> bool:
        """Whether anyone listens for ``kind`` (so the event is worth building)."""
        return kind in self._subscribers

    def publish(self, event: Event) -> None:
        """Deliver ``event``; a subscriber that raises is logged and the others still run."""
        for callback in self._subscribers.get(type(event), ()):
            try:
                callback(event)
            except Exception:
                logger.exception("turnout: a %s subscriber raised; the call goes on", type(event).__name__)
