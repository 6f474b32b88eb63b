"""A route with a fallback, and the typed errors you can catch."""

from __future__ import annotations

import turnout
from turnout.testing import FakeServer, Fault

with FakeServer(flavor="openai") as primary, FakeServer(flavor="vllm") as backup:
    config = {
        "providers": {
            "primary": {"type": "openai-compatible", "base_url": primary.base_url},
            "backup": {"type": "vllm", "base_url": backup.base_url},
        },
        # two attempts per target, 0.1 s apart, then the next target
        "models": {
            "chat": {
                "targets": ["primary:gpt-4o-mini", "backup:llama"],
                "retry": {"max_attempts": 2, "initial_delay": 0.1},
            }
        },
        "prices": {
            "primary:gpt-4o-mini": {"input_per_million": "0.15", "output_per_million": "0.60"},
            "backup:llama": {"input_per_million": "0.10", "output_per_million": "0.20"},
        },
    }
    with turnout.Client(config=config) as client:
        # 1. the primary is overloaded twice: retried, then the backup answers; the reply says what happened
        primary.enqueue(Fault.server_error(503), Fault.server_error(503))
        reply = client.chat("chat", "Hello")
        for attempt in reply.attempts:
            print(f"{attempt.provider}:{attempt.model} -> {attempt.outcome} in {attempt.latency * 1000:.1f} ms")

        # 2. a bad request is not worth a fallback: it is raised at once
        primary.enqueue(Fault.status(400, "temperature is out of range", error_type="invalid_request_error"))
        try:
            client.chat("chat", "Hello")
        except turnout.BadRequestError as exc:
            print("bad request:", exc.message, "| retryable:", exc.retryable)

        # 3. everything down: one error holding each cause
        primary.enqueue(Fault.rate_limit(retry_after=0.2), Fault.rate_limit(retry_after=5))
        backup.enqueue(Fault.server_error(500), Fault.server_error(500))
        try:
            client.chat("chat", "Hello")
        except turnout.AllTargetsFailedError as group:
            for cause in group.exceptions:
                print(type(cause).__name__, cause.provider, getattr(cause, "retry_after", None))
