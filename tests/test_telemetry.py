"""OpenTelemetry spans and metrics (GenAI semantic conventions), read back from the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import SpanKind, StatusCode

import turnout
from turnout import AsyncClient, ChatResponse, Client
from turnout.testing import FakeClock, FakeServer, Fault, Reply, ToolCallSpec

from .conftest import CANARY_KEY, LLAMA, make_config

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader(
    preferred_temporality={Histogram: AggregationTemporality.DELTA, Counter: AggregationTemporality.DELTA}
)


@pytest.fixture(scope="module", autouse=True)
def _providers() -> None:
    """The application's SDK providers (set once per process, as an application does)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    _READER.collect()  # delta temporality: start each test from zero
    yield _EXPORTER


def read_metrics() -> dict[str, list[Any]]:
    """The data points of each metric since the last read (delta temporality)."""
    data = _READER.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def on(config: dict[str, Any], **telemetry: Any) -> dict[str, Any]:
    return {**config, "telemetry": {"enabled": True, **telemetry}}


def tree(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The one root span and its children, in start order."""
    finished = exporter.get_finished_spans()
    [root] = [s for s in finished if s.parent is None]
    children = sorted((s for s in finished if s.parent is not None), key=lambda s: s.start_time or 0)
    assert all(c.parent is not None and c.parent.span_id == root.context.span_id for c in children)
    return root, children


def test_a_fallback_gives_one_call_span_with_two_attempt_children(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer, runner: Any
) -> None:
    fake_openai.enqueue(Fault.server_error(503))
    reply = runner.chat(on(make_config(fake_openai, fake_vllm)), "fast", "Hi", max_tokens=64, temperature=0.5)
    root, (first, second) = tree(spans)

    assert root.name == "chat fast" and root.kind is SpanKind.INTERNAL
    assert root.attributes is not None and root.attributes["turnout.route.alias"] == "fast"
    assert root.attributes["turnout.attempts"] == 2 and root.attributes["turnout.fell_back"] is True
    assert root.attributes["turnout.outcome"] == "ok"
    assert reply.cost is not None and root.attributes["turnout.cost_usd"] == float(reply.cost.total)

    assert first.name == "chat gpt-4o-mini" and first.kind is SpanKind.CLIENT
    assert first.attributes is not None
    assert first.attributes[error_attributes.ERROR_TYPE] == "ServerError"
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes[genai.GEN_AI_PROVIDER_NAME] == "openai"
    assert first.attributes[server_attributes.SERVER_ADDRESS] == "127.0.0.1"
    assert first.attributes[server_attributes.SERVER_PORT] == int(fake_openai.base_url.split(":")[2].split("/")[0])

    attrs = second.attributes
    assert attrs is not None and second.status.status_code is StatusCode.UNSET
    assert error_attributes.ERROR_TYPE not in attrs
    assert attrs[genai.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[genai.GEN_AI_PROVIDER_NAME] == "vllm"
    assert attrs[genai.GEN_AI_REQUEST_MODEL] == LLAMA
    assert attrs[genai.GEN_AI_REQUEST_MAX_TOKENS] == 64 and attrs[genai.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert attrs[genai.GEN_AI_RESPONSE_MODEL] == reply.model
    assert attrs[genai.GEN_AI_RESPONSE_ID] == reply.id
    assert attrs[genai.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[genai.GEN_AI_USAGE_INPUT_TOKENS] == reply.usage.prompt_tokens
    assert attrs[genai.GEN_AI_USAGE_OUTPUT_TOKENS] == reply.usage.completion_tokens
    assert genai.GEN_AI_INPUT_MESSAGES not in attrs and genai.GEN_AI_OUTPUT_MESSAGES not in attrs  # content is off

    points = read_metrics()
    durations = points[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION]
    assert sorted(str(p.attributes.get(error_attributes.ERROR_TYPE)) for p in durations) == ["None", "ServerError"]
    tokens = {p.attributes[genai.GEN_AI_TOKEN_TYPE]: p.sum for p in points[gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE]}
    assert tokens == {"input": reply.usage.prompt_tokens, "output": reply.usage.completion_tokens}
    for span in spans.get_finished_spans():  # the canary API key is in no span
        assert CANARY_KEY not in repr(dict(span.attributes or {})) + repr(
            [dict(e.attributes or {}) for e in span.events]
        )
    [cost] = points["turnout.client.cost"]
    assert cost.value == pytest.approx(float(reply.cost.total))
    assert cost.attributes == {
        "turnout.provider": "local",
        genai.GEN_AI_REQUEST_MODEL: LLAMA,
        "turnout.route.alias": "fast",
    }


def test_a_stream_span_ends_with_the_stream_and_has_time_to_first_chunk(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer, runner: Any
) -> None:
    fake_openai.enqueue(Reply("one two three", chunk_delay=0.01))
    chunks, reply = runner.stream(on(make_config(fake_openai, fake_vllm)), "fast", "Hi")
    root, [attempt] = tree(spans)
    assert root.name == "stream fast" and root.attributes is not None
    assert root.attributes["turnout.outcome"] == "ok" and root.attributes["turnout.fell_back"] is False
    attrs = attempt.attributes
    assert attrs is not None and attrs[genai.GEN_AI_REQUEST_STREAM] is True
    assert attrs[genai.GEN_AI_USAGE_OUTPUT_TOKENS] == reply.usage.completion_tokens
    first_chunk = float(attrs[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])  # type: ignore[arg-type]
    assert attempt.end_time is not None and attempt.start_time is not None
    assert 0 < first_chunk < (attempt.end_time - attempt.start_time) / 1e9
    [first] = read_metrics()[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK]
    assert first.count == 1 and first.sum == attrs[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_abandoned_stream_ends_its_spans_when_the_caller_leaves(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer, mode: str
) -> None:
    fake_openai.enqueue(Reply("one two three four five six", chunk_delay=0.01))
    config = on(make_config(fake_openai, fake_vllm))
    if mode == "sync":
        with Client(config) as client, client.stream("fast", "Hi") as stream:
            next(iter(stream))
            assert spans.get_finished_spans() == ()  # still open while the stream is read
    else:

        async def go() -> None:
            async with AsyncClient(config) as client, client.stream("fast", "Hi") as stream:
                async for _ in stream:
                    break

        asyncio.run(go())
    root, [attempt] = tree(spans)
    assert root.attributes is not None and root.attributes["turnout.outcome"] == "abandoned"
    assert root.status.status_code is StatusCode.UNSET  # the caller leaving is not a failure
    assert attempt.attributes is not None and attempt.attributes["turnout.outcome"] == "abandoned"
    assert float(attempt.attributes[genai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]) > 0  # type: ignore[arg-type]


def test_a_cancelled_call_ends_its_attempt_span_with_the_cancellation(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    fake_openai.enqueue(Reply("late", delay=5))

    async def go() -> None:
        async with AsyncClient(on(make_config(fake_openai, fake_vllm))) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.chat("fast", "Hi"), 0.2)

    asyncio.run(go())
    root, [attempt] = tree(spans)
    assert root.attributes is not None and root.attributes[error_attributes.ERROR_TYPE] == "CancelledError"
    assert root.status.status_code is StatusCode.ERROR
    assert attempt.attributes is not None and attempt.attributes[error_attributes.ERROR_TYPE] == "CancelledError"
    assert attempt.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embeddings_give_one_attempt_span_per_batch(spans: InMemorySpanExporter, mode: str) -> None:
    with FakeServer(flavor="openai", models=["text-embedding-3-small"]) as server:
        config = on(
            {
                "providers": {"p": {"type": "openai", "base_url": server.base_url, "api_key": "k"}},
                "models": {"vectors": {"targets": ["p:text-embedding-3-small"]}},
            }
        )
        texts = ["a", "b", "c"]
        if mode == "sync":
            with Client(config) as client:
                reply = client.embed("vectors", texts, batch_size=2, dimensions=8)
        else:

            async def go() -> turnout.EmbeddingResponse:
                async with AsyncClient(config) as client:
                    return await client.embed("vectors", texts, batch_size=2, dimensions=8)

            reply = asyncio.run(go())
    root, attempts = tree(spans)
    assert root.name == "embed vectors" and root.attributes is not None
    assert root.attributes[genai.GEN_AI_OPERATION_NAME] == "embeddings"
    assert [a.name for a in attempts] == ["embeddings text-embedding-3-small"] * 2
    assert all(
        a.attributes is not None and a.attributes[genai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 8 for a in attempts
    )
    tokens = sum(int(a.attributes[genai.GEN_AI_USAGE_INPUT_TOKENS]) for a in attempts if a.attributes)  # type: ignore[arg-type,misc]
    assert tokens == reply.usage.prompt_tokens


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_tools_gives_a_span_over_each_rounds_call(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer, mode: str
) -> None:
    fake_openai.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Oslo"}', id="c0")]), Reply("Sunny."))
    config = on(make_config(fake_openai, fake_vllm))
    if mode == "sync":
        with Client(config) as client:
            run = client.run_tools("fast", "Weather in Oslo?", tools=[get_weather])
    else:

        async def go() -> Any:
            async with AsyncClient(config) as client:
                return await client.run_tools("fast", "Weather in Oslo?", tools=[get_weather])

        run = asyncio.run(go())
    finished = spans.get_finished_spans()
    [top] = [s for s in finished if s.parent is None]
    assert top.name == "run_tools fast" and top.attributes is not None
    assert top.attributes["turnout.rounds"] == 2 and top.attributes["turnout.outcome"] == "ok"
    calls = [s for s in finished if s.parent is not None and s.parent.span_id == top.context.span_id]
    assert [c.name for c in calls] == ["chat fast", "chat fast"]
    attempts = [s for s in finished if s.parent is not None and s.parent.span_id in {c.context.span_id for c in calls}]
    assert [a.attributes[genai.GEN_AI_RESPONSE_FINISH_REASONS] for a in attempts if a.attributes] == [
        ("tool_calls",),
        ("stop",),
    ]
    assert run.text == "Sunny."


def test_retries_and_skipped_targets_are_events_of_the_call_span(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    config = make_config(fake_openai, fake_vllm, defaults={"retry": {"max_attempts": 2}})
    config["models"]["big"] = {"targets": [f"local:{LLAMA}", "openai:gpt-4o-mini"], "fallback_on": ["context_window"]}
    fake_openai.enqueue(Fault.server_error(503))
    with Client(on(config), clock=FakeClock()) as client:
        client.chat("big", "word " * 3000, max_tokens=2000)
    root, attempts = tree(spans)
    assert [e.name for e in root.events] == ["turnout.target_skipped", "turnout.retry"]
    skipped, retry = root.events
    assert (
        skipped.attributes is not None
        and skipped.attributes[error_attributes.ERROR_TYPE] == "ContextWindowExceededError"
    )
    assert skipped.attributes["turnout.provider"] == "local"
    assert retry.attributes is not None and retry.attributes["turnout.retry.attempt"] == 1
    assert float(retry.attributes["turnout.retry.sleep_s"]) > 0  # type: ignore[arg-type]
    assert [a.attributes[genai.GEN_AI_REQUEST_MODEL] for a in attempts if a.attributes] == ["gpt-4o-mini"] * 2
    assert root.attributes is not None and root.attributes["turnout.attempts"] == 2


def test_capture_content_records_prompts_and_completions(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    fake_openai.enqueue(Reply("Hello there"))
    with Client(make_config(fake_openai, fake_vllm), telemetry=True) as client:
        client.chat("fast", "Hi")  # telemetry=True: the switch on the constructor, content off by default
    with Client(on(make_config(fake_openai, fake_vllm), capture_content=True)) as client:
        fake_openai.enqueue(Reply("Hello there"))
        client.chat("fast", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    plain, captured = (s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert plain.attributes is not None and genai.GEN_AI_INPUT_MESSAGES not in plain.attributes
    assert captured.attributes is not None
    assert json.loads(str(captured.attributes[genai.GEN_AI_INPUT_MESSAGES])) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
    ]
    assert json.loads(str(captured.attributes[genai.GEN_AI_OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello there"}], "finish_reason": "stop"}
    ]


def test_telemetry_false_overrides_the_config(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    with Client(on(make_config(fake_openai, fake_vllm)), telemetry=False) as client:
        client.chat("fast", "Hi")
    assert spans.get_finished_spans() == ()


def test_attribute_names_are_the_conventions_packages() -> None:
    from turnout import _semconv

    pinned = dict(_semconv._PINNED)
    modules = [genai, gen_ai_metrics, server_attributes, error_attributes]
    for key, value in pinned.items():
        [found] = [getattr(m, key) for m in modules if hasattr(m, key)]
        assert value == found, key
    assert _semconv.names() == pinned


def test_enabled_without_the_extra_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if opentelemetry-api were not installed
    monkeypatch.delitem(sys.modules, "turnout._telemetry", raising=False)
    with pytest.raises(turnout.ConfigError, match=r"pip install 'turnout\[otel\]'"):
        Client(on(make_config(fake_openai, fake_vllm)))


def test_a_call_without_telemetry_is_not_traced(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer
) -> None:
    with Client(make_config(fake_openai, fake_vllm)) as client:
        reply: ChatResponse = client.chat("fast", "Hi")
    assert reply.text and spans.get_finished_spans() == ()


def test_a_hedged_call_has_both_sides_under_one_call_span(
    spans: InMemorySpanExporter, fake_openai: FakeServer, fake_vllm: FakeServer, runner: Any
) -> None:
    config = make_config(fake_openai, fake_vllm)
    config["models"]["fast"]["hedge_after"] = 0.05
    fake_openai.enqueue(Reply("too late", delay=0.5))
    reply = runner.chat(on(config), "fast", "Hi")
    root, attempts = tree(spans)  # every attempt span is a child of the one call span
    assert reply.provider == "local"
    outcomes = {a.attributes["turnout.provider"]: a.attributes["turnout.outcome"] for a in attempts if a.attributes}
    assert outcomes == {"openai": "cancelled", "local": "ok"}
    assert root.attributes is not None and root.attributes["turnout.outcome"] == "ok"


def test_without_the_conventions_package_the_pinned_names_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from turnout import _semconv

    for path in _semconv._MODULES:
        monkeypatch.setitem(sys.modules, path, None)  # as if opentelemetry-semantic-conventions were absent
    monkeypatch.setattr(_semconv, "_PINNED", {**_semconv._PINNED, "ERROR_TYPE": "pinned.error.type"})
    assert _semconv.names()["ERROR_TYPE"] == "pinned.error.type"
