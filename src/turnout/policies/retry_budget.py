"""A retry budget: retries may add at most a fixed share of load to a target.

A token bucket in the spirit of the AWS SDKs' standard retry mode and the SRE book's 10 %
rule: every call deposits ``ratio`` tokens (up to ``burst``), every retry spends one. While a
target is down its bucket drains and further failures go straight to fallback instead of
multiplying the load on it.
"""

from __future__ import annotations

import threading

__all__ = ["RetryBudget"]


class RetryBudget:
    """Thread-safe token bucket of retries for one target."""

    def __init__(self, ratio: float, burst: float) -> None:
        self.ratio = ratio
        self.burst = burst
        self._tokens = burst
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        """Retries available now."""
        return self._tokens

    def deposit(self) -> None:
        """Credit one call (its first attempt)."""
        with self._lock:
            self._tokens = min(self.burst, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        """Take one retry from the bucket; False when it is empty."""
        with self._lock:
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False

    def sync(self, tokens: float) -> None:
        """Take the count another store keeps (the shared state's, read before a call)."""
        with self._lock:
            self._tokens = min(self.burst, max(tokens, 0.0))
