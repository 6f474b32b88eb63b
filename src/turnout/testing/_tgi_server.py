"""`FakeTGIServer`: an in-process Text Generation Inference server (a Hugging Face Inference Endpoint).

It serves TGI's routes over real HTTP on 127.0.0.1: ``GET /health``, ``GET /info``,
``POST /generate``, ``POST /generate_stream``, ``POST /`` (the compatibility route
huggingface_hub's ``text_generation`` uses: ``"stream": true`` streams), ``POST /tokenize`` and
the Messages API ``POST /v1/chat/completions`` (streams end with ``data: [DONE]``). Scripting is
every fake's (`ScriptedServer`): `Reply` and `Fault`, consumed in order.

TGI-specific behaviour imitated (https://huggingface.github.io/text-generation-inference/): validation failures are 422
``{"error", "error_type": "validation"}`` with TGI's wording, and inside a stream an error
*event* on a 200 response (TGI's own errors: 422, 424 generation, 429 overloaded, 500
incomplete); non-stream replies carry ``x-prompt-tokens`` / ``x-generated-tokens`` and the other
``x-*`` timing headers; ``scaled_to_zero=True`` answers 503 until a request sends
``X-Scale-Up-Timeout`` (the Inference Endpoints proxy's cold start). The 401/402/503 bodies of
HF's proxy in front of TGI are approximations: ``{"error": ...}``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from turnout.testing._script import Fault, Reply, Scripted
from turnout.testing._scripted_server import RecordedRequest, ScriptedHandler, ScriptedServer
from turnout.testing._tgi_bytes import (
    TGIError,
    chat_body,
    context_message,
    dumps,
    error_body,
    info_body,
    parse_generate,
    tokenize_body,
    validation_message,
)
from turnout.testing._tgi_gen import (
    chat_events,
    chat_message,
    check_response_format,
    resolve_chat,
    resolve_text,
    text_body,
    text_events,
    timing_headers,
)
from turnout.testing._wire import count_chat_tokens

__all__ = ["FakeTGIServer"]

_JSON = "application/json"
_SSE = "text/event-stream"
_TGI_OWN = frozenset({422, 424, 429, 500})  # errors TGI itself raises: events inside a stream
_PROXY_BODIES = {
    401: "Invalid credentials in Authorization header",
    402: "You have exceeded your monthly included credits for Inference Providers.",
    503: "Service Unavailable: the endpoint is scaled to zero and starting",
}
_UNREADABLE = "Failed to deserialize the JSON body into the target type: "


class TGIHandler(ScriptedHandler):
    """Answers one connection on behalf of a `FakeTGIServer`."""

    @property
    def tgi(self) -> FakeTGIServer:
        """The server, typed."""
        assert isinstance(self.fake, FakeTGIServer)
        return self.fake

    def version_string(self) -> str:
        """The ``Server`` header."""
        return "text-generation-inference"

    def _base_headers(self) -> dict[str, str]:
        return {}

    def _error(self, error: TGIError, headers: Mapping[str, str] = {}) -> None:
        if error.plain:
            self._send(error.status, error.message.encode(), headers, "text/plain; charset=utf-8")
            return
        self._send(error.status, dumps(error_body(error.status, error.message, error.error_type)), headers)

    def _route(self, record: RecordedRequest) -> None:
        method, path, tgi = record.method, record.path, self.tgi
        if (
            path != "/health"
            and tgi.api_key is not None
            and record.headers.get("authorization") != f"Bearer {tgi.api_key}"
        ):
            self._error(TGIError(401, _PROXY_BODIES[401]))
        elif not tgi._scale_up(record.headers):
            self._error(TGIError(503, _PROXY_BODIES[503]))
        elif method == "GET" and path == "/health":
            healthy = tgi.healthy
            self._send(200 if healthy else 503, b"" if healthy else dumps(error_body(503, "unhealthy", "healthcheck")))
        elif method == "GET" and path == "/info":
            self._send(200, dumps(info_body(tgi.model_id, tgi.max_input_tokens, tgi.max_total_tokens)))
        elif method == "POST" and path in ("/", "/generate", "/generate_stream"):
            self._generate(record, stream=path == "/generate_stream")
        elif method == "POST" and path == "/tokenize" and isinstance(record.json, dict) and tgi.tokenize_route:
            self._send(200, dumps(tokenize_body(str(record.json.get("inputs", "")))))
        elif method == "POST" and path == "/v1/chat/completions" and tgi.chat_route:
            self._chat(record)
        else:
            self._send(404, b"")  # axum's empty 404

    # -- faults shared by both routes --------------------------------------------------------------

    def _next(self, model: str | None) -> Scripted:
        return self.tgi._next(model or "") or self.tgi.default_reply or Reply()

    def _fault(self, fault: Fault, stream: bool, context: TGIError) -> TGIError | None:
        """The error a fault stands for (None: it is a stream fault or a delay, handled by the caller)."""
        if fault.kind == "context_length":
            return context
        if fault.kind == "rate_limit":
            return TGIError(429, "Model is overloaded", "overloaded")
        if fault.kind == "insufficient_quota":
            return TGIError(402, _PROXY_BODIES[402])
        if fault.kind == "unauthorized":
            return TGIError(401, _PROXY_BODIES[401])
        if fault.kind == "not_found":
            return TGIError(404, "Not Found")
        if fault.is_error or (fault.kind == "stream_error" and not stream):
            status = fault.status_code or 500
            message = fault.message or _PROXY_BODIES.get(status)
            return TGIError(status, message or error_body(status)["error"], fault.error_type)
        return None

    def _fault_headers(self, fault: Fault) -> dict[str, str]:
        headers = dict(fault.headers)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        return headers

    def _resolve(self, item: Scripted, stream: bool, context: TGIError) -> tuple[Reply, Fault | None] | None:
        """Follow delays to the reply to send (with its stream fault), or answer an error and return None."""
        while isinstance(item, Fault):
            if item.kind == "slow":
                self._wait(item.seconds)
                item = item.then or self.tgi.default_reply or Reply()
                continue
            if item.kind == "drop":
                self.close_connection = True
                return None
            error = self._fault(item, stream, context)
            if error is not None:
                headers = self._fault_headers(item)
                in_stream = stream and error.status in _TGI_OWN and not headers
                self._stream_error(error) if in_stream else self._error(error, headers)
                return None
            then = item.then if isinstance(item.then, Reply) else self.tgi.default_reply or Reply()
            return then, item
        return item, None

    def _stream_error(self, error: TGIError) -> None:
        self._start_stream({})
        self._event(self._error_event(error))
        self._chunk(b"")

    def _error_event(self, error: TGIError) -> dict[str, Any]:
        if self.path.startswith("/v1/"):  # the Messages API's OpenAI-ish in-stream error
            return {"error": {"message": error.message, "http_status_code": error.status}}
        return error_body(error.status, error.message, error.error_type)

    def _event(self, obj: Any, name: str | None = None) -> None:
        self._chunk((f"event: {name}\n".encode() if name else b"") + b"data:" + dumps(obj) + b"\n\n")

    def _fault_event(self, fault: Fault) -> None:
        """A `stream_error` fault's event: TGI's own, or (chat route) the fields the fault sets, as a host sends."""
        status = fault.status_code or 500
        event = self._error_event(TGIError(status, fault.message or "", _error_type(status)))
        error = event.get("error")
        if isinstance(error, dict):
            error |= {"type": fault.error_type} if fault.error_type is not None else {}
            error |= {"code": fault.error_code} if fault.error_code is not None else {}
            if fault.status_key is not None:
                error.pop("http_status_code")
                error[fault.status_key] = status
        self._event(event, fault.event)

    def _start_stream(self, headers: Mapping[str, str]) -> None:
        head = {"content-type": _SSE, "transfer-encoding": "chunked", "x-accel-buffering": "no"}
        self._send_head(200, {**head, "x-compute-type": "gpu+optimized", **headers})

    def _events(
        self, events: Sequence[dict[str, Any]], tail: Sequence[dict[str, Any]], reply: Reply, fault: Fault | None
    ) -> bool:
        """Send body events then tail events, applying a stream fault; return whether the stream ended early."""
        after = fault.after_chunks if fault is not None else len(events) + 1
        for index, event in enumerate([*events, None]):
            if index == after and fault is not None:
                if fault.kind == "stall":
                    self._wait(fault.seconds)
                elif fault.kind == "stream_error":
                    self._fault_event(fault)
                    self._chunk(b"")
                    return True
                elif fault.kind == "end_stream":
                    self._chunk(b"")
                    return True
                else:  # truncate: the chunked body is never terminated
                    self.close_connection = True
                    return True
            if event is not None:
                self._wait(reply.chunk_delay)
                self._event(event)
        for event in tail:
            self._event(event)
        return False

    # -- raw generation ------------------------------------------------------------------------------

    def _generate(self, record: RecordedRequest, *, stream: bool) -> None:
        tgi = self.tgi
        stream = stream or (isinstance(record.json, dict) and record.json.get("stream") is True)
        try:
            req = parse_generate(record.json, stream, tgi.max_input_tokens, tgi.max_total_tokens)
        except TGIError as error:
            self._stream_error(error) if stream and not error.plain else self._error(error)
            return
        limit = tgi.max_input_tokens
        context = TGIError(422, validation_message(f"`inputs` must have less than {limit} tokens. Given: {limit + 1}"))
        resolved = self._resolve(self._next(None), stream, context)
        if resolved is None:
            return
        reply, fault = resolved
        self._wait(reply.delay)
        gen = resolve_text(reply, req)
        if fault is not None and fault.kind == "malformed_json":
            self._malformed_tgi(req.stream, b'{"index":0,"token":{"id":')
        elif req.stream:
            self._start_stream({"x-compute-characters": str(len(req.inputs)), **reply.headers})
            events, tail = text_events(gen)
            if not self._events(events, tail, reply, fault):
                self._chunk(b"")
        else:
            body = text_body(gen)
            self._send_body(dumps([body] if record.path == "/" else body), timing_headers(req, gen, reply), fault)

    def _malformed_tgi(self, stream: bool, broken: bytes) -> None:
        """A 200 whose body (or, in a stream, whose first event) is not valid JSON."""
        if not stream:
            self._send(200, broken, content_type=_JSON)
            return
        self._start_stream({})
        self._chunk(b"data:" + broken + b"\n\n")
        self._chunk(b"")

    def _send_body(self, raw: bytes, headers: Mapping[str, str], fault: Fault | None) -> None:
        """A 200 JSON reply; a `truncate` fault sends half of it and hangs up."""
        if fault is not None and fault.kind == "truncate":
            self._send_head(200, {"content-type": _JSON, "content-length": str(len(raw)), **headers})
            self.wfile.write(raw[: len(raw) // 2])
            self.close_connection = True
            return
        self._send(200, raw, headers)

    # -- the Messages API --------------------------------------------------------------------------

    def _chat(self, record: RecordedRequest) -> None:
        body, tgi = record.json, self.tgi
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(TGIError(422, f"{_UNREADABLE}missing field `messages`", plain=True))
            return
        problem = check_response_format(body.get("response_format"))
        if problem is not None:
            self._error(TGIError(422, f"{_UNREADABLE}response_format: {problem}", plain=True))
            return
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        stream, prompt = body.get("stream") is True, count_chat_tokens(messages)
        new = body.get("max_tokens") or body.get("max_completion_tokens") or tgi.max_total_tokens - prompt
        context = TGIError(422, context_message(tgi.max_total_tokens, max(prompt, tgi.max_total_tokens), new))
        if prompt + new > tgi.max_total_tokens:
            self._stream_error(context) if stream else self._error(context)
            return
        resolved = self._resolve(self._next(body.get("model")), stream, context)
        if resolved is None:
            return
        reply, fault = resolved
        self._wait(reply.delay)
        gen = resolve_chat(
            reply,
            messages,
            prompt,
            tgi.model_id,
            numeric_ids=tgi.tool_call_ids == "number",
            object_arguments=tgi.tool_arguments == "object",
        )
        created = int(time.time())
        if fault is not None and fault.kind == "malformed_json":
            self._malformed_tgi(stream, b'{"object":"chat.completion","choices":[{')
        elif stream:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            events, tail = chat_events(gen, created, reply.chunks, include_usage)
            self._start_stream(reply.headers)
            if not self._events(events, tail, reply, fault):
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
        else:
            raw = dumps(chat_body(gen.model, created, chat_message(gen), gen.finish, gen.usage))
            counts = {"x-prompt-tokens": str(gen.prompt), "x-generated-tokens": str(gen.completion)}
            self._send_body(raw, {"x-compute-type": "gpu+optimized", **counts, **reply.headers}, fault)


class FakeTGIServer(ScriptedServer):
    """A TGI server (what a Hugging Face Inference Endpoint runs) on 127.0.0.1, scripted like `FakeServer`.

    Example:
        ```python
        with FakeTGIServer() as tgi:
            tgi.enqueue(Reply("Hello!"), Fault.status(424, "Request failed during generation: CUDA OOM"))
            client = huggingface_hub.InferenceClient(base_url=tgi.url)
            client.text_generation("<s>[INST] Hi [/INST]", max_new_tokens=20)  # "Hello!"
        ```

    Args:
        model_id: The served model (``/info``'s ``model_id``, the chat route's ``model``).
        max_input_tokens: Prompt limit (TGI's default for Llama 2: 4095).
        max_total_tokens: Prompt plus ``max_new_tokens`` limit (4096).
        api_key: If set, every route but ``/health`` needs ``Authorization: Bearer <api_key>``.
        default_reply: What to answer when nothing is queued; `None` echoes the last user turn.
        chat_route: Serve ``/v1/chat/completions`` (an endpoint without a chat template has none).
        scaled_to_zero: Answer 503 until a request carries ``X-Scale-Up-Timeout``; it then waits
            ``scale_up_seconds``, answers, and the endpoint stays up.
        scale_up_seconds: How long the simulated cold start takes.
        tool_arguments: ``"object"`` sends tool-call ``arguments`` as a JSON object, as TGI 1.4-3.0
            do; ``"string"`` (default) as JSON text, like OpenAI.
        tool_call_ids: ``"number"`` numbers tool calls without an id of their own as JSON numbers
            (``"id": 0``), as TGI 1.4 does; ``"string"`` (default) as text (``"0"``).
        tokenize_route: Serve ``POST /tokenize`` (False: 404, a server or proxy without it).
        host: The interface to bind.
        port: The port to bind; 0 picks a free one.
    """

    def __init__(
        self,
        model_id: str = "meta-llama/Llama-2-7b-chat-hf",
        *,
        max_input_tokens: int = 4095,
        max_total_tokens: int = 4096,
        api_key: str | None = None,
        default_reply: Reply | None = None,
        chat_route: bool = True,
        scaled_to_zero: bool = False,
        scale_up_seconds: float = 0.05,
        tool_arguments: Literal["string", "object"] = "string",
        tool_call_ids: Literal["string", "number"] = "string",
        tokenize_route: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(api_key=api_key, default_reply=default_reply, host=host, port=port)
        self.model_id = model_id
        self.max_input_tokens = max_input_tokens
        self.max_total_tokens = max_total_tokens
        self.chat_route = chat_route
        #: False while the endpoint is scaled to zero.
        self.warm = not scaled_to_zero
        self.scale_up_seconds = scale_up_seconds
        self.tool_arguments = tool_arguments
        self.tool_call_ids = tool_call_ids
        self.tokenize_route = tokenize_route
        #: False makes ``/health`` answer 503 ``error_type: "healthcheck"``.
        self.healthy = True
        self._warm_lock = threading.Lock()

    handler = TGIHandler

    def __repr__(self) -> str:
        return f"FakeTGIServer(model_id={self.model_id!r}, {self._where()})"

    @property
    def base_url(self) -> str:
        """The endpoint URL to configure: the server root (TGI's routes hang off it), like `url`."""
        return self.url

    @property
    def generate_requests(self) -> list[RecordedRequest]:
        """The raw-generation requests (``POST /``, ``/generate``, ``/generate_stream``), in order."""
        return self._posts(lambda path: path in ("/", "/generate", "/generate_stream"))

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The Messages API requests (``POST /v1/chat/completions``), in arrival order."""
        return self._posts(lambda path: path == "/v1/chat/completions")

    def _scale_up(self, headers: Mapping[str, str]) -> bool:
        """Whether the request may be served: warm, or it asked to wait for the cold start."""
        with self._warm_lock:
            if self.warm:
                return True
            if "x-scale-up-timeout" not in headers:
                return False
            self._stop.wait(self.scale_up_seconds)
            self.warm = True
            return True


def _error_type(status: int) -> str | None:
    return {422: "validation", 424: "generation", 429: "overloaded", 500: "incomplete_generation"}.get(status)
