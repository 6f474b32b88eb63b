"""turnout's own cost per call above its provider, measured without any I/O.

A stub provider answers instantly with a ready reply, so ``Client.chat`` over a two-target
route (the first succeeds) times what turnout adds on the success path: argument checks,
routing, retry/fallback bookkeeping, pricing and the spend ledger. The layer is timed with the
ledger on and off (their difference is the ledger's cost); argument checks (``ChatRequest``)
and pricing (``Pricing.cost``) are also timed alone; what is left of the layer without the
ledger is the routing and retry/fallback bookkeeping. Telemetry's cost is the layer (ledger
off) with ``telemetry=True`` minus the layer without it, first with OpenTelemetry's no-op API
providers, then with the SDK recording every span (in-memory exporter) and metric (in-memory
reader); it is None where ``opentelemetry-sdk`` is not installed. Runs only in an interpreter
that has turnout.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

from _wire import COMPLETION_TOKENS, MESSAGES, MODEL, PROMPT_TOKENS, REPLY

import turnout
from turnout.providers import register


class _Stub(turnout.Provider):
    """Answers every chat with the same reply, instantly. No list prices."""

    def __init__(self, name: str, config: turnout.ProviderConfig) -> None:
        super().__init__(name, config)
        usage = turnout.Usage(
            prompt_tokens=PROMPT_TOKENS,
            completion_tokens=COMPLETION_TOKENS,
            total_tokens=PROMPT_TOKENS + COMPLETION_TOKENS,
        )
        choice = turnout.Choice(index=0, text=REPLY, finish_reason="stop")
        self.reply = turnout.ChatResponse(
            text=REPLY, choices=[choice], usage=usage, provider=name, model=MODEL, finish_reason="stop"
        )

    def chat(self, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:  # noqa: ARG002
        return self.reply

    async def achat(self, model: str, request: turnout.ChatRequest) -> turnout.ChatResponse:  # noqa: ARG002
        return self.reply

    def stream(self, model: str, request: turnout.ChatRequest) -> Iterator[turnout.ChatChunk]:
        raise NotImplementedError

    def astream(self, model: str, request: turnout.ChatRequest) -> AsyncIterator[turnout.ChatChunk]:
        raise NotImplementedError


class _CatalogueStub(_Stub):
    """Priced from the genai-prices catalogue, like a real ``type = "openai"`` provider."""

    catalogue_provider: ClassVar[str | None] = "openai"


_ROUNDS = 20


def _quiet_client(config: dict[str, Any], **kwargs: Any) -> turnout.Client:
    """A client of ``config`` without the spend ledger.

    ``$TURNOUT_LEDGER`` (the driver's scratch ledger) wins over ``[ledger] enabled = false``, so it
    is set aside while the client is made (the client reads it then, once).
    """
    saved = os.environ.pop("TURNOUT_LEDGER", None)
    try:
        return turnout.Client(config={**config, "ledger": {"enabled": False}}, **kwargs)
    finally:
        if saved is not None:
            os.environ["TURNOUT_LEDGER"] = saved


def _per_call_us(call: Callable[[], object], n: int) -> float:
    """Best of 20 rounds of ``n`` / 4 calls, in µs per call (the least disturbed round: this VM is noisy)."""
    for _ in range(min(n, 200)):
        call()
    best, calls = float("inf"), max(n // 4, 1)
    for _ in range(_ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter_ns() - start) / calls / 1e3)
    return best


def _pricing_us(client: turnout.Client, provider: str, n: int) -> float | None:
    """``Pricing.cost`` alone for one provider's reply (None if that API changed)."""
    try:
        from turnout.cost.prices import Pricing

        pricing = Pricing(client.config.prices)
        stub = client.provider(provider)
        usage = stub.chat(MODEL, None).usage  # type: ignore[arg-type]  # the stub ignores the request
        if pricing.cost(stub, MODEL, usage) is None:
            return None
        return _per_call_us(lambda: pricing.cost(stub, MODEL, usage), n)
    except Exception:  # a refactored API must not fail the benchmark
        return None


def _telemetry_us(config: dict[str, Any], bare: float, provider_us: float, n: int) -> dict[str, float | None]:
    """µs per call that telemetry adds: with the API's no-op providers, then with the SDK in memory."""
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        return {"telemetry_noop_us": None, "telemetry_sdk_us": None}
    try:
        noop = _quiet_client(config, telemetry=True)  # no provider set yet: the API's no-ops
    except TypeError:  # a turnout build from before telemetry (an A/B run)
        return {"telemetry_noop_us": None, "telemetry_sdk_us": None}
    noop_us = _per_call_us(lambda: noop.chat(model="config-priced", messages=MESSAGES), n) - provider_us - bare
    exporter = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracing)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    sdk = _quiet_client(config, telemetry=True)
    calls = [0]

    def traced() -> None:
        sdk.chat(model="config-priced", messages=MESSAGES)
        calls[0] += 1
        if calls[0] % 1000 == 0:
            exporter.clear()  # keep memory flat; the spans were recorded all the same

    sdk_us = _per_call_us(traced, n) - provider_us - bare
    return {"telemetry_noop_us": noop_us, "telemetry_sdk_us": sdk_us}


def _cache_us(config: dict[str, Any], n: int) -> dict[str, float | None]:
    """µs per call that ``[cache]`` (memory) adds on a miss, and a hit's whole call (ledger off).

    A miss needs a request not seen before: both clients send the conversation with a new last
    message each call, so the difference is the cache's key, lookup and store alone.
    """
    try:
        cached = _quiet_client({**config, "cache": {"backend": "memory"}})
    except turnout.ConfigError:  # a turnout build from before the cache (an A/B run)
        return {"cache_miss_us": None, "cache_hit_us": None}
    plain = _quiet_client(config)
    count = [0]

    def new_question(client: turnout.Client) -> Callable[[], object]:
        def call() -> object:
            count[0] += 1
            messages = [*MESSAGES[:-1], {"role": "user", "content": f"{MESSAGES[-1]['content']} #{count[0]}"}]
            return client.chat(model="config-priced", messages=messages)

        return call

    miss = _per_call_us(new_question(cached), n // 10) - _per_call_us(new_question(plain), n // 10)
    hit = _per_call_us(lambda: cached.chat(model="config-priced", messages=MESSAGES), n)
    if not cached.chat(model="config-priced", messages=MESSAGES).from_cache:
        raise RuntimeError("the cached client's repeated call was not answered from the cache")
    return {"cache_miss_us": miss, "cache_hit_us": hit}


def _state_us(config: dict[str, Any], bare: float, provider_us: float, n: int) -> dict[str, float | None]:
    """µs per call that ``[state]`` on Redis adds (alone, and with a budget); None without a Redis to use.

    The Redis is ``$TURNOUT_BENCH_REDIS_URL`` (``make bench`` starts one with scripts/services).
    """
    url = os.environ.get("TURNOUT_BENCH_REDIS_URL")
    if not url:
        return {"state_us": None, "state_budget_us": None}
    priced = {**config["prices"], f"backup:{MODEL}": config["prices"][f"primary:{MODEL}"]}  # a budget bounds both
    store = {"url": url, "prefix": f"bench-{os.getpid()}"}
    shared = {**config, "prices": priced, "state": store}
    try:
        alone = _quiet_client(shared)
        budgeted = _quiet_client({**shared, "budget": {"max_usd": "1000000"}})
    except turnout.ConfigError:  # redis-py missing (a peer's interpreter, an old turnout)
        return {"state_us": None, "state_budget_us": None}
    try:
        state = _per_call_us(lambda: alone.chat(model="config-priced", messages=MESSAGES), n // 10)
        money = _per_call_us(lambda: budgeted.chat(model="config-priced", messages=MESSAGES, max_tokens=50), n // 10)
    finally:
        alone.close()
        budgeted.close()
    return {"state_us": state - provider_us - bare, "state_budget_us": money - provider_us - bare}


def measure(n: int = 5000) -> dict[str, float | None]:
    """µs per call that turnout adds above its provider (see `_per_call_us`)."""
    register("bench-stub", _Stub)
    register("bench-stub-catalogue", _CatalogueStub)
    config = {
        "providers": {
            "primary": {"type": "bench-stub"},
            "listed": {"type": "bench-stub-catalogue"},
            "backup": {"type": "bench-stub"},
        },
        "models": {
            "config-priced": {"targets": [f"primary:{MODEL}", f"backup:{MODEL}"]},
            "catalogue-priced": {"targets": [f"listed:{MODEL}", f"backup:{MODEL}"]},
        },
        "prices": {f"primary:{MODEL}": {"input_per_million": "0.15", "output_per_million": "0.60"}},
    }
    client = turnout.Client(config=config)
    quiet = _quiet_client(config)  # the same without the spend ledger
    for route in ("config-priced", "catalogue-priced"):
        reply = client.chat(model=route, messages=MESSAGES)
        if reply.text != REPLY or reply.cost is None or len(reply.attempts) != 1:
            raise RuntimeError(f"stub route {route} gave an unexpected reply: {reply!r}")
    stub = client.provider("primary")
    request = turnout.ChatRequest(messages=[turnout.Message(**m) for m in MESSAGES])  # type: ignore[arg-type]
    provider_us = _per_call_us(lambda: stub.chat(MODEL, request), n)
    layer = _per_call_us(lambda: client.chat(model="config-priced", messages=MESSAGES), n) - provider_us
    bare = _per_call_us(lambda: quiet.chat(model="config-priced", messages=MESSAGES), n) - provider_us
    checks = _per_call_us(lambda: turnout.ChatRequest(messages=MESSAGES), n)  # type: ignore[arg-type]
    pricing = _pricing_us(client, "primary", n)
    return {
        **_telemetry_us(config, bare, provider_us, n),
        **_state_us(config, bare, provider_us, n),
        **_cache_us(config, n),
        "layer_us": layer,
        "layer_catalogue_us": _per_call_us(lambda: client.chat(model="catalogue-priced", messages=MESSAGES), n // 10)
        - provider_us,
        "layer_no_ledger_us": bare,
        "ledger_us": layer - bare,
        "checks_us": checks,
        "pricing_us": pricing,
        "pricing_catalogue_us": _pricing_us(client, "listed", n // 10),
        "bookkeeping_us": None if pricing is None else bare - checks - pricing,
    }
