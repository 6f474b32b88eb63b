"""OpenTelemetry spans and metrics of every call, following the GenAI semantic conventions.

`Telemetry` is a subscriber of the engine's events (`turnout.events`): it opens a call
span on `CallStarted`, a child client-inference span per attempt on `AttemptStarted`, closes
them on `AttemptFinished` / `StreamAbandoned` / `CallFinished`, and records the metrics. It uses
the application's global tracer and meter providers (``opentelemetry-api`` only: without an
SDK every span and instrument is a no-op). Imported only when telemetry is on.

Conventions: <https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/> (spans) and
<https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/> (metrics); names from
`turnout._semconv`. The call span is not made the current span (an event callback cannot
wrap the caller's code), so spans started inside a provider's HTTP library are siblings.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._semconv import SEMCONV_VERSION, names
from ._version import __version__
from .embeddings import EmbeddingRequest, EmbeddingResponse
from .events import (
    AttemptFinished,
    AttemptStarted,
    CallFinished,
    CallStarted,
    Events,
    RetryScheduled,
    StreamAbandoned,
)
from .types import ChatRequest, ChatResponse, Message

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ._tool_run import ToolRun
    from .provider import Provider

__all__ = ["Telemetry"]

N = names()
_SCHEMA = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
#: Operation names of the conventions (``gen_ai.operation.name``) per kind of call.
_GENAI_OPERATION = {"chat": "chat", "stream": "chat", "embed": "embeddings"}
#: Bucket boundaries the conventions advise for the two histograms.
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]


class _CallSpans:
    """The open spans of one call in flight (``recording`` False: the tracer is a no-op or sampled it out)."""

    __slots__ = ("attempts", "operation", "recording", "span")

    def __init__(self, span: Span, operation: str) -> None:
        self.span = span
        self.operation = operation
        self.recording = span.is_recording()
        self.attempts: dict[tuple[str, str, float], list[tuple[Span | None, dict[str, Any]]]] = {}


class Telemetry:
    """Spans and metrics of a client's calls, fed by its events."""

    def __init__(self, capture_content: bool = False) -> None:
        """Create the tracer and the instruments from the global providers.

        Args:
            capture_content: also record prompts and completions (``gen_ai.input.messages``,
                ``gen_ai.output.messages``) on attempt spans.
        """
        self.capture_content = capture_content
        self._tracer = trace.get_tracer("turnout", __version__, schema_url=_SCHEMA)
        meter = metrics.get_meter("turnout", __version__, schema_url=_SCHEMA)
        self._tokens = meter.create_histogram(
            N["GEN_AI_CLIENT_TOKEN_USAGE"],
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            N["GEN_AI_CLIENT_OPERATION_DURATION"],
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._first_chunk = meter.create_histogram(
            N["GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK"],
            unit="s",
            description="Time to receive the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._cost = meter.create_counter(
            "turnout.client.cost", unit="USD", description="What turnout's calls cost, by provider, model and alias"
        )
        self._calls: dict[int, _CallSpans] = {}
        self._bases: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()  # a hedged sync call publishes from two threads

    def subscribe(self, events: Events) -> None:
        """Subscribe to every event telemetry needs."""
        handlers: list[tuple[type[Any], Callable[[Any], None]]] = [
            (CallStarted, self._call_started),
            (AttemptStarted, self._attempt_started),
            (AttemptFinished, self._attempt_finished),
            (RetryScheduled, self._retry),
            (StreamAbandoned, self._abandoned),
            (CallFinished, self._call_finished),
        ]
        for kind, handler in handlers:
            events.subscribe(kind, handler)

    # -- calls ----------------------------------------------------------------------------------

    def _call_started(self, event: CallStarted) -> None:
        span = self._tracer.start_span(
            f"{event.operation} {event.route}",
            kind=SpanKind.INTERNAL,
            attributes={
                "turnout.route.alias": event.route,
                "turnout.operation": event.operation,
                N["GEN_AI_OPERATION_NAME"]: _GENAI_OPERATION[event.operation],
            },
        )
        with self._lock:
            self._calls[event.call_id] = _CallSpans(span, event.operation)

    def _call_finished(self, event: CallFinished) -> None:
        with self._lock:
            call = self._calls.pop(event.call_id, None)
            if call is None:
                return
            left = [entry for entries in call.attempts.values() for entry in entries]
        for span, _ in left:  # cancelled while a request was out, or a hedge's losing side
            if span is None:
                continue
            reason = "cancelled" if event.error is None else type(event.error).__name__
            span.set_attribute("turnout.outcome", "cancelled")
            span.set_attribute(N["ERROR_TYPE"], reason)
            span.set_status(Status(StatusCode.ERROR, "the call ended before this attempt did"))
            span.end()
        if call.recording:
            self._end_call(call.span, event)
        if event.cost is not None and event.cost.total:
            last = event.attempts[-1] if event.attempts else None
            provider = event.response.provider if event.response is not None else (last.provider if last else "")
            model = event.response.model if event.response is not None else (last.model if last else "")
            self._cost.add(
                float(event.cost.total),
                {"turnout.provider": provider, N["GEN_AI_REQUEST_MODEL"]: model, "turnout.route.alias": event.route},
            )

    def _end_call(self, span: Span, event: CallFinished) -> None:
        sent = [a for a in event.attempts if not a.skipped]
        error = None if isinstance(event.error, GeneratorExit) else event.error  # the caller left a stream
        outcome = "ok" if event.error is None else "abandoned" if error is None else type(error).__name__
        span.set_attribute("turnout.attempts", len(sent))
        span.set_attribute("turnout.outcome", outcome)
        span.set_attribute("turnout.fell_back", len({(a.provider, a.model) for a in event.attempts}) > 1)
        span.set_attribute("turnout.latency", event.latency)
        if event.cost is not None:
            span.set_attribute("turnout.cost_usd", float(event.cost.total))
        if event.response is not None:
            span.set_attribute("turnout.provider", event.response.provider)
            span.set_attribute(N["GEN_AI_RESPONSE_MODEL"], event.response.model)
        if error is not None:
            span.set_attribute(N["ERROR_TYPE"], outcome)
            span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.end()

    @contextmanager
    def tool_run(self, alias: str) -> Iterator[Callable[[ToolRun], None]]:
        """A ``run_tools`` span around its rounds (made current, so each round's call span is its child)."""
        span = self._tracer.start_span(
            f"run_tools {alias}",
            kind=SpanKind.INTERNAL,
            attributes={"turnout.route.alias": alias, "turnout.operation": "run_tools"},
        )

        def note(run: ToolRun) -> None:
            span.set_attribute("turnout.rounds", len(run.responses))
            if run.cost is not None:
                span.set_attribute("turnout.cost_usd", float(run.cost.total))

        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            try:
                yield note
                span.set_attribute("turnout.outcome", "ok")
            except BaseException as exc:
                span.set_attribute("turnout.outcome", type(exc).__name__)
                span.set_attribute(N["ERROR_TYPE"], type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, _describe(exc)))
                raise

    # -- attempts -------------------------------------------------------------------------------

    def _attempt_started(self, event: AttemptStarted) -> None:
        with self._lock:
            call = self._calls.get(event.call_id)
        if call is None:
            return
        base = self._bases.get((call.operation, event.route, event.provider, event.model))
        if base is None:
            base = self._base(call.operation, event)
        span = None
        if call.recording:
            attributes = dict(base)
            if call.operation == "stream":
                attributes[N["GEN_AI_REQUEST_STREAM"]] = True
            _request_attributes(attributes, event.request)
            if self.capture_content and isinstance(event.request, ChatRequest):
                attributes[N["GEN_AI_INPUT_MESSAGES"]] = json.dumps([_message(m) for m in event.request.messages])
            span = self._tracer.start_span(
                f"{base[N['GEN_AI_OPERATION_NAME']]} {event.model}",
                context=trace.set_span_in_context(call.span),
                kind=SpanKind.CLIENT,
                attributes=attributes,
            )
        metric_attributes = base
        with self._lock:
            call.attempts.setdefault((event.provider, event.model, event.started), []).append((span, metric_attributes))

    def _base(self, operation: str, event: AttemptStarted) -> dict[str, Any]:
        """The attributes every attempt of one operation, route and target shares (spans and metrics)."""
        base: dict[str, Any] = {
            N["GEN_AI_OPERATION_NAME"]: _GENAI_OPERATION[operation],
            N["GEN_AI_REQUEST_MODEL"]: event.model,
            "turnout.provider": event.provider,
            "turnout.route.alias": event.route,
        }
        if event.target is not None:
            base[N["GEN_AI_PROVIDER_NAME"]] = event.target.config.type
            base.update(_server(event.target))
        self._bases[(operation, event.route, event.provider, event.model)] = base
        return base

    def _take(
        self, call_id: int, provider: str, model: str, started: float
    ) -> tuple[Span | None, dict[str, Any]] | None:
        with self._lock:
            call = self._calls.get(call_id)
            if call is None:
                return None
            key = (provider, model, started)
            entries = call.attempts.get(key)
            if not entries:
                return None
            entry = entries.pop(0)
            if not entries:
                del call.attempts[key]
            return entry

    def _attempt_finished(self, event: AttemptFinished) -> None:
        attempt = event.attempt
        if attempt.skipped:
            self._skipped(event)
            return
        taken = self._take(event.call_id, attempt.provider, attempt.model, event.started)
        if taken is None:
            return
        span, metric_attributes = taken
        reply = event.response
        if reply is not None:
            if reply.model:
                metric_attributes = {**metric_attributes, N["GEN_AI_RESPONSE_MODEL"]: reply.model}
            self._record_tokens(reply.usage.prompt_tokens, reply.usage.completion_tokens, metric_attributes)
        if event.first_chunk is not None:
            self._first_chunk.record(event.first_chunk, metric_attributes)
        if event.error is not None:
            metric_attributes = {**metric_attributes, N["ERROR_TYPE"]: attempt.outcome}
        self._duration.record(attempt.latency, metric_attributes)
        if span is not None:
            self._end_attempt(span, event)

    def _end_attempt(self, span: Span, event: AttemptFinished) -> None:
        attempt = event.attempt
        span.set_attribute("turnout.outcome", attempt.outcome)
        if event.response is not None:
            _response_attributes(span, event.response, self.capture_content)
        if event.first_chunk is not None:
            span.set_attribute(N["GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK"], event.first_chunk)
        if event.error is not None:
            span.set_attribute(N["ERROR_TYPE"], attempt.outcome)
            if attempt.status_code is not None:
                span.set_attribute("http.response.status_code", attempt.status_code)
            span.set_status(Status(StatusCode.ERROR, _describe(event.error)))
        span.end()

    def _skipped(self, event: AttemptFinished) -> None:
        """A target skipped before sending: an event on the call span."""
        attempt = event.attempt
        with self._lock:
            call = self._calls.get(event.call_id)
        if call is not None and call.recording:
            call.span.add_event(
                "turnout.target_skipped",
                {
                    "turnout.provider": attempt.provider,
                    N["GEN_AI_REQUEST_MODEL"]: attempt.model,
                    N["ERROR_TYPE"]: attempt.outcome,
                    "turnout.reason": attempt.error or "",
                },
            )

    def _abandoned(self, event: StreamAbandoned) -> None:
        taken = self._take(event.call_id, event.provider, event.model, event.started)
        if taken is None:
            return
        span, metric_attributes = taken
        if event.first_chunk is not None:
            self._first_chunk.record(event.first_chunk, metric_attributes)
        if not event.usage.estimated:
            self._record_tokens(event.usage.prompt_tokens, event.usage.completion_tokens, metric_attributes)
        if span is None:
            return
        span.set_attribute("turnout.outcome", "abandoned")
        span.set_attribute("turnout.usage_estimated", event.usage.estimated)
        if event.usage.prompt_tokens is not None:
            span.set_attribute(N["GEN_AI_USAGE_INPUT_TOKENS"], event.usage.prompt_tokens)
        if event.usage.completion_tokens is not None:
            span.set_attribute(N["GEN_AI_USAGE_OUTPUT_TOKENS"], event.usage.completion_tokens)
        if event.first_chunk is not None:
            span.set_attribute(N["GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK"], event.first_chunk)
        span.end()

    def _retry(self, event: RetryScheduled) -> None:
        with self._lock:
            call = self._calls.get(event.call_id)
        if call is not None and call.recording:
            call.span.add_event(
                "turnout.retry",
                {
                    "turnout.provider": event.provider,
                    N["GEN_AI_REQUEST_MODEL"]: event.model,
                    "turnout.retry.attempt": event.attempt,
                    "turnout.retry.sleep_s": event.seconds,
                    N["ERROR_TYPE"]: type(event.error).__name__,
                },
            )

    # -- helpers --------------------------------------------------------------------------------

    def _record_tokens(self, prompt: int | None, completion: int | None, attributes: dict[str, Any]) -> None:
        key = N["GEN_AI_TOKEN_TYPE"]
        if prompt is not None:
            self._tokens.record(prompt, {**attributes, key: "input"})
        if completion is not None:
            self._tokens.record(completion, {**attributes, key: "output"})


def _server(provider: Provider) -> dict[str, Any]:
    """``server.address`` / ``server.port`` of a provider's base URL."""
    base = getattr(provider, "base_url", None) or provider.config.base_url
    found: dict[str, Any] = {}
    if isinstance(base, str):
        parts = urlsplit(base)
        if parts.hostname:
            found[N["SERVER_ADDRESS"]] = parts.hostname
            found[N["SERVER_PORT"]] = parts.port or (443 if parts.scheme == "https" else 80)
    return found


def _request_attributes(attributes: dict[str, Any], request: ChatRequest | EmbeddingRequest | None) -> None:
    """The request parameters that were sent, under the conventions' names."""
    if isinstance(request, EmbeddingRequest):
        if request.dimensions is not None:
            attributes[N["GEN_AI_EMBEDDINGS_DIMENSION_COUNT"]] = request.dimensions
        return
    if request is None:
        return
    for key, value in (
        ("GEN_AI_REQUEST_TEMPERATURE", request.temperature),
        ("GEN_AI_REQUEST_TOP_P", request.top_p),
        ("GEN_AI_REQUEST_MAX_TOKENS", request.max_tokens),
        ("GEN_AI_REQUEST_SEED", request.seed),
    ):
        if value is not None:
            attributes[N[key]] = value
    if request.n is not None and request.n != 1:
        attributes[N["GEN_AI_REQUEST_CHOICE_COUNT"]] = request.n
    if request.stop is not None:
        attributes[N["GEN_AI_REQUEST_STOP_SEQUENCES"]] = (
            [request.stop] if isinstance(request.stop, str) else request.stop
        )


def _response_attributes(span: Span, reply: ChatResponse | EmbeddingResponse, capture_content: bool) -> None:
    if reply.model:
        span.set_attribute(N["GEN_AI_RESPONSE_MODEL"], reply.model)
    usage = reply.usage
    if usage.prompt_tokens is not None:
        span.set_attribute(N["GEN_AI_USAGE_INPUT_TOKENS"], usage.prompt_tokens)
    if usage.completion_tokens is not None:
        span.set_attribute(N["GEN_AI_USAGE_OUTPUT_TOKENS"], usage.completion_tokens)
    if not isinstance(reply, ChatResponse):
        return
    if reply.id:
        span.set_attribute(N["GEN_AI_RESPONSE_ID"], reply.id)
    span.set_attribute(N["GEN_AI_RESPONSE_FINISH_REASONS"], [c.finish_reason or "" for c in reply.choices])
    if capture_content:
        output = [
            {
                "role": "assistant",
                "parts": _parts(c.text or None, c.tool_calls),
                "finish_reason": c.finish_reason or "",
            }
            for c in reply.choices
        ]
        span.set_attribute(N["GEN_AI_OUTPUT_MESSAGES"], json.dumps(output))


def _message(message: Message) -> dict[str, Any]:
    """One message in the conventions' JSON shape (``gen_ai.input.messages``)."""
    if message.role == "tool":
        part = {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        return {"role": "tool", "parts": [part]}
    content = message.content if isinstance(message.content, str) or message.content is None else message.content
    return {"role": message.role, "parts": _parts(content, message.tool_calls or [])}


def _parts(content: Any, tool_calls: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif content is not None:  # OpenAI content parts, kept as they are
        parts.extend({"type": str(p.get("type", "text")), **p} for p in content)
    for call in tool_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.function.name, "arguments": call.function.arguments}
        )
    return parts


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"[:500]
