"""Circuit breakers: stop sending to a target that keeps failing, then probe it after a cooldown.

closed -> (``failure_threshold`` consecutive failures, or a failure rate of at least
``failure_rate`` over the last ``window`` seconds with ``min_calls`` calls) -> open for
``cooldown`` seconds -> half-open: one probe call is let through; success closes the circuit,
failure opens it again.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .._checks import NoBoolNumbers
from .clock import Clock

__all__ = ["BreakerPolicy", "CircuitBreaker", "TargetHealth"]

State = Literal["closed", "open", "half_open"]


class BreakerPolicy(NoBoolNumbers):
    """When to open a target's circuit, and for how long."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    enabled: bool = True
    failure_threshold: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    failure_rate: float | None = Field(default=None, gt=0, le=1, description="or: failure share over `window`")
    window: float = Field(default=60.0, gt=0, description="seconds of history for `failure_rate`")
    min_calls: int = Field(default=20, ge=1, description="calls in `window` before `failure_rate` applies")
    cooldown: float = Field(default=30.0, ge=0, description="seconds the circuit stays open before a probe")


class TargetHealth(BaseModel):
    """One target's circuit as `Client.health()` reports it."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    target: str
    state: State
    reason: str | None = None
    retry_in: float | None = Field(default=None, description="seconds until a probe is allowed (open only)")
    consecutive_failures: int = 0
    source: Literal["local", "shared"] = Field(
        default="local",
        description='"local": this process\'s breaker; "shared": opened by another worker, read from [state] on Redis',
    )


class CircuitBreaker:
    """The circuit of one target. Thread-safe; time comes from the injected clock."""

    def __init__(self, target: str, policy: BreakerPolicy, clock: Clock) -> None:
        self.target = target
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._opened_at = 0.0
        self._failures = 0
        self._reason: str | None = None
        self._probing = False
        self._history: deque[tuple[float, bool]] = deque()

    def allow(self) -> bool:
        """Whether a call may go to this target now (takes the half-open probe slot if it is free)."""
        if not self.policy.enabled:
            return True
        with self._lock:
            if self._state == "open" and self._clock.now() - self._opened_at >= self.policy.cooldown:
                self._state = "half_open"
            if self._state == "closed":
                return True
            if self._state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def record(self, ok: bool, reason: str | None = None) -> None:
        """Record the outcome of a call that `allow` let through (a disabled breaker keeps no record)."""
        if not self.policy.enabled:
            return
        with self._lock:
            now = self._clock.now()
            self._probing = False
            if self.policy.failure_rate is not None:  # history is kept only when a rate is watched
                self._history.append((now, ok))
                while self._history and now - self._history[0][0] > self.policy.window:
                    self._history.popleft()
            if ok:
                self._state, self._failures, self._reason = "closed", 0, None
                return
            self._failures += 1
            self._reason = reason
            if self._state == "half_open" or self._tripped():
                self._state, self._opened_at = "open", now

    def _tripped(self) -> bool:
        if self._failures >= self.policy.failure_threshold:
            return True
        rate = self.policy.failure_rate
        if rate is None or len(self._history) < self.policy.min_calls:
            return False
        failed = sum(1 for _, ok in self._history if not ok)
        return failed / len(self._history) >= rate

    def retry_in(self) -> float:
        """Seconds until this target may be tried again (0 when it may be tried now)."""
        with self._lock:
            if self._state != "open":
                return 0.0
            return max(self.policy.cooldown - (self._clock.now() - self._opened_at), 0.0)

    def health(self) -> TargetHealth:
        """A snapshot of the circuit."""
        retry_in = self.retry_in()
        with self._lock:
            state = self._state
            if state == "open" and retry_in == 0:
                state = "half_open"
            return TargetHealth(
                target=self.target,
                state=state,
                reason=self._reason if state != "closed" else None,
                retry_in=retry_in if state == "open" else None,
                consecutive_failures=self._failures,
            )
