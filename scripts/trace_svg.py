"""Render the trace of a call that retries, then falls back, as an SVG timeline (docs/img/fallback-trace.svg).

It runs the call against turnout's fake servers with telemetry on, exports the spans with the
OpenTelemetry SDK's in-memory exporter and draws one bar per span, indented under its parent,
with span events (retry sleeps, skipped targets) as markers. Needs the SDK (``pip install -e
'.[dev]'``). Usage: ``python scripts/trace_svg.py [out.svg]``.
"""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import turnout
from turnout.testing import FakeServer, Fault, Reply

OUT = Path(__file__).parents[1] / "docs" / "img" / "fallback-trace.svg"
ROW, LABEL, WIDTH = 30, 380, 560


def run() -> list[ReadableSpan]:
    """One call: the primary answers 503 twice (retried once, 0.15 s apart), the backup answers."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    with FakeServer(flavor="openai") as primary, FakeServer(flavor="vllm") as backup:
        config = {
            "providers": {
                "primary": {"type": "openai", "base_url": primary.base_url, "api_key": "sk-docs"},
                "backup": {"type": "vllm", "base_url": backup.base_url},
            },
            "models": {
                "fast": {
                    "targets": ["primary:gpt-4o-mini", "backup:llama-2-7b"],
                    "retry": {"max_attempts": 2, "initial_delay": 0.15, "jitter": 0},
                }
            },
            "prices": {"backup:llama-2-7b": {"input_per_million": "0.10", "output_per_million": "0.20"}},
        }
        primary.enqueue(Fault.slow(0.05, Fault.server_error(503)), Fault.slow(0.05, Fault.server_error(503)))
        backup.enqueue(Reply("Hello! How can I help?", delay=0.12))
        with turnout.Client(config, telemetry=True) as client:
            client.chat("fast", "Hello", max_tokens=64)
    return list(exporter.get_finished_spans())


def _depth(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> int:
    depth = 0
    while span.parent is not None and span.parent.span_id in by_id:
        span, depth = by_id[span.parent.span_id], depth + 1
    return depth


def _label(span: ReadableSpan) -> str:
    a = dict(span.attributes or {})
    if "turnout.attempts" in a:
        fell_back = ", fell back" if a.get("turnout.fell_back") else ""
        return f"{span.name}: {a['turnout.attempts']} attempts{fell_back}, ${a.get('turnout.cost_usd', 0):.7f}"
    if "error.type" in a:
        return f"{span.name} @ {a.get('turnout.provider')}: {a['error.type']}"
    tokens = f"{a.get('gen_ai.usage.input_tokens')} in / {a.get('gen_ai.usage.output_tokens')} out tokens"
    return f"{span.name} @ {a.get('turnout.provider')}: {tokens}"


def svg(spans: list[ReadableSpan]) -> str:
    """The timeline: one row per span in start order, bars on a shared time axis."""
    spans = sorted(spans, key=lambda s: s.start_time or 0)
    by_id = {s.context.span_id: s for s in spans}
    t0 = min(s.start_time or 0 for s in spans)
    t1 = max(s.end_time or 0 for s in spans)
    scale = WIDTH / max(t1 - t0, 1)
    height = ROW * (len(spans) + 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL + WIDTH + 20}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{LABEL + WIDTH + 20}" height="{height}" fill="white"/>',
    ]
    for row, span in enumerate(spans):
        y = ROW * row + 10
        depth = _depth(span, by_id)
        x = LABEL + ((span.start_time or t0) - t0) * scale
        w = max(((span.end_time or t1) - (span.start_time or t0)) * scale, 2)
        failed = span.status.status_code.name == "ERROR"
        color = "#d9534f" if failed else ("#5b8def" if depth == 0 else "#5cb85c")
        parts.append(f'<text x="{8 + 14 * depth}" y="{y + 15}">{escape(_label(span)[:52])}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="20" rx="3" fill="{color}"/>')
        ms = ((span.end_time or t1) - (span.start_time or t0)) / 1e6
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}" fill="white">{ms:.0f} ms</text>')
        for event in span.events:
            ex = LABEL + (event.timestamp - t0) * scale
            attrs = dict(event.attributes or {})
            sleep = float(str(attrs.get("turnout.retry.sleep_s", 0)))
            if sleep:
                parts.append(
                    f'<rect x="{ex:.1f}" y="{y + 22}" width="{sleep * 1e9 * scale:.1f}" height="5" fill="#f0ad4e"/>'
                )
            parts.append(
                f'<text x="{ex:.1f}" y="{y + ROW * len(spans) + 8}" fill="#a0670a">'
                f"{escape(event.name)} ({sleep * 1000:.0f} ms sleep)</text>"
            )
    axis = ROW * len(spans) + 30
    total = (t1 - t0) / 1e6
    parts.append(f'<text x="{LABEL}" y="{axis}" fill="#555">0 ms</text>')
    parts.append(f'<text x="{LABEL + WIDTH - 50}" y="{axis}" fill="#555">{total:.0f} ms</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg(run()))
    print(f"wrote {out}")
