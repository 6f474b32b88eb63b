"""The shared record of a hedged call's two sides: what each has out, and which one won.

Both sides of a hedge append to one call's attempts, on two threads (sync) or two tasks (async).
Every change goes through `Hedge.lock`, so each request a side sends is recorded exactly once:

- a side marks a request as out (`Hedge.sending`) in the same step that checks nobody has won;
  after a win it sends nothing more (`Lost`);
- a side's attempt is recorded, and its mark cleared, in one step; after the other side has won
  it is dropped instead (`Lost`): the winner has already recorded that request as ``cancelled``;
- the win records the winner's attempt and the other side's request still out, in one step.

The driver runs each side with `SIDE` set to ``(hedge, index)``; `AttemptLog` reads it.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..provider import Provider

__all__ = ["SIDE", "Hedge", "Lost"]


class Lost(BaseException):  # noqa: N818 - a signal to a hedge's losing side, never seen by callers
    """Raised in a hedge's losing side at its next send or record: the call has ended without it."""


class Hedge:
    """One hedged call: the request each side has out (provider, model, start time), and the winner."""

    __slots__ = ("lock", "sending", "winner")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sending: list[tuple[Provider, str, float] | None] = [None, None]
        self.winner: int | None = None


# The hedge and side this thread (sync) or task (async) runs for; None outside a hedge.
SIDE: ContextVar[tuple[Hedge, int] | None] = ContextVar("turnout_hedge_side", default=None)
