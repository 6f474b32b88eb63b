"""What a fake server is told to answer: replies and faults (the requests it saw: `_scripted_server`).

`Reply` is a successful chat completion and `Fault` is anything else (an HTTP error, a dropped
connection, a broken stream). Both are frozen values. The server turns them into the bytes of its
flavor only when a request arrives (see `_wire.py` and `_errors.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "Fault",
    "FaultKind",
    "Reply",
    "Scripted",
    "ToolCallSpec",
]

#: The kinds of `Fault`. Error kinds (`status` and the named errors) render an HTTP error body.
FaultKind: TypeAlias = Literal[
    "status",
    "rate_limit",
    "insufficient_quota",
    "server_error",
    "unauthorized",
    "not_found",
    "context_length",
    "content_filter",
    "drop",
    "truncate",
    "end_stream",
    "stream_error",
    "malformed_json",
    "slow",
    "stall",
    "response",
]


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool call the fake model makes (or, as `Reply.function_call`, one legacy function call).

    Example:
        `ToolCallSpec("get_weather", {"city": "Paris"}, id=0)` is a TGI 1.4-style call (numeric id,
        arguments as an object); `ToolCallSpec("run_sql", "SELECT 1", type="custom")` a custom tool call.

    Args:
        name: The function (or custom tool) name.
        arguments: The arguments as a JSON string, sent as given (even if it is not valid JSON); a
            mapping is sent as a JSON object, as TGI 1.4-3.0 do. For a custom call: its free-text input.
        id: The call id. `None` generates one in the flavor's style (`call_…` or `chatcmpl-tool-…`);
            `""` sends the call without an id, as some OpenAI-compatible hosts do; an `int` is sent
            as a JSON number, as TGI 1.4 does (`"id": 0`).
        type: `"function"`, or `"custom"` for OpenAI's custom tool call
            (`{"type": "custom", "custom": {"name", "input"}}`, `input` being `arguments`).
    """

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    id: str | int | None = None
    type: Literal["function", "custom"] = "function"

    def __post_init__(self) -> None:
        if self.type == "custom" and not isinstance(self.arguments, str):
            raise ValueError("a custom tool call's input (arguments) is text")


@dataclass(frozen=True)
class Reply:
    """A successful chat completion.

    Example:
        `Reply("Hello!", completion_tokens=3)` or
        `Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}')])`.

    Args:
        text: The assistant's content. `None` echoes the last user message, or sends no content
            (`null`) when `tool_calls` is set.
        finish_reason: `None` means `"tool_calls"` when there are tool calls, `"function_call"` with
            a `function_call`, else `"stop"` (TGI 1.4 says `"eos_token"` after tool calls: set it).
        tool_calls: Function calls to return; streamed as per-index deltas.
        function_call: A legacy `functions` API call: sent as `message.function_call` (streamed as
            `delta.function_call` fragments), finish reason `"function_call"` unless set.
        prompt_tokens: Reported prompt tokens. `None` counts the request with `count_chat_tokens`.
        completion_tokens: Reported completion tokens. `None` counts the text and tool calls with
            `count_tokens`, plus `reasoning_tokens`.
        cached_tokens: If set, reported as `usage.prompt_tokens_details.cached_tokens`.
        reasoning_tokens: If set, reported as `usage.completion_tokens_details.reasoning_tokens`.
        usage: `False` omits usage entirely: no `usage` key in the body, no usage chunk.
        chunks: How many content deltas a stream splits `text` into. `None` is one per word.
        chunk_delay: Seconds to wait between streamed events.
        model: The model id to report. `None` reports the requested one.
        headers: Extra response headers; they override the defaults.
        delay: Seconds to wait before sending the response headers.
        content_filter: `FakeAzureServer` only: content-filter categories that fired on the
            completion, with their severity (`{"violence": "medium"}`); they are marked
            `filtered: true` in the choices' `content_filter_results`. Pair it with
            `finish_reason="content_filter"`.
    """

    text: str | None = None
    _: KW_ONLY
    finish_reason: str | None = None
    tool_calls: Sequence[ToolCallSpec] | None = None
    function_call: ToolCallSpec | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage: bool = True
    chunks: int | None = None
    chunk_delay: float = 0.0
    model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_filter: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        counts = (self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.reasoning_tokens)
        if any(n is not None and n < 0 for n in counts):
            raise ValueError("token counts must be >= 0")
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("chunks must be >= 1")
        if self.delay < 0 or self.chunk_delay < 0:
            raise ValueError("delays must be >= 0")
        if self.tool_calls is not None:
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.function_call is not None and self.function_call.type != "function":
            raise ValueError("a legacy function_call is a function, not a custom tool call")


@dataclass(frozen=True)
class Fault:
    """Anything other than a successful reply: an HTTP error, a broken connection or stream.

    Build one with a constructor (`Fault.rate_limit(retry_after=2)`, `Fault.drop()`, …); each
    renders the exact status, headers and body of the server's flavor. The fields are the
    constructors' parameters; read them, don't build a `Fault` by hand.
    """

    kind: FaultKind
    status_code: int | None = None
    message: str | None = None
    error_type: str | None = None
    error_code: str | int | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    retry_after_ms: int | None = None
    retry_after_date: bool = False
    max_model_len: int | None = None
    prompt_tokens: int | None = None
    model: str | None = None
    after_chunks: int = 0
    seconds: float = 0.0
    then: Reply | Fault | None = None
    status_key: str | None = None
    event: str | None = None
    categories: Mapping[str, str] | None = None
    body: bytes = b""
    content_type: str | None = None

    @property
    def is_error(self) -> bool:
        """Whether this fault is answered with an HTTP error status and body."""
        return self.kind not in (
            "drop",
            "truncate",
            "end_stream",
            "stream_error",
            "malformed_json",
            "slow",
            "stall",
            "response",
        )

    @classmethod
    def status(
        cls,
        code: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        error_code: str | int | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Any HTTP error status with the flavor's error envelope.

        Args:
            code: The HTTP status (400-599).
            message: The error message; `None` uses the status's standard phrase.
            error_type: `error.type`; `None` picks the flavor's default for the status.
            error_code: `error.code`; `None` is `null` (openai) or the status number (vllm).
            param: `error.param`.
            headers: Extra response headers.

        Returns:
            The fault.
        """
        if not 400 <= code <= 599:
            raise ValueError("an error status must be 400-599")
        return cls(
            "status",
            status_code=code,
            message=message,
            error_type=error_type,
            error_code=error_code,
            param=param,
            headers=dict(headers or {}),
        )

    @classmethod
    def rate_limit(
        cls,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        retry_after_date: bool = False,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """429 `rate_limit_exceeded` (openai: `type` "requests"), which is safe to retry.

        Args:
            retry_after: Seconds for the `retry-after` header; `None` sends no such header.
            retry_after_ms: Milliseconds for the `retry-after-ms` header.
            retry_after_date: Send `retry-after` as an HTTP date `retry_after` seconds from now.
            headers: Extra response headers.

        Returns:
            The fault.
        """
        if retry_after_date and retry_after is None:
            raise ValueError("retry_after_date needs retry_after")
        return cls(
            "rate_limit",
            status_code=429,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            retry_after_date=retry_after_date,
            headers=dict(headers or {}),
        )

    @classmethod
    def insufficient_quota(cls, *, headers: Mapping[str, str] | None = None) -> Fault:
        """429 with `type` and `code` `insufficient_quota`: out of credit, retrying won't help."""
        return cls("insufficient_quota", status_code=429, headers=dict(headers or {}))

    @classmethod
    def server_error(
        cls, status: int = 500, message: str | None = None, *, headers: Mapping[str, str] | None = None
    ) -> Fault:
        """A 5xx error (openai 503: "The engine is currently overloaded, please try again later").

        Args:
            status: 500-599.
            message: The message; `None` uses the flavor's usual wording for the status.
            headers: Extra response headers.

        Returns:
            The fault.
        """
        if not 500 <= status <= 599:
            raise ValueError("a server error status must be 500-599")
        return cls("server_error", status_code=status, message=message, headers=dict(headers or {}))

    @classmethod
    def unauthorized(cls) -> Fault:
        """401: openai `invalid_api_key` envelope; vllm the flat `{"error": "Unauthorized"}`."""
        return cls("unauthorized", status_code=401)

    @classmethod
    def not_found(cls, model: str | None = None) -> Fault:
        """404 model not found (openai `model_not_found`; vllm `NotFoundError`, `param` "model").

        Args:
            model: The model named in the message; `None` names the requested one.

        Returns:
            The fault.
        """
        return cls("not_found", status_code=404, model=model)

    @classmethod
    def context_length(cls, max_model_len: int | None = None, prompt_tokens: int | None = None) -> Fault:
        """400 context overflow (openai `context_length_exceeded`; vllm `param` "input_tokens").

        Args:
            max_model_len: The context length in the message; `None` uses the server's.
            prompt_tokens: The prompt size in the message; `None` uses the request's count, raised
                to just over the limit.

        Returns:
            The fault.
        """
        return cls("context_length", status_code=400, max_model_len=max_model_len, prompt_tokens=prompt_tokens)

    @classmethod
    def content_filter(cls, categories: Mapping[str, str] | None = None) -> Fault:
        """Azure OpenAI's 400 for a prompt its content filter refused (``code`` "content_filter").

        The body has ``innererror`` {``code`` "ResponsibleAIPolicyViolation",
        ``content_filter_result``}, as Azure sends it (every flavor renders Azure's shape).

        Args:
            categories: The categories that fired and their severity (``"jailbreak"``: any
                value); `None` is `{"violence": "medium"}`.

        Returns:
            The fault.
        """
        return cls("content_filter", status_code=400, categories=dict(categories or {"violence": "medium"}))

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls("drop")

    @classmethod
    def truncate_stream(cls, after_chunks: int = 2, *, reply: Reply | None = None) -> Fault:
        """A 200 response cut off mid-body: no finish chunk, no usage, no `data: [DONE]`.

        A stream stops after `after_chunks` content chunks and the chunked body is never
        terminated. A non-stream request gets a `Content-Length` and half the body.

        Args:
            after_chunks: Content chunks to send before the cut.
            reply: The reply being cut; `None` uses the server's default reply.

        Returns:
            The fault.
        """
        _check_after(after_chunks)
        return cls("truncate", after_chunks=after_chunks, then=reply)

    @classmethod
    def end_stream(cls, after_chunks: int = 2, *, reply: Reply | None = None) -> Fault:
        """A 200 stream that ends cleanly after `after_chunks` content chunks, without its terminator.

        The chunked body is terminated properly, but no finish chunk, usage or `data: [DONE]`
        (TGI: no last event) is sent: the way a proxy closes a stream when its upstream stops. A
        non-stream request gets the whole reply.

        Args:
            after_chunks: Content chunks to send before the end.
            reply: The reply being cut; `None` uses the server's default reply.

        Returns:
            The fault.
        """
        _check_after(after_chunks)
        return cls("end_stream", after_chunks=after_chunks, then=reply)

    @classmethod
    def stream_error(
        cls,
        after_chunks: int = 1,
        message: str = "The server had an error while processing your request. Sorry about that!",
        status: int = 500,
        *,
        error_type: str | None = None,
        error_code: str | int | None = None,
        status_key: str | None = None,
        event: str | None = None,
        reply: Reply | None = None,
    ) -> Fault:
        """A 200 stream that sends `data: {"error": {...}}` after `after_chunks` content chunks.

        openai: the stream then ends without `[DONE]`; vllm: `data: [DONE]` follows, as vLLM does.
        A non-stream request gets the same error as an HTTP `status` response.

        Example:
            Groq's refusal of a malformed tool call, before any content:
            `Fault.stream_error(0, "Failed to call a function.", 400, error_type="invalid_request_error",
            error_code="tool_use_failed", status_key="status_code", event="error")` sends
            `event: error` and `data: {"error": {"message": ..., "type": "invalid_request_error",
            "code": "tool_use_failed", "status_code": 400}}`.

        Args:
            after_chunks: Content chunks to send before the error event.
            message: `error.message`.
            status: The status the error stands for (vllm `error.code`; the non-stream status).
            error_type: `error.type`; `None` is the flavor's (openai "server_error", vllm the class name).
            error_code: `error.code`; `None` is the flavor's (openai `null`, vllm the status).
            status_key: Also send `status` under this key of `error` (Groq: `"status_code"`, TGI:
                `"http_status_code"`).
            event: An SSE `event:` name sent before the `data:` line (Groq: `"error"`).
            reply: The reply being interrupted; `None` uses the server's default reply.

        Returns:
            The fault.
        """
        _check_after(after_chunks)
        return cls(
            "stream_error",
            status_code=status,
            message=message,
            error_type=error_type,
            error_code=error_code,
            after_chunks=after_chunks,
            then=reply,
            status_key=status_key,
            event=event,
        )

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 with a body that is not valid JSON (when streaming: one malformed `data:` line)."""
        return cls("malformed_json")

    @classmethod
    def slow(cls, first_byte_delay: float, then: Reply | Fault | None = None) -> Fault:
        """Wait `first_byte_delay` seconds before the response headers, then answer `then`.

        Args:
            first_byte_delay: Seconds before anything is sent.
            then: What to answer after the wait; `None` is the server's default reply.

        Returns:
            The fault.
        """
        if first_byte_delay < 0:
            raise ValueError("first_byte_delay must be >= 0")
        return cls("slow", seconds=first_byte_delay, then=then)

    @classmethod
    def stall_stream(cls, after_chunks: int, seconds: float, *, reply: Reply | None = None) -> Fault:
        """Pause a stream for `seconds` after `after_chunks` content chunks, then finish normally.

        A non-stream request gets its headers at once and the body after the pause.

        Args:
            after_chunks: Content chunks to send before the pause.
            seconds: Length of the pause.
            reply: The reply being stalled; `None` uses the server's default reply.

        Returns:
            The fault.
        """
        _check_after(after_chunks)
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return cls("stall", after_chunks=after_chunks, seconds=seconds, then=reply)

    @classmethod
    def response(
        cls,
        status: int,
        body: bytes | str = b"",
        *,
        content_type: str | None = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer exactly this status, body and content-type, whatever was asked (stream or not).

        For servers that misbehave: an error body sent with 200, a proxy's HTML page, an empty
        500, a redirect (give ``headers={"location": ...}``). `FakeServer` only.

        Args:
            status: The HTTP status (100-599).
            body: The body, sent as given (a str is encoded as UTF-8).
            content_type: The `content-type` header; `None` sends none.
            headers: Extra response headers.

        Returns:
            The fault.
        """
        if not 100 <= status <= 599:
            raise ValueError("status must be 100-599")
        raw = body.encode() if isinstance(body, str) else body
        return cls("response", status_code=status, body=raw, content_type=content_type, headers=dict(headers or {}))


def _check_after(after_chunks: int) -> None:
    if after_chunks < 0:
        raise ValueError("after_chunks must be >= 0")


#: What `FakeServer.enqueue` accepts.
Scripted: TypeAlias = Reply | Fault
