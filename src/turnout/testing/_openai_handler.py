"""The OpenAI and vLLM wire of `FakeServer` (and under Azure's paths `FakeAzureServer`): routes, bodies, SSE."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from turnout.testing import _batches, _embed, _errors
from turnout.testing._chat import NO_MESSAGES, ChatRequest, error_context, parse_chat, resolve
from turnout.testing._errors import ErrorContext, WireError
from turnout.testing._script import Fault, Reply, Scripted
from turnout.testing._scripted_server import RecordedRequest, ScriptedHandler
from turnout.testing._wire import (
    DONE,
    VLLM_VERSION,
    Generation,
    StreamPlan,
    chat_token_ids,
    completion_body,
    dumps,
    model_card,
    models_body,
    new_completion_id,
    sse,
    stream_plan,
    token_ids,
    with_running_usage,
)

if TYPE_CHECKING:
    from turnout.testing._azure_server import FakeAzureServer
    from turnout.testing._openai_server import FakeServer

    #: The servers that speak this wire: their models, context length and flavor shape its bodies.
    OpenAIWireServer: TypeAlias = FakeServer | FakeAzureServer

__all__ = ["OpenAIHandler", "fake_server"]

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"


class OpenAIHandler(ScriptedHandler):
    """Answers one connection on behalf of a `FakeServer`: the OpenAI and vLLM wire format."""

    fake: OpenAIWireServer  # set on the subclass the server builds

    # -- plumbing -----------------------------------------------------------------------------

    def version_string(self) -> str:
        """The `Server` header the real servers send."""
        return "uvicorn" if self.fake.flavor == "vllm" else "cloudflare"

    def _base_headers(self) -> dict[str, str]:
        if self.fake.flavor == "vllm":
            return {}
        elapsed = int((time.monotonic() - self._started) * 1000)
        return {"x-request-id": self._request_id, "openai-processing-ms": str(elapsed), "openai-version": "2020-10-01"}

    def _send_error(self, error: WireError) -> None:
        self._send(error.status, error.body, error.headers)

    def _send_json(self, obj: Any) -> None:
        self._send(200, dumps(obj, self.fake.flavor))

    # -- routes -------------------------------------------------------------------------------

    def _context(self, model: str = "", **values: Any) -> ErrorContext:
        return error_context(self.fake, model, **values)

    def _authorized(self, path: str) -> bool:
        key = self.fake._api_key
        if key is None or not path.startswith("/v1"):
            return True
        auth = self.headers.get("authorization")
        if auth == f"Bearer {key}":
            return True
        self._send_error(_errors.missing_api_key(self._context(), provided=bool(auth)))
        return False

    def _route(self, record: RecordedRequest) -> None:
        """`FakeServer`'s routes (`FakeAzureServer`'s handler has its own)."""
        fake = fake_server(self)
        flavor, method, path = fake.flavor, record.method, record.path
        if not self._authorized(path):
            return
        if method == "GET" and path == "/health":
            self._send(200, b"")
        elif method == "GET" and path == "/version" and flavor == "vllm":
            self._send_json({"version": VLLM_VERSION})
        elif method == "GET" and path == "/v1/models":
            self._send_json(models_body(self.fake.models, flavor, self.fake.max_model_len, self.fake._created))
        elif method == "GET" and path.startswith("/v1/models/") and flavor == "openai":
            self._model(path.removeprefix("/v1/models/"))
        elif method == "POST" and path == "/v1/embeddings" and _embed.serves_embeddings(fake):
            _embed.answer(self, record)
        elif method == "POST" and path == "/v1/chat/completions" and fake.runner != "pooling":
            self._chat(record)
        elif method == "POST" and path == "/tokenize" and flavor == "vllm":
            self._tokenize(record)
        elif flavor == "openai" and path.startswith(("/v1/files", "/v1/batches")) and _batches.answer(self, record):
            pass
        else:
            self._send_error(_errors.unknown_route(flavor, method, path))

    def _model(self, model: str) -> None:
        if model not in self.fake.models:
            self._send_error(_errors.render_fault(Fault.not_found(model), self._context(model)))
            return
        self._send_json(model_card(model, "openai", None, self.fake._created))

    def _tokenize(self, record: RecordedRequest) -> None:
        body = record.json
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and not self.fake._serves(model):
            self._send_error(_errors.render_fault(Fault.not_found(model), self._context(model)))
        elif isinstance(body, dict) and isinstance(body.get("messages"), list):
            messages = [m for m in body["messages"] if isinstance(m, dict)]
            tokens = chat_token_ids(messages)
            self._send_json({"count": len(tokens), "max_model_len": self.fake.max_model_len, "tokens": tokens})
        elif isinstance(body, dict) and isinstance(body.get("prompt"), str):
            tokens = token_ids(body["prompt"])
            self._send_json({"count": len(tokens), "max_model_len": self.fake.max_model_len, "tokens": tokens})
        else:
            self._send_error(_errors.bad_request(self._context(), NO_MESSAGES["vllm"]))

    # -- chat ---------------------------------------------------------------------------------

    def _chat(self, record: RecordedRequest) -> None:
        req = parse_chat(record.json, self.fake)
        if isinstance(req, WireError):
            self._send_error(req)
            return
        self._answer(self.fake._next(req.model), req)

    def _answer(self, item: Scripted | None, req: ChatRequest) -> None:
        if item is None:
            item = self.fake.default_reply or Reply()
        if isinstance(item, Reply):
            self._reply(item, req)
        elif item.kind == "slow":
            self._wait(item.seconds)
            self._answer(item.then, req)
        elif item.kind == "drop":
            self.close_connection = True
        elif item.kind == "response":
            self._send_raw(item)
        elif item.is_error or (item.kind == "stream_error" and not req.stream):
            ctx = self._context(req.model, prompt_tokens=req.prompt_tokens, max_tokens=req.max_tokens)
            self._send_error(_errors.render_fault(item, ctx))
        elif item.kind == "malformed_json":
            self._malformed(req)
        else:
            reply = item.then if isinstance(item.then, Reply) else self.fake.default_reply or Reply()
            self._reply(reply, req, item)

    def _reply(self, reply: Reply, req: ChatRequest, fault: Fault | None = None) -> None:
        self._wait(reply.delay)
        gen = resolve(reply, req, self.fake.flavor)
        completion_id, created = new_completion_id(self.fake.flavor), int(time.time())
        headers = {**self._rate_headers(req), **reply.headers}
        if req.stream:
            plan = stream_plan(gen, self.fake.flavor, completion_id, created, req.include_usage)
            if req.running_usage:
                plan = with_running_usage(plan, gen)
            self._stream(plan, reply, headers, fault)
            return
        body = dumps(self._completion(gen, reply, completion_id, created), self.fake.flavor)
        if fault is None:
            self._send(200, body, headers)
            return
        self._send_head(200, {"content-type": _JSON, "content-length": str(len(body)), **headers})
        if fault.kind == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self._wait(fault.seconds)
        self.wfile.write(body)

    def _completion(self, gen: Generation, reply: Reply, completion_id: str, created: int) -> dict[str, Any]:
        """The non-streaming completion object (the Azure handler adds its content-filter results)."""
        del reply
        return completion_body(gen, self.fake.flavor, completion_id, created)

    def _rate_headers(self, req: ChatRequest) -> dict[str, str]:
        if self.fake.flavor == "vllm":
            return {}
        return {
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-limit-tokens": "10000000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-remaining-tokens": str(10_000_000 - req.prompt_tokens),
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "0s",
        }

    def _malformed(self, req: ChatRequest) -> None:
        broken = b'{"id":"chatcmpl-broken","object":"chat.completion","choices":[{"index":0,"message":{"role":'
        if not req.stream:
            self._send(200, broken, self._rate_headers(req))
            return
        self._start_stream({})
        self._chunk(b"data: " + broken + b"\n\n")
        self._chunk(DONE)
        self._chunk(b"")

    # -- streaming ----------------------------------------------------------------------------

    def _start_stream(self, headers: Mapping[str, str]) -> None:
        self._send_head(200, {"content-type": _SSE, "transfer-encoding": "chunked", **headers})

    def _stream(self, plan: StreamPlan, reply: Reply, headers: Mapping[str, str], fault: Fault | None) -> None:
        self._start_stream(headers)
        for event in plan.head:
            self._chunk(sse(event))
        after = fault.after_chunks if fault is not None else len(plan.body) + 1
        for index, event in enumerate(plan.body):
            if index == after and fault is not None and self._stream_fault(fault):
                return
            self._wait(reply.chunk_delay)
            self._chunk(sse(event))
        if after >= len(plan.body) and fault is not None and self._stream_fault(fault):
            return
        for event in plan.tail:
            self._wait(reply.chunk_delay)
            self._chunk(sse(event))
        self._chunk(DONE)
        self._chunk(b"")

    def _stream_fault(self, fault: Fault) -> bool:
        """Apply a stream fault at its chunk; return whether the stream is over."""
        if fault.kind == "stall":
            self._wait(fault.seconds)
            return False
        if fault.kind == "stream_error":
            name = b"event: %s\n" % fault.event.encode() if fault.event else b""
            self._chunk(name + sse(_errors.stream_error_event(fault, self._context())))
            if self.fake.flavor == "vllm":
                self._chunk(DONE)
            self._chunk(b"")
            return True
        if fault.kind == "end_stream":
            self._chunk(b"")  # a proper end of the chunked body, with no [DONE] before it
            return True
        self.close_connection = True  # truncate: the chunked body is never terminated
        return True


def fake_server(handler: OpenAIHandler) -> FakeServer:
    """The handler's server as a `FakeServer`, for the routes and settings only it has (vllm, batches)."""
    from turnout.testing._openai_server import FakeServer

    assert isinstance(handler.fake, FakeServer)
    return handler.fake
