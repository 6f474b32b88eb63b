"""OpenTelemetry spans and metrics of a call that falls back, printed by the console exporter.

Needs ``pip install 'turnout[otel]' opentelemetry-sdk``. turnout uses the tracer and meter
providers the application set; here they print spans to the console and keep metrics in memory.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import turnout
from turnout.events import CallFinished
from turnout.testing import FakeServer, Fault


def one_line(span: ReadableSpan) -> str:
    """The console exporter's output, one line per span (its default is indented JSON)."""
    attributes = dict(span.attributes or {})
    keep = ("gen_ai.provider.name", "gen_ai.usage.input_tokens", "error.type", "turnout.attempts", "turnout.fell_back")
    shown = ", ".join(f"{k}={attributes[k]}" for k in keep if k in attributes)
    return f"span {span.name!r} ({span.status.status_code.name}) {shown}\n"


# the application's providers (set once, at start-up)
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
trace.set_tracer_provider(tracing)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


class Fields(logging.Formatter):
    """Log records with the structured fields turnout puts in ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: getattr(record, k) for k in ("alias", "target", "attempt", "outcome") if hasattr(record, k)}
        return f"log {record.levelname}: {record.getMessage()} {fields}"


handler = logging.StreamHandler()
handler.setFormatter(Fields())
logging.getLogger("turnout").addHandler(handler)
logging.getLogger("turnout").setLevel(logging.INFO)

with FakeServer(flavor="openai") as primary, FakeServer(flavor="vllm") as backup:
    config = {
        "providers": {
            "primary": {"type": "openai", "base_url": primary.base_url, "api_key": "sk-example"},
            "backup": {"type": "vllm", "base_url": backup.base_url},
        },
        "models": {"chat": {"targets": ["primary:gpt-4o-mini", "backup:llama"], "retry": {"max_attempts": 1}}},
        "prices": {"backup:llama": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        "telemetry": {"enabled": True},  # or turnout.Client(config, telemetry=True)
    }
    with turnout.Client(config) as client:
        client.on(CallFinished, lambda event: print(f"hook: {event.route} cost {event.cost and event.cost.total}"))
        primary.enqueue(Fault.server_error(503))
        reply = client.chat("chat", "Hello", max_tokens=32)
        print("reply from", reply.provider, "| usage", reply.usage.prompt_tokens, reply.usage.completion_tokens)

        with client.stream("chat", "Tell me a story") as stream:
            text = "".join(chunk.text or "" for chunk in stream)

data = reader.get_metrics_data()
for resource in data.resource_metrics if data else ():
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            print(f"metric {metric.name} [{metric.unit}]: {len(metric.data.data_points)} series")
