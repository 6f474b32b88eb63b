"""What the worker processes of tests/shared/test_many_workers.py run (importable under spawn)."""

from __future__ import annotations

from typing import Any

from turnout import BudgetExceededError, Client, LocalRateLimitError


def spend_until_refused(config: dict[str, Any], start: Any, out: Any) -> None:
    """Chat, one call at a time, until the shared budget refuses; put how many calls were sent on ``out``."""
    calls = 0
    with Client(config=config) as client:
        start.wait()  # every process has its client: they start spending together
        while True:
            try:
                client.chat("llama", "Hello", max_tokens=10)
            except BudgetExceededError:
                break
            calls += 1
    out.put(calls)


def one_call(config: dict[str, Any], model: str) -> list[tuple[str, bool, str | None]]:
    """One chat call; its attempts as (model, skipped, error)."""
    with Client(config=config) as client:
        reply = client.chat(model, "Hi", max_tokens=10)
    return [(a.model, a.skipped, a.error) for a in reply.attempts]


def hold_forever(config: dict[str, Any]) -> None:
    """Start a call the test kills this process in the middle of."""
    with Client(config=config) as client:
        client.chat("llama", "Hello", max_tokens=10)


def calls_under_rate_limit(config: dict[str, Any], start: Any, out: Any, n: int) -> None:
    """``n`` calls; put (answered, refused locally by the rate limiter) on ``out``."""
    answered = refused = 0
    with Client(config=config) as client:
        start.wait()
        for _ in range(n):
            try:
                client.chat("llama", "Hello", max_tokens=10)
                answered += 1
            except LocalRateLimitError:
                refused += 1
    out.put((answered, refused))


def paced_calls(config: dict[str, Any], start: Any, out: Any, n: int, pause: float) -> None:
    """``n`` calls, ``pause`` seconds apart; put how many answered on ``out``."""
    import time

    answered = 0
    with Client(config=config) as client:
        start.wait()
        for _ in range(n):
            client.chat("llama", "Hello")
            answered += 1
            time.sleep(pause)
    out.put(answered)
