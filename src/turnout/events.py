"""The events a client publishes about its calls (subscribe with ``client.on(EventType, callback)``).

See `turnout.engine.events` for when each is published; the ledger and the budgets are
subscribers of `CallFinished` themselves.
"""

from .engine.events import AttemptFinished, AttemptStarted, CallFinished, Event, StreamAbandoned

__all__ = ["AttemptFinished", "AttemptStarted", "CallFinished", "Event", "StreamAbandoned"]
