"""The events a client publishes about its calls (subscribe with ``client.on(EventType, callback)``).

See `turnout.engine.events` for when each is published and on which thread callbacks run; the
ledger, the budgets and telemetry are subscribers themselves.
"""

from .engine.events import (
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    CallStarted,
    Event,
    Operation,
    RetryScheduled,
    StreamAbandoned,
)

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "CallFinished",
    "CallStarted",
    "Event",
    "Operation",
    "RetryScheduled",
    "StreamAbandoned",
]
