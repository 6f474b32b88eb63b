"""Functions `multiprocessing` children run in tests/test_ledger.py (importable under spawn)."""

from __future__ import annotations

from typing import Any

from turnout import Client

_client: Client | None = None


def start(config: dict[str, Any]) -> None:
    """Pool initializer: one client per worker, never closed (the worker's exit must flush its ledger)."""
    global _client
    _client = Client(config=config)


def call(index: int) -> str:
    """One chat call on the worker's client."""
    assert _client is not None
    return _client.chat("llama", f"Hi {index}").text
