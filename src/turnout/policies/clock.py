"""Time, injectable: policies read the clock and sleep through a `Clock`, so tests need not wait."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """What turnout needs from time: a monotonic ``now()`` and both kinds of sleep."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Await for ``seconds``."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.sleep` and `asyncio.sleep`."""

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Await for ``seconds``."""
        import asyncio  # here, not at the top: a sync client never loads asyncio

        await asyncio.sleep(seconds)
