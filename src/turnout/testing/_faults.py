"""Test helpers for reliability: a clock that does not wait, and an address that refuses connections."""

from __future__ import annotations

import socket

__all__ = ["FakeClock", "refused_url"]


class FakeClock:
    """A `turnout.policies.Clock` whose sleeps only move its time forward (and are recorded).

    Example:
        ```python
        clock = FakeClock()
        client = turnout.Client(config, clock=clock)
        ...
        assert clock.sleeps == [2.0]  # the server's Retry-After, obeyed without waiting
        ```
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        """The fake monotonic time."""
        return self.time

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance the time, at once."""
        self.sleeps.append(seconds)
        self.time += seconds

    async def asleep(self, seconds: float) -> None:
        """Async twin of `sleep`."""
        self.sleep(seconds)

    def advance(self, seconds: float) -> None:
        """Let time pass without a sleep (e.g. to end a circuit breaker's cooldown)."""
        self.time += seconds


def refused_url(path: str = "/v1") -> str:
    """A ``http://127.0.0.1:PORT`` URL on which nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
