"""The OpenAI chat-completions wire format <-> turnout's types. Pure functions, no I/O.

Shared by every provider that speaks ``POST /v1/chat/completions`` (OpenAI, vLLM, TGI's
Messages API, OpenAI-compatible hosts). Shapes: https://platform.openai.com/docs/api-reference/chat
(openai-python v1.109.1 types and openapi.yaml, read 2026-08-21); vLLM's differences:
https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pydantic_core
from pydantic import ValidationError

from .._construct import construct
from .._messages import dump_messages
from ..errors import APIStatusError, ResponseValidationError
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    FunctionCall,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
    make_tool_call,
    tool_calls_finish,
)
from ._openai_errors import error_from_response
from ._openai_fast import finish_reason_from_wire, make_reply, plain_chunks, plain_completion

if TYPE_CHECKING:
    from ._openai_models import _Function, _Logprobs, _ToolCall, _Usage

__all__ = [
    "DONE",
    "DONE_DATA",
    "build_body",
    "continue_final_message",
    "event_status",
    "finish_reason_from_wire",
    "parse_chunk",
    "parse_completion",
]

#: The data payload that ends an OpenAI-style stream.
DONE = "[DONE]"
DONE_DATA = DONE.encode()  # as `_sse` hands it out
_REQUEST_FIELDS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "response_format",
    "tools",
    "tool_choice",
    "user",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "reasoning_effort",
)


def build_body(
    model: str,
    request: ChatRequest,
    *,
    stream: bool,
    fields: dict[str, Any] | None = None,
    completion_cap: bool = False,
) -> bytes:
    """Encode a request as the JSON body of ``POST /chat/completions``.

    Streams ask for usage (``stream_options.include_usage``); non-streams must not send
    ``stream_options`` (vLLM answers 400: it is only allowed with ``stream=True``). ``fields`` are
    top-level keys from the provider's typed options (vLLM's ``top_k``...); ``extra_body``
    overrides them. The output cap goes as ``max_completion_tokens`` when the call named it so or
    ``completion_cap`` is set (a model that rejects ``max_tokens``), else as ``max_tokens``.
    """
    body: dict[str, Any] = {}
    if request.max_tokens is not None:
        cap = completion_cap or request.max_completion_tokens is not None
        body["max_completion_tokens" if cap else "max_tokens"] = request.max_tokens
    request_fields = request.__dict__  # a pydantic model keeps every field there: no getattr per field
    for field in _REQUEST_FIELDS:
        value = request_fields[field]
        if value is not None:
            body[field] = value
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if fields:
        body.update(fields)
    if request.extra_body:
        body.update(request.extra_body)
    if "model" in body or "messages" in body:  # extra_body (or an option) replaces them, in their place
        return pydantic_core.to_json({"model": model, "messages": _dumped(request), **body})
    # The messages (most of a long conversation's body) go straight to JSON in one pass, placed
    # after "model" and before the other keys.
    rest = pydantic_core.to_json(body)
    head = b'{"model":%s,"messages":%s' % (pydantic_core.to_json(model), dump_messages(request.messages))
    return head + (b"," + rest[1:] if len(rest) > 2 else b"}")


def _dumped(request: ChatRequest) -> list[dict[str, Any]]:
    return [m.model_dump(exclude_none=True) for m in request.messages]


def _usage(wire: _Usage | None) -> Usage:
    if wire is None:
        return Usage()
    return construct(
        Usage,
        prompt_tokens=wire.prompt_tokens,
        completion_tokens=wire.completion_tokens,
        total_tokens=wire.total_tokens,
        cached_tokens=wire.prompt_tokens_details.cached_tokens if wire.prompt_tokens_details else None,
        reasoning_tokens=(wire.completion_tokens_details.reasoning_tokens if wire.completion_tokens_details else None),
        estimated=False,
    )


def _logprobs(wire: _Logprobs | None) -> list[TokenLogprob] | None:
    """The ``logprobs.content`` list of a choice (None when the server sent none)."""
    if wire is None or wire.content is None:
        return None
    return [
        TokenLogprob(
            token=t.token,
            logprob=t.logprob,
            bytes=t.bytes,
            top_logprobs=[TopLogprob(token=x.token, logprob=x.logprob, bytes=x.bytes) for x in t.top_logprobs or ()],
        )
        for t in wire.content
    ]


def _tool_calls(wire: list[_ToolCall] | None) -> list[ToolCall]:
    """The calls of a message; raises ValueError for a call that is neither a function nor a custom tool."""
    calls = []
    for position, call in enumerate(wire or ()):
        kind = call.kind
        if kind == "custom" and call.custom is not None:
            name, text = call.custom.name or "", call.custom.input or ""
        elif kind == "function" and call.function is not None:
            name, text = call.function.name or "", call.function.arguments or ""
        elif call.type not in (None, "function", "custom"):
            raise ValueError(f"tool call {position} is of type {call.type!r}; turnout reads function and custom calls")
        else:
            raise ValueError(f"tool call {position} of type {call.type or 'function'!r} has no such part to read")
        calls.append(make_tool_call(position, call.id, name, text, kind))
    return calls


def _function_call(wire: _Function | None) -> FunctionCall | None:
    if wire is None:
        return None
    return FunctionCall(name=wire.name or "", arguments=wire.arguments or "")


def parse_completion(raw: bytes, *, provider: str, model: str, request_id: str | None) -> ChatResponse:
    """Decode a ``chat.completion`` body.

    Raises:
        ResponseValidationError: the body is not JSON, or has no ``choices`` (an empty list included).
    """
    try:
        plain = plain_completion(pydantic_core.from_json(raw), provider, model, request_id)
    except ValueError:  # not JSON: the validated path says so
        plain = None
    if plain is not None:
        return plain
    from ._openai_models import _Completion  # loaded by the first reply the fast path does not take

    try:
        wire = _Completion.model_validate_json(raw)
    except ValidationError as exc:
        raise ResponseValidationError(
            f"reply is not a chat completion: {_first_error(exc)}",
            provider=provider,
            model=model,
            request_id=request_id,
        ) from exc
    if not wire.choices:
        raise ResponseValidationError(
            "reply is not a chat completion: choices is empty (no answer at all)",
            provider=provider,
            model=model,
            request_id=request_id,
        )
    choices: list[Choice] = []
    for c in wire.choices:
        try:
            calls = _tool_calls(c.message.tool_calls)
        except ValueError as exc:
            raise ResponseValidationError(
                f"reply is not a chat completion: choices.{c.index}: {exc}",
                provider=provider,
                model=model,
                request_id=request_id,
            ) from exc
        finish = tool_calls_finish(finish_reason_from_wire(c.finish_reason), bool(calls))
        text, logprobs = c.message.content or "", _logprobs(c.logprobs)
        choices.append(
            construct(
                Choice,
                index=c.index,
                text=text,
                finish_reason=finish,
                tool_calls=calls,
                logprobs=logprobs,
                function_call=_function_call(c.message.function_call),
            )
        )
    return make_reply(choices, _usage(wire.usage), wire.model or model, wire.id, provider, request_id)


def parse_chunk(data: str | bytes, *, provider: str, model: str) -> list[ChatChunk]:
    """Decode one SSE ``data:`` payload into chunks (one per choice; usage on the last, else a chunk of its own).

    Raises:
        APIStatusError: the payload is an in-stream error event.
        ResponseValidationError: the payload is not a chunk.
    """
    try:
        plain = plain_chunks(pydantic_core.from_json(data))
    except ValueError:
        plain = None
    if plain is not None:
        return plain
    from ._openai_models import _Chunk, _Delta

    try:
        wire = _Chunk.model_validate_json(data)
    except ValidationError as exc:
        raise ResponseValidationError(
            f"stream event is not a chat completion chunk: {_first_error(exc)}", provider=provider, model=model
        ) from exc
    if wire.error is not None:
        raise _stream_error(wire.error, provider=provider, model=model)
    chunks = []
    usage = None if wire.usage is None else _usage(wire.usage)
    last = len(wire.choices) - 1
    for n, choice in enumerate(wire.choices):
        delta = choice.delta or _Delta()
        chunks.append(
            construct(
                ChatChunk,
                text=delta.content,
                index=choice.index,
                finish_reason=finish_reason_from_wire(choice.finish_reason),
                tool_calls=[_tool_delta(t) for t in delta.tool_calls] if delta.tool_calls else [],
                usage=usage if n == last else None,  # running counts (vLLM continuous_usage_stats) ride along
                model=wire.model,
                logprobs=_logprobs(choice.logprobs),
                function_call=_legacy_delta(delta.function_call),
                rate_limit=None,
            )
        )
    if usage is not None and not chunks:
        chunks.append(
            construct(
                ChatChunk,
                text=None,
                index=0,
                finish_reason=None,
                tool_calls=[],
                usage=usage,
                model=wire.model,
                logprobs=None,
                function_call=None,
                rate_limit=None,
            )
        )
    return chunks


def _tool_delta(call: _ToolCall) -> ToolCallDelta:
    from ._openai_models import _Custom, _Function

    if call.kind == "custom":
        custom = call.custom or _Custom()
        return ToolCallDelta.model_construct(
            index=call.index, id=call.id, name=custom.name, arguments=custom.input or "", type="custom"
        )
    function = call.function or _Function()
    return ToolCallDelta.model_construct(
        index=call.index, id=call.id, name=function.name, arguments=function.arguments or "", type=call.kind
    )


def _legacy_delta(call: _Function | None) -> ToolCallDelta | None:
    if call is None:
        return None
    return ToolCallDelta.model_construct(index=0, id=None, name=call.name, arguments=call.arguments or "", type=None)


#: In-stream error ``type`` words that say which status the error stands for (used when no status
#: is given): OpenAI's (https://platform.openai.com/docs/guides/error-codes), which Groq sends
#: too (https://console.groq.com/docs/errors), and Anthropic's, which compatible gateways pass on
#: (https://docs.anthropic.com/en/api/errors).
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 503,
}
_STATUS_KEYS = ("status_code", "http_status_code", "code")


def event_status(error: object) -> int | None:
    """The HTTP status an in-stream error object stands for: a numeric status it carries, else its type's or code's.

    None when it says neither (the caller decides: a 500 here, the exception class's for huggingface_hub).
    """
    if not isinstance(error, dict):
        return None
    for key in _STATUS_KEYS:
        value = error.get(key)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
            return value
    for key in ("type", "code"):  # OpenAI's rate limit: type "requests", code "rate_limit_exceeded"
        kind = error.get(key)
        if isinstance(kind, str) and kind in _TYPE_STATUS:
            return _TYPE_STATUS[kind]
    return None


def _stream_error(error: object, *, provider: str, model: str) -> APIStatusError:
    """Map an in-stream ``{"error": ...}`` event (OpenAI, vLLM, TGI, Groq shapes) to a typed error.

    The error is classified as an HTTP reply of the status it carries (Groq's ``status_code``,
    TGI's ``http_status_code``, vLLM's numeric ``code``) or its ``type`` stands for, so a 400 is a
    `BadRequestError` (not retried); without either it is a 500 `ServerError`.
    """
    status = event_status(error) or 500
    return error_from_response(status, {}, pydantic_core.to_json({"error": error}), provider=provider, model=model)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def continue_final_message(request: ChatRequest, partial: str) -> ChatRequest:
    """``request`` that makes a vLLM-style server continue ``partial`` instead of answering anew.

    The conversation gets ``partial`` as its final assistant message, and the body vLLM's chat
    extension fields ``continue_final_message: true`` and ``add_generation_prompt: false``
    (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html#chat-api, "Extra parameters").
    """
    from ..types import Message

    extra = {**(request.extra_body or {}), "continue_final_message": True, "add_generation_prompt": False}
    messages = [*request.messages, Message(role="assistant", content=partial)]
    return request.model_copy(update={"messages": messages, "extra_body": extra})
