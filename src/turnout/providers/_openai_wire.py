"""The OpenAI chat-completions wire format <-> turnout's types. Pure functions, no I/O.

Shared by every provider that speaks ``POST /v1/chat/completions`` (OpenAI, vLLM, TGI's
Messages API, OpenAI-compatible hosts). Shapes: PROTOCOLS.md §1.2-1.5 (openai-python v1.109.1
types and openapi.yaml, read 2026-08-21) and §2 for vLLM's differences.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError

from .._construct import construct
from ..errors import APIStatusError, ResponseValidationError, error_from_response
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
    finish_reason_from_wire,
    tool_call_id,
    tool_calls_finish,
)

__all__ = ["DONE", "DONE_DATA", "build_body", "parse_chunk", "parse_completion"]

#: The data payload that ends an OpenAI-style stream.
DONE = "[DONE]"
DONE_DATA = DONE.encode()  # as `_sse` hands it out
_REQUEST_FIELDS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "n",
    "response_format",
    "tools",
    "tool_choice",
    "user",
)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Function(_Wire):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(_Wire):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Message(_Wire):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(_Wire):
    index: int = 0
    message: _Message
    finish_reason: str | None = None


class _PromptDetails(_Wire):
    cached_tokens: int | None = None


class _CompletionDetails(_Wire):
    reasoning_tokens: int | None = None


class _Usage(_Wire):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Completion(_Wire):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice]
    usage: _Usage | None = None


class _Delta(_Wire):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _ChunkChoice(_Wire):
    index: int = 0
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(_Wire):
    model: str | None = None
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None
    error: Any = None


def build_body(model: str, request: ChatRequest, *, stream: bool, fields: dict[str, Any] | None = None) -> bytes:
    """Encode a request as the JSON body of ``POST /chat/completions``.

    Streams ask for usage (``stream_options.include_usage``); non-streams must not send
    ``stream_options`` (vLLM rejects it, PROTOCOLS.md §2.3). ``fields`` are top-level keys from
    the provider's typed options (vLLM's ``top_k``...); ``extra_body`` overrides them.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.model_dump(exclude_none=True) for m in request.messages],
    }
    for field in _REQUEST_FIELDS:
        value = getattr(request, field)
        if value is not None:
            body[field] = value
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if fields:
        body.update(fields)
    if request.extra_body:
        body.update(request.extra_body)
    return pydantic_core.to_json(body)


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
    )


def _tool_calls(wire: list[_ToolCall] | None) -> list[ToolCall]:
    calls = []
    for position, call in enumerate(wire or ()):
        function = call.function or _Function()
        name, arguments = function.name or "", function.arguments or ""
        calls.append(
            ToolCall(
                id=call.id or tool_call_id(position, name, arguments),
                function=FunctionCall(name=name, arguments=arguments),
            )
        )
    return calls


def parse_completion(raw: bytes, *, provider: str, model: str, request_id: str | None) -> ChatResponse:
    """Decode a ``chat.completion`` body.

    Raises:
        ResponseValidationError: the body is not JSON, or has no ``choices`` (an empty list included).
    """
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
        calls = _tool_calls(c.message.tool_calls)
        finish = tool_calls_finish(finish_reason_from_wire(c.finish_reason), bool(calls))
        choices.append(
            construct(Choice, index=c.index, text=c.message.content or "", finish_reason=finish, tool_calls=calls)
        )
    first = choices[0]
    return construct(
        ChatResponse,
        text=first.text,
        choices=choices,
        usage=_usage(wire.usage),
        cost=None,
        provider=provider,
        model=wire.model or model,
        attempts=[],
        finish_reason=first.finish_reason,
        tool_calls=first.tool_calls,
        id=wire.id,
        request_id=request_id,
        warnings=[],
        parsed=None,
    )


def parse_chunk(data: str | bytes, *, provider: str, model: str) -> list[ChatChunk]:
    """Decode one SSE ``data:`` payload into chunks (one per choice, plus one for usage).

    Raises:
        APIStatusError: the payload is an in-stream error event.
        ResponseValidationError: the payload is not a chunk.
    """
    try:
        plain = _plain_chunks(pydantic_core.from_json(data))
    except ValueError:
        plain = None
    if plain is not None:
        return plain
    try:
        wire = _Chunk.model_validate_json(data)
    except ValidationError as exc:
        raise ResponseValidationError(
            f"stream event is not a chat completion chunk: {_first_error(exc)}", provider=provider, model=model
        ) from exc
    if wire.error is not None:
        raise _stream_error(wire.error, provider=provider, model=model)
    chunks = []
    for choice in wire.choices:
        delta = choice.delta or _Delta()
        chunks.append(
            construct(
                ChatChunk,
                text=delta.content,
                index=choice.index,
                finish_reason=finish_reason_from_wire(choice.finish_reason),
                tool_calls=[_tool_delta(t) for t in delta.tool_calls] if delta.tool_calls else [],
                usage=None,
                model=wire.model,
            )
        )
    if wire.usage is not None:
        chunks.append(
            construct(
                ChatChunk,
                text=None,
                index=0,
                finish_reason=None,
                tool_calls=[],
                usage=_usage(wire.usage),
                model=wire.model,
            )
        )
    return chunks


def _plain_chunks(event: object) -> list[ChatChunk] | None:
    """The chunks of a text-only event, or None when it needs the validated path.

    Text-only: a JSON object without ``error``, ``usage`` or tool calls, every field of the
    expected type. Most events of a stream are; the others (and anything odd) are validated.
    """
    if type(event) is not dict or event.get("error") is not None or event.get("usage") is not None:
        return None
    model, choices = event.get("model"), event.get("choices", [])
    if not (model is None or type(model) is str) or type(choices) is not list:
        return None
    chunks = []
    for choice in choices:
        chunk = _plain_choice(choice, model)
        if chunk is None:
            return None
        chunks.append(chunk)
    return chunks


def _plain_choice(choice: object, model: str | None) -> ChatChunk | None:
    if type(choice) is not dict:
        return None
    delta, index, finish = choice.get("delta") or {}, choice.get("index", 0), choice.get("finish_reason")
    if type(delta) is not dict or delta.get("tool_calls") or type(index) is not int:
        return None
    text = delta.get("content")
    if not (text is None or type(text) is str) or not (finish is None or type(finish) is str):
        return None
    return construct(
        ChatChunk,
        text=text,
        index=index,
        finish_reason=finish_reason_from_wire(finish),
        tool_calls=[],
        usage=None,
        model=model,
    )


def _tool_delta(call: _ToolCall) -> ToolCallDelta:
    function = call.function or _Function()
    return ToolCallDelta.model_construct(
        index=call.index, id=call.id, name=function.name, arguments=function.arguments or ""
    )


def _stream_error(error: object, *, provider: str, model: str) -> APIStatusError:
    """Map an in-stream ``{"error": ...}`` event (OpenAI, vLLM, TGI shapes) to a typed error."""
    status = 500
    if isinstance(error, dict):
        for key in ("code", "http_status_code"):
            code = error.get(key)
            if isinstance(code, int) and 400 <= code < 600:
                status = code
                break
    return error_from_response(status, {}, pydantic_core.to_json({"error": error}), provider=provider, model=model)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_input=False, include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}" if loc else err["msg"]
